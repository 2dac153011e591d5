/** `xenvirt -r`: a read-only connection reads everything and changes nothing, as `virsh -r`. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './support.js';

const BIN = join(REPO_ROOT, 'bin', 'xenvirt');
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

test('read-only connections serve reads and refuse every change with libvirt\'s error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xenvirt-ro-'));
  const state = join(dir, 'host');
  try {
    const uri = `test://${state}`;
    const xml = "<domain type='xen'><name>ro1</name><memory>131072</memory><os><type>xen</type><kernel>/k</kernel></os></domain>";
    writeFileSync(join(dir, 'ro1.xml'), xml);
    const define = run(['-c', uri, 'define', join(dir, 'ro1.xml')]);
    assert.equal(define.status, 0, define.stderr);
    const before = run(['-c', uri, 'dumpxml', 'ro1']).stdout;
    assert.equal(run(['-r', '-c', uri, 'list', '--all']).status, 0);
    assert.equal(run(['-r', '-c', uri, 'dumpxml', 'ro1']).stdout, before);
    for (const args of [['start', 'ro1'], ['undefine', 'ro1'], ['setmem', 'ro1', '1024', '--config'], ['autostart', 'ro1']]) {
      const r = run(['-r', '-c', uri, ...args]);
      assert.equal(r.status, 1, args.join(' '));
      assert.match(r.stderr, /operation forbidden: read only access prevents vir/);
    }
    assert.equal(run(['-c', uri, 'dumpxml', 'ro1']).stdout, before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
