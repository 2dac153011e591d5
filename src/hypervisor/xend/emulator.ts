/**
 * An in-process XenD, for tests: the HTTP/S-expression interface of Xen 3.x's management daemon
 * (../../../shared/design/xend-http-facts.md) over a UNIX socket and/or TCP, with its own state.
 *
 * - Transport as XenD's: one request per connection (`Connection: close`), GET for reading,
 *   form-encoded POST for operations; 200/201/202 for success, 404 for an unknown object or
 *   operation, 500 with a `(xend.err '...')` body for failures.
 * - Initial domains are recorded XenD answers (`loadRecorded`, `loadCorpus`): they are served
 *   as recorded, with only the fields that change (domid, state, memory, cpu_time, ...)
 *   rewritten in place.
 * - It keeps what XenD keeps: domain ids (never reused), run state, memory against the host's,
 *   online vcpus and pins, credit scheduler weight/cap, devices with XenD's device ids,
 *   managed (`new`) domains that survive being stopped, and save images / core dumps on disk.
 * - Guests act on shutdown requests after `shutdownDelayMs`, then XenD applies the domain's
 *   on_poweroff / on_reboot / on_crash; `guestShutdown` and `crash` trigger that from a test.
 * - Migration is refused (there is no peer), clearly.
 * - `inject` replaces the next matching answer (202 "failed", oversized bodies, ...).
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createHash } from 'node:crypto';
import {
  formatSexpr, joinBackslashNewlines, parseSexpr, sexprHead, type SExpr,
} from '../../formats/sexpr.js';

type List = SExpr[];
export type EmuRunState = 'running' | 'blocked' | 'paused' | 'shutdown' | 'crashed' | 'halted';

export interface EmuHostConfig {
  hostname: string;
  /** MiB */
  totalMemory: number;
  /** MiB held by Domain-0 */
  dom0Memory: number;
  dom0Vcpus: number;
  nrNodes: number;
  sockets: number;
  cores: number;
  threads: number;
  mhz: number;
  machine: string;
  xenMajor: number;
  xenMinor: number;
  xenExtra: string;
  /** xend_config_format: 1 before Xen 3.0.3, 2 for 3.0.3, 3 for 3.0.4, 4 from 3.1 */
  configFormat: number;
  scheduler: 'credit' | 'sedf';
  caps: string;
}

export const DEFAULT_EMU_HOST: EmuHostConfig = {
  hostname: 'xend-emu',
  totalMemory: 65536,
  dom0Memory: 1024,
  dom0Vcpus: 4,
  nrNodes: 1,
  sockets: 1,
  cores: 2,
  threads: 2,
  mhz: 2400,
  machine: 'x86_64',
  xenMajor: 3,
  xenMinor: 4,
  xenExtra: '.2',
  configFormat: 4,
  scheduler: 'credit',
  caps: 'xen-3.0-x86_64 xen-3.0-x86_32p hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64',
};

export interface XendEmulatorOptions {
  /** Listen on this UNIX socket. */
  socketPath?: string;
  /** Listen on TCP (127.0.0.1, port 0 = any free port). */
  tcp?: boolean | { host?: string; port?: number };
  host?: Partial<EmuHostConfig>;
  /** How long a guest takes to act on shutdown / reboot (ms). */
  shutdownDelayMs?: number;
  /** Disk sources (uname paths) whose backend never connects: wait_for_devices fails for them. */
  brokenDiskPaths?: string[];
}

export interface EmuDevice {
  cls: string;
  devid: number;
  /** `(CLS (key value) ...)` */
  config: List;
}

interface EmuDomain {
  name: string;
  /** dashed lowercase */
  uuid: string;
  domid: number | undefined;
  state: EmuRunState;
  shutdownReason?: string;
  /** defined with `new` (or recorded inactive): kept when it stops */
  managed: boolean;
  /** `(domain ...)` without its `(device ...)` entries: rendered with the live fields rewritten */
  doc: List;
  devices: EmuDevice[];
  nextDevid: Map<string, number>;
  memory: number;
  maxmem: number;
  vcpus: number;
  online: number;
  /** per vcpu: the host cpus it may run on; undefined = all */
  cpumaps: Array<number[] | undefined>;
  weight: number;
  cap: number;
  onXendStart: string;
  startTime: number | undefined;
  cpuNs: bigint;
  runningSince: number | null;
  pending?: NodeJS.Timeout;
  devicesConnected: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  form: Record<string, string>;
  status: number;
}

export interface InjectedReply {
  method?: 'GET' | 'POST';
  /** exact path (without query) or a pattern */
  path?: string | RegExp;
  op?: string;
  status: number;
  body: string;
  /** how many requests it answers (default 1) */
  times?: number;
  /** Send this Content-Length instead of the real one (0 = none: body until close). */
  contentLength?: number | 'none';
}

/** XenD's failure: an HTTP status and a message carried as `(xend.err 'message')`. */
class XendFault extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}
const fault = (message: string) => new XendFault(500, message);
const notFound = (message: string) => new XendFault(404, message);

const SAVE_MAGIC = 'LinuxGuestRecord';
const STATE_MARK = '\nXENEMU-STATE ';
const CORE_MAGIC = 'XENEMU-CORE 1\n';
const MAX_POST = 1024 * 1024;
const GUEST_LOAD = 0.05;

// ---- small S-expression helpers ---------------------------------------------------------------

function childOf(node: List, key: string): List | undefined {
  for (let i = 1; i < node.length; i++) {
    const c = node[i]!;
    if (Array.isArray(c) && c[0] === key) return c;
  }
  return undefined;
}

function atomOf(node: List | undefined, key: string): string | undefined {
  const c = node && childOf(node, key);
  const v = c?.[1];
  return typeof v === 'string' ? v : undefined;
}

/** Replace `(key ...)` in place, append it, or (value undefined) remove it. */
function setItem(node: List, key: string, value: SExpr | undefined): void {
  const i = node.findIndex((c, j) => j > 0 && Array.isArray(c) && c[0] === key);
  if (value === undefined) {
    if (i >= 0) node.splice(i, 1);
    return;
  }
  const item: List = [key, value];
  if (i >= 0) node[i] = item;
  else node.push(item);
}

/** Keep a recorded number's spelling ("1.0") when its value did not change. */
function setNumber(node: List, key: string, n: number): void {
  const old = atomOf(node, key);
  if (old !== undefined && Number(old) === n) return;
  setItem(node, key, String(n));
}

function intOf(s: string | undefined, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (s === undefined || !/^\s*-?\d+\s*$/.test(s)) throw fault(`${what}: '${s ?? ''}' is not a whole number`);
  const n = Number(s);
  if (n < min || n > max) throw fault(`${what}: ${n} is outside ${min}..${max}`);
  return n;
}

function parseFloatNs(s: string | undefined): bigint {
  if (!s || !/^\d+(\.\d+)?$/.test(s.trim())) return 0n;
  const [i, f = ''] = s.trim().split('.');
  return BigInt(i!) * 1_000_000_000n + BigInt((f + '000000000').slice(0, 9));
}

function formatNs(ns: bigint): string {
  const s = ns / 1_000_000_000n;
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${s}.${frac}`;
}

function normUuid(s: string): string | undefined {
  const hex = s.trim().replace(/-/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function uuidFrom(seed: string): string {
  return normUuid(createHash('sha256').update(seed).digest('hex').slice(0, 32))!;
}

const STATE_FLAGS: Record<EmuRunState, string> = {
  running: 'r-----', blocked: '-b----', paused: '--p---', shutdown: '---s--', crashed: '----c-', halted: '------',
};
const STATUS: Record<EmuRunState, number> = { halted: 0, paused: 1, running: 2, blocked: 2, shutdown: 4, crashed: 5 };

function stateFromFlags(flags: string | undefined): EmuRunState {
  if (!flags) return 'running';
  if (flags.includes('c')) return 'crashed';
  if (flags.includes('s')) return 'shutdown';
  if (flags.includes('p')) return 'paused';
  if (flags.includes('r')) return 'running';
  return 'blocked';
}

const active = (d: EmuDomain) => d.domid !== undefined;
const live = (d: EmuDomain) => d.state === 'running' || d.state === 'blocked' || d.state === 'paused';

/** XenD's device number for a disk name (Linux's major/minor encoding), as blkif computes it. */
export function diskDeviceNumber(dev: string): number | undefined {
  const name = dev.replace(/^ioemu:/, '').replace(/:(disk|cdrom)$/, '').replace(/^\/dev\//, '');
  if (/^\d+$/.test(name)) return Number(name);
  const letters = (s: string) => [...s].reduce((n, ch) => n * 26 + (ch.charCodeAt(0) - 96), 0) - 1;
  let m = /^xvd([a-z]+)(\d*)$/.exec(name);
  if (m) {
    const i = letters(m[1]!);
    const part = m[2] ? Number(m[2]) : 0;
    return i < 16 ? (202 << 8) | (i << 4) | part : (1 << 28) | (i << 8) | part;
  }
  m = /^hd([a-t])(\d*)$/.exec(name);
  if (m) {
    const i = letters(m[1]!);
    const majors = [3, 22, 33, 34, 56, 57, 88, 89, 90, 91];
    return (majors[i >> 1]! << 8) | ((i & 1) << 6) | (m[2] ? Number(m[2]) : 0);
  }
  m = /^sd([a-z]+)(\d*)$/.exec(name);
  if (m) {
    const i = letters(m[1]!);
    if (i < 16) return (8 << 8) | (i << 4) | (m[2] ? Number(m[2]) : 0);
  }
  return undefined;
}

/** A disk's `dev` without XenD's decorations: `ioemu:hda:disk` -> `hda`. */
const bareDiskName = (dev: string) => dev.replace(/^ioemu:/, '').replace(/:(disk|cdrom)$/, '');

const DISK_CLASSES = new Set(['vbd', 'tap', 'tap2']);
const DEVICE_CLASSES = new Set(['vbd', 'tap', 'tap2', 'vif', 'pci', 'vfb', 'vkbd', 'console', 'vtpm', 'vscsi', 'vusb', 'ioports', 'irq']);

/** A cpumap as XenD took it: `0,1,2`, `[0,1,2]`, ranges `0-3`. */
function parseCpumap(s: string, nrCpus: number): number[] {
  const t = s.trim().replace(/^\[|\]$/g, '');
  const out = new Set<number>();
  for (const part of t.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(p);
    if (!m) throw fault(`invalid cpumap '${s}'`);
    const lo = Number(m[1]);
    const hi = m[2] !== undefined ? Number(m[2]) : lo;
    if (hi < lo || hi >= nrCpus) throw fault(`cpumap '${s}' names cpus outside 0..${nrCpus - 1}`);
    for (let c = lo; c <= hi; c++) out.add(c);
  }
  if (out.size === 0) throw fault(`cpumap '${s}' names no cpu`);
  return [...out].sort((a, b) => a - b);
}

export class XendEmulator {
  readonly host: EmuHostConfig;
  readonly requests: RecordedRequest[] = [];
  private readonly doms: EmuDomain[] = [];
  private nextDomid = 1;
  private readonly bootTime = Date.now() / 1000;
  private readonly servers: http.Server[] = [];
  private readonly injected: InjectedReply[] = [];
  private readonly brokenDisks: Set<string>;
  private shutdownDelayMs: number;
  private socketPath: string | undefined;
  private tcpAddr: { host: string; port: number } | undefined;
  private stopped = false;

  private constructor(opts: XendEmulatorOptions) {
    this.host = { ...DEFAULT_EMU_HOST, ...opts.host };
    this.shutdownDelayMs = opts.shutdownDelayMs ?? 50;
    this.brokenDisks = new Set(opts.brokenDiskPaths ?? []);
  }

  /** Start serving; at least one of socketPath / tcp must be given. */
  static async start(opts: XendEmulatorOptions): Promise<XendEmulator> {
    if (!opts.socketPath && !opts.tcp) throw new Error('XendEmulator.start: give socketPath and/or tcp');
    const emu = new XendEmulator(opts);
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => { void emu.handle(req, res); };
    try {
      if (opts.socketPath) {
        fs.rmSync(opts.socketPath, { force: true });
        const s = http.createServer(handler);
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(opts.socketPath, () => resolve());
        });
        emu.servers.push(s);
        emu.socketPath = opts.socketPath;
      }
      if (opts.tcp) {
        const want = typeof opts.tcp === 'object' ? opts.tcp : {};
        const s = http.createServer(handler);
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(want.port ?? 0, want.host ?? '127.0.0.1', () => resolve());
        });
        const a = s.address() as AddressInfo;
        emu.servers.push(s);
        emu.tcpAddr = { host: a.address, port: a.port };
      }
    } catch (e) {
      await emu.stop();
      throw e;
    }
    return emu;
  }

  /** `unix:/path`, when listening on a socket. */
  get unixAddress(): string | undefined { return this.socketPath ? `unix:${this.socketPath}` : undefined; }
  /** `http://127.0.0.1:PORT`, when listening on TCP. */
  get httpAddress(): string | undefined { return this.tcpAddr ? `http://${this.tcpAddr.host}:${this.tcpAddr.port}` : undefined; }

  setShutdownDelay(ms: number): void { this.shutdownDelayMs = ms; }

  /** Answer the next matching request(s) with this reply instead. */
  inject(reply: InjectedReply): void { this.injected.push({ times: 1, ...reply }); }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const d of this.doms) if (d.pending) clearTimeout(d.pending);
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections?.();
    })));
    if (this.socketPath) fs.rmSync(this.socketPath, { force: true });
  }

  // ---- seeding from recorded answers -----------------------------------------------------------

  /**
   * Add a domain from a recorded `?detail=1` answer. Overrides rename it, give it another uuid
   * or domid (recorded answers share names and ids). Recorded with a domid it is running (or in
   * its recorded state); without one it is a managed, inactive domain.
   */
  loadRecorded(text: string, over: { name?: string; uuid?: string; domid?: number | null } = {}): { name: string; uuid: string; domid?: number } {
    const tree = parseSexpr(joinBackslashNewlines(text), { lenient: true });
    if (!Array.isArray(tree) || tree[0] !== 'domain') throw new Error('a recorded XenD answer must be a (domain ...) S-expression');
    const doc = tree.filter((c) => !(Array.isArray(c) && c[0] === 'device'));
    if (over.name !== undefined) setItem(doc, 'name', over.name);
    if (over.uuid !== undefined) setItem(doc, 'uuid', over.uuid);
    if (over.domid === null) setItem(doc, 'domid', undefined);
    else if (over.domid !== undefined) setItem(doc, 'domid', String(over.domid));
    const name = atomOf(doc, 'name');
    if (!name) throw new Error('the recorded domain has no name');
    const uuid = normUuid(atomOf(doc, 'uuid') ?? '') ?? uuidFrom(name);
    if (!atomOf(doc, 'uuid')) setItem(doc, 'uuid', uuid);
    const domidText = atomOf(doc, 'domid');
    const domid = domidText !== undefined ? Number(domidText) : undefined;
    const clash = this.doms.find((d) => d.name === name || d.uuid === uuid || (domid !== undefined && d.domid === domid));
    if (clash || domid === 0) throw new Error(`recorded domain '${name}' clashes with domain '${clash?.name ?? 'Domain-0'}' (name, uuid or domid): give overrides`);
    const memory = Number(atomOf(doc, 'memory') ?? atomOf(doc, 'maxmem') ?? 0);
    const vcpus = Number(atomOf(doc, 'vcpus') ?? 1) || 1;
    const avail = atomOf(doc, 'vcpu_avail');
    const online = Number(atomOf(doc, 'online_vcpus') ?? (avail ? BigInt(avail).toString(2).replace(/0/g, '').length : vcpus)) || vcpus;
    const d: EmuDomain = {
      name,
      uuid,
      domid,
      state: domid === undefined ? 'halted' : stateFromFlags(atomOf(doc, 'state')),
      managed: domid === undefined || atomOf(doc, 'on_xend_start') !== undefined,
      doc,
      devices: [],
      nextDevid: new Map(),
      memory,
      maxmem: Number(atomOf(doc, 'maxmem') ?? memory) || memory,
      vcpus,
      online,
      cpumaps: [],
      weight: Number(atomOf(doc, 'cpu_weight') ?? 256) || 256,
      cap: Number(atomOf(doc, 'cpu_cap') ?? 0) || 0,
      onXendStart: atomOf(doc, 'on_xend_start') ?? 'ignore',
      startTime: domid === undefined ? undefined : Number(atomOf(doc, 'start_time') ?? Date.now() / 1000),
      cpuNs: parseFloatNs(atomOf(doc, 'cpu_time')),
      runningSince: null,
      devicesConnected: domid !== undefined,
    };
    const reason = atomOf(doc, 'shutdown_reason');
    if (reason !== undefined) d.shutdownReason = reason;
    for (const c of tree) {
      if (Array.isArray(c) && c[0] === 'device' && Array.isArray(c[1])) this.addDevice(d, c[1] as List, false);
    }
    if (d.state === 'running' || d.state === 'blocked') d.runningSince = Date.now();
    if (domid !== undefined) this.nextDomid = Math.max(this.nextDomid, domid + 1);
    this.doms.push(d);
    const out: { name: string; uuid: string; domid?: number } = { name, uuid };
    if (domid !== undefined) out.domid = domid;
    return out;
  }

  /**
   * Load every `*.sexpr` of a directory (libvirt's recorded XenD answers). Where names, uuids
   * or domids clash, the later file's domain is renamed after its file and given a uuid and
   * domid of its own. Returns file -> domain name.
   */
  loadCorpus(dir: string): Map<string, string> {
    const out = new Map<string, string>();
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.sexpr')).sort()) {
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      const base = f.slice(0, -'.sexpr'.length);
      let r;
      try {
        r = this.loadRecorded(text);
      } catch {
        r = this.loadRecorded(text, { name: `${base}`, uuid: uuidFrom(`xend-emu:${f}`), domid: this.nextDomid });
      }
      out.set(f, r.name);
    }
    return out;
  }

  // ---- test triggers ----------------------------------------------------------------------------

  /** The guest shuts itself down (as `poweroff` / `reboot` inside it would). */
  guestShutdown(ref: string | number, reason: 'poweroff' | 'reboot' | 'halt' | 'suspend' = 'poweroff'): void {
    const d = this.find(String(ref));
    if (!d || !active(d)) throw new Error(`no running domain ${ref}`);
    this.completeShutdown(d, reason);
  }

  crash(ref: string | number): void {
    const d = this.find(String(ref));
    if (!d || !active(d)) throw new Error(`no running domain ${ref}`);
    this.completeShutdown(d, 'crash');
  }

  /** A domain's state as XenD holds it (for assertions). */
  domain(ref: string | number): {
    name: string; uuid: string; domid?: number; state: EmuRunState; memory: number; maxmem: number; vcpus: number;
    online: number; weight: number; cap: number; managed: boolean; onXendStart: string; devices: EmuDevice[];
    cpumaps: Array<number[] | undefined>; shutdownReason?: string;
  } | undefined {
    const d = this.find(String(ref));
    if (!d) return undefined;
    const out = {
      name: d.name, uuid: d.uuid, state: d.state, memory: d.memory, maxmem: d.maxmem, vcpus: d.vcpus, online: d.online,
      weight: d.weight, cap: d.cap, managed: d.managed, onXendStart: d.onXendStart, devices: structuredClone(d.devices),
      cpumaps: d.cpumaps.map((m) => (m ? [...m] : undefined)),
    } as NonNullable<ReturnType<XendEmulator['domain']>>;
    if (d.domid !== undefined) out.domid = d.domid;
    if (d.shutdownReason !== undefined) out.shutdownReason = d.shutdownReason;
    return out;
  }

  /** Names of every domain XenD knows, Domain-0 first. */
  names(): string[] { return ['Domain-0', ...this.doms.map((d) => d.name)]; }

  // ---- HTTP -------------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://localhost');
    const query = Object.fromEntries(url.searchParams);
    let form: Record<string, string> = {};
    let status = 200;
    let body = '';
    let contentLength: number | 'none' | undefined;
    try {
      if (method === 'POST') form = await this.readForm(req);
      const inj = this.takeInjected(method, url.pathname, form['op'] ?? query['op']);
      if (inj) {
        status = inj.status;
        body = inj.body;
        contentLength = inj.contentLength;
      } else if (method === 'GET') {
        body = this.get(url.pathname, query);
      } else if (method === 'POST') {
        [status, body] = this.post(url.pathname, form);
      } else {
        throw notFound(`XenD does not serve ${method} requests`);
      }
    } catch (e) {
      if (e instanceof XendFault) {
        status = e.status;
        body = formatSexpr(['xend.err', e.message]);
      } else {
        status = 500;
        body = formatSexpr(['xend.err', `internal error in the emulated XenD: ${(e as Error).message}`]);
      }
    }
    this.requests.push({ method, path: url.pathname, query, form, status });
    const buf = Buffer.from(body, 'utf8');
    const headers: Record<string, string | number> = { 'Content-Type': 'text/plain', Connection: 'close' };
    if (contentLength === undefined) headers['Content-Length'] = buf.length;
    else if (contentLength !== 'none') headers['Content-Length'] = contentLength;
    res.writeHead(status, headers);
    res.end(buf);
  }

  private readForm(req: http.IncomingMessage): Promise<Record<string, string>> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_POST) {
          reject(new XendFault(413, 'request body too large'));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')))));
      req.on('error', reject);
    });
  }

  private takeInjected(method: string, p: string, op: string | undefined): InjectedReply | undefined {
    const i = this.injected.findIndex((r) => (r.method === undefined || r.method === method)
      && (r.path === undefined || (typeof r.path === 'string' ? r.path === p : r.path.test(p)))
      && (r.op === undefined || r.op === op));
    if (i < 0) return undefined;
    const r = this.injected[i]!;
    r.times = (r.times ?? 1) - 1;
    if (r.times <= 0) this.injected.splice(i, 1);
    return r;
  }

  // ---- reading ----------------------------------------------------------------------------------

  private get(p: string, query: Record<string, string>): string {
    if (p === '/xend/node' || p === '/xend/node/') return formatSexpr(this.nodeSxpr());
    if (p === '/xend/domain' || p === '/xend/domain/') {
      const state = query['state'];
      let doms = this.allDomains();
      if (state === 'halted') doms = doms.filter((d) => d === 'dom0' ? false : !active(d));
      else if (state === 'running') doms = doms.filter((d) => d === 'dom0' || active(d));
      else if (state !== undefined && state !== 'all') throw fault(`unknown domain state '${state}'`);
      else doms = doms.filter((d) => d === 'dom0' || active(d));
      if (query['detail'] === '1') return formatSexpr(doms.map((d) => this.render(d)));
      return formatSexpr(doms.map((d) => (d === 'dom0' ? 'Domain-0' : d.name)));
    }
    const m = /^\/xend\/domain\/([^/]+)\/?$/.exec(p);
    if (!m) throw notFound(`no such resource ${p}`);
    const ref = decodeURIComponent(m[1]!);
    const d = this.lookup(ref);
    if (!d) throw notFound(`Domain not found: ${ref}`);
    const op = query['op'];
    if (op === undefined) return formatSexpr(this.render(d));
    if (op === 'vcpuinfo') return formatSexpr(this.vcpuInfo(d));
    throw notFound(`unknown operation '${op}'`);
  }

  private allDomains(): Array<EmuDomain | 'dom0'> {
    return ['dom0', ...this.doms];
  }

  private nodeSxpr(): List {
    const h = this.host;
    const nrCpus = h.nrNodes * h.sockets * h.cores * h.threads;
    const perNode = nrCpus / h.nrNodes;
    const nodeToCpu = Array.from({ length: h.nrNodes }, (_, n) => `node${n}:${n * perNode}-${(n + 1) * perNode - 1}`).join('\n');
    const nodeToMem = Array.from({ length: h.nrNodes }, (_, n) => `node${n}:${Math.floor(this.freeMemory() / h.nrNodes)}`).join('\n');
    const kv = (k: string, v: string | number): List => [k, String(v)];
    const node: List = ['node',
      kv('host', h.hostname), kv('release', '2.6.18.8-xen'), kv('version', '#1 SMP Mon Jan 11 12:00:00 UTC 2010'),
      kv('machine', h.machine), kv('nr_cpus', nrCpus), kv('nr_nodes', h.nrNodes), kv('cores_per_socket', h.cores),
      kv('threads_per_core', h.threads), kv('cpu_mhz', h.mhz),
      kv('hw_caps', 'bfebfbff:20100800:00000000:00000940:0000e3bd:00000000:00000001:00000000'),
      kv('virt_caps', this.host.caps.includes('hvm') ? 'hvm' : ''),
      kv('total_memory', h.totalMemory), kv('free_memory', this.freeMemory()), kv('free_cpus', 0),
      kv('xen_major', h.xenMajor), kv('xen_minor', h.xenMinor), kv('xen_extra', h.xenExtra),
      kv('xen_caps', h.caps), kv('xen_scheduler', h.scheduler), kv('xen_pagesize', 4096),
      kv('platform_params', 'virt_start=0xffff800000000000'), kv('xen_changeset', 'unavailable'),
      kv('cc_compiler', 'gcc version 4.3.2 (Debian 4.3.2-1.1)'), kv('cc_compile_by', 'root'),
      kv('cc_compile_domain', 'localdomain'), kv('cc_compile_date', 'Mon Jan 11 12:00:00 UTC 2010'),
      kv('xend_config_format', h.configFormat), kv('node_to_cpu', nodeToCpu), kv('node_to_memory', nodeToMem),
    ];
    node.splice(7, 0, kv('sockets_per_node', h.sockets));
    return node;
  }

  private usedMemory(): number {
    return this.host.dom0Memory + this.doms.filter(active).reduce((n, d) => n + d.memory, 0);
  }

  private freeMemory(): number { return Math.max(0, this.host.totalMemory - this.usedMemory()); }

  private get nrCpus(): number { return this.host.nrNodes * this.host.sockets * this.host.cores * this.host.threads; }

  private cpuNs(d: EmuDomain): bigint {
    let ns = d.cpuNs;
    if (d.runningSince !== null) ns += BigInt(Math.floor((Date.now() - d.runningSince) * 1e6 * d.online * GUEST_LOAD));
    return ns;
  }

  private stopClock(d: EmuDomain): void {
    d.cpuNs = this.cpuNs(d);
    d.runningSince = null;
  }

  private dom0Sxpr(): List {
    const up = Date.now() / 1000 - this.bootTime;
    const kv = (k: string, v: string | number): List => [k, String(v)];
    return ['domain', kv('domid', 0), kv('on_crash', 'restart'), kv('uuid', '00000000-0000-0000-0000-000000000000'),
      kv('bootloader_args', ''), kv('vcpus', this.host.dom0Vcpus), kv('name', 'Domain-0'), kv('on_poweroff', 'destroy'),
      kv('on_reboot', 'restart'), ['bootloader'], kv('maxmem', this.host.dom0Memory), kv('memory', this.host.dom0Memory),
      kv('shadow_memory', 0), kv('cpu_weight', 256), kv('cpu_cap', 0), ['features'], kv('on_xend_start', 'ignore'),
      kv('on_xend_stop', 'ignore'), kv('start_time', this.bootTime.toFixed(2)),
      kv('cpu_time', formatNs(BigInt(Math.floor(up * 1e9 * this.host.dom0Vcpus * 0.02)))),
      kv('online_vcpus', this.host.dom0Vcpus), ['image', ['linux', ['kernel']]], kv('status', 2), kv('state', 'r-----'),
      ['device', ['console', kv('location', 2), kv('uuid', uuidFrom('dom0-console'))]]];
  }

  private render(d: EmuDomain | 'dom0'): List {
    if (d === 'dom0') return this.dom0Sxpr();
    const out: List = structuredClone(d.doc);
    setItem(out, 'domid', d.domid === undefined ? undefined : String(d.domid));
    setItem(out, 'name', d.name);
    setNumber(out, 'memory', d.memory);
    setNumber(out, 'maxmem', d.maxmem);
    setNumber(out, 'vcpus', d.vcpus);
    if (d.online < d.vcpus) setItem(out, 'vcpu_avail', ((1n << BigInt(d.online)) - 1n).toString());
    else if (atomOf(out, 'vcpu_avail') !== undefined) setItem(out, 'vcpu_avail', ((1n << BigInt(d.vcpus)) - 1n).toString());
    setNumber(out, 'cpu_weight', d.weight);
    setNumber(out, 'cpu_cap', d.cap);
    if (d.managed || atomOf(out, 'on_xend_start') !== undefined) setItem(out, 'on_xend_start', d.onXendStart);
    for (const dev of d.devices) out.push(['device', structuredClone(dev.config)]);
    if (active(d)) {
      setNumber(out, 'online_vcpus', d.online);
      setItem(out, 'start_time', (d.startTime ?? 0).toFixed(2));
      setItem(out, 'cpu_time', formatNs(this.cpuNs(d)));
      setItem(out, 'up_time', (Date.now() / 1000 - (d.startTime ?? 0)).toFixed(7));
    } else {
      for (const k of ['online_vcpus', 'start_time', 'cpu_time', 'up_time']) setItem(out, k, undefined);
    }
    setItem(out, 'status', String(STATUS[d.state]));
    setItem(out, 'state', STATE_FLAGS[d.state]);
    if (d.shutdownReason !== undefined) setItem(out, 'shutdown_reason', d.shutdownReason);
    return out;
  }

  private vcpuInfo(d: EmuDomain | 'dom0'): List {
    const all = Array.from({ length: this.nrCpus }, (_, i) => String(i));
    if (d === 'dom0') {
      return Array.from({ length: this.host.dom0Vcpus }, (_, v) => ['vcpu', ['number', String(v)], ['online', '1'], ['blocked', '0'],
        ['running', '1'], ['cpu_time', '1.0'], ['cpu', String(v % this.nrCpus)], ['cpumap', all]]);
    }
    if (!active(d)) return [];
    const perVcpu = this.cpuNs(d) / BigInt(Math.max(1, d.online));
    return Array.from({ length: d.vcpus }, (_, v) => {
      const online = v < d.online;
      const map = d.cpumaps[v]?.map(String) ?? all;
      const running = online && (d.state === 'running' || d.state === 'blocked');
      return ['vcpu', ['number', String(v)], ['online', online ? '1' : '0'], ['blocked', running && d.state === 'blocked' ? '1' : '0'],
        ['running', running && d.state === 'running' ? '1' : '0'], ['cpu_time', formatNs(online ? perVcpu : 0n)],
        ['cpu', String(online ? Number(map[v % map.length]) : -1)], ['cpumap', map]];
    });
  }

  /** XenD's lookup: name, then domid, then uuid. */
  private lookup(ref: string): EmuDomain | 'dom0' | undefined {
    if (ref === 'Domain-0' || ref === '0' || normUuid(ref) === '00000000-0000-0000-0000-000000000000') return 'dom0';
    return this.find(ref);
  }

  private find(ref: string): EmuDomain | undefined {
    const byName = this.doms.find((d) => d.name === ref);
    if (byName) return byName;
    if (/^\d+$/.test(ref)) {
      const byId = this.doms.find((d) => d.domid === Number(ref));
      if (byId) return byId;
    }
    const u = normUuid(ref);
    return u ? this.doms.find((d) => d.uuid === u) : undefined;
  }

  // ---- operations -------------------------------------------------------------------------------

  private post(p: string, form: Record<string, string>): [number, string] {
    const op = form['op'];
    if (p === '/xend/domain' || p === '/xend/domain/') {
      switch (op) {
        case 'create': return [201, formatSexpr(this.render(this.opCreate(form, false)))];
        case 'new': return [201, formatSexpr(this.render(this.opCreate(form, true)))];
        case 'restore': return [201, formatSexpr(this.render(this.opRestore(form)))];
        default: throw notFound(`unknown operation '${op ?? ''}' on /xend/domain/`);
      }
    }
    const m = /^\/xend\/domain\/([^/]+)\/?$/.exec(p);
    if (!m) throw notFound(`no such resource ${p}`);
    const ref = decodeURIComponent(m[1]!);
    const found = this.lookup(ref);
    if (!found) throw notFound(`Domain not found: ${ref}`);
    if (found === 'dom0') return this.dom0Op(op, form);
    const d = found;
    switch (op) {
      case 'start': this.opStart(d, form['paused'] === '1'); return [200, ''];
      case 'delete': this.opDelete(d); return [200, ''];
      case 'pause': this.opPause(d); return [200, ''];
      case 'unpause': this.opUnpause(d); return [200, ''];
      case 'shutdown': this.opShutdown(d, form['reason'] ?? 'poweroff'); return [202, formatSexpr(['shutdown', form['reason'] ?? 'poweroff'])];
      case 'destroy': this.needActive(d, 'destroy'); this.teardown(d); return [200, ''];
      case 'save': this.opSave(d, form); return [202, formatSexpr(['save', 'done'])];
      case 'dump': this.opDump(d, form); return [200, ''];
      case 'maxmem_set': this.opMaxmem(d, form); return [200, ''];
      case 'mem_target_set': this.opMemTarget(d, form); return [200, ''];
      case 'set_vcpus': this.opSetVcpus(d, form); return [200, ''];
      case 'pincpu': this.opPin(d, form); return [200, ''];
      case 'device_create': this.opDeviceCreate(d, form); return [200, ''];
      case 'device_configure': this.opDeviceConfigure(d, form); return [200, ''];
      case 'device_destroy': this.opDeviceDestroy(d, form); return [200, ''];
      case 'domain_sched_credit_set': this.opCredit(d, form); return [200, ''];
      case 'migrate': this.opMigrate(d, form); return [202, ''];
      case 'wait_for_devices': this.opWaitForDevices(d); return [200, ''];
      default: throw notFound(`unknown operation '${op ?? ''}'`);
    }
  }

  private dom0Op(op: string | undefined, form: Record<string, string>): [number, string] {
    switch (op) {
      case 'mem_target_set': {
        const t = intOf(form['target'], 'mem_target_set target', 64);
        const grow = t - this.host.dom0Memory;
        if (grow > this.freeMemory()) throw fault(`cannot grow Domain-0 by ${grow} MiB: only ${this.freeMemory()} MiB free`);
        this.host.dom0Memory = t;
        return [200, ''];
      }
      case 'dump':
        // XenD answered this one with a success code and the error in the body.
        return [200, formatSexpr(['xend.err', 'Cannot dump core for privileged domain 0'])];
      case 'wait_for_devices':
        return [200, ''];
      case 'save': throw fault('Cannot save privileged domain 0');
      case 'destroy': throw fault('Cannot destroy privileged domain 0');
      case 'pause': throw fault('Cannot pause privileged domain 0');
      case 'shutdown': throw fault('Cannot shutdown privileged domain 0 through XenD');
      case 'delete': throw fault('Cannot delete privileged domain 0');
      case undefined: throw notFound('no operation given');
      default:
        if (['start', 'unpause', 'maxmem_set', 'set_vcpus', 'pincpu', 'device_create', 'device_configure', 'device_destroy',
          'domain_sched_credit_set', 'migrate'].includes(op)) {
          throw fault(`operation '${op}' is not supported on privileged domain 0 by this XenD`);
        }
        throw notFound(`unknown operation '${op}'`);
    }
  }

  private needActive(d: EmuDomain, what: string): void {
    if (!active(d)) throw fault(`Domain '${d.name}' is not running: cannot ${what} it`);
  }

  private parseConfig(text: string | undefined, what: string): List {
    if (!text) throw fault(`${what}: no config given`);
    let e: SExpr;
    try {
      e = parseSexpr(text);
    } catch (err) {
      throw fault(`${what}: the config is not a valid S-expression: ${(err as Error).message}`);
    }
    if (!Array.isArray(e) || (e[0] !== 'vm' && e[0] !== 'domain')) throw fault(`${what}: the config must be a (vm ...) S-expression`);
    return e;
  }

  /** A domain record from a `(vm ...)` / `(domain ...)` config. */
  private fromConfig(cfg: List, what: string): EmuDomain {
    const doc: List = ['domain', ...cfg.slice(1).filter((c) => !(Array.isArray(c) && (c[0] === 'device' || c[0] === 'domid')))];
    const name = atomOf(doc, 'name');
    if (!name) throw fault(`${what}: the config has no name`);
    if (name === 'Domain-0' || /^\d+$/.test(name)) throw fault(`${what}: '${name}' is not a valid domain name`);
    const uuidText = atomOf(doc, 'uuid');
    const uuid = uuidText !== undefined ? normUuid(uuidText) : uuidFrom(`${name}:${Date.now()}:${Math.random()}`);
    if (!uuid) throw fault(`${what}: '${uuidText}' is not a valid uuid`);
    setItem(doc, 'uuid', uuid);
    const image = childOf(doc, 'image');
    const kind = image && Array.isArray(image[1]) ? sexprHead(image[1]) : undefined;
    if (kind !== 'linux' && kind !== 'hvm') throw fault(`${what}: the config needs an (image (linux ...)) or (image (hvm ...))`);
    if (kind === 'linux' && !atomOf(image![1] as List, 'kernel') && !childOf(doc, 'bootloader')) {
      throw fault(`${what}: a PV domain needs (kernel ...) in its image or a (bootloader ...)`);
    }
    const maxmem = intOf(atomOf(doc, 'maxmem') ?? atomOf(doc, 'memory'), `${what}: maxmem`, 1);
    const memory = intOf(atomOf(doc, 'memory') ?? String(maxmem), `${what}: memory`, 1);
    if (memory > maxmem) throw fault(`${what}: memory ${memory} MiB is above maxmem ${maxmem} MiB`);
    const vcpus = intOf(atomOf(doc, 'vcpus') ?? '1', `${what}: vcpus`, 1, 32);
    const avail = atomOf(doc, 'vcpu_avail');
    const online = avail !== undefined ? Math.max(1, Math.min(vcpus, BigInt(avail).toString(2).replace(/0/g, '').length)) : vcpus;
    for (const k of ['on_poweroff', 'on_reboot', 'on_crash']) {
      const v = atomOf(doc, k);
      if (v !== undefined && !['destroy', 'restart', 'preserve', 'rename-restart', 'coredump-destroy', 'coredump-restart'].includes(v)) {
        throw fault(`${what}: invalid ${k} action '${v}'`);
      }
    }
    const d: EmuDomain = {
      name, uuid, domid: undefined, state: 'halted', managed: false, doc, devices: [], nextDevid: new Map(),
      memory, maxmem, vcpus, online, cpumaps: [], weight: Number(atomOf(doc, 'cpu_weight') ?? 256) || 256,
      cap: Number(atomOf(doc, 'cpu_cap') ?? 0) || 0, onXendStart: atomOf(doc, 'on_xend_start') ?? 'ignore',
      startTime: undefined, cpuNs: 0n, runningSince: null, devicesConnected: false,
    };
    for (const c of cfg) {
      if (Array.isArray(c) && c[0] === 'device') {
        if (!Array.isArray(c[1]) || typeof c[1][0] !== 'string') throw fault(`${what}: malformed (device ...) entry`);
        this.addDevice(d, c[1] as List, true);
      }
    }
    return d;
  }

  private opCreate(form: Record<string, string>, managed: boolean): EmuDomain {
    const what = managed ? 'Error defining domain' : 'Error creating domain';
    const d = this.fromConfig(this.parseConfig(form['config'], what), what);
    const sameUuid = this.doms.find((x) => x.uuid === d.uuid);
    const sameName = this.doms.find((x) => x.name === d.name);
    if (managed) {
      // `new` (re)defines: a managed domain with this uuid gets the new config.
      if (sameName && sameName !== sameUuid) throw fault(`${what}: Domain '${d.name}' already exists with UUID ${sameName.uuid}`);
      if (sameUuid) {
        if (sameUuid.name !== d.name && active(sameUuid)) throw fault(`${what}: cannot rename running domain '${sameUuid.name}'`);
        if (active(sameUuid)) {
          // a running domain keeps its live state; only the stored config changes
          sameUuid.onXendStart = d.onXendStart;
          sameUuid.managed = true;
          return sameUuid;
        }
        Object.assign(sameUuid, { ...d, managed: true });
        return sameUuid;
      }
      d.managed = true;
      this.doms.push(d);
      return d;
    }
    for (const x of [sameUuid, sameName]) {
      if (x && active(x)) throw fault(`${what}: Domain '${x.name}' already exists with ID '${x.domid}'`);
    }
    if (sameName && sameName !== sameUuid) throw fault(`${what}: Domain '${d.name}' is already defined with UUID ${sameName.uuid}`);
    if (sameUuid) {
      // a managed domain started from a fresh config: XenD runs it under its record
      Object.assign(sameUuid, { ...d, managed: true });
      this.activate(sameUuid, true, what);
      return sameUuid;
    }
    this.activate(d, true, what);
    this.doms.push(d);
    return d;
  }

  /** Give the domain a domid and memory; XenD builds new domains paused. */
  private activate(d: EmuDomain, paused: boolean, what: string): void {
    const free = this.freeMemory();
    if (d.memory > free) {
      const dom0Min = this.host.dom0Memory * 1024;
      throw fault(`${what}: I need ${d.memory * 1024} KiB, but dom0_min_mem is ${dom0Min} and shrinking to ${dom0Min} KiB would leave only ${free * 1024} KiB free.`);
    }
    d.domid = this.nextDomid++;
    d.state = paused ? 'paused' : 'running';
    delete d.shutdownReason;
    d.startTime = Date.now() / 1000;
    d.runningSince = paused ? null : Date.now();
    d.devicesConnected = false;
  }

  /** The domain stops: a managed one goes back to its definition, a transient one is gone. */
  private teardown(d: EmuDomain): void {
    if (d.pending) clearTimeout(d.pending);
    delete d.pending;
    this.stopClock(d);
    d.domid = undefined;
    d.startTime = undefined;
    d.devicesConnected = false;
    if (d.managed) {
      d.state = 'halted';
      delete d.shutdownReason;
    } else {
      const i = this.doms.indexOf(d);
      if (i >= 0) this.doms.splice(i, 1);
    }
  }

  private opStart(d: EmuDomain, paused: boolean): void {
    if (active(d)) throw fault(`Domain '${d.name}' is already running`);
    this.activate(d, true, `Error starting domain '${d.name}'`);
    this.opWaitForDevices(d);
    if (!paused) this.opUnpause(d);
  }

  private opDelete(d: EmuDomain): void {
    if (active(d)) throw fault('Domain is not halted.');
    this.doms.splice(this.doms.indexOf(d), 1);
  }

  private opPause(d: EmuDomain): void {
    this.needActive(d, 'pause');
    if (d.state === 'paused') return;
    if (!live(d)) throw fault(`Domain '${d.name}' is ${d.state}: cannot pause it`);
    this.stopClock(d);
    d.state = 'paused';
  }

  private opUnpause(d: EmuDomain): void {
    this.needActive(d, 'unpause');
    if (d.state !== 'paused') return;
    d.state = 'running';
    d.runningSince = Date.now();
  }

  private opShutdown(d: EmuDomain, reason: string): void {
    this.needActive(d, 'shut down');
    if (!['poweroff', 'reboot', 'halt', 'suspend'].includes(reason)) throw fault(`invalid shutdown reason '${reason}'`);
    if (!live(d)) throw fault(`Domain '${d.name}' is already shut down`);
    if (d.pending) clearTimeout(d.pending);
    d.pending = setTimeout(() => {
      delete d.pending;
      if (active(d) && live(d)) this.completeShutdown(d, reason);
    }, this.shutdownDelayMs);
  }

  /** The guest stopped (or crashed): XenD applies the domain's lifecycle action. */
  private completeShutdown(d: EmuDomain, reason: string): void {
    if (d.pending) clearTimeout(d.pending);
    delete d.pending;
    this.stopClock(d);
    const crashed = reason === 'crash';
    d.state = crashed ? 'crashed' : 'shutdown';
    d.shutdownReason = reason === 'halt' ? 'poweroff' : reason;
    if (reason === 'suspend') return;
    const key = crashed ? 'on_crash' : reason === 'reboot' ? 'on_reboot' : 'on_poweroff';
    const action = atomOf(d.doc, key) ?? (key === 'on_poweroff' ? 'destroy' : 'restart');
    if (action === 'preserve') return;
    const restart = action === 'restart' || action === 'rename-restart' || action === 'coredump-restart';
    const wasManaged = d.managed;
    d.managed = true; // keep the record through the restart
    this.teardown(d);
    d.managed = wasManaged;
    if (restart) {
      try {
        this.activate(d, false, `restarting domain '${d.name}'`);
        d.devicesConnected = true;
        return;
      } catch {
        // no memory to restart it: it stays down
      }
    }
    if (!wasManaged) this.doms.splice(this.doms.indexOf(d), 1);
  }

  /** The config part of the domain (its devices included), as XenD writes it into a save image. */
  private configSxpr(d: EmuDomain): List {
    const out = this.render(d);
    for (const k of ['domid', 'state', 'status', 'cpu_time', 'up_time', 'start_time', 'online_vcpus', 'shutdown_reason']) setItem(out, k, undefined);
    return out;
  }

  private opSave(d: EmuDomain, form: Record<string, string>): void {
    this.needActive(d, 'save');
    const file = form['file'];
    if (!file) throw fault('save: no file given');
    if (!live(d)) throw fault(`Domain '${d.name}' is ${d.state}: cannot save it`);
    this.stopClock(d);
    const config = formatSexpr(this.configSxpr(d));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(Buffer.byteLength(config));
    const state = JSON.stringify({
      memory: d.memory, maxmem: d.maxmem, vcpus: d.vcpus, online: d.online, cpuNs: d.cpuNs.toString(), weight: d.weight,
      cap: d.cap, cpumaps: d.cpumaps, paused: d.state === 'paused', devids: d.devices.map((x) => [x.cls, x.devid]),
      nextDevid: [...d.nextDevid],
    });
    try {
      fs.writeFileSync(file, Buffer.concat([Buffer.from(SAVE_MAGIC), len, Buffer.from(config), Buffer.from(`${STATE_MARK}${state}\n`)]));
    } catch (e) {
      if (d.state !== 'paused') d.runningSince = Date.now();
      throw fault(`Save failed on domain ${d.name} (${d.domid}): ${(e as Error).message}`);
    }
    this.teardown(d);
  }

  private opRestore(form: Record<string, string>): EmuDomain {
    const file = form['file'];
    if (!file) throw fault('restore: no file given');
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
    } catch (e) {
      throw fault(`Restore failed: cannot read ${file}: ${(e as Error).message}`);
    }
    if (data.subarray(0, SAVE_MAGIC.length).toString('latin1') !== SAVE_MAGIC) {
      throw fault(`Restore failed: not a valid guest state file: found '${data.subarray(0, SAVE_MAGIC.length).toString('latin1').replace(/[^\x20-\x7e]/g, '.')}'`);
    }
    const len = data.readUInt32BE(SAVE_MAGIC.length);
    const start = SAVE_MAGIC.length + 4;
    const config = data.subarray(start, start + len).toString('utf8');
    const what = 'Restore failed';
    const d = this.fromConfig(this.parseConfig(config, what), what);
    const tail = data.subarray(start + len).toString('utf8');
    const paused = form['paused'] === '1';
    if (tail.startsWith(STATE_MARK)) {
      const st = JSON.parse(tail.slice(STATE_MARK.length)) as {
        memory: number; maxmem: number; vcpus: number; online: number; cpuNs: string; weight: number; cap: number;
        cpumaps: Array<number[] | null>; devids: Array<[string, number]>; nextDevid: Array<[string, number]>;
      };
      Object.assign(d, { memory: st.memory, maxmem: st.maxmem, vcpus: st.vcpus, online: st.online, weight: st.weight, cap: st.cap });
      d.cpuNs = BigInt(st.cpuNs);
      d.cpumaps = st.cpumaps.map((m) => m ?? undefined);
      st.devids.forEach(([cls, id], i) => { if (d.devices[i]?.cls === cls) d.devices[i]!.devid = id; });
      d.nextDevid = new Map(st.nextDevid);
    }
    const existing = this.doms.find((x) => x.uuid === d.uuid) ?? this.doms.find((x) => x.name === d.name);
    if (existing && active(existing)) throw fault(`${what}: Domain '${existing.name}' already exists with ID '${existing.domid}'`);
    if (existing && existing.uuid !== d.uuid) throw fault(`${what}: Domain '${d.name}' is already defined with UUID ${existing.uuid}`);
    let target = d;
    if (existing) {
      Object.assign(existing, { ...d, managed: true, onXendStart: existing.onXendStart });
      target = existing;
    }
    this.activate(target, true, what);
    target.devicesConnected = true;
    if (!existing) this.doms.push(target);
    if (!paused) this.opUnpause(target);
    return target;
  }

  private opDump(d: EmuDomain, form: Record<string, string>): void {
    this.needActive(d, 'dump');
    const file = form['file'];
    if (!file) throw fault('dump: no file given');
    const crash = form['crash'] === '1';
    const body = JSON.stringify({ domid: d.domid, name: d.name, uuid: d.uuid, memory: d.memory, vcpus: d.vcpus, live: form['live'] === '1', at: new Date().toISOString() });
    try {
      fs.writeFileSync(file, CORE_MAGIC + body + '\n', { mode: 0o600 });
    } catch (e) {
      throw fault(`Failed to dump core: ${(e as Error).message}`);
    }
    if (crash) this.teardown(d);
  }

  private opMaxmem(d: EmuDomain, form: Record<string, string>): void {
    const mib = intOf(form['memory'], 'maxmem_set memory', 1);
    if (active(d) && mib < d.memory) {
      throw fault(`cannot set the maximum memory of '${d.name}' to ${mib} MiB: it has ${d.memory} MiB now; lower its memory target first`);
    }
    d.maxmem = mib;
    if (!active(d) && d.memory > mib) d.memory = mib;
  }

  private opMemTarget(d: EmuDomain, form: Record<string, string>): void {
    const mib = intOf(form['target'], 'mem_target_set target', 1);
    if (mib > d.maxmem) throw fault(`memory target ${mib} MiB is above the maximum ${d.maxmem} MiB of domain '${d.name}'`);
    if (active(d) && mib - d.memory > this.freeMemory()) {
      throw fault(`I need ${(mib - d.memory) * 1024} KiB more for domain '${d.name}', but only ${this.freeMemory() * 1024} KiB are free.`);
    }
    d.memory = mib;
  }

  private opSetVcpus(d: EmuDomain, form: Record<string, string>): void {
    const n = intOf(form['vcpus'], 'set_vcpus vcpus', 0);
    if (n < 1) throw fault('Number of vcpus must be at least 1');
    if (n > d.vcpus) {
      if (active(d)) throw fault(`Cannot set vcpus greater than max vcpus on running domain (${n} > ${d.vcpus})`);
      d.vcpus = n;
    }
    if (d.runningSince !== null) {
      this.stopClock(d);
      d.online = n;
      d.runningSince = Date.now();
    } else d.online = n;
  }

  private opPin(d: EmuDomain, form: Record<string, string>): void {
    this.needActive(d, 'pin the vcpus of');
    const v = intOf(form['vcpu'], 'pincpu vcpu', 0, d.vcpus - 1);
    if (form['cpumap'] === undefined) throw fault('pincpu: no cpumap given');
    d.cpumaps[v] = parseCpumap(form['cpumap'], this.nrCpus);
  }

  private opCredit(d: EmuDomain, form: Record<string, string>): void {
    if (this.host.scheduler !== 'credit') throw fault(`the host runs the ${this.host.scheduler} scheduler, not credit`);
    if (form['weight'] !== undefined) d.weight = intOf(form['weight'], 'domain_sched_credit_set weight', 1, 65535);
    if (form['cap'] !== undefined) d.cap = intOf(form['cap'], 'domain_sched_credit_set cap', 0, 100 * d.vcpus);
  }

  private opMigrate(d: EmuDomain, form: Record<string, string>): void {
    this.needActive(d, 'migrate');
    const dest = form['destination'] ?? '';
    throw fault(`Migration of domain '${d.name}' to '${dest}${form['port'] && form['port'] !== '0' ? `:${form['port']}` : ''}' refused: ` +
      'this is an emulated XenD without a relocation server peer (xend-relocation-server); nothing was changed');
  }

  private opWaitForDevices(d: EmuDomain): void {
    this.needActive(d, 'wait for the devices of');
    for (const dev of d.devices) {
      if (!DISK_CLASSES.has(dev.cls)) continue;
      const uname = atomOf(dev.config, 'uname') ?? '';
      const file = uname.replace(/^(tap2?:[^:]+|phy|file):/, '');
      if (this.brokenDisks.has(file)) {
        throw fault(`Device ${dev.devid} (${dev.cls}) could not be connected. ${file} does not exist.`);
      }
    }
    d.devicesConnected = true;
  }

  // ---- devices ---------------------------------------------------------------------------------

  /** Add a device with XenD's id for it; refuses duplicates when `check`. */
  private addDevice(d: EmuDomain, config: List, check: boolean): EmuDevice {
    const cls = String(config[0]);
    if (!DEVICE_CLASSES.has(cls)) throw fault(`unknown device class '${cls}'`);
    let devid: number;
    if (DISK_CLASSES.has(cls)) {
      const dev = atomOf(config, 'dev');
      if (!dev) throw fault(`${cls} device has no (dev ...)`);
      const uname = atomOf(config, 'uname');
      if (check && uname !== undefined && !/^(phy|file|tap|tap2):/.test(uname)) {
        throw fault(`${cls} ${dev}: uname '${uname}' names no driver (phy:, file:, tap:)`);
      }
      const num = diskDeviceNumber(dev);
      devid = num ?? this.nextId(d, cls, 0x10000);
      if (check && d.devices.some((x) => DISK_CLASSES.has(x.cls) && (x.devid === devid || bareDiskName(atomOf(x.config, 'dev') ?? '') === bareDiskName(dev)))) {
        throw fault(`Device ${bareDiskName(dev)} (${devid}, ${cls}) is already connected.`);
      }
    } else if (cls === 'vif') {
      let mac = atomOf(config, 'mac');
      if (!mac) {
        const h = createHash('md5').update(`${d.uuid}:${d.devices.length}:${Date.now()}`).digest();
        mac = `00:16:3e:${[h[0]! & 0x7f, h[1]!, h[2]!].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
        config.push(['mac', mac]);
      }
      const macLc = mac.toLowerCase();
      if (check && d.devices.some((x) => x.cls === 'vif' && atomOf(x.config, 'mac')?.toLowerCase() === macLc)) {
        throw fault(`a network device with MAC ${mac} is already connected to domain '${d.name}'`);
      }
      devid = this.nextId(d, 'vif', 0);
    } else if (cls === 'pci') {
      const existing = d.devices.find((x) => x.cls === 'pci');
      if (existing) {
        for (const c of config.slice(1)) if (Array.isArray(c) && c[0] === 'dev') existing.config.push(c);
        return existing;
      }
      devid = 0;
    } else {
      devid = this.nextId(d, cls, 0);
    }
    const dev: EmuDevice = { cls, devid, config };
    d.devices.push(dev);
    return dev;
  }

  private nextId(d: EmuDomain, cls: string, base: number): number {
    const used = d.devices.filter((x) => x.cls === cls).map((x) => x.devid);
    const n = Math.max(d.nextDevid.get(cls) ?? base, used.length ? Math.max(...used) + 1 : base);
    d.nextDevid.set(cls, n + 1);
    return n;
  }

  /** XenD's device reference: a device id, or a disk's backend name (xvdb, hda). */
  private findDevice(d: EmuDomain, cls: string, ref: string): EmuDevice | undefined {
    const classes = DISK_CLASSES.has(cls) ? DISK_CLASSES : new Set([cls]);
    const inClass = d.devices.filter((x) => classes.has(x.cls));
    if (/^\d+$/.test(ref)) return inClass.find((x) => x.devid === Number(ref));
    if (DISK_CLASSES.has(cls)) return inClass.find((x) => bareDiskName(atomOf(x.config, 'dev') ?? '') === bareDiskName(ref));
    return undefined;
  }

  private deviceConfig(form: Record<string, string>, what: string): List {
    const text = form['config'];
    if (!text) throw fault(`${what}: no config given`);
    let e: SExpr;
    try {
      e = parseSexpr(text);
    } catch (err) {
      throw fault(`${what}: the device config is not a valid S-expression: ${(err as Error).message}`);
    }
    if (!Array.isArray(e) || typeof e[0] !== 'string') throw fault(`${what}: the device config must be a (CLASS ...) list`);
    if (e[0] === 'device' && Array.isArray(e[1])) e = e[1];
    return e as List;
  }

  private opDeviceCreate(d: EmuDomain, form: Record<string, string>): void {
    const config = this.deviceConfig(form, 'device_create');
    if (active(d) && !live(d)) throw fault(`Domain '${d.name}' is ${d.state}: cannot add devices`);
    const dev = this.addDevice(d, config, true);
    if (active(d) && DISK_CLASSES.has(dev.cls)) {
      const uname = atomOf(config, 'uname') ?? '';
      const file = uname.replace(/^(tap2?:[^:]+|phy|file):/, '');
      if (this.brokenDisks.has(file)) {
        d.devices.splice(d.devices.indexOf(dev), 1);
        throw fault(`Device ${dev.devid} (${dev.cls}) could not be connected. ${file} does not exist.`);
      }
    }
  }

  private opDeviceConfigure(d: EmuDomain, form: Record<string, string>): void {
    const config = this.deviceConfig(form, 'device_configure');
    const cls = String(config[0]);
    if (cls === 'pci') {
      const pci = d.devices.find((x) => x.cls === 'pci');
      const state = atomOf(config, 'state');
      const devs = config.slice(1).filter((c): c is List => Array.isArray(c) && c[0] === 'dev');
      const key = (c: List) => ['domain', 'bus', 'slot', 'func'].map((k) => Number(atomOf(c, k) ?? 0)).join(':');
      if (state === 'Closing') {
        if (!pci) throw fault('no PCI device is assigned to this domain');
        for (const dv of devs) {
          const i = pci.config.findIndex((c, j) => j > 0 && Array.isArray(c) && c[0] === 'dev' && key(c) === key(dv));
          if (i < 0) throw fault(`PCI device ${key(dv)} is not assigned to domain '${d.name}'`);
          pci.config.splice(i, 1);
        }
        if (!pci.config.some((c) => Array.isArray(c) && c[0] === 'dev')) d.devices.splice(d.devices.indexOf(pci), 1);
      } else {
        this.addDevice(d, ['pci', ...devs], true);
      }
      return;
    }
    const ref = form['dev'];
    if (ref === undefined) throw fault('device_configure: no dev given');
    const dev = this.findDevice(d, cls, ref);
    if (!dev) throw fault(`Device ${ref} not connected`);
    if (DISK_CLASSES.has(cls)) {
      // media change: only the source (and mode) may change
      const uname = atomOf(config, 'uname');
      setItem(dev.config, 'uname', uname);
      const mode = atomOf(config, 'mode');
      if (mode !== undefined) setItem(dev.config, 'mode', mode);
      return;
    }
    for (const c of config.slice(1)) if (Array.isArray(c) && typeof c[0] === 'string') setItem(dev.config, c[0], c[1]);
  }

  private opDeviceDestroy(d: EmuDomain, form: Record<string, string>): void {
    const cls = form['type'];
    const ref = form['dev'];
    if (!cls || !DEVICE_CLASSES.has(cls)) throw fault(`device_destroy: unknown device type '${cls ?? ''}'`);
    if (ref === undefined) throw fault('device_destroy: no dev given');
    if (cls === 'vif' && !/^\d+$/.test(ref)) throw fault(`invalid literal for int(): ${ref}`);
    const dev = this.findDevice(d, cls, ref);
    if (!dev) throw fault(`Device ${ref} not connected`);
    d.devices.splice(d.devices.indexOf(dev), 1);
  }
}
