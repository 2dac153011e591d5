/**
 * The driver's persistent state: a small key/value store whose keys are file paths
 * (`config/NAME.xml`, `autostart/NAME`, `run/NAME.json`, `sim/...`).
 *
 * Two implementations share one transaction model:
 * - MemoryStore: nothing touches the disk (test:///default, a fresh host per process).
 * - DirStore: everything lives in one directory, shared by every process that opens it.
 *
 * DirStore durability. A transaction is one line appended to a write-ahead log (`wal`),
 * checksummed, and acknowledged only after an fdatasync. Concurrent transactions share one
 * fdatasync (group commit): that is what makes thousands of durable defines per second
 * possible on a disk whose flush costs a third of a millisecond. The per-key files are written
 * at checkpoints, each with the classic sequence (temp file, fsync, rename, fsync directory),
 * and the log is then replaced by an empty one. A crash at any moment therefore leaves every
 * file either old or new, and the log (replayed on open, torn tail dropped) brings each key to
 * the last acknowledged value or to the one whose transaction was in flight.
 *
 * Sharing between processes. Writers take a lock file for the short synchronous part of a
 * transaction, first applying the log records other processes appended since they last
 * looked. Readers pick up new records without the lock (records are whole lines). Foreign
 * changes and events are reported to listeners, which is how `event --loop` in one process
 * sees a domain shut down by another.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { AsyncLocalStorage } from 'node:async_hooks';
import { crc32 } from 'node:zlib';
import { VirtError } from '../errors.js';

/** An event record carried through the store to other processes (opaque to the store). */
export type StoreEvent = Record<string, unknown>;

export interface Tx {
  get(key: string): string | undefined;
  put(key: string, value: string): void;
  del(key: string): void;
  /** Queue an event: delivered to other processes' onEvent listeners after commit. */
  event(e: StoreEvent): void;
  /** Run fn once the transaction has committed (not if it rolls back). */
  afterCommit(fn: () => void): void;
  /** Run fn after the transaction's changes were rolled back (the store shows the old values). */
  onRollback(fn: () => void): void;
}

export interface KvStore {
  readonly persistent: boolean;
  /** The state directory (DirStore only). */
  readonly dir: string | undefined;
  get(key: string): string | undefined;
  /** Keys under a prefix (e.g. 'config/'), in no particular order. */
  keys(prefix: string): string[];
  /**
   * Run fn with exclusive access to the state (in this process and, for DirStore, across
   * processes), after applying everyone else's changes. Its puts and deletes become visible
   * at once to this process and are committed together when fn returns; if fn throws, they
   * are rolled back. The promise settles once the commit is durable. A transaction started
   * inside another (same async context) joins it.
   */
  transaction<T>(fn: (tx: Tx) => T | Promise<T>): Promise<T>;
  /** True inside a transaction's callback. */
  inTransaction(): boolean;
  /** Apply changes other processes committed since we last looked (no lock taken). */
  refresh(): void;
  /** Listen for keys changed by other processes. */
  onChange(fn: (key: string, value: string | undefined) => void): () => void;
  /** Listen for events committed by other processes. */
  onEvent(fn: (e: StoreEvent) => void): () => void;
  /** Side files too big for the log (managed-save images, core dumps): written durably. */
  writeBlob(name: string, data: Buffer): Promise<void>;
  readBlob(name: string): Buffer | undefined;
  hasBlob(name: string): boolean;
  removeBlob(name: string): Promise<void>;
  /** The real path of a blob, if blobs are files. */
  blobPath(name: string): string | undefined;
  /** Materialize the per-key files and start a new log (DirStore). */
  checkpoint(): Promise<void>;
  close(): Promise<void>;
}

type Batch = { puts: Array<[string, string | null]>; events: StoreEvent[] };

class Mutex {
  private tail: Promise<void> = Promise.resolve();
  /** callers holding or waiting for the mutex */
  pending = 0;
  lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => { release = r; });
    const prev = this.tail;
    this.tail = prev.then(() => next);
    this.pending++;
    let done = false;
    return prev.then(() => () => {
      if (done) return;
      done = true;
      this.pending--;
      release();
    });
  }
}

/** The shared transaction machinery: mutex, nesting, rollback. */
abstract class BaseStore implements KvStore {
  abstract readonly persistent: boolean;
  abstract readonly dir: string | undefined;
  protected cache = new Map<string, string>();
  protected readonly mutex = new Mutex();
  private readonly als = new AsyncLocalStorage<TxImpl>();
  protected changeListeners = new Set<(key: string, value: string | undefined) => void>();
  protected eventListeners = new Set<(e: StoreEvent) => void>();
  protected closed = false;

  get(key: string): string | undefined { return this.cache.get(key); }

  keys(prefix: string): string[] {
    const out: string[] = [];
    for (const k of this.cache.keys()) if (k.startsWith(prefix)) out.push(k);
    return out;
  }

  inTransaction(): boolean {
    const tx = this.als.getStore();
    return tx !== undefined && !tx.finished;
  }

  async transaction<T>(fn: (tx: Tx) => T | Promise<T>): Promise<T> {
    const outer = this.als.getStore();
    // a timer or promise born inside a finished transaction still carries its context
    if (outer && !outer.finished) return fn(outer);
    if (this.closed) throw new VirtError('INVALID_CONN', 'invalid connection pointer in the state store: it is closed');
    const release = await this.mutex.lock();
    let durable: Promise<void> | undefined;
    try {
      await this.begin();
      const tx = new TxImpl(this.cache);
      let result: T;
      try {
        result = await this.als.run(tx, () => fn(tx));
      } catch (e) {
        tx.finished = true;
        tx.rollback();
        this.end();
        throw e;
      }
      tx.finished = true;
      try {
        durable = this.commit(tx.batch());
      } finally {
        this.end();
      }
      release();
      tx.runAfterCommit();
      await durable;
      return result;
    } finally {
      // release is idempotent in effect: resolving an already-resolved promise is a no-op
      release();
    }
  }

  onChange(fn: (key: string, value: string | undefined) => void): () => void {
    this.changeListeners.add(fn);
    return () => { this.changeListeners.delete(fn); };
  }
  onEvent(fn: (e: StoreEvent) => void): () => void {
    this.eventListeners.add(fn);
    return () => { this.eventListeners.delete(fn); };
  }

  /** Take the cross-process lock and catch up with foreign changes. */
  protected abstract begin(): Promise<void>;
  /** Record the batch (synchronously) and return a promise for its durability. */
  protected abstract commit(b: Batch): Promise<void> | undefined;
  /** Release the cross-process lock. */
  protected abstract end(): void;

  abstract refresh(): void;
  abstract writeBlob(name: string, data: Buffer): Promise<void>;
  abstract readBlob(name: string): Buffer | undefined;
  abstract hasBlob(name: string): boolean;
  abstract removeBlob(name: string): Promise<void>;
  abstract blobPath(name: string): string | undefined;
  abstract checkpoint(): Promise<void>;
  abstract close(): Promise<void>;

  /** With the mutex: for maintenance work that must not interleave with transactions. */
  protected async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.mutex.lock();
    try { return await fn(); } finally {
      this.afterExclusive();
      release();
    }
  }

  /** Give up whatever cross-process lock is still held (DirStore). */
  protected afterExclusive(): void {}
}

class TxImpl implements Tx {
  /** set once committed or rolled back: later work in its async context starts afresh */
  finished = false;
  private readonly undo = new Map<string, string | undefined>();
  private readonly puts = new Map<string, string | null>();
  private readonly events: StoreEvent[] = [];
  private readonly after: Array<() => void> = [];
  private readonly undoHooks: Array<() => void> = [];
  constructor(private readonly cache: Map<string, string>) {}
  afterCommit(fn: () => void): void { this.after.push(fn); }
  onRollback(fn: () => void): void { this.undoHooks.push(fn); }
  runAfterCommit(): void {
    for (const fn of this.after) {
      try { fn(); } catch { /* a listener's failure is not the transaction's */ }
    }
  }
  get(key: string): string | undefined { return this.cache.get(key); }
  put(key: string, value: string): void {
    if (!this.undo.has(key)) this.undo.set(key, this.cache.get(key));
    this.cache.set(key, value);
    this.puts.set(key, value);
  }
  del(key: string): void {
    if (!this.undo.has(key)) this.undo.set(key, this.cache.get(key));
    this.cache.delete(key);
    this.puts.set(key, null);
  }
  event(e: StoreEvent): void { this.events.push(e); }
  rollback(): void {
    for (const [k, v] of this.undo) {
      if (v === undefined) this.cache.delete(k);
      else this.cache.set(k, v);
    }
    for (const fn of this.undoHooks) {
      try { fn(); } catch { /* keep rolling back */ }
    }
  }
  batch(): Batch { return { puts: [...this.puts], events: this.events }; }
}

/** State that lives and dies with the process. */
export class MemoryStore extends BaseStore {
  readonly persistent = false;
  readonly dir = undefined;
  private blobs = new Map<string, Buffer>();
  protected async begin(): Promise<void> {}
  protected commit(): undefined { return undefined; }
  protected end(): void {}
  refresh(): void {}
  async writeBlob(name: string, data: Buffer): Promise<void> { this.blobs.set(name, Buffer.from(data)); }
  readBlob(name: string): Buffer | undefined { return this.blobs.get(name); }
  hasBlob(name: string): boolean { return this.blobs.has(name); }
  async removeBlob(name: string): Promise<void> { this.blobs.delete(name); }
  blobPath(): undefined { return undefined; }
  async checkpoint(): Promise<void> {}
  async close(): Promise<void> { this.closed = true; }
}

// ---------------------------------------------------------------------------------------------
// DirStore

const WAL = 'wal';
const NEWLINE = Buffer.from('\n');
const LOCK = 'lock';
const HEADER_MAGIC = '#xenvirt-wal 1';

export interface DirStoreOptions {
  /** Top-level directories holding per-key files (e.g. ['config', 'autostart', 'run', 'sim']). */
  prefixes: string[];
  /** Checkpoint once the log grows past this many bytes (default 64 MiB, env XENVIRT_WAL_MAX_BYTES). */
  walMaxBytes?: number;
  /** At close, checkpoint if at most this many keys are waiting to be written (default 64). */
  closeCheckpointMaxDirty?: number;
  /** Give up waiting for another process's lock after this long (default 30 s). */
  lockTimeoutMs?: number;
}

/** Durably write a file: temp file, fsync, rename, fsync the directory. */
export function writeFileDurable(file: string, data: string | Buffer, mode = 0o644): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  fsyncDir(dir);
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One open log file and the fdatasyncs in flight on it. */
class WalFile {
  /** fdatasyncs running now (a second may start while one runs: the disk merges them). */
  private running = 0;
  /** The batch waiting for a free slot: every write before its start is covered. */
  private next: Promise<void> | undefined;
  private static readonly PARALLEL = 2;
  closed = false;
  /** beforeFlush writes out what the store still holds in memory for this file. */
  constructor(readonly fd: number, readonly ino: number, private readonly beforeFlush: () => void = () => {}) {}

  /** Resolves after an fdatasync that began after this call: everything written before is durable. */
  sync(): Promise<void> {
    if (this.next) return this.next;
    if (this.running < WalFile.PARALLEL) return this.flush();
    let start!: () => void;
    const gate = new Promise<void>((r) => { start = r; });
    this.waiting.push(start);
    this.next = gate.then(() => {
      this.next = undefined;
      return this.flush();
    });
    return this.next;
  }

  private waiting: Array<() => void> = [];

  private flush(): Promise<void> {
    this.running++;
    return new Promise<void>((resolve, reject) => {
      const done = (err: Error | null) => {
        this.running--;
        this.waiting.shift()?.();
        if (err) reject(new VirtError('OPERATION_FAILED', `cannot sync the state log: ${err.message}`));
        else resolve();
      };
      try {
        this.beforeFlush();
      } catch (e) {
        done(e as Error);
        return;
      }
      fs.fdatasync(this.fd, done);
    });
  }

  async idle(): Promise<void> {
    while (this.running > 0 || this.next) {
      await (this.next ?? new Promise<void>((r) => setTimeout(r, 1))).catch(() => {});
    }
  }

  async close(): Promise<void> {
    await this.idle();
    if (!this.closed) {
      this.closed = true;
      fs.closeSync(this.fd);
    }
  }
}

export class DirStore extends BaseStore {
  readonly persistent = true;
  readonly dir: string;
  private readonly opts: Required<DirStoreOptions>;
  private readonly writerId = `${process.pid}.${randomBytes(6).toString('hex')}`;
  private wal!: WalFile;
  /** Bytes of the current log already applied. */
  private walPos = 0;
  /** Keys whose latest value is only in the log (not yet in their file). */
  private dirty = new Set<string>();
  private lockToken: string | undefined;
  /** When we took the lock, and how many transactions have used it since (see end()). */
  private lockSince = 0;
  private lockUses = 0;
  private readonly onExit = () => this.releaseLock();
  /** Log lines committed but not yet written: they end at walPos (written out in one go). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private checkpointing: Promise<void> | undefined;
  private retired: WalFile[] = [];

  private constructor(dir: string, opts: DirStoreOptions) {
    super();
    this.dir = dir;
    const envMax = Number(process.env['XENVIRT_WAL_MAX_BYTES']);
    this.opts = {
      prefixes: opts.prefixes,
      walMaxBytes: opts.walMaxBytes ?? (Number.isFinite(envMax) && envMax > 0 ? envMax : 64 * 1024 * 1024),
      closeCheckpointMaxDirty: opts.closeCheckpointMaxDirty ?? 64,
      lockTimeoutMs: opts.lockTimeoutMs ?? 30_000,
    };
  }

  /** Open (creating if needed) the state directory and load it. */
  static async open(dir: string, opts: DirStoreOptions): Promise<DirStore> {
    if (!path.isAbsolute(dir)) throw new VirtError('INVALID_ARG', `invalid argument: state directory '${dir}' must be an absolute path`);
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new VirtError('OPERATION_FAILED', `cannot create state directory '${dir}': ${(e as Error).message}`);
    }
    if (!fs.statSync(dir).isDirectory()) throw new VirtError('INVALID_ARG', `invalid argument: '${dir}' is not a directory`);
    const s = new DirStore(dir, opts);
    await s.acquireLock();
    try {
      s.loadFiles();
      s.openWal(true);
      s.readWal(true);
    } finally {
      s.releaseLock();
    }
    return s;
  }

  private p(rel: string): string { return path.join(this.dir, rel); }

  private newWal(fd: number): WalFile {
    const w: WalFile = new WalFile(fd, fs.fstatSync(fd).ino, () => { if (this.wal === w) this.writeOut(); });
    return w;
  }

  /** Write the committed lines still in memory (we hold the lock whenever there are any). */
  private writeOut(): void {
    if (this.pendingBytes === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const at = this.walPos - this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    let off = 0;
    while (off < data.length) off += fs.writeSync(this.wal.fd, data, off, data.length - off, at + off);
  }

  // ---- loading

  private loadFiles(): void {
    for (const prefix of this.opts.prefixes) {
      const root = this.p(prefix);
      if (!fs.existsSync(root)) continue;
      this.walk(root, prefix);
    }
  }

  private walk(abs: string, rel: string): void {
    for (const ent of fs.readdirSync(abs, { withFileTypes: true })) {
      const childAbs = path.join(abs, ent.name);
      if (ent.name.startsWith('.')) {
        // the temp file of a write a crash interrupted (a live process's checkpoint may be at work)
        const owner = /\.tmp-(\d+)(?:-\d+)?$/.exec(ent.name);
        if (owner && !pidAlive(Number(owner[1]))) fs.rmSync(childAbs, { force: true });
        continue;
      }
      const childRel = `${rel}/${ent.name}`;
      if (ent.isDirectory()) this.walk(childAbs, childRel);
      else if (ent.isFile()) this.cache.set(childRel, fs.readFileSync(childAbs, 'utf8'));
    }
  }

  /** Open the log, creating it when missing. */
  private openWal(create: boolean): void {
    const file = this.p(WAL);
    if (!fs.existsSync(file)) {
      if (!create) throw new VirtError('OPERATION_FAILED', `state log '${file}' disappeared`);
      writeFileDurable(file, `${HEADER_MAGIC} 0\n`, 0o600);
    }
    const fd = fs.openSync(file, 'r+');
    this.wal = this.newWal(fd);
    this.walPos = 0;
  }

  /**
   * Apply the log from walPos to its end. With `owner` (we hold the lock) a torn or corrupt
   * tail left by a crashed writer is cut off; without it, an incomplete tail is simply a
   * writer still at work, and is left for later.
   */
  private readWal(owner: boolean, notify = false): void {
    const size = fs.fstatSync(this.wal.fd).size;
    if (size <= this.walPos) return;
    const buf = Buffer.allocUnsafe(size - this.walPos);
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(this.wal.fd, buf, got, buf.length - got, this.walPos + got);
      if (n === 0) break;
      got += n;
    }
    let start = 0;
    let bad = false;
    while (start < got) {
      const nl = buf.indexOf(10, start);
      if (nl < 0 || nl >= got) break;
      const line = buf.toString('utf8', start, nl);
      if (!this.applyLine(line, notify)) { bad = true; break; }
      start = nl + 1;
    }
    this.walPos += start;
    if (owner && (bad || start < got) && this.walPos < size) {
      // Whatever follows the last good record was never acknowledged: drop it.
      fs.ftruncateSync(this.wal.fd, this.walPos);
      fs.fdatasyncSync(this.wal.fd);
    }
  }

  private applyLine(line: string, notify: boolean): boolean {
    if (line.startsWith('#')) return line.startsWith(HEADER_MAGIC);
    const sp = line.indexOf(' ');
    if (sp !== 8) return false;
    const json = line.slice(sp + 1);
    if (crc32(json).toString(16).padStart(8, '0') !== line.slice(0, 8)) return false;
    let rec: { w: string; p?: Array<[string, string | null]>; e?: StoreEvent[] };
    try {
      rec = JSON.parse(json);
    } catch {
      return false;
    }
    const foreign = rec.w !== this.writerId;
    for (const [k, v] of rec.p ?? []) {
      if (!foreign) continue; // our own writes are already in the cache
      if (v === null) this.cache.delete(k);
      else this.cache.set(k, v);
      if (notify) for (const fn of this.changeListeners) fn(k, v ?? undefined);
    }
    for (const [k] of rec.p ?? []) this.dirty.add(k);
    if (foreign && notify) for (const e of rec.e ?? []) for (const fn of this.eventListeners) fn(e);
    return true;
  }

  /** Follow the log, including a switch to a new log made by another process's checkpoint. */
  private catchUp(owner: boolean): void {
    this.readWal(owner, true);
    let st: fs.Stats;
    try {
      st = fs.statSync(this.p(WAL));
    } catch {
      return; // a checkpoint is between unlink and rename elsewhere: look again later
    }
    if (st.ino === this.wal.ino) return;
    // Another process checkpointed: everything in the old log is in files now, except what it
    // carried over into the new log's first record.
    const old = this.wal;
    this.retired.push(old);
    void old.close().then(() => { this.retired = this.retired.filter((w) => w !== old); });
    this.dirty.clear();
    const fd = fs.openSync(this.p(WAL), 'r+');
    this.wal = this.newWal(fd);
    this.walPos = 0;
    this.readWal(owner, true);
  }

  refresh(): void {
    // while we hold the lock nobody else can have written anything
    if (this.closed || this.lockToken !== undefined) return;
    this.catchUp(false);
  }

  // ---- locking

  private async acquireLock(): Promise<void> {
    if (this.lockToken !== undefined) return; // still ours from the previous transaction
    const file = this.p(LOCK);
    const token = `${process.pid} ${this.writerId} ${randomBytes(4).toString('hex')}`;
    const deadline = Date.now() + this.opts.lockTimeoutMs;
    let wait = 1;
    for (;;) {
      try {
        fs.writeFileSync(file, token, { flag: 'wx' });
        this.lockToken = token;
        this.lockSince = Date.now();
        this.lockUses = 0;
        process.on('exit', this.onExit);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new VirtError('OPERATION_FAILED', `cannot take the state lock '${file}': ${(e as Error).message}`);
        }
      }
      const holder = this.readLock(file);
      if (holder !== undefined && this.isStale(file, holder)) {
        this.breakStaleLock(file, holder);
        continue;
      }
      if (Date.now() > deadline) {
        throw new VirtError('OPERATION_TIMEOUT', `Timed out during operation: cannot acquire the state lock '${file}' (held by process ${holder?.split(' ')[0] ?? '?'})`);
      }
      await sleep(wait);
      wait = Math.min(wait * 2, 20);
    }
  }

  /** A lock is stale when its process is gone (an empty one, when it has stayed empty for a while). */
  private isStale(file: string, holder: string): boolean {
    if (holder === '') {
      try { return Date.now() - fs.statSync(file).mtimeMs > 2000; } catch { return false; }
    }
    return !pidAlive(Number(holder.split(' ')[0]));
  }

  private readLock(file: string): string | undefined {
    try { return fs.readFileSync(file, 'utf8'); } catch { return undefined; }
  }

  /** Move a dead process's lock aside, checking we moved that one and not a fresh lock. */
  private breakStaleLock(file: string, stale: string): void {
    const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      fs.renameSync(file, aside);
    } catch {
      return;
    }
    const moved = this.readLock(aside);
    if (moved !== stale) {
      // We took a live lock by mistake: give it back unless someone already has the lock.
      try { fs.linkSync(aside, file); } catch { /* someone else holds it now */ }
    }
    fs.rmSync(aside, { force: true });
  }

  private releaseLock(): void {
    if (this.lockToken === undefined) return;
    if (!this.wal.closed) this.writeOut();
    process.removeListener('exit', this.onExit);
    const file = this.p(LOCK);
    if (this.readLock(file) === this.lockToken) fs.rmSync(file, { force: true });
    this.lockToken = undefined;
  }

  // ---- transactions

  protected async begin(): Promise<void> {
    const held = this.lockToken !== undefined;
    await this.acquireLock();
    if (held) return; // nobody else could write since our last transaction
    try {
      this.catchUp(true);
    } catch (e) {
      this.releaseLock();
      throw e;
    }
  }

  protected commit(b: Batch): Promise<void> | undefined {
    if (b.puts.length === 0 && b.events.length === 0) return undefined;
    const rec: { w: string; p?: Array<[string, string | null]>; e?: StoreEvent[] } = { w: this.writerId };
    if (b.puts.length) rec.p = b.puts;
    if (b.events.length) rec.e = b.events;
    const json = Buffer.from(JSON.stringify(rec));
    const line = Buffer.concat([Buffer.from(`${crc32(json).toString(16).padStart(8, '0')} `), json, NEWLINE]);
    this.pending.push(line);
    this.pendingBytes += line.length;
    this.walPos += line.length;
    for (const [k] of b.puts) this.dirty.add(k);
    const durable = b.puts.length ? this.wal.sync() : undefined;
    if (this.walPos > this.opts.walMaxBytes && !this.checkpointing) {
      // After this transaction is out of the way: checkpoints take the mutex themselves.
      setImmediate(() => { void this.checkpoint().catch(() => {}); });
    }
    return durable;
  }

  /**
   * Keep the lock for the next transaction of this process when one is already waiting: a
   * burst of transactions then costs one lock file, not one each. Other processes get their
   * turn after at most 64 transactions or 10 ms. With nobody waiting, the lock goes at once
   * (never held across an idle event loop, which a blocked process might not turn).
   */
  protected end(): void {
    this.lockUses++;
    if (this.mutex.pending > 1 && this.lockUses < 64 && Date.now() - this.lockSince < 10) return;
    this.releaseLock();
  }

  protected override afterExclusive(): void { this.releaseLock(); }

  // ---- checkpoints

  async checkpoint(): Promise<void> {
    if (this.checkpointing) return this.checkpointing;
    this.checkpointing = this.runCheckpoint().finally(() => { this.checkpointing = undefined; });
    return this.checkpointing;
  }

  /** Take the lock (if not ours already), write out our lines and apply everyone else's. */
  private async lockedCatchUp(): Promise<void> {
    const held = this.lockToken !== undefined;
    await this.acquireLock();
    this.writeOut();
    if (!held) this.catchUp(true);
  }

  /**
   * A checkpoint in three steps, holding the lock only for the short ones: note what the log
   * is ahead of; write those values to flushed temp files while transactions go on; then,
   * locked, rename the ones nobody changed meanwhile into place and start a new log that
   * carries the rest.
   */
  private async runCheckpoint(): Promise<void> {
    const snap = await this.exclusive(async () => {
      await this.lockedCatchUp();
      const m = new Map<string, string | undefined>();
      for (const k of this.dirty) m.set(k, this.cache.get(k));
      return m;
    });
    if (this.closed) return;
    const temps = await this.writeTemps(snap);
    await this.exclusive(async () => {
      if (this.closed) {
        for (const tmp of temps.values()) fs.rmSync(tmp, { force: true });
        return;
      }
      await this.lockedCatchUp();
      const dirs = new Set<string>();
      for (const [key, value] of snap) {
        const tmp = temps.get(key);
        if (this.cache.get(key) !== value) {
          if (tmp) fs.rmSync(tmp, { force: true }); // changed meanwhile: the new log carries it
          continue;
        }
        const target = this.p(key);
        try {
          if (value === undefined) fs.unlinkSync(target);
          else if (tmp) fs.renameSync(tmp, target);
          else continue;
          dirs.add(path.dirname(target));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          if (value !== undefined) continue; // our temp file went missing: keep it in the log
        }
        this.dirty.delete(key);
      }
      for (const d of dirs) fsyncDir(d);
      await this.rotateWal();
    });
  }

  /** Flushed temp files beside their targets for the values of `snap`. */
  private async writeTemps(snap: Map<string, string | undefined>): Promise<Map<string, string>> {
    const temps = new Map<string, string>();
    const queue = [...snap].filter(([, v]) => v !== undefined) as Array<[string, string]>;
    let n = 0;
    const writeOne = async (key: string, value: string) => {
      const target = this.p(key);
      const dir = path.dirname(target);
      fs.mkdirSync(dir, { recursive: true });
      const tmp = path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${n++}`);
      const fh = await fs.promises.open(tmp, 'w', 0o644);
      try {
        await fh.writeFile(value);
        await fh.sync();
      } finally {
        await fh.close();
      }
      temps.set(key, tmp);
    };
    const workers = Array.from({ length: Math.min(4, queue.length) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await writeOne(item[0], item[1]);
    });
    try {
      await Promise.all(workers);
    } catch (e) {
      for (const tmp of temps.values()) fs.rmSync(tmp, { force: true });
      throw e;
    }
    return temps;
  }

  /** Replace the log by one holding only the keys whose files are still behind (locked). */
  private async rotateWal(): Promise<void> {
    await this.wal.idle();
    let content = `${HEADER_MAGIC} ${Date.now()}\n`;
    if (this.dirty.size) {
      const p: Array<[string, string | null]> = [...this.dirty].map((k) => [k, this.cache.get(k) ?? null]);
      const json = JSON.stringify({ w: this.writerId, p });
      content += `${crc32(Buffer.from(json)).toString(16).padStart(8, '0')} ${json}\n`;
    }
    writeFileDurable(this.p(WAL), content, 0o600);
    const old = this.wal;
    const fd = fs.openSync(this.p(WAL), 'r+');
    this.wal = this.newWal(fd);
    this.walPos = fs.fstatSync(fd).size;
    await old.close();
  }

  /** Number of keys whose file is behind the log (for tests and diagnostics). */
  pendingKeys(): number { return this.dirty.size; }

  // ---- blobs

  private blobFile(name: string): string {
    if (name.includes('\0') || name.split('/').some((s) => s === '..' || s === '')) {
      throw new VirtError('INVALID_ARG', `invalid argument: bad state file name '${name}'`);
    }
    return this.p(name);
  }
  async writeBlob(name: string, data: Buffer): Promise<void> { writeFileDurable(this.blobFile(name), data, 0o600); }
  readBlob(name: string): Buffer | undefined {
    try { return fs.readFileSync(this.blobFile(name)); } catch { return undefined; }
  }
  hasBlob(name: string): boolean { return fs.existsSync(this.blobFile(name)); }
  async removeBlob(name: string): Promise<void> {
    const f = this.blobFile(name);
    try {
      fs.unlinkSync(f);
      fsyncDir(path.dirname(f));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  blobPath(name: string): string { return this.blobFile(name); }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.dirty.size > 0 && this.dirty.size <= this.opts.closeCheckpointMaxDirty) {
      await this.checkpoint().catch(() => {});
    } else if (this.checkpointing) {
      await this.checkpointing.catch(() => {});
    }
    await this.exclusive(async () => {
      this.closed = true;
      this.releaseLock();
      await this.wal.close();
      for (const w of this.retired) await w.close();
    });
  }
}
