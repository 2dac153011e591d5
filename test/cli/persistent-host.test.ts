/**
 * A persistent simulated host, `test:///TMPDIR`, driven by separate `bin/xenvirt` processes:
 * its state must carry from one invocation to the next. The seed's four example domains go
 * through their whole life (define, start, list, schema-valid dumpxml, shutdown seen by
 * `event --loop` in another process, undefine), and the error paths leave the stored state as
 * it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Session, eventually, parseListTable, seedDomains, smallDomainXml, tempHost, xenvirt, xenvirtBackground, type Result,
} from './harness.js';
import { requireTool, xmllintValidate } from '../support.js';

function ok(r: Result, what: string): string {
  assert.equal(r.stderr, '', `${what}: ${r.stderr}`);
  assert.equal(r.code, 0, what);
  return r.stdout;
}

function fails(r: Result, what: string, ...stderr: Array<string | RegExp>): void {
  assert.equal(r.code, 1, `${what}: expected failure, got ${r.stdout}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, stderr.length, `${what}: ${r.stderr}`);
  stderr.forEach((want, i) => {
    if (typeof want === 'string') assert.equal(lines[i], want, what);
    else assert.match(lines[i]!, want, what);
  });
}

test("the seed's four domains live a whole life on a persistent host", async (t) => {
  const host = tempHost();
  const files = mkdtempSync(join(tmpdir(), 'xenvirt-cli-files-'));
  t.after(() => { host.cleanup(); rmSync(files, { recursive: true, force: true }); });
  const x = (...argv: string[]) => xenvirt(['-c', host.uri, ...argv]);
  const seeds = seedDomains(files);

  // Each define is its own process; the list afterwards is another.
  for (const d of seeds) assert.equal(ok(await x('define', d.file), 'define'), `Domain '${d.name}' defined from ${d.file}\n`);
  assert.equal(ok(await x('list', '--all'), 'list --all'), [
    ' Id   Name             State',
    '-----------------------------------',
    ' 0    Domain-0         running',
    ' -    fc8-bootloader   shut off',
    ' -    fc8-kernel       shut off',
    ' -    fv0-bios         shut off',
    ' -    fv0-kernel       shut off',
    '',
  ].join('\n'));
  const uuids = ok(await x('list', '--all', '--uuid'), 'list --uuid').split('\n');
  assert.deepEqual(uuids.slice(1), [...seeds.map((d) => d.uuid), ''], 'same order as the table');

  await t.test('dumpxml of each is valid against libvirt\'s domain.rng, inactive and running', async (st) => {
    if (!requireTool(st, 'xmllint')) return;
    const dumps = await Promise.all(seeds.map((d) => x('dumpxml', d.name)));
    const written = dumps.map((r, i) => {
      const f = join(files, `${seeds[i]!.name}.dump.xml`);
      writeFileSync(f, ok(r, 'dumpxml'));
      return f;
    });
    assert.deepEqual(xmllintValidate(written), []);
  });

  await t.test('start each in its own process; list shows increasing ids', async (st) => {
    for (const d of seeds) assert.equal(ok(await x('start', d.name), 'start'), `Domain '${d.name}' started\n`);
    const rows = parseListTable(ok(await x('list'), 'list'));
    assert.deepEqual(rows.map((r) => r[1]), ['Domain-0', ...seeds.map((d) => d.name)]);
    assert.ok(rows.every((r) => r[2] === 'running'));
    const ids = rows.map((r) => Number(r[0]));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.equal(new Set(ids).size, ids.length);
    fails(await x('start', seeds[0]!.name), 'start a running domain', 'error: Domain is already active');
    if (!requireTool(st, 'xmllint')) return;
    const live = await Promise.all(seeds.map((d) => x('dumpxml', d.name)));
    const written = live.map((r, i) => {
      const f = join(files, `${seeds[i]!.name}.live.xml`);
      writeFileSync(f, ok(r, 'dumpxml live'));
      assert.match(r.stdout, /^<domain type='xen' id='\d+'>/);
      return f;
    });
    assert.deepEqual(xmllintValidate(written), []);
  });

  await t.test('shutdown is seen by `event --loop` running in another process', async () => {
    const watcher = xenvirtBackground(['-c', host.uri, 'event', '--all', '--loop', '--timeout', '30']);
    try {
      // The watcher is ready once it reports an event; nudge one domain until it does.
      const probe = seeds[0]!.name;
      await eventually(async () => {
        ok(await x('suspend', probe), 'suspend');
        ok(await x('resume', probe), 'resume');
        await watcher.waitFor(new RegExp(`event 'lifecycle' for domain '${probe}': Resumed Unpaused\n`), 300);
      }, 10000, 0);
      for (const d of seeds) assert.equal(ok(await x('shutdown', d.name), 'shutdown'), `Domain '${d.name}' is being shutdown\n`);
      for (const d of seeds) {
        await watcher.waitFor(new RegExp(`event 'lifecycle' for domain '${d.name}': Stopped Shutdown\n`), 10000);
      }
      for (const d of seeds) assert.equal(ok(await x('domstate', '--reason', d.name), 'domstate'), 'shut off (shutdown)\n');
    } finally {
      watcher.child.kill('SIGINT');
    }
    const end = await watcher.done;
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stdout, /event loop interrupted\nevents received: \d+\n$/);
    for (const line of end.stdout.split('\n').slice(0, -3)) {
      assert.match(line, /^event 'lifecycle' for domain '[\w-]+': [A-Z][a-z]+ [A-Z][\w ]+$/);
    }
  });

  await t.test('undefine each; only Domain-0 is left', async () => {
    for (const d of seeds) assert.equal(ok(await x('undefine', d.name), 'undefine'), `Domain '${d.name}' has been undefined\n`);
    assert.equal(ok(await x('list', '--all', '--name'), 'list --name'), 'Domain-0\n');
  });
});

test('a persistent host: state carries across invocations, errors change nothing', async (t) => {
  const host = tempHost();
  const files = mkdtempSync(join(tmpdir(), 'xenvirt-cli-files-'));
  const s = new Session(host.uri);
  t.after(async () => { await s.close(); host.cleanup(); rmSync(files, { recursive: true, force: true }); });
  const x = (...argv: string[]) => xenvirt(['-c', host.uri, ...argv]);
  const uuid = '5eed0000-0000-4000-8000-000000000001';
  const keep = join(files, 'keep.xml');
  writeFileSync(keep, smallDomainXml('keep', uuid, 262144, 262144, 2));
  assert.equal(ok(await x('define', keep), 'define'), `Domain 'keep' defined from ${keep}\n`);
  ok(await x('start', 'keep'), 'start');
  const state = async () => ok(await x('domstate', '--reason', 'keep'), 'domstate').trim();

  await t.test('error paths: clear message, exit status 1, stored state unchanged', async () => {
    const listBefore = ok(await x('list', '--all'), 'list');
    const xmlBefore = ok(await x('dumpxml', '--inactive', 'keep'), 'dumpxml');
    const infoBefore = ok(await x('dominfo', 'keep'), 'dominfo');
    const bad = join(files, 'bad.xml');
    writeFileSync(bad, "<domain type='xen'><name>x</name><memory>lots</memory></domain>");
    const dup = join(files, 'dup.xml');
    writeFileSync(dup, smallDomainXml('keep', '5eed0000-0000-4000-8000-0000000000ff', 131072));
    const [start, undef, setmem, invalid, duplicate] = await Promise.all([
      x('start', 'keep'),
      x('undefine', 'nosuch'),
      x('setmem', 'keep', '2G'),
      x('define', bad),
      x('define', dup),
    ]);
    fails(start, 'start a running domain', 'error: Domain is already active');
    fails(undef, 'undefine an unknown domain', "error: failed to get domain 'nosuch'");
    fails(setmem, 'setmem above the maximum', /^error: invalid argument: .*max/);
    fails(invalid, 'define invalid XML', `error: Failed to define domain from ${bad}`, /^error: .*memory/);
    fails(duplicate, 'define a duplicate name with another UUID', `error: Failed to define domain from ${dup}`, /^error: .*'keep' already exists/);
    assert.equal(ok(await x('list', '--all'), 'list'), listBefore);
    assert.equal(ok(await x('dumpxml', '--inactive', 'keep'), 'dumpxml'), xmlBefore);
    assert.equal(ok(await x('dominfo', 'keep'), 'dominfo').replace(/CPU time:.*\n/, ''), infoBefore.replace(/CPU time:.*\n/, ''));
    assert.equal(ok(await x('domuuid', 'keep'), 'domuuid'), `${uuid}\n`);
  });

  await t.test('config changes, autostart and devices persist', async () => {
    ok(await x('setmem', 'keep', '131072', '--config'), 'setmem --config');
    ok(await x('setvcpus', 'keep', '1', '--config'), 'setvcpus --config');
    ok(await x('autostart', 'keep'), 'autostart');
    ok(await x('attach-disk', 'keep', '/var/lib/xen/images/keep-data.img', 'xvdb', '--persistent'), 'attach-disk --persistent');
    const inactive = ok(await x('dumpxml', '--inactive', 'keep'), 'dumpxml --inactive');
    assert.match(inactive, /<currentMemory unit='KiB'>131072<\/currentMemory>/);
    assert.match(inactive, /<vcpu placement='static' current='1'>2<\/vcpu>/);
    assert.match(inactive, /keep-data\.img/);
    assert.match(ok(await x('dumpxml', 'keep'), 'dumpxml'), /keep-data\.img/, '--persistent reaches the running domain too');
    assert.equal(ok(await x('list', '--all', '--autostart', '--name'), 'list --autostart'), 'keep\n');
    assert.equal(ok(await x('vcpucount', 'keep'), 'vcpucount'),
      'maximum      config         2\nmaximum      live           2\ncurrent      config         1\ncurrent      live           2\n');
    // In-process reads on the same host agree with what other processes wrote.
    assert.match(ok(await s.run(['dominfo', 'keep']), 'dominfo in-process'), /^Autostart:      enable$/m);
  });

  await t.test('save, restore, dump and managed save across invocations, with progress', async () => {
    const image = join(files, 'keep.save');
    const save = await x('save', 'keep', image, '--verbose');
    assert.equal(save.code, 0, save.stderr);
    assert.equal(save.stdout, `\nDomain 'keep' saved to ${image}\n`);
    assert.match(save.stderr, /^(\rSave: \[[ \d]{2}\d %\])*\rSave: \[100 %\]$/);
    assert.ok(statSync(image).size > 0);
    assert.equal(await state(), 'shut off (saved)');
    assert.equal(ok(await x('restore', image), 'restore'), `Domain restored from ${image}\n`);
    assert.equal(await state(), 'running (restored)');
    const core = join(files, 'keep.core');
    assert.equal(ok(await x('dump', 'keep', core), 'dump'), `\nDomain 'keep' dumped to ${core}\n`);
    assert.ok(statSync(core).size > 0);
    assert.equal(ok(await x('managedsave', 'keep'), 'managedsave'), "\nDomain 'keep' state saved by libvirt\n");
    assert.match(ok(await x('dominfo', 'keep'), 'dominfo'), /^Managed save:   yes$/m);
    ok(await x('start', 'keep'), 'start');
    assert.equal(await state(), 'running (restored)');
  });

  await t.test('shutdown completes although the process that asked has exited', async () => {
    ok(await x('shutdown', 'keep'), 'shutdown');
    await eventually(async () => assert.equal(await state(), 'shut off (shutdown)'), 10000, 100);
    ok(await x('undefine', 'keep'), 'undefine');
    fails(await x('dominfo', 'keep'), 'gone', "error: failed to get domain 'keep'");
  });
});
