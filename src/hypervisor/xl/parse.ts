/**
 * Parsers for what Xen 4.x's `xl` prints (tools/xl/xl_list.c, xl_info.c, xl_vcpu.c,
 * xl_sched.c). They take xl's text and return plain records; nothing here runs a process.
 */
import type { GuestRunState, XenShutdownReason } from '../backend.js';

/** One row of `xl list -v`. */
export interface XlListEntry {
  name: string;
  domid: number;
  /** MiB: (current + outstanding) / 1024, as xl prints it */
  memMiB: number;
  /** online vcpus */
  vcpus: number;
  /** the six state letters, e.g. `-b----`, `---s--`, `---sc-` */
  flags: string;
  running: boolean;
  blocked: boolean;
  paused: boolean;
  shutdown: boolean;
  dying: boolean;
  /** set when `shutdown` is */
  shutdownReason?: XenShutdownReason;
  /** seconds of CPU, one decimal */
  cpuSeconds: number;
  /** only with -v */
  uuid?: string;
}

/** libxl_shutdown_reason by number (xl prints it in hex under Reason-Code). */
export const SHUTDOWN_REASONS: readonly XenShutdownReason[] = ['poweroff', 'reboot', 'suspend', 'crash', 'watchdog', 'soft_reset'];
/** xl's fifth state letter: the shutdown reason ("-rscwS"). */
const REASON_LETTERS = '-rscwS';

const LIST_ROW = /^(.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+([r-][b-][p-][s-][-rscwS?][d-])\s+(\d+(?:\.\d+)?)(?:\s+([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\s+(\S+))?(?:\s+\S+)?\s*$/;

/** Parse `xl list` / `xl list -v` output (header line skipped). */
export function parseXlList(text: string): XlListEntry[] {
  const out: XlListEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || /^Name\s+ID\s+Mem/.test(line)) continue;
    const m = LIST_ROW.exec(line);
    if (!m) continue;
    const flags = m[5]!;
    const e: XlListEntry = {
      name: m[1]!.trim(),
      domid: Number(m[2]),
      memMiB: Number(m[3]),
      vcpus: Number(m[4]),
      flags,
      running: flags[0] === 'r',
      blocked: flags[1] === 'b',
      paused: flags[2] === 'p',
      shutdown: flags[3] === 's',
      dying: flags[5] === 'd',
      cpuSeconds: Number(m[6]),
    };
    if (m[7]) e.uuid = m[7].toLowerCase();
    if (e.shutdown) {
      // Prefer the numeric Reason-Code column (-v); the letter covers plain `xl list`.
      const code = m[8] !== undefined && m[8] !== '-' ? parseInt(m[8], 16) : REASON_LETTERS.indexOf(flags[4]!);
      e.shutdownReason = SHUTDOWN_REASONS[code] ?? 'poweroff';
    }
    out.push(e);
  }
  return out;
}

/** What a libvirt-minded caller calls the domain's state. */
export function runState(e: XlListEntry): GuestRunState {
  if (e.dying) return 'dying';
  if (e.shutdown) return e.shutdownReason === 'crash' ? 'crashed' : 'shutdown';
  if (e.paused) return 'paused';
  if (e.blocked) return 'blocked';
  // neither running nor blocked: runnable, waiting for a CPU
  return 'running';
}

/** `xl info`: `key : value` lines. */
export function parseXlInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)\s*:\s?(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!.trim());
  }
  return out;
}

/** One vcpu of `xl vcpu-list`. */
export interface XlVcpu {
  name: string;
  domid: number;
  vcpu: number;
  /** physical CPU it runs on, -1 when offline/not scheduled */
  cpu: number;
  /** `r--` running, `-b-` blocked, `--p` paused/offline */
  state: string;
  online: boolean;
  cpuSeconds: number;
  /** hard affinity as xl prints it: `all`, `1`, `0-3,6` */
  hardAffinity: string;
  softAffinity: string;
}

const VCPU_ROW = /^(.*?)\s+(\d+)\s+(\d+)\s+(-|\d+)\s+([r-][b-][p-])\s+(\d+(?:\.\d+)?)\s+(\S+)\s*\/\s*(\S+)\s*$/;

export function parseVcpuList(text: string): XlVcpu[] {
  const out: XlVcpu[] = [];
  for (const line of text.split('\n')) {
    if (/^Name\s+ID\s+VCPU/.test(line)) continue;
    const m = VCPU_ROW.exec(line);
    if (!m) continue;
    const state = m[5]!;
    out.push({
      name: m[1]!.trim(),
      domid: Number(m[2]),
      vcpu: Number(m[3]),
      cpu: m[4] === '-' ? -1 : Number(m[4]),
      state,
      // an offline vcpu shows as paused with no CPU
      online: !(m[4] === '-' && state === '--p'),
      cpuSeconds: Number(m[6]),
      hardAffinity: m[7]!,
      softAffinity: m[8]!,
    });
  }
  return out;
}

/** Expand an xl CPU list (`all`, `0-3,6`, `^2`) against `nrCpus` host CPUs. */
export function expandCpuList(spec: string, nrCpus: number): number[] {
  const set = new Set<number>();
  const all = () => { for (let i = 0; i < nrCpus; i++) set.add(i); };
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const neg = part.startsWith('^');
    const body = neg ? part.slice(1) : part;
    const range: number[] = [];
    if (body === 'all') { for (let i = 0; i < nrCpus; i++) range.push(i); }
    else {
      const m = /^(\d+)(?:-(\d+))?$/.exec(body);
      if (!m) continue;
      const a = Number(m[1]);
      const b = m[2] !== undefined ? Number(m[2]) : a;
      for (let i = a; i <= b; i++) range.push(i);
    }
    if (neg) {
      if (set.size === 0) all();
      for (const i of range) set.delete(i);
    } else for (const i of range) set.add(i);
  }
  return [...set].sort((a, b) => a - b);
}

/** `xl sched-credit -d D` / `xl sched-credit2 -d D`: weight and cap of one domain. */
export function parseSchedRow(text: string): { weight: number; cap: number } | undefined {
  for (const line of text.split('\n')) {
    const m = /^(.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (m && !/^Name\s/.test(line)) return { weight: Number(m[3]), cap: Number(m[4]) };
  }
  return undefined;
}

/** The part of `xl list -l` (JSON) the backend reads. */
export interface XlDomainConfig {
  domid: number;
  name?: string;
  uuid?: string;
  type?: string;
  maxMemKiB?: number;
  targetMemKiB?: number;
  maxVcpus?: number;
  availVcpus?: number;
}

/** Parse `xl list -l`'s JSON array (one object per domain: {domid, config}). */
export function parseXlListLong(text: string): XlDomainConfig[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(data)) return [];
  const out: XlDomainConfig[] = [];
  for (const item of data) {
    if (typeof item !== 'object' || item === null) continue;
    const o = item as { domid?: unknown; config?: { c_info?: Record<string, unknown>; b_info?: Record<string, unknown> } };
    if (typeof o.domid !== 'number') continue;
    const c = o.config?.c_info ?? {};
    const b = o.config?.b_info ?? {};
    const e: XlDomainConfig = { domid: o.domid };
    if (typeof c['name'] === 'string') e.name = c['name'];
    if (typeof c['uuid'] === 'string') e.uuid = c['uuid'].toLowerCase();
    if (typeof c['type'] === 'string') e.type = c['type'];
    if (typeof b['max_memkb'] === 'number') e.maxMemKiB = b['max_memkb'];
    if (typeof b['target_memkb'] === 'number') e.targetMemKiB = b['target_memkb'];
    if (typeof b['max_vcpus'] === 'number') e.maxVcpus = b['max_vcpus'];
    if (Array.isArray(b['avail_vcpus'])) e.availVcpus = b['avail_vcpus'].length;
    out.push(e);
  }
  return out;
}

/** xl's progress lines on stderr during save/restore/dump: `xc: progress: Frames: 2048/32768 6%`. */
export function parseProgress(line: string): { done: number; total: number } | undefined {
  const m = /progress:.*?(\d+)\/(\d+)/.exec(line);
  if (!m) return undefined;
  const total = Number(m[2]);
  return total > 0 ? { done: Number(m[1]), total } : undefined;
}
