import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { DirStore, MemoryStore, type KvStore } from './store.js';

const roots: string[] = [];
after(() => { for (const r of roots) fs.rmSync(r, { recursive: true, force: true }); });
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-store-'));
  roots.push(d);
  return d;
}
const PREFIXES = ['config', 'run'];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The log's header and records as text: everything before the preallocated zeros. */
function logText(dir: string): string {
  const b = fs.readFileSync(path.join(dir, 'wal'));
  const z = b.indexOf(0);
  return b.toString('utf8', 0, z < 0 ? b.length : z);
}

/** [start, end) of each record line of the log (header excluded). */
function recordSpans(dir: string): Array<[number, number]> {
  const text = logText(dir);
  const spans: Array<[number, number]> = [];
  let at = text.indexOf('\n') + 1;
  while (at < text.length) {
    const nl = text.indexOf('\n', at);
    spans.push([at, nl + 1]);
    at = nl + 1;
  }
  return spans;
}

function writeAt(dir: string, at: number, data: string | Buffer): void {
  const fd = fs.openSync(path.join(dir, 'wal'), 'r+');
  try { fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data, 0, Buffer.byteLength(data), at); } finally { fs.closeSync(fd); }
}

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
  // the close checkpointed: one file per key, and an empty log (a header, then zeros)
  assert.equal(fs.readFileSync(path.join(dir, 'config', 'a.xml'), 'utf8'), 'A');
  assert.ok(!fs.existsSync(path.join(dir, 'config', 'c.xml')));
  assert.match(logText(dir), /^#xenvirt-wal 2 [0-9a-f]{8}\n$/);
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

test('DirStore: commits overwrite preallocated zeros: the log file does not grow', async () => {
  const dir = tmpDir();
  const s = await DirStore.open(dir, { prefixes: PREFIXES, closeCheckpointMaxDirty: 0, walMaxBytes: 16384 });
  const size = fs.statSync(path.join(dir, 'wal')).size;
  assert.ok(size >= 16384, `preallocated ${size} bytes`);
  for (let i = 0; i < 20; i++) await s.transaction((tx) => tx.put(`config/k${i}.xml`, 'x'.repeat(100)));
  assert.equal(fs.statSync(path.join(dir, 'wal')).size, size);
  assert.equal(recordSpans(dir).length, 20);
  // past the preallocated space the log is extended (more zeros ahead), or a checkpoint starts a new one
  for (let i = 0; i < 200; i++) await s.transaction((tx) => tx.put(`config/k${i % 20}.xml`, `v${i}`.padEnd(100)));
  await s.close();
  const r = await DirStore.open(dir, { prefixes: PREFIXES });
  assert.equal(r.get('config/k19.xml'), 'v199'.padEnd(100));
  await r.close();
});

test('DirStore: a torn or corrupt log tail is ignored, then overwritten; earlier records kept', async () => {
  const dir = tmpDir();
  const opts = { prefixes: PREFIXES, closeCheckpointMaxDirty: 0 };
  const s = await DirStore.open(dir, opts);
  await s.transaction((tx) => tx.put('config/a.xml', 'one'));
  await s.transaction((tx) => tx.put('config/a.xml', 'two'));
  await s.close();
  const end = logText(dir).length;
  // half a record (a crash mid-write)
  writeAt(dir, end, '0123abcd {"w":"x","p":[["config/a.xml","thr');
  let r = await DirStore.open(dir, opts);
  assert.equal(r.get('config/a.xml'), 'two');
  await r.transaction((tx) => tx.put('config/b.xml', 'after'));
  await r.close();
  r = await DirStore.open(dir, opts);
  assert.equal(r.get('config/b.xml'), 'after');
  assert.equal(recordSpans(dir).length, 3, 'the new record replaced the torn one');
  await r.close();
  // a whole line with a bad checksum is the end of the log, whatever follows it
  const at = logText(dir).length;
  const good = logText(dir).slice(recordSpans(dir)[2]![0]);
  writeAt(dir, at, `00000000 {"w":"x","p":[["config/a.xml","bad"]]}\n${good}`);
  r = await DirStore.open(dir, opts);
  assert.equal(r.get('config/a.xml'), 'two');
  await r.close();
});

test('DirStore: a record a crash left beyond the end of the log is never replayed', async () => {
  const dir = tmpDir();
  const opts = { prefixes: PREFIXES, closeCheckpointMaxDirty: 0 };
  const s = await DirStore.open(dir, opts);
  for (const [k, v] of [['a', '1'], ['b', '2'], ['c', '333'], ['d', '4']] as const) {
    await s.transaction((tx) => tx.put(`config/${k}.xml`, v));
  }
  await s.close();
  // One write carried records 3 and 4; the crash lost the page of 3 but not that of 4.
  const [, , r3, r4] = recordSpans(dir);
  writeAt(dir, r3![0], Buffer.alloc(r3![1] - r3![0]));
  let r = await DirStore.open(dir, opts);
  assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => r.get(`config/${k}.xml`)), ['1', '2', undefined, undefined]);
  // the next record (the same length as the lost one) lands right before the stale record 4
  await r.transaction((tx) => tx.put('config/c.xml', 'xyz'));
  await r.close();
  assert.equal(recordSpans(dir)[2]![1], r4![0]);
  r = await DirStore.open(dir, opts);
  assert.equal(r.get('config/c.xml'), 'xyz');
  assert.equal(r.get('config/d.xml'), undefined, 'record 4 belongs to another history');
  await r.close();
});

test('DirStore: a format 1 log is replayed and replaced', async () => {
  const dir = tmpDir();
  const line = (json: string) => `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
  fs.writeFileSync(path.join(dir, 'wal'), `#xenvirt-wal 1 ${Date.now()}\n${line('{"w":"old","p":[["config/a.xml","A"]]}')}${line('{"w":"old","p":[["config/b.xml","B"]]}')}`);
  const s = await DirStore.open(dir, { prefixes: PREFIXES, closeCheckpointMaxDirty: 0 });
  assert.deepEqual([s.get('config/a.xml'), s.get('config/b.xml')], ['A', 'B']);
  assert.match(logText(dir), /^#xenvirt-wal 2 /);
  await s.close();
  const r = await DirStore.open(dir, { prefixes: PREFIXES });
  assert.deepEqual([r.get('config/a.xml'), r.get('config/b.xml')], ['A', 'B']);
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

test('DirStore: a dead process\'s lock is broken, a live one waited for, an idle one given up', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'lock'), '999999999 dead.writer x');
  const s = await DirStore.open(dir, { prefixes: PREFIXES, lockTimeoutMs: 300, lingerMs: 20 });
  await s.transaction((tx) => tx.put('config/a.xml', 'A'));
  assert.ok(fs.existsSync(path.join(dir, 'lock')), 'kept a while after a transaction');
  await sleep(120);
  assert.ok(!fs.existsSync(path.join(dir, 'lock')), 'given up once idle');
  fs.writeFileSync(path.join(dir, 'lock'), `${process.ppid} live.writer x`);
  await assert.rejects(s.transaction((tx) => tx.put('config/a.xml', 'B')), /Timed out during operation: cannot acquire the state lock/);
  assert.equal(s.get('config/a.xml'), 'A');
  assert.ok(!fs.existsSync(path.join(dir, 'lock.wait')), 'a waiter that gives up leaves the queue');
  fs.rmSync(path.join(dir, 'lock'));
  await s.close();
});

test('DirStore: a busy writer hands the lock over as soon as another one asks', async () => {
  const dir = tmpDir();
  const a = await DirStore.open(dir, { prefixes: PREFIXES, lingerMs: 1000 });
  const b = await DirStore.open(dir, { prefixes: PREFIXES });
  let stop = false;
  let n = 0;
  const busy = (async () => {
    while (!stop) await a.transaction((tx) => tx.put('config/a.xml', String(++n)));
  })();
  await sleep(30);
  assert.ok(fs.existsSync(path.join(dir, 'lock')), 'a keeps the lock');
  const before = n;
  const t0 = Date.now();
  await b.transaction((tx) => tx.put('config/b.xml', `after ${tx.get('config/a.xml')}`));
  const waited = Date.now() - t0;
  await sleep(30);
  stop = true;
  await busy;
  assert.ok(n > before, 'a went on');
  assert.ok(waited < 500, `b waited ${waited} ms`);
  b.refresh();
  assert.equal(b.get('config/a.xml'), String(n));
  await a.transaction((tx) => assert.match(tx.get('config/b.xml') ?? '', /^after \d+$/));
  await a.close();
  await b.close();
  assert.ok(!fs.existsSync(path.join(dir, 'lock')) && !fs.existsSync(path.join(dir, 'lock.wait')));
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

test('a transaction held open for long (a guest start) does not set the store polling', async () => {
  const s = new MemoryStore();
  await s.transaction((tx) => tx.put('a', '1'));
  const real = globalThis.setTimeout;
  let timers = 0;
  globalThis.setTimeout = ((fn: () => void, ms?: number) => { timers++; return real(fn, ms); }) as typeof setTimeout;
  try {
    // outlives the idle period that switches context tracking off, with the mutex held
    await s.transaction(() => new Promise<void>((r) => real(r, 1600)));
  } finally {
    globalThis.setTimeout = real;
  }
  assert.ok(timers < 20, `the store set ${timers} timers while one transaction waited 1.6 s`);
  await s.close();
});
