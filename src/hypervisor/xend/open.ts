/**
 * Opening the Xen driver over XenD: which URIs select it, and the driver it gets.
 *
 * - `xen:///system?xend=unix:/var/lib/xend/xend-socket`, `?xend=/path/to/socket`,
 *   `?xend=http://HOST:PORT` (XenD's HTTP server, port 8000 by default) select XenD explicitly.
 * - Without `xend=`, `xen:///system` uses XenD when the host has XenD's socket
 *   (/var/lib/xend/xend-socket) and no `xl` tool: a Xen 3.x control domain.
 * - `state=/ABS/DIR` keeps the driver's state (definitions, autostart, runtime records) there;
 *   the default is $XENVIRT_XEND_STATE_DIR, else /var/lib/xenvirt/xend for root, else
 *   ~/.local/share/xenvirt/xend.
 * - `poll_ms=N` sets how often XenD is asked about stopped guests (default 1000 ms).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VirtError } from '../../errors.js';
import { DirStore } from '../../driver/store.js';
import { XenDriver } from '../../driver/driver.js';
import type { ParsedUri } from '../../uri/parse.js';
import { XendBackend } from './backend.js';
import { XEND_DEFAULT_SOCKET, formatXendAddress, parseXendAddress, type XendAddress } from './http.js';

const STORE_PREFIXES = ['config', 'autostart', 'run', 'driver'];

export interface XendTarget {
  address: XendAddress;
  stateDir: string;
  pollIntervalMs?: number;
  /** The URI the connection reports. */
  uri: string;
  /** One driver per XenD and state directory per process. */
  key: string;
}

function param(p: ParsedUri, name: string): string | undefined {
  for (let i = p.params.length - 1; i >= 0; i--) if (p.params[i]!.name === name) return p.params[i]!.value;
  return undefined;
}

/** Whether an executable named `name` is on $PATH (or in the usual sbin directories). */
function onPath(name: string): boolean {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    try {
      fs.accessSync(path.join(d, name), fs.constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** A Xen 3.x host: XenD's socket is there and the xl toolstack is not. */
export function isXendHost(socket = XEND_DEFAULT_SOCKET): boolean {
  try {
    if (!fs.statSync(socket).isSocket()) return false;
  } catch {
    return false;
  }
  return !onPath('xl');
}

function defaultStateDir(): string {
  const env = process.env['XENVIRT_XEND_STATE_DIR'];
  if (env) return path.resolve(env);
  if (process.getuid?.() === 0) return '/var/lib/xenvirt/xend';
  return path.join(os.homedir(), '.local', 'share', 'xenvirt', 'xend');
}

/** The XenD a `xen://` URI selects, or undefined when it selects none. */
export function xendTarget(p: ParsedUri): XendTarget | undefined {
  const explicit = param(p, 'xend');
  if (explicit === undefined && !isXendHost()) return undefined;
  const address = parseXendAddress(explicit ?? `unix:${XEND_DEFAULT_SOCKET}`);
  const stateParam = param(p, 'state');
  if (stateParam !== undefined && !path.isAbsolute(stateParam)) {
    throw new VirtError('INVALID_ARG', `invalid argument: state directory '${stateParam}' must be an absolute path`);
  }
  const stateDir = path.resolve(stateParam ?? defaultStateDir());
  const out: XendTarget = {
    address,
    stateDir,
    uri: p.uri,
    key: `xend:${formatXendAddress(address)}:${stateDir}`,
  };
  const poll = param(p, 'poll_ms');
  if (poll !== undefined) {
    const n = Number(poll);
    if (!Number.isInteger(n) || n < 10 || n > 600_000) {
      throw new VirtError('INVALID_ARG', `invalid argument: poll_ms '${poll}' must be a whole number of milliseconds between 10 and 600000`);
    }
    out.pollIntervalMs = n;
  }
  return out;
}

/** Connect to XenD and start the driver on it. */
export async function startXendDriver(t: XendTarget): Promise<XenDriver> {
  if (fs.existsSync(t.stateDir) && !fs.statSync(t.stateDir).isDirectory()) {
    throw new VirtError('INVALID_ARG', `invalid argument: state directory '${t.stateDir}' is not a directory`);
  }
  const store = await DirStore.open(t.stateDir, { prefixes: STORE_PREFIXES });
  let backend: XendBackend | undefined;
  try {
    backend = await XendBackend.open({
      address: t.address,
      imageDir: path.join(t.stateDir, 'images'),
      ...(t.pollIntervalMs !== undefined ? { pollIntervalMs: t.pollIntervalMs } : {}),
    });
    return await XenDriver.start({ uri: t.uri, store, backend });
  } catch (e) {
    await backend?.close().catch(() => {});
    await store.close().catch(() => {});
    throw e;
  }
}
