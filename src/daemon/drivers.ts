/**
 * The hypervisor drivers a daemon serves, opened once and shared by every client, as libvirtd
 * shares its driver state between connections:
 *
 * - `test:///default`: the simulated Xen host. Without a state directory it lives in memory for
 *   the daemon's lifetime; with one it is kept there (definitions survive a daemon restart) and
 *   starts out, the first time, with the same guests as the in-memory host.
 * - `xen:///system` (also `xen:///` and `libxl:///system`): the Xen driver, available only on a
 *   Xen control domain; elsewhere CONNECT_OPEN gets libvirtd's "libxenlight state driver is not
 *   active" (code 1, domain LIBXL) with an explanation.
 *
 * CONNECT_OPEN's name selects the driver; an empty name means the daemon's default URI.
 */
import path from 'node:path';
import type { Connection, LifecycleEvent } from '../driver/connection.js';
import { openConnection, isXenControlDomain } from '../driver/open.js';
import { LocalConnection } from '../driver/local.js';
import { XenDriver } from '../driver/driver.js';
import { DirStore } from '../driver/store.js';
import { SimHost } from '../hypervisor/sim/host.js';
import { DEFAULT_GUESTS } from '../hypervisor/sim/fixtures.js';
import { parseUri } from '../uri/parse.js';
import { VirtError } from '../errors.js';
import { noConnectDriver } from './errors.js';

/** The key prefixes the driver and the simulator keep in a state directory (as src/driver/open.ts). */
const STORE_PREFIXES = ['config', 'autostart', 'run', 'sim', 'driver'];

/** One opened driver. */
export interface DriverEntry {
  /** 'test' or 'xen' */
  readonly kind: 'test' | 'xen';
  /** What CONNECT_GET_URI reports. */
  readonly uri: string;
  readonly conn: Connection;
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
    if (!dir) return { kind: 'test', uri: 'test:///default', conn: await openConnection('test:///default') };
    const store = await DirStore.open(dir, { prefixes: STORE_PREFIXES });
    let driver: XenDriver;
    try {
      const backend = await SimHost.open(store);
      driver = await XenDriver.start({
        uri: 'test:///default',
        store,
        backend,
        // Only a new directory gets them (the driver checks): a fresh host looks like test:///default.
        preload: DEFAULT_GUESTS.map((g) => ({ xml: g.xml, autostart: g.autostart ?? false })),
      });
    } catch (e) {
      await store.close().catch(() => {});
      throw e;
    }
    const conn = new LocalConnection(driver, 'test:///default', () => driver.close());
    return { kind: 'test', uri: 'test:///default', conn };
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
