/**
 * The hypervisor drivers a daemon serves, opened once and shared by every client, as libvirtd
 * shares its driver state between connections:
 *
 * - `test:///default`: the simulated Xen host, one per daemon. Without a state directory it
 *   lives in memory for the daemon's lifetime; with one it is kept there (definitions survive a
 *   daemon restart) and starts out, the first time, with the same guests as xenvirt's
 *   in-process test:///default.
 * - `xen:///system` (also `xen:///` and `libxl:///system`): the Xen driver, available only on a
 *   Xen control domain; elsewhere CONNECT_OPEN gets libvirtd's "libxenlight state driver is not
 *   active" (code 1, domain LIBXL) with an explanation.
 *
 * CONNECT_OPEN's name selects the driver; an empty name means the daemon's default URI.
 */
import { STORE_PREFIXES } from '../driver/open.js';
import fs from 'node:fs';
import path from 'node:path';
import type { Connection, LifecycleEvent } from '../driver/connection.js';
import { openConnection, isXenControlDomain } from '../driver/open.js';
import { LocalConnection } from '../driver/local.js';
import { XenDriver } from '../driver/driver.js';
import { DirStore, MemoryStore, type KvStore, type StoreEvent, type Tx } from '../driver/store.js';
import { SimHost } from '../hypervisor/sim/host.js';
import { DEFAULT_GUESTS } from '../hypervisor/sim/fixtures.js';
import { parseUri } from '../uri/parse.js';
import { VirtError } from '../errors.js';
import { noConnectDriver } from './errors.js';
import type { EncodedReply } from '../rpc/dispatcher.js';


/** How long the daemon keeps the state lock after its last transaction. */
const DAEMON_LOCK_LINGER_MS = 20;

/** One opened driver. */
export interface DriverEntry {
  /** 'test' or 'xen' */
  readonly kind: 'test' | 'xen';
  /** What CONNECT_GET_URI reports. */
  readonly uri: string;
  readonly conn: Connection;
  /** Encoded replies, cached (only for drivers whose store the daemon versions): per domain, and lists. */
  readonly replyCache?: ReplyCache<EncodedReply>;
  readonly listCache?: ReplyCache<EncodedReply>;
}

export interface DriverHubOptions {
  /** Keep the simulated host here (DIR/test-default) instead of in memory. */
  stateDir?: string;
  /** The URI an empty CONNECT_OPEN name stands for (default: xen:///system on dom0, else test:///default). */
  defaultUri?: string;
  /** Called for every lifecycle event of every opened driver. */
  onLifecycle: (entry: DriverEntry, e: LifecycleEvent) => void;
}

export class DriverHub {
  private readonly entries = new Map<string, Promise<DriverEntry>>();
  private readonly opened: DriverEntry[] = [];
  private closed = false;

  constructor(private readonly opts: DriverHubOptions) {}

  get defaultUri(): string {
    return this.opts.defaultUri ?? (isXenControlDomain() ? 'xen:///system' : 'test:///default');
  }

  /** The simulated host's state directory, when it is persistent. */
  get testStateDir(): string | undefined {
    return this.opts.stateDir ? path.join(this.opts.stateDir, 'test-default') : undefined;
  }

  /** Resolve CONNECT_OPEN's name to a driver, opening it on first use. */
  async open(name: string): Promise<DriverEntry> {
    if (this.closed) throw new VirtError('INTERNAL_ERROR', 'internal error: the daemon is shutting down');
    const uri = name === '' ? this.defaultUri : name;
    let p;
    try {
      p = parseUri(uri);
    } catch {
      throw noConnectDriver(uri);
    }
    // A transport or a host means another daemon: this one does not relay.
    if (p.remote) throw noConnectDriver(uri);
    switch (p.driver) {
      case 'test':
        if (p.path !== '/default') throw noConnectDriver(uri);
        return this.get('test', () => this.openTest());
      case 'xen':
      case 'libxl':
        if (p.path !== '' && p.path !== '/' && p.path !== '/system') throw noConnectDriver(uri);
        return this.get('xen', () => this.openXen());
      default:
        throw noConnectDriver(uri);
    }
  }

  private get(key: string, make: () => Promise<DriverEntry>): Promise<DriverEntry> {
    let e = this.entries.get(key);
    if (!e) {
      e = make().then(async (entry) => {
        this.opened.push(entry);
        await entry.conn.onLifecycle((ev) => this.opts.onLifecycle(entry, ev));
        return entry;
      });
      // A failed open is retried by the next client (the Xen host may come up later).
      e.catch(() => { if (this.entries.get(key) === e) this.entries.delete(key); });
      this.entries.set(key, e);
    }
    return e;
  }

  private async openTest(): Promise<DriverEntry> {
    const dir = this.testStateDir;
    // The daemon's event loop never blocks for long: it may keep the state lock between
    // transactions (a CLI on the same directory gets it as soon as it asks).
    const store = new VersionedStore(dir ? await DirStore.open(dir, { prefixes: STORE_PREFIXES, lingerMs: DAEMON_LOCK_LINGER_MS }) : new MemoryStore());
    let driver: XenDriver;
    try {
      const backend = await SimHost.open(store);
      driver = await XenDriver.start({
        uri: 'test:///default',
        store,
        backend,
        // Only a new store gets them (the driver checks): a fresh host looks like test:///default.
        preload: DEFAULT_GUESTS.map((g) => ({ xml: g.xml, autostart: g.autostart ?? false })),
      });
    } catch (e) {
      await store.close().catch(() => {});
      throw e;
    }
    const conn = new LocalConnection(driver, 'test:///default', () => driver.close());
    return { kind: 'test', uri: 'test:///default', conn, replyCache: new ReplyCache(store, 16384), listCache: new ReplyCache(store, 64) };
  }

  private async openXen(): Promise<DriverEntry> {
    // openConnection explains why when this is not a Xen control domain (code 1, domain LIBXL).
    return { kind: 'xen', uri: 'xen:///system', conn: await openConnection('xen:///system') };
  }

  /** Close every driver (daemon shutdown): flushes the persistent state. */
  async close(): Promise<void> {
    this.closed = true;
    const pending = [...this.entries.values()];
    this.entries.clear();
    await Promise.allSettled(pending);
    for (const e of this.opened.splice(0)) {
      try {
        await e.conn.close();
      } catch {
        // closing is best effort at shutdown
      }
    }
  }
}

/**
 * The daemon's view of the simulated host's store, with two additions:
 *
 * - A state version, bumped whenever anything can have changed: a transaction starting or
 *   ending (every write the driver and the simulator make is one), a blob written, another
 *   process's change applied, the directory changing on disk. Replies computed from the state
 *   (a domain's XML, the domain list) are cached against it (ReplyCache).
 *
 * - For a state directory, a cheaper refresh. The driver asks the store to pick up other
 *   processes' changes before every read (a stat of the log each time), which on a daemon
 *   answering thousands of calls a second is most of the cost of a lookup. The directory is
 *   watched instead (inotify): refresh does the real work only after something in it changed,
 *   or once a second in case a notification was missed. Writes are unaffected: every
 *   transaction still takes the lock and applies everyone else's changes first.
 */
export class VersionedStore implements KvStore {
  /** Bumped on every possible change of state. */
  version = 0;
  /** Transactions in progress (their changes are visible before they commit). */
  private busy = 0;
  private changedOnDisk = true;
  private lastRefresh = 0;
  private watcher: fs.FSWatcher | undefined;
  private readonly offChange: () => void;

  constructor(private readonly inner: KvStore, private readonly maxStaleMs = 1000) {
    this.offChange = inner.onChange(() => { this.version++; });
    if (inner.dir) {
      try {
        this.watcher = fs.watch(inner.dir, { persistent: false }, () => {
          this.changedOnDisk = true;
          this.version++;
        });
        this.watcher.on('error', () => { this.watcher = undefined; this.changedOnDisk = true; this.version++; });
      } catch {
        this.watcher = undefined; // no inotify: refresh every time, cache nothing
      }
    }
  }

  /**
   * True when the state cannot have changed since `version` was read. After a notification,
   * or once a second, the directory is looked at first: cheap when nothing changed, and the
   * cached replies then stay valid instead of being recomputed every second.
   */
  unchangedSince(version: number): boolean {
    if (this.busy > 0 || version !== this.version) return false;
    if (!this.inner.persistent) return true;
    if (this.watcher === undefined) return false;
    if (this.changedOnDisk || Date.now() - this.lastRefresh >= this.maxStaleMs) {
      try {
        this.refresh(); // another process's change, if any, moves the version
      } catch {
        return false;
      }
    }
    return version === this.version;
  }

  get persistent(): boolean { return this.inner.persistent; }
  get dir(): string | undefined { return this.inner.dir; }
  get(key: string): string | undefined { return this.inner.get(key); }
  keys(prefix: string): string[] { return this.inner.keys(prefix); }
  inTransaction(): boolean { return this.inner.inTransaction(); }

  async transaction<T>(fn: (tx: Tx) => T | Promise<T>): Promise<T> {
    this.busy++;
    this.version++;
    try {
      return await this.inner.transaction(fn);
    } finally {
      this.busy--;
      this.version++;
    }
  }

  refresh(): void {
    if (!this.inner.persistent) return;
    const now = Date.now();
    if (this.watcher && !this.changedOnDisk && now - this.lastRefresh < this.maxStaleMs) return;
    this.changedOnDisk = false;
    this.lastRefresh = now;
    this.inner.refresh();
  }

  onChange(fn: (key: string, value: string | undefined) => void): () => void { return this.inner.onChange(fn); }
  onEvent(fn: (e: StoreEvent) => void): () => void { return this.inner.onEvent(fn); }
  async writeBlob(name: string, data: Buffer): Promise<void> {
    this.version++;
    try { await this.inner.writeBlob(name, data); } finally { this.version++; }
  }
  readBlob(name: string): Buffer | undefined { return this.inner.readBlob(name); }
  hasBlob(name: string): boolean { return this.inner.hasBlob(name); }
  async removeBlob(name: string): Promise<void> {
    this.version++;
    try { await this.inner.removeBlob(name); } finally { this.version++; }
  }
  blobPath(name: string): string | undefined { return this.inner.blobPath(name); }
  checkpoint(): Promise<void> { return this.inner.checkpoint(); }

  async close(): Promise<void> {
    this.watcher?.close();
    this.watcher = undefined;
    this.offChange();
    this.version++;
    await this.inner.close();
  }
}

/**
 * Replies that depend only on the driver's state (a domain's XML for given flags, the domain
 * list for given flags), kept until the state version moves. Nothing is cached while a
 * transaction is in flight, nor a value computed across a change.
 */
export class ReplyCache<T> {
  private map = new Map<string, T>();
  private version = -1;

  constructor(private readonly store: VersionedStore, private readonly max = 4096) {}

  /**
   * The cached value (at once), or compute it and keep it if the state held still meanwhile
   * (and `keep` agrees).
   */
  get(key: string, compute: () => Promise<T>, keep: () => boolean = () => true): T | Promise<T> {
    const v = this.store.version;
    if (this.version !== v || !this.store.unchangedSince(v)) {
      this.map.clear();
      this.version = v;
    } else {
      const hit = this.map.get(key);
      if (hit !== undefined) return hit;
    }
    return compute().then((value) => {
      if (keep() && this.store.unchangedSince(v) && this.version === v) {
        if (this.map.size >= this.max) this.map.clear();
        this.map.set(key, value);
      }
      return value;
    });
  }
}
