/** `xenvirt domxml-from-native` / `domxml-to-native` through the real binary. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, SEED_DIR, CONFORMANCE_DIR } from './support.js';

const BIN = join(REPO_ROOT, 'bin', 'xenvirt');

function xenvirt(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { input, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("the seed's rhel5pv XM file gives exactly libvirt 9.0's XML", () => {
  const r = xenvirt(['domxml-from-native', 'xen-xm', join(SEED_DIR, 'rhel5pv.cfg')]);
  assert.equal(r.stderr, '');
  assert.equal(r.status, 0);
  assert.equal(r.stdout, readFileSync(join(SEED_DIR, 'rhel5pv-libvirt9.xml'), 'utf8'));
});

test("FILE '-' reads standard input, and XML converts back to native", () => {
  const cfg = readFileSync(join(CONFORMANCE_DIR, 'xl/to-native/fullvirt-nohap.cfg'), 'utf8');
  const xml = readFileSync(join(CONFORMANCE_DIR, 'xl/to-native/fullvirt-nohap.xml'), 'utf8');
  const r = xenvirt(['domxml-to-native', 'xen-xl', '-'], xml);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, cfg);
  const back = xenvirt(['domxml-from-native', 'xen-xl', '-'], r.stdout);
  assert.equal(back.status, 0, back.stderr);
  assert.match(back.stdout, /<name>XenGuest2<\/name>/);
});

test('graphics passwords are printed only with --security-info, as virsh does', () => {
  const file = join(CONFORMANCE_DIR, 'xm/from-native/fullvirt-utc.cfg');
  assert.doesNotMatch(xenvirt(['domxml-from-native', 'xen-xm', file]).stdout, /passwd=/);
  assert.match(xenvirt(['domxml-from-native', 'xen-xm', file, '--security-info']).stdout, /passwd='123poi'/);
});

test('sxpr output converts back through domxml-from-native xen-sxpr', () => {
  const xml = readFileSync(join(SEED_DIR, 'pv-direct-kernel.xml'), 'utf8');
  const sx = xenvirt(['domxml-to-native', 'xen-sxpr', '-'], xml);
  assert.equal(sx.status, 0, sx.stderr);
  const back = xenvirt(['domxml-from-native', 'xen-sxpr', '-'], sx.stdout);
  assert.equal(back.status, 0, back.stderr);
  assert.match(back.stdout, /<kernel>\/var\/lib\/xen\/install\/vmlinuz-fedora8-x86_64<\/kernel>/);
});

test('errors name the problem on stderr with exit status 1', () => {
  const cases: Array<[string[], string | undefined, RegExp]> = [
    [['domxml-from-native', 'xen-xm', '-'], 'name = "x"\nmemory = = 3\n', /^error: .*:2:\d+: /],
    [['domxml-from-native', 'xen-xm', '-'], 'name = "a"\nname = "b"\n', /^error: .*name/],
    [['domxml-from-native', 'xen-xm', '-'], 'name = "a"\nmemory = "lots"\n', /^error: .*memory/],
    [['domxml-from-native', 'xen-xm', '-'], 'name = "a"\ndisk = [ "bogus" ]\n', /^error: .*bogus/],
    [['domxml-from-native', 'xen-xm', '/nonexistent.cfg'], undefined, /^error: Failed to open file '\/nonexistent.cfg'/],
    [['domxml-from-native', 'qemu-argv', '-'], 'x', /^error: .*unsupported config type qemu-argv/],
    [['domxml-to-native', 'xen-xl', '-'], '<domain/>', /^error: .*missing attribute 'type'/],
    [['domxml-to-native', 'xen-xl', '-'], "<domain type='xen'><memory>1</memory></domain>", /^error: .*missing <name>/],
    [['domxml-to-native', 'xen-xm', '-'], '<!DOCTYPE x [<!ENTITY a "b">]><domain/>', /^error: .*DOCTYPE/],
    [['domxml-from-native', 'xen-sxpr', '-'], '(domain (name', /^error: /],
    [['domxml-from-native'], undefined, /^error: command 'domxml-from-native' requires <format> option/],
  ];
  for (const [args, input, pattern] of cases) {
    const r = xenvirt(args, input);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, pattern, args.join(' '));
    assert.equal(r.stdout, '');
  }
});
