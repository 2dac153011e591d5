/**
 * Opening the Xen driver on a Xen control domain with the xl toolstack (Xen >= 4.x):
 * `xen:///system` (also `xen:///`, `libxl:///system`); src/driver/open.ts checks first that
 * /proc/xen/capabilities says `control_d`.
 *
 * - `state=/ABS/DIR` keeps the driver's state (definitions, autostart marks, runtime records)
 *   there; the default is $XENVIRT_XL_STATE_DIR, else /var/lib/xenvirt/libxl for root, else
 *   ~/.local/share/xenvirt/libxl.
 * - `create=paused` starts every guest with `xl create -p` + `xl unpause` (libvirt's order)
 *   instead of one `xl create` (`create=direct`, the default).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VirtError } from '../../errors.js';
import { DirStore } from '../../driver/store.js';
import { XenDriver } from '../../driver/driver.js';
import type { ParsedUri } from '../../uri/parse.js';
import { XlBackend, type XlBackendOptions } from './backend.js';

const STORE_PREFIXES = ['config', 'autostart', 'run', 'driver'];

export interface XlTarget {
  stateDir: string;
  createMode?: 'paused' | 'direct';
  /** The URI the connection reports. */
  uri: string;
  /** One driver per state directory per process. */
  key: string;
}

function param(p: ParsedUri, name: string): string | undefined {
  for (let i = p.params.length - 1; i >= 0; i--) if (p.params[i]!.name === name) return p.params[i]!.value;
  return undefined;
}

function defaultStateDir(): string {
  const env = process.env['XENVIRT_XL_STATE_DIR'];
  if (env) return path.resolve(env);
  if (process.getuid?.() === 0) return '/var/lib/xenvirt/libxl';
  return path.join(os.homedir(), '.local', 'share', 'xenvirt', 'libxl');
}

/** What a `xen:///system` URI asks of the xl driver. */
export function xlTarget(p: ParsedUri): XlTarget {
  const stateParam = param(p, 'state');
  if (stateParam !== undefined && !path.isAbsolute(stateParam)) {
    throw new VirtError('INVALID_ARG', `invalid argument: state directory '${stateParam}' must be an absolute path`);
  }
  const stateDir = path.resolve(stateParam ?? defaultStateDir());
  const t: XlTarget = { stateDir, uri: p.uri, key: `xl:${stateDir}` };
  const create = param(p, 'create');
  if (create !== undefined) {
    if (create !== 'paused' && create !== 'direct') {
      throw new VirtError('INVALID_ARG', `invalid argument: create='${create}' must be 'direct' (one xl create, the default) or 'paused' (xl create -p, then xl unpause)`);
    }
    t.createMode = create;
  }
  return t;
}

/** Open the state directory, the xl backend and the driver on them. */
export async function startXlDriver(t: XlTarget, extra: Partial<XlBackendOptions> = {}): Promise<XenDriver> {
  if (fs.existsSync(t.stateDir) && !fs.statSync(t.stateDir).isDirectory()) {
    throw new VirtError('INVALID_ARG', `invalid argument: state directory '${t.stateDir}' is not a directory`);
  }
  const store = await DirStore.open(t.stateDir, { prefixes: STORE_PREFIXES });
  let backend: XlBackend | undefined;
  try {
    const opts: XlBackendOptions = { ...extra };
    if (t.createMode) opts.createMode = t.createMode;
    backend = await XlBackend.open(opts);
    return await XenDriver.start({ uri: t.uri, store, backend });
  } catch (e) {
    await backend?.close().catch(() => {});
    await store.close().catch(() => {});
    throw e;
  }
}
