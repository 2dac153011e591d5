/**
 * The driver's persistent state: a small key/value store whose keys are file paths
 * (`config/NAME.xml`, `autostart/NAME`, `run/NAME.json`, `sim/...`).
 *
 * Two implementations share one transaction model:
 * - MemoryStore: nothing touches the disk (test:///default, a fresh host per process).
 * - DirStore: everything lives in one directory, shared by every process that opens it.
 *
 * DirStore durability. A transaction is one record written into a write-ahead log (`wal`),
 * checksummed and chained to the record before it, and acknowledged only after an fdatasync.
 * The log's space is written as zeros ahead of time, so that flush writes the record and no
 * metadata. Concurrent transactions share one fdatasync (group commit). The per-key files are
 * written at checkpoints, each with the classic sequence (temp file, fsync, rename, fsync
 * directory), and the log is then replaced by a fresh one. A crash at any moment therefore
 * leaves every file either old or new, and the log (replayed on open, up to the first record
 * that does not continue the chain) brings each key to the last acknowledged value or to the
 * one whose transaction was in flight.
 *
 * Sharing between processes. Writers hold a lock file while they write, first applying the
 * records other processes wrote since they last looked; a busy process keeps the lock between
 * transactions and hands it over as soon as another one asks (see DirStore). Readers pick up
 * new records without the lock. Foreign changes and events are reported to listeners, which is
 * how `event --loop` in one process sees a domain shut down by another.
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

/** Transaction context tracking is switched off after this long without a transaction. */
const ALS_IDLE_MS = 500;

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
  private lastTxEnd = 0;
  private alsTimer: NodeJS.Timeout | undefined;

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
        this.leave(tx);
        tx.rollback();
        this.end();
        throw e;
      }
      this.leave(tx);
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

  /**
   * The transaction's callback is done. Once no transaction has run for a while, the context
   * tracking is switched off: while it is on, every promise and I/O callback of the process
   * pays for it (a daemon answering reads would spend a tenth of its time there). Not at once:
   * switching it costs V8 a deoptimization, too much to pay per transaction. Work started
   * inside a finished transaction sees no context then, which means the same as finished.
   */
  private leave(tx: TxImpl): void {
    tx.finished = true;
    this.lastTxEnd = Date.now();
    if (this.alsTimer) return;
    const check = () => {
      const idle = Date.now() - this.lastTxEnd;
      if (this.mutex.pending === 0 && idle >= ALS_IDLE_MS) {
        this.alsTimer = undefined;
        this.als.disable(); // the next transaction's run() switches it on again
      } else {
        // A transaction still running (a guest's start holds one for as long as xl runs) is
        // looked at again a full period later: not every millisecond, which would keep a
        // single-vcpu dom0 busy for the whole start.
        this.alsTimer = setTimeout(check, idle >= ALS_IDLE_MS ? ALS_IDLE_MS : ALS_IDLE_MS - idle).unref();
      }
    };
    this.alsTimer = setTimeout(check, ALS_IDLE_MS).unref();
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
const LOCK = 'lock';
/** A process waiting for the lock puts its token here; the holder hands over by renaming it onto LOCK. */
const LOCK_WAIT = 'lock.wait';
const MAGIC = '#xenvirt-wal';
/** Format 2: checksum-chained records in preallocated space. Format 1 (plain appended lines) is read, then replaced. */
const FORMAT = 2;
/** Log space is written as zeros this much ahead (at most), so that a commit's flush has no metadata to write. */
const PREALLOC_MAX = 1 << 20;
const ZEROS = Buffer.alloc(64 * 1024);

export interface DirStoreOptions {
  /** Top-level directories holding per-key files (e.g. ['config', 'autostart', 'run', 'sim']). */
  prefixes: string[];
  /** Checkpoint once the log grows past this many bytes (default 64 MiB, env XENVIRT_WAL_MAX_BYTES). */
  walMaxBytes?: number;
  /** At close, checkpoint if at most this many keys are waiting to be written (default 64). */
  closeCheckpointMaxDirty?: number;
  /** Give up waiting for another process's lock after this long (default 30 s). */
  lockTimeoutMs?: number;
  /**
   * Keep the lock this long after the last transaction (default 0: give it up at once unless
   * another transaction of this process is already waiting). Only for a process whose event
   * loop never blocks for long, such as a daemon: a waiting process gets the lock when the
   * holder's current transaction ends, or from its timer.
   */
  lingerMs?: number;
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
const hex8 = (n: number) => n.toString(16).padStart(8, '0');
const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

/** Write `n` zero bytes at `at`. */
function writeZeros(fd: number, at: number, n: number): void {
  for (let done = 0; done < n;) done += fs.writeSync(fd, ZEROS, 0, Math.min(ZEROS.length, n - done), at + done);
}

/** One open log file and the fdatasyncs in flight on it. */
class WalFile {
  /** fdatasyncs running now (a second may start while one runs: the disk merges them). */
  private running = 0;
  /** The batch waiting for a free slot: every write before its start is covered. */
  private next: Promise<void> | undefined;
  private static readonly PARALLEL = 2;
  closed = false;
  readonly ino: number;
  /** Bytes the file has (records, then preallocated zeros). */
  size: number;
  /** beforeFlush writes out what the store still holds in memory for this file. */
  constructor(readonly fd: number, private readonly beforeFlush: () => void = () => {}) {
    const st = fs.fstatSync(fd);
    this.ino = st.ino;
    this.size = st.size;
  }

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

/** A log record as stored (JSON): who wrote it, its puts (null = delete), its events. */
interface LogRecord { w: string; p?: Array<[string, string | null]>; e?: StoreEvent[] }

/**
 * Everything in one directory, shared by every process that opens it.
 *
 * The log (`wal`). A header line `#xenvirt-wal 2 SALT`, then one line per transaction,
 * `CRC JSON`, where CRC is the CRC-32 of JSON continued from the previous record's CRC (the
 * first from SALT, random per log file). The file is written as zeros ahead of the records,
 * and records overwrite those zeros in place: the fdatasync that makes a commit durable then
 * has no metadata to write (size and block map are already on disk), which on ext4 saves a
 * journal commit per transaction. The log ends at the first line that is not the next link of
 * the chain: zeros, a record still being written or torn by a crash, or what a crash left of a
 * longer record beyond it (whose CRC continues another chain). JSON never contains a newline
 * or a zero byte, so a record cannot be mistaken for the end or hide another inside it.
 *
 * The lock (`lock`, holding `PID WRITER RANDOM`). Writers take it to append; a process keeps
 * it while more of its transactions wait, and (with `lingerMs`) for a while after the last, so
 * that a burst of transactions costs one lock file, not one each. A process that wants it
 * meanwhile queues in `lock.wait` (one at a time) and the holder, at the end of its current
 * transaction, hands the lock over by renaming that file onto `lock`. A lock whose process is
 * gone is broken. Readers need no lock: they follow the log from where they stopped.
 */
export class DirStore extends BaseStore {
  readonly persistent = true;
  readonly dir: string;
  private readonly opts: Required<DirStoreOptions>;
  private readonly writerId = `${process.pid}.${randomBytes(6).toString('hex')}`;
  private wal!: WalFile;
  /** Bytes of the current log applied (or, for our own lines, committed). */
  private walPos = 0;
  /** CRC of the record ending at walPos: the seed of the next one's. */
  private chain = 0;
  /** Format of the current log (1 only until it is replaced at open). */
  private format = FORMAT;
  /** Keys whose latest value is only in the log (not yet in their file). */
  private dirty = new Set<string>();
  private lockToken: string | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** A transaction ended since the linger timer last looked. */
  private usedSinceTick = false;
  private readonly onExit = () => this.releaseLock();
  /** Log lines committed but not yet written: they end at walPos (written out in one go). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private checkpointing: Promise<void> | undefined;
  private retired: WalFile[] = [];
  private readonly prealloc: number;
  private readonly lockFile: string;
  private readonly waitFile: string;

  private constructor(dir: string, opts: DirStoreOptions) {
    super();
    this.dir = dir;
    this.lockFile = path.join(dir, LOCK);
    this.waitFile = path.join(dir, LOCK_WAIT);
    const envMax = Number(process.env['XENVIRT_WAL_MAX_BYTES']);
    this.opts = {
      prefixes: opts.prefixes,
      walMaxBytes: opts.walMaxBytes ?? (Number.isFinite(envMax) && envMax > 0 ? envMax : 64 * 1024 * 1024),
      closeCheckpointMaxDirty: opts.closeCheckpointMaxDirty ?? 64,
      lockTimeoutMs: opts.lockTimeoutMs ?? 30_000,
      lingerMs: opts.lingerMs ?? 0,
    };
    // no more zeros ahead than the log may grow before a checkpoint replaces it
    this.prealloc = roundUp(Math.min(PREALLOC_MAX, this.opts.walMaxBytes), 4096);
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
      s.openWal();
      s.readWal();
      // an older format is replaced at once (we hold the lock): from now on every log is format 2
      if (s.format !== FORMAT) await s.rotateWal();
    } catch (e) {
      s.releaseLock();
      throw e;
    }
    s.endUse();
    return s;
  }

  private p(rel: string): string { return path.join(this.dir, rel); }

  /** Start using an open log file: read its header. */
  private attachWal(fd: number): void {
    const w: WalFile = new WalFile(fd, () => { if (this.wal === w) this.writeOut(); });
    const head = Buffer.alloc(64);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    const nl = head.indexOf(10);
    const m = nl > 0 && nl < n ? /^#xenvirt-wal (\d+)(?: ([0-9a-f]+))?$/.exec(head.toString('latin1', 0, nl)) : null;
    const format = m ? Number(m[1]) : 0;
    if (format !== 1 && format !== FORMAT) {
      fs.closeSync(fd);
      throw new VirtError('OPERATION_FAILED', `state log '${this.p(WAL)}' is not a format ${FORMAT} xenvirt log`);
    }
    this.wal = w;
    this.format = format;
    this.walPos = nl + 1;
    this.chain = format === FORMAT ? parseInt(m![2] ?? '0', 16) >>> 0 : 0;
  }

  /** Open the log, creating it when missing (we hold the lock). */
  private openWal(): void {
    const file = this.p(WAL);
    if (!fs.existsSync(file)) writeFileDurable(file, this.newLog(), 0o600);
    this.attachWal(fs.openSync(file, 'r+'));
  }

  /** The content of a new log: header, a record carrying `carry` if given, preallocated zeros. */
  private newLog(carry?: Array<[string, string | null]>): Buffer {
    const salt = randomBytes(4).readUInt32BE(0);
    let text = `${MAGIC} ${FORMAT} ${hex8(salt)}\n`;
    if (carry?.length) {
      const json = JSON.stringify({ w: this.writerId, p: carry } satisfies LogRecord);
      text += `${hex8(crc32(json, salt))} ${json}\n`;
    }
    const used = Buffer.byteLength(text);
    const out = Buffer.alloc(roundUp(used + this.prealloc, 4096));
    out.write(text, 0, 'utf8');
    return out;
  }

  /** Write the committed lines still in memory (we hold the lock whenever there are any). */
  private writeOut(): void {
    if (this.pendingBytes === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const at = this.walPos - this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    if (at + data.length > this.wal.size) this.extendWal(at + data.length);
    let off = 0;
    while (off < data.length) off += fs.writeSync(this.wal.fd, data, off, data.length - off, at + off);
  }

  /** Preallocate more log: zeros from the current end well past `need` (the next flush makes them durable). */
  private extendWal(need: number): void {
    const size = fs.fstatSync(this.wal.fd).size; // another writer may have done it
    if (size < need) {
      const to = roundUp(need + this.prealloc, 4096);
      writeZeros(this.wal.fd, size, to - size);
      this.wal.size = to;
    } else {
      this.wal.size = size;
    }
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

  /**
   * Apply the log's records from walPos to the end of the chain. What follows (zeros, a
   * record in progress or torn) is left alone: a writer overwrites it, a reader looks again
   * later.
   */
  private readWal(notify = false): void {
    let size = 8192;
    for (;;) {
      const buf = Buffer.allocUnsafe(size);
      let got = 0;
      while (got < size) {
        const n = fs.readSync(this.wal.fd, buf, got, size - got, this.walPos + got);
        if (n === 0) break;
        got += n;
      }
      let start = 0;
      let end = false;
      while (start < got) {
        const nl = buf[start] === 0 ? -1 : buf.indexOf(10, start);
        if (nl < 0 || nl >= got) { end = buf[start] === 0; break; }
        if (!this.applyRecord(buf, start, nl, notify)) { end = true; break; }
        start = nl + 1;
      }
      this.walPos += start;
      if (end || got < size) return;
      // more to read: a bigger buffer when the next record did not fit, or to catch up faster
      if (start === 0 || size < PREALLOC_MAX) size *= 2;
    }
  }

  /** Apply the record in buf[start, nl) if it continues the chain; false if it does not. */
  private applyRecord(buf: Buffer, start: number, nl: number, notify: boolean): boolean {
    if (nl - start < 10 || buf[start + 8] !== 0x20) return false;
    const json = buf.subarray(start + 9, nl);
    const crc = crc32(json, this.format === FORMAT ? this.chain : 0);
    if (buf.toString('latin1', start, start + 8) !== hex8(crc)) return false;
    let rec: LogRecord;
    try {
      rec = JSON.parse(json.toString('utf8')) as LogRecord;
    } catch {
      return false;
    }
    this.chain = crc;
    const foreign = rec.w !== this.writerId;
    for (const [k, v] of rec.p ?? []) {
      this.dirty.add(k);
      if (!foreign) continue; // our own writes are already in the cache
      if (v === null) this.cache.delete(k);
      else this.cache.set(k, v);
      if (notify) for (const fn of this.changeListeners) fn(k, v ?? undefined);
    }
    if (foreign && notify) for (const e of rec.e ?? []) for (const fn of this.eventListeners) fn(e);
    return true;
  }

  /** Follow the log, including a switch to a new log made by another process's checkpoint. */
  private catchUp(): void {
    this.readWal(true);
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
    this.attachWal(fs.openSync(this.p(WAL), 'r+'));
    this.readWal(true);
  }

  refresh(): void {
    // while we hold the lock nobody else can have written anything
    if (this.closed || this.lockToken !== undefined) return;
    this.catchUp();
  }

  // ---- locking

  private async acquireLock(): Promise<void> {
    if (this.lockToken !== undefined) return; // still ours from the previous transaction
    const { lockFile: file, waitFile } = this;
    const token = `${process.pid} ${this.writerId} ${randomBytes(4).toString('hex')}`;
    const deadline = Date.now() + this.opts.lockTimeoutMs;
    let wait = 1;
    for (;;) {
      if (createExclusive(file, token)) return this.tookLock(token);
      const holder = readSmall(file);
      if (holder === token) return this.tookLock(token); // handed over by the previous holder
      if (holder !== undefined && this.isStale(file, holder)) {
        this.breakStaleLock(file, holder);
        continue;
      }
      // Queue (one waiter at a time; the others try again until the place is free). The queue
      // entry may be ours again although we were just handed the lock: tookLock clears it.
      const queued = createExclusive(waitFile, token) || readSmall(waitFile) === token;
      if (Date.now() > deadline) {
        if (queued) fs.rmSync(waitFile, { force: true });
        if (readSmall(file) === token) return this.tookLock(token); // handed over just now
        throw new VirtError('OPERATION_TIMEOUT', `Timed out during operation: cannot acquire the state lock '${file}' (held by process ${holder?.split(' ')[0] ?? '?'})`);
      }
      await sleep(wait);
      wait = Math.min(wait * 2, queued ? 2 : 20);
    }
  }

  /**
   * The lock is ours. A queue entry of ours left behind (we took a free lock, or queued again
   * in the moment the holder handed it over) goes: at our release it would hand the lock back
   * to us, under a token we no longer wait with.
   */
  private tookLock(token: string): void {
    if (fs.existsSync(this.waitFile) && readSmall(this.waitFile) === token) fs.rmSync(this.waitFile, { force: true });
    this.lockToken = token;
    process.on('exit', this.onExit);
  }

  /** A lock is stale when its process is gone (an empty one, when it has stayed empty for a while). */
  private isStale(file: string, holder: string): boolean {
    if (holder === '') {
      try { return Date.now() - fs.statSync(file).mtimeMs > 2000; } catch { return false; }
    }
    return !pidAlive(Number(holder.split(' ')[0]));
  }

  /** Move a dead process's lock aside, checking we moved that one and not a fresh lock. */
  private breakStaleLock(file: string, stale: string): void {
    const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      fs.renameSync(file, aside);
    } catch {
      return;
    }
    const moved = readSmall(aside);
    if (moved !== stale) {
      // We took a live lock by mistake: give it back unless someone already has the lock.
      try { fs.linkSync(aside, file); } catch { /* someone else holds it now */ }
    }
    fs.rmSync(aside, { force: true });
  }

  /** Give the lock up: to the process queued for it if there is one, else free it. */
  private releaseLock(): void {
    if (this.lockToken === undefined) return;
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    // our lines must be in the file before anyone else appends
    if (this.wal?.closed === false) this.writeOut();
    process.removeListener('exit', this.onExit);
    const token = this.lockToken;
    this.lockToken = undefined;
    const file = this.lockFile;
    if (readSmall(file) !== token) return;
    try {
      fs.renameSync(this.waitFile, file);
    } catch {
      fs.rmSync(file, { force: true }); // nobody queued
    }
  }

  /**
   * After a transaction: hand the lock over if another process asked for it; else keep it for
   * our next transaction if one waits already, or a while if we linger; else give it up.
   */
  private endUse(): void {
    if (this.lockToken === undefined) return;
    if (fs.existsSync(this.waitFile)) {
      this.releaseLock();
    } else if (this.mutex.pending > 1) {
      // the next transaction runs at once: its end decides
    } else if (this.opts.lingerMs > 0) {
      this.usedSinceTick = true;
      this.armLinger();
    } else {
      this.releaseLock();
    }
  }

  private armLinger(): void {
    if (this.lingerTimer) return;
    this.lingerTimer = setTimeout(this.lingerTick, this.opts.lingerMs);
    this.lingerTimer.unref();
  }

  /** Every lingerMs while we hold the lock: give it up once unused for a whole period, or when asked. */
  private readonly lingerTick = (): void => {
    this.lingerTimer = undefined;
    if (this.lockToken === undefined || this.mutex.pending > 0) return; // the transaction running decides
    if (!this.usedSinceTick || fs.existsSync(this.waitFile)) {
      this.releaseLock();
      return;
    }
    this.usedSinceTick = false;
    this.armLinger();
  };

  // ---- transactions

  protected async begin(): Promise<void> {
    const held = this.lockToken !== undefined;
    await this.acquireLock();
    if (held) return; // nobody else could write since our last transaction
    try {
      this.catchUp();
    } catch (e) {
      this.releaseLock();
      throw e;
    }
  }

  protected commit(b: Batch): Promise<void> | undefined {
    if (b.puts.length === 0 && b.events.length === 0) return undefined;
    const rec: LogRecord = { w: this.writerId };
    if (b.puts.length) rec.p = b.puts;
    if (b.events.length) rec.e = b.events;
    const json = JSON.stringify(rec);
    this.chain = crc32(json, this.chain);
    const line = Buffer.from(`${hex8(this.chain)} ${json}\n`);
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

  protected end(): void { this.endUse(); }

  protected override afterExclusive(): void { this.endUse(); }

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
    if (!held) this.catchUp();
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
    const carry: Array<[string, string | null]> = [...this.dirty].map((k) => [k, this.cache.get(k) ?? null]);
    writeFileDurable(this.p(WAL), this.newLog(carry), 0o600);
    const old = this.wal;
    this.attachWal(fs.openSync(this.p(WAL), 'r+'));
    this.readWal(); // our own carried record: moves walPos and the chain past it
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

/** Create `file` holding `content` if it does not exist; false if it does. */
function createExclusive(file: string, content: string): boolean {
  try {
    fs.writeFileSync(file, content, { flag: 'wx' });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new VirtError('OPERATION_FAILED', `cannot take the state lock '${file}': ${(e as Error).message}`);
  }
}

/** A lock file's content, or undefined when it is missing. */
function readSmall(file: string): string | undefined {
  try { return fs.readFileSync(file, 'utf8'); } catch { return undefined; }
}
