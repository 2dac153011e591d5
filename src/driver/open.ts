/**
 * openConnection(uri): from a libvirt URI to a Connection.
 *
 * - test:///default      a simulated Xen host private to this process, with Domain-0 and four
 *                        guests shaped like the seed's examples (one autostarted). It lives as
 *                        long as a connection to it is open, like libvirt's test driver.
 * - test:///ABS/DIR      a persistent simulated host: all of its state (definitions, running
 *                        guests, the host's memory and domain ids) lives in DIR, so it
 *                        survives across processes; several processes may use it at once.
 * - xen:///system, xen:/// the real driver on a Xen control domain (dom0).
 * - anything remote (a +transport or a host) goes through src/rpc/client.ts's openRemote.
 *
 * With no URI, $XENVIRT_DEFAULT_URI, then $LIBVIRT_DEFAULT_URI, then xen:///system apply.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Connection } from './connection.js';
import { DirStore, MemoryStore, type KvStore } from './store.js';
import { XenDriver, type DriverOptions } from './driver.js';
import { LocalConnection } from './local.js';
import type { SimHost } from '../hypervisor/sim/host.js';
import { formatUri, parseUri, resolveDefaultUri, type ParsedUri } from '../uri/parse.js';
import { internalError, invalidArg, noConnect } from './errors.js';

export const FALLBACK_URI = 'xen:///system';
/** The sub-stores of a persistent simulated host's state directory (shared with xenvirtd). */
export const STORE_PREFIXES = ['config', 'autostart', 'run', 'sim', 'driver'];

interface Shared { driver: Promise<XenDriver>; refs: number }
/** One driver per host per process, shared by its connections. */
const shared = new Map<string, Shared>();

async function acquire(key: string, make: () => Promise<XenDriver>, uri: string, readonly = false): Promise<Connection> {
  let entry = shared.get(key);
  if (!entry) {
    entry = { driver: make(), refs: 0 };
    shared.set(key, entry);
    entry.driver.catch(() => { if (shared.get(key) === entry) shared.delete(key); });
  }
  entry.refs++;
  let driver: XenDriver;
  try {
    driver = await entry.driver;
  } catch (e) {
    entry.refs--;
    throw e;
  }
  const e = entry;
  return new LocalConnection(driver, uri, async () => {
    e.refs--;
    if (e.refs === 0) {
      if (shared.get(key) === e) shared.delete(key);
      await driver.close();
    }
  }, readonly);
}

// Backends and the RPC client load when a URI needs them: a CLI call pays only for its own
// (on a slow dom0 every module parsed is felt in each `xenvirt` command).

async function simDriver(uri: string, store: KvStore, preload: boolean): Promise<XenDriver> {
  try {
    const [{ SimHost }, { DEFAULT_GUESTS }] = await Promise.all([import('../hypervisor/sim/host.js'), import('../hypervisor/sim/fixtures.js')]);
    const backend = await SimHost.open(store);
    const opts: DriverOptions = { uri, store, backend };
    if (preload) opts.preload = DEFAULT_GUESTS.map((g) => ({ xml: g.xml, autostart: g.autostart ?? false }));
    return await XenDriver.start(opts);
  } catch (e) {
    await store.close().catch(() => {});
    throw e;
  }
}

function openTest(p: ParsedUri, ro: boolean): Promise<Connection> {
  if (p.path === '' || p.path === '/') throw invalidArg('testOpen: supply a path or use test:///default');
  if (p.path === '/default') {
    return acquire('test:default', () => simDriver('test:///default', new MemoryStore(), true), 'test:///default', ro);
  }
  if (!path.isAbsolute(p.path)) throw invalidArg(`test driver path '${p.path}' must be absolute`);
  const dir = path.resolve(p.path);
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
    throw invalidArg(`test driver state '${dir}' is not a directory (test:///DIR keeps a simulated host in a directory)`);
  }
  const canonical = formatUri({ scheme: 'test', path: p.path, params: [] });
  return acquire(`test:${dir}`, async () => {
    const store = await DirStore.open(dir, { prefixes: STORE_PREFIXES });
    return simDriver(canonical, store, false);
  }, canonical, ro);
}

/** libxlDriverShouldLoad: a Xen control domain says `control_d` in /proc/xen/capabilities. */
export function isXenControlDomain(capsFile = '/proc/xen/capabilities'): boolean {
  try {
    return fs.readFileSync(capsFile, 'utf8').startsWith('control_d');
  } catch {
    return false;
  }
}

async function openXen(p: ParsedUri, ro: boolean): Promise<Connection> {
  if (p.path !== '' && p.path !== '/' && p.path !== '/system') {
    throw internalError(`unexpected Xen URI path '${p.path}', try xen:///system`);
  }
  // Xen 3.x: XenD named by ?xend=, or found on a host without xl (src/hypervisor/xend/open.ts)
  const { startXendDriver, xendTarget } = await import('../hypervisor/xend/open.js');
  const xend = xendTarget(p);
  if (xend) return acquire(xend.key, () => startXendDriver(xend), xend.uri, ro);
  if (!isXenControlDomain()) {
    throw internalError(
      'libxenlight state driver is not active: this machine is not a Xen host ' +
      "(/proc/xen/capabilities does not report a control domain 'control_d'). " +
      "Use 'test:///default' for a simulated Xen host, or a remote URI such as 'xen+ssh://root@HOST/system'",
    );
  }
  // Xen >= 4 with the xl toolstack (src/hypervisor/xl/open.ts)
  const { startXlDriver, xlTarget } = await import('../hypervisor/xl/open.js');
  const xl = xlTarget(p);
  return acquire(xl.key, () => startXlDriver(xl), xl.uri, ro);
}

/** Open a connection to the URI (or the default one). */
export interface OpenOptions {
  /** virConnectOpenReadOnly: every state-changing call is refused, as on libvirtd's -ro socket. */
  readonly?: boolean;
}

export async function openConnection(uri?: string, opts: OpenOptions = {}): Promise<Connection> {
  const resolved = resolveDefaultUri(uri).uri ?? FALLBACK_URI;
  const p = parseUri(resolved);
  const ro = opts.readonly === true;
  if (p.remote) return (await import('../rpc/client.js')).openRemote(p, { readonly: ro });
  switch (p.driver) {
    case 'test': return openTest(p, ro);
    case 'xen':
    case 'libxl': return openXen(p, ro);
    default: throw noConnect(resolved);
  }
}

/** The simulated host behind a connection (test:// URIs), for tests: crash triggers, host reboot. */
export function simulatorOf(conn: Connection): SimHost | undefined {
  if (conn instanceof LocalConnection && conn.driver.backend.kind === 'sim') return conn.driver.backend as SimHost;
  return undefined;
}

/** The driver behind an in-process connection (tests and the daemon). */
export function driverOf(conn: Connection): XenDriver | undefined {
  return conn instanceof LocalConnection ? conn.driver : undefined;
}
