import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DirStore, MemoryStore, type KvStore } from './store.js';

const roots: string[] = [];
after(() => { for (const r of roots) fs.rmSync(r, { recursive: true, force: true }); });
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-store-'));
  roots.push(d);
  return d;
}
const PREFIXES = ['config', 'run'];

async function basics(s: KvStore): Promise<void> {
  await s.transaction((tx) => {
    tx.put('config/a.xml', 'A');
    tx.put('config/b.xml', 'B');
    assert.equal(tx.get('config/a.xml'), 'A', 'read your writes');
  });
  assert.equal(s.get('config/a.xml'), 'A');
  assert.deepEqual(s.keys('config/').sort(), ['config/a.xml', 'config/b.xml']);
  // a failing transaction leaves nothing behind and runs its rollback hooks
  let undone = false;
  await assert.rejects(s.transaction((tx) => {
    tx.put('config/a.xml', 'A2');
    tx.del('config/b.xml');
    tx.put('config/c.xml', 'C');
    tx.onRollback(() => { undone = true; });
    throw new Error('boom');
  }), /boom/);
  assert.equal(undone, true);
  assert.equal(s.get('config/a.xml'), 'A');
  assert.equal(s.get('config/b.xml'), 'B');
  assert.equal(s.get('config/c.xml'), undefined);
  // nested transactions join the outer one
  await s.transaction(async (tx) => {
    assert.equal(s.inTransaction(), true);
    await s.transaction((inner) => inner.put('run/x.json', '{}'));
    assert.equal(tx.get('run/x.json'), '{}');
  });
  assert.equal(s.inTransaction(), false);
  // after-commit hooks run once committed
  let committed = false;
  await s.transaction((tx) => { tx.del('run/x.json'); tx.afterCommit(() => { committed = true; }); });
  assert.equal(committed, true);
  // blobs
  await s.writeBlob('save/a.save', Buffer.from('image'));
  assert.equal(s.hasBlob('save/a.save'), true);
  assert.equal(s.readBlob('save/a.save')?.toString(), 'image');
  await s.removeBlob('save/a.save');
  assert.equal(s.hasBlob('save/a.save'), false);
}

test('MemoryStore: transactions, rollback, nesting, blobs', async () => {
  const s = new MemoryStore();
  await basics(s);
  await s.close();
  await assert.rejects(s.transaction(() => {}), /closed/);
});

test('DirStore: the same semantics, and everything survives reopening', async () => {
  const dir = tmpDir();
  const s = await DirStore.open(dir, { prefixes: PREFIXES });
  await basics(s);
  await s.close();
  const again = await DirStore.open(dir, { prefixes: PREFIXES });
  assert.equal(again.get('config/a.xml'), 'A');
  assert.equal(again.get('config/b.xml'), 'B');
  assert.equal(again.get('config/c.xml'), undefined);
  assert.equal(again.get('run/x.json'), undefined);
  await again.close();
  // the close checkpointed: one file per key, and an empty log
  assert.equal(fs.readFileSync(path.join(dir, 'config', 'a.xml'), 'utf8'), 'A');
  assert.ok(!fs.existsSync(path.join(dir, 'config', 'c.xml')));
  assert.match(fs.readFileSync(path.join(dir, 'wal'), 'utf8'), /^#xenvirt-wal 1 \d+\n$/);
  assert.ok(!fs.existsSync(path.join(dir, 'lock')), 'no lock left behind');
});

test('DirStore: values reach files only at checkpoints, the log covers the rest', async () => {
  const dir = tmpDir();
  const s = await DirStore.open(dir, { prefixes: PREFIXES, closeCheckpointMaxDirty: 0 });
  for (let i = 0; i < 10; i++) await s.transaction((tx) => tx.put(`config/d${i}.xml`, `v${i}`));
  assert.equal(s.pendingKeys(), 10);
  assert.ok(!fs.existsSync(path.join(dir, 'config', 'd0.xml')));
  await s.close(); // too many dirty keys for a close-time checkpoint (limit 0)
  const r = await DirStore.open(dir, { prefixes: PREFIXES });
  assert.equal(r.get('config/d9.xml'), 'v9', 'replayed from the log');
  await r.checkpoint();
  assert.equal(fs.readFileSync(path.join(dir, 'config', 'd9.xml'), 'utf8'), 'v9');
  assert.equal(r.pendingKeys(), 0);
  await r.close();
});

test('DirStore: a torn or corrupt log tail is dropped, earlier records kept', async () => {
  const dir = tmpDir();
  const s = await DirStore.open(dir, { prefixes: PREFIXES, closeCheckpointMaxDirty: 0 });
  await s.transaction((tx) => tx.put('config/a.xml', 'one'));
  await s.transaction((tx) => tx.put('config/a.xml', 'two'));
  await s.close();
  const wal = path.join(dir, 'wal');
  const good = fs.readFileSync(wal);
  // half a record (a crash mid-write)
  fs.appendFileSync(wal, '0123abcd {"w":"x","p":[["config/a.xml","thr');
  let r = await DirStore.open(dir, { prefixes: PREFIXES, closeCheckpointMaxDirty: 0 });
  assert.equal(r.get('config/a.xml'), 'two');
  assert.deepEqual(fs.readFileSync(wal), good, 'the torn tail was cut off');
  await r.close();
  // a whole line with a bad checksum, and what follows it
  fs.appendFileSync(wal, '00000000 {"w":"x","p":[["config/a.xml","bad"]]}\n');
  r = await DirStore.open(dir, { prefixes: PREFIXES, closeCheckpointMaxDirty: 0 });
  assert.equal(r.get('config/a.xml'), 'two');
  await r.transaction((tx) => tx.put('config/b.xml', 'after'));
  await r.close();
  r = await DirStore.open(dir, { prefixes: PREFIXES });
  assert.equal(r.get('config/b.xml'), 'after');
  await r.close();
});

test('DirStore: two stores on one directory see each other, with events', async () => {
  const dir = tmpDir();
  const a = await DirStore.open(dir, { prefixes: PREFIXES });
  const b = await DirStore.open(dir, { prefixes: PREFIXES });
  const changes: Array<[string, string | undefined]> = [];
  const events: unknown[] = [];
  b.onChange((k, v) => changes.push([k, v]));
  b.onEvent((e) => events.push(e));
  await a.transaction((tx) => { tx.put('config/x.xml', 'X'); tx.event({ k: 'hello' }); });
  b.refresh();
  assert.equal(b.get('config/x.xml'), 'X');
  assert.deepEqual(changes, [['config/x.xml', 'X']]);
  assert.deepEqual(events, [{ k: 'hello' }]);
  // b writes, a catches up inside its next transaction
  await b.transaction((tx) => tx.put('config/y.xml', 'Y'));
  await a.transaction((tx) => assert.equal(tx.get('config/y.xml'), 'Y'));
  // a checkpoint by one is followed by the other
  await a.checkpoint();
  await b.transaction((tx) => tx.put('config/z.xml', 'Z'));
  a.refresh();
  assert.equal(a.get('config/z.xml'), 'Z');
  await a.close();
  await b.close();
  const c = await DirStore.open(dir, { prefixes: PREFIXES });
  assert.deepEqual(['config/x.xml', 'config/y.xml', 'config/z.xml'].map((k) => c.get(k)), ['X', 'Y', 'Z']);
  await c.close();
});

test('DirStore: a dead process\'s lock is broken, a live one waited for', async () => {
  const dir = tmpDir();
  const s = await DirStore.open(dir, { prefixes: PREFIXES, lockTimeoutMs: 300 });
  fs.writeFileSync(path.join(dir, 'lock'), '999999999 dead.writer x');
  await s.transaction((tx) => tx.put('config/a.xml', 'A'));
  fs.writeFileSync(path.join(dir, 'lock'), `${process.ppid} live.writer x`);
  await assert.rejects(s.transaction((tx) => tx.put('config/a.xml', 'B')), /Timed out during operation: cannot acquire the state lock/);
  assert.equal(s.get('config/a.xml'), 'A');
  fs.rmSync(path.join(dir, 'lock'));
  await s.close();
});

test('DirStore: concurrent transactions share flushes and all become durable', async () => {
  const dir = tmpDir();
  const s = await DirStore.open(dir, { prefixes: PREFIXES, closeCheckpointMaxDirty: 0 });
  await Promise.all(Array.from({ length: 200 }, (_, i) => s.transaction((tx) => tx.put(`config/k${i}.xml`, String(i)))));
  await s.close();
  const r = await DirStore.open(dir, { prefixes: PREFIXES });
  for (let i = 0; i < 200; i++) assert.equal(r.get(`config/k${i}.xml`), String(i));
  await r.close();
});

test('DirStore: a relative path is refused', async () => {
  await assert.rejects(DirStore.open('relative/dir', { prefixes: PREFIXES }), /must be an absolute path/);
});

test('DirStore: transactions go on during a checkpoint; what changed meanwhile is carried over', async () => {
  const dir = tmpDir();
  const s = await DirStore.open(dir, { prefixes: PREFIXES, closeCheckpointMaxDirty: 0 });
  for (let i = 0; i < 50; i++) await s.transaction((tx) => tx.put(`config/k${i}.xml`, 'old'));
  const cp = s.checkpoint();
  await s.transaction((tx) => { tx.put('config/k0.xml', 'new'); tx.del('config/k1.xml'); });
  await cp;
  assert.equal(s.get('config/k0.xml'), 'new');
  await s.close();
  const r = await DirStore.open(dir, { prefixes: PREFIXES });
  assert.equal(r.get('config/k0.xml'), 'new');
  assert.equal(r.get('config/k1.xml'), undefined);
  assert.equal(r.get('config/k49.xml'), 'old');
  await r.checkpoint();
  assert.equal(fs.readFileSync(path.join(dir, 'config', 'k0.xml'), 'utf8'), 'new');
  assert.ok(!fs.existsSync(path.join(dir, 'config', 'k1.xml')));
  assert.deepEqual(fs.readdirSync(path.join(dir, 'config')).filter((f) => f.startsWith('.')), [], 'no temp files left');
  await r.close();
});
