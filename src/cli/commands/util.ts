/**
 * Plumbing shared by the virsh-style commands: one connection per CLI session, virsh's domain
 * lookup rules, its table layout, state/reason/event names, option checks and the progress line.
 * Everything printed here follows tools/virsh*.c and tools/vsh*.c of libvirt 9.0.
 */
import type { CommandIo, ArgValues } from '../command.js';
import { VirtError } from '../../errors.js';
import type { Connection, DomainRef, JobProgressEvent } from '../../driver/connection.js';
import { openConnection } from '../../driver/open.js';

// ---------------------------------------------------------------------------------------------
// Connection per session

/**
 * The interactive shell runs many commands on one CommandIo; they share one connection, as in
 * virsh (and so share `test:///default`'s in-memory host). `closeSession` ends it.
 */
const sessions = new WeakMap<CommandIo, Promise<Connection>>();

export async function connect(io: CommandIo): Promise<Connection> {
  let pending = sessions.get(io);
  if (pending === undefined) {
    const opening: Promise<Connection> = openConnection(io.uri, { readonly: io.readonly === true });
    // A failed open is not kept: the next command may try again (the shell stays usable).
    opening.catch(() => sessions.delete(io));
    sessions.set(io, opening);
    pending = opening;
  }
  try {
    return await pending;
  } catch (e) {
    io.stderr.write('error: failed to connect to the hypervisor\n');
    throw e;
  }
}

/** Close the session's connection, if one was opened. Safe to call more than once. */
export async function closeSession(io: CommandIo): Promise<void> {
  const pending = sessions.get(io);
  if (!pending) return;
  sessions.delete(io);
  let conn: Connection;
  try { conn = await pending; } catch { return; }
  await conn.close();
}

// ---------------------------------------------------------------------------------------------
// Output helpers

/** One line of virsh's `Label:  value` blocks (dominfo, vcpuinfo: 15 columns; nodeinfo: 20). */
export const labelled = (label: string, value: string | number, width = 15): string => `${label.padEnd(width)} ${value}\n`;

/** virsh's vshPrintExtra: informational output that `-q` silences. */
export function printExtra(io: CommandIo, text: string): void {
  if (!io.quiet) io.stdout.write(text);
}

export function printJson(io: CommandIo, value: unknown): void {
  io.stdout.write(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v), 2) + '\n');
}

/**
 * Run a libvirt call; when it fails, print virsh's context line (`error: Failed to ...`) before
 * the library error that runCommand prints, exactly as virsh reports both.
 */
export async function withContext<T>(io: CommandIo, context: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    io.stderr.write(`error: ${context}\n`);
    throw e;
  }
}

/**
 * vshTable: every cell is preceded by one space, columns are padded to their widest cell plus
 * two spaces (not after the last one), and the rule under the header is (width + 3) dashes per
 * column. `-q` drops the header and the rule, and then the header no longer widens columns.
 */
export function formatTable(headers: string[], rows: string[][], withHeader = true): string {
  const all = withHeader ? [headers, ...rows] : rows;
  const widths = headers.map((_, c) => Math.max(0, ...all.map((r) => displayWidth(r[c] ?? ''))));
  const line = (cells: string[]) =>
    cells.map((cell, c) => ' ' + cell + (c < cells.length - 1 ? ' '.repeat(widths[c]! - displayWidth(cell) + 2) : '')).join('') + '\n';
  let out = '';
  if (withHeader) {
    out += line(headers);
    out += widths.map((w) => '-'.repeat(w + 3)).join('') + '\n';
  }
  for (const r of rows) out += line(r);
  return out;
}

function displayWidth(s: string): number {
  return [...s].length;
}

// ---------------------------------------------------------------------------------------------
// Domain lookup

export const BY_ID = 1;
export const BY_UUID = 2;
export const BY_NAME = 4;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * virsh's rule: an all-digit argument is tried as an id, a 36-character one as a UUID, then
 * anything as a name; whatever the lookups said, failure reads "failed to get domain 'ARG'".
 */
export async function lookupDomain(conn: Connection, arg: string, how = BY_ID | BY_UUID | BY_NAME): Promise<DomainRef> {
  if (how & BY_ID && /^\+?\d+$/.test(arg.trim()) && Number(arg) <= 0x7fffffff) {
    const dom = await conn.lookupById(Number(arg)).catch(() => undefined);
    if (dom) return dom;
  }
  if (how & BY_UUID && arg.length === 36 && UUID_RE.test(arg)) {
    const dom = await conn.lookupByUuid(arg.toLowerCase()).catch(() => undefined);
    if (dom) return dom;
  }
  if (how & BY_NAME) {
    const dom = await conn.lookupByName(arg).catch(() => undefined);
    if (dom) return dom;
  }
  throw new VirtError('NO_DOMAIN', `failed to get domain '${arg}'`);
}

/** Connect and look up the command's `domain` argument in one step. */
export async function domainArg(io: CommandIo, args: ArgValues, how?: number): Promise<{ conn: Connection; dom: DomainRef }> {
  const conn = await connect(io);
  const dom = await lookupDomain(conn, String(args.domain), how);
  return { conn, dom };
}

/**
 * Most domain commands: look the domain up, make the call with virsh's `Failed to ...` context
 * line on failure, then print virsh's confirmation (silenced by -q).
 */
export async function domainAction(
  io: CommandIo, args: ArgValues, failed: (name: string) => string,
  call: (conn: Connection, dom: DomainRef) => Promise<unknown>, done: (name: string) => string,
): Promise<void> {
  const { conn, dom } = await domainArg(io, args);
  await withContext(io, failed(dom.name), () => call(conn, dom));
  printExtra(io, done(dom.name));
}

/** The positional `<domain>` option every per-domain command declares first. */
export const domainOption = (help = 'domain name, id or uuid') =>
  ({ name: 'domain', type: 'string', positional: true, required: true, help }) as const;

// ---------------------------------------------------------------------------------------------
// Option checks (VSH_EXCLUSIVE_OPTIONS / VSH_REQUIRE_OPTION)

export function exclusive(args: ArgValues, a: string, b: string): void {
  if (args[a] !== undefined && args[b] !== undefined) {
    throw new VirtError('INVALID_ARG', `Options --${a} and --${b} are mutually exclusive`);
  }
}

export function requires(args: ArgValues, needer: string, needed: string): void {
  if (args[needer] !== undefined && args[needed] === undefined) {
    throw new VirtError('INVALID_ARG', `Option --${needed} is required by option --${needer}`);
  }
}

export const flag = (args: ArgValues, name: string): boolean => args[name] === true;

/** The --config/--live/--current trio most modifying commands share. */
export const impactOptions = [
  { name: 'config', type: 'bool', help: 'affect next boot' },
  { name: 'live', type: 'bool', help: 'affect running domain' },
  { name: 'current', type: 'bool', help: 'affect current domain' },
] as const;

/** VIR_DOMAIN_AFFECT_* from the trio; `current` and `live`/`config` are mutually exclusive. */
export function impactFlags(args: ArgValues): number {
  exclusive(args, 'current', 'live');
  exclusive(args, 'current', 'config');
  return (flag(args, 'live') ? 1 : 0) | (flag(args, 'config') ? 2 : 0);
}

// ---------------------------------------------------------------------------------------------
// Numbers

/**
 * vshCommandOptScaledInt: an integer with an optional unit suffix (b, k/KiB, KB, M/MiB, MB, ...,
 * E), `defaultScale` bytes when there is none. Returns bytes.
 */
export function parseScaled(option: string, text: string, defaultScale: number): number {
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(text.trim());
  const bad = () => new VirtError('INVALID_ARG', `Numeric value '${text}' for <${option}> option is malformed or out of range`);
  if (!m) throw bad();
  const n = BigInt(m[1]!);
  const unit = m[2]!;
  let scale: bigint;
  if (unit === '') scale = BigInt(defaultScale);
  else {
    const u = unit.toLowerCase();
    const powers = 'bkmgtpe';
    const p = powers.indexOf(u[0]!);
    if (p < 0) throw bad();
    const rest = u.slice(1);
    let base: bigint;
    if (u[0] === 'b') {
      if (rest !== '' && rest !== 'yte' && rest !== 'ytes') throw bad();
      base = 1n;
    } else if (rest === '' || rest === 'ib') base = 1024n;
    else if (rest === 'b') base = 1000n;
    else throw bad();
    scale = base ** BigInt(p);
  }
  const bytes = n * scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw bad();
  return Number(bytes);
}

/** Bytes to KiB, rounding up (VIR_DIV_UP), as the memory commands send KiB. */
export const toKiB = (bytes: number): number => Math.ceil(bytes / 1024);

/** Unsigned `number` options: the parser accepts a minus sign, virsh's OptUInt does not. */
export function unsignedArg(args: ArgValues, name: string): number | undefined {
  const v = args[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || v < 0 || v > 0xffffffff) {
    throw new VirtError('INVALID_ARG', `Numeric value '${String(v)}' for <${name}> option is malformed or out of range`);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Names virsh prints for states, reasons and events

export const STATE_NAMES = ['no state', 'running', 'idle', 'paused', 'in shutdown', 'shut off', 'crashed', 'pmsuspended'];

const REASON_NAMES: string[][] = [
  ['unknown'],
  ['unknown', 'booted', 'migrated', 'restored', 'from snapshot', 'unpaused', 'migration canceled', 'save canceled', 'event wakeup', 'crashed', 'post-copy', 'post-copy failed'],
  ['unknown'],
  ['unknown', 'user', 'migrating', 'saving', 'dumping', 'I/O error', 'watchdog', 'from snapshot', 'shutting down', 'creating snapshot', 'crashed', 'starting up', 'post-copy', 'post-copy failed', 'api error'],
  ['unknown', 'user'],
  ['unknown', 'shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from snapshot', 'daemon'],
  ['unknown', 'panicked'],
  ['unknown'],
];

export const stateName = (state: number): string => STATE_NAMES[state] ?? 'no state';
export const reasonName = (state: number, reason: number): string => REASON_NAMES[state]?.[reason] ?? 'unknown';

const EVENT_NAMES = ['Defined', 'Undefined', 'Started', 'Suspended', 'Resumed', 'Stopped', 'Shutdown', 'PMSuspended', 'Crashed'];
const EVENT_DETAILS: string[][] = [
  ['Added', 'Updated', 'Renamed', 'Snapshot'],
  ['Removed', 'Renamed'],
  ['Booted', 'Migrated', 'Restored', 'Snapshot', 'Event wakeup'],
  ['Paused', 'Migrated', 'I/O Error', 'Watchdog', 'Restored', 'Snapshot', 'API error', 'Post-copy', 'Post-copy Error'],
  ['Unpaused', 'Migrated', 'Snapshot', 'Post-copy', 'Post-copy Error'],
  ['Shutdown', 'Destroyed', 'Crashed', 'Migrated', 'Saved', 'Failed', 'Snapshot'],
  ['Finished', 'Finished after guest request', 'Finished after host request'],
  ['Memory', 'Disk'],
  ['Panicked', 'Crashloaded'],
];

export const eventName = (event: number): string => EVENT_NAMES[event] ?? 'unknown';
export const eventDetailName = (event: number, detail: number): string => EVENT_DETAILS[event]?.[detail] ?? 'unknown';

// ---------------------------------------------------------------------------------------------
// Progress of long jobs (virshPrintJobProgress)

/** virshPrintJobProgress's figure: whole percent, never 100 before the job has finished. */
export function progressPercent(processed: number, total: number): number {
  if (total <= 0) return 0;
  const remaining = Math.max(0, total - processed);
  if (remaining === 0) return 100;
  return Math.min(99, Math.floor(100 - (remaining * 100) / total));
}

/**
 * Save, restore and dump report progress on stderr as virsh 9.0 does, `\rLABEL: [ 42 %]`,
 * when stdout is a terminal or --verbose is given, ending with `[100 %]` on success. The
 * figures come from the connection's job progress reports when it has them; without them a
 * job longer than virsh's 500 ms polling interval shows `[  0 %]` until it completes.
 */
export async function withProgress<T>(
  io: CommandIo, label: string, show: boolean, conn: Connection, operation: JobProgressEvent['operation'], call: () => Promise<T>,
): Promise<T> {
  if (!show) return call();
  let last = -1;
  const line = (pct: number) => {
    if (pct === last) return;
    last = pct;
    io.stderr.write(`\r${label}: [${String(pct).padStart(3)} %]`);
  };
  const unsubscribe = conn.onJobProgress?.((p) => {
    if (p.operation === operation && p.total > 0) line(progressPercent(p.processed, p.total));
  });
  const timer = unsubscribe ? undefined : setTimeout(() => line(0), 500);
  try {
    const result = await call();
    line(100);
    return result;
  } catch (e) {
    // Leave the error on a line of its own.
    if (last >= 0) io.stderr.write('\n');
    throw e;
  } finally {
    if (timer) clearTimeout(timer);
    unsubscribe?.();
  }
}
