/**
 * The XenD backend: Xen 3.x (and 4.0 - 4.4 with xend) through XenD's HTTP/S-expression
 * interface, for the driver in src/driver.
 *
 * How the HypervisorBackend operations map onto XenD:
 * - start: POST /xend/domain/ op=create with our xen-sxpr rendering of the domain; XenD builds
 *   it paused; then wait_for_devices, credit parameters, and unpause unless asked to stay
 *   paused. Any failure after the create destroys the domain: nothing is left half-started.
 * - The driver owns lifecycle policy (on_poweroff / on_reboot / on_crash, as with libxl), so
 *   domains are created with XenD's `preserve` for all three: a guest that stops stays in
 *   XenD's shutdown/crashed state until the driver, told by an event, acts on it.
 * - Events: XenD pushes nothing, so the backend polls (GET /xend/domain, then ?detail=1 per
 *   domain): a domain showing state `s` or `c` gives a 'shutdown' event with its reason, one
 *   that vanished without our doing gives 'death' (or the shutdown we asked for).
 * - save / restore / dump take file paths on the XenD host: save and restore go through a
 *   temporary file in `imageDir` which the backend copies from / into the driver's image, so
 *   they need XenD on this machine (the unix socket, or http://localhost).
 * - Devices: device_create / device_configure / device_destroy with XenD's device references
 *   (the disk's name for vbd/tap, the device id for vif; vif ids are tracked from the order
 *   XenD hands them out, as XenD allocates them sequentially per domain).
 * - XenD-managed definitions (`new`, `start`, `delete`, `?state=halted`) are available as
 *   extra methods (`defineManaged`, `startManaged`, `deleteManaged`, `listManaged`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { ErrorDomain, VirtError } from '../../errors.js';
import type { DiskDevice, Domain, InterfaceDevice } from '../../domain/types.js';
import { parseUuid } from '../../domain/parse.js';
import { formatSexpr, sexprChildren, sexprHead, sexprLookupKey, sexprNode, type SExpr } from '../../formats/sexpr.js';
import { diskToSxpr, domainToSxpr, interfaceToSxpr, sxprToDomain } from '../../formats/sxpr.js';
import type {
  BackendEvent, GuestArchCaps, GuestInfo, GuestRunState, HostCapabilities, HostInfo, HypervisorBackend, ProgressFn,
  SchedulerParams, StartOptions, VcpuInfo, XenShutdownReason,
} from '../backend.js';
import { BackendListeners, type BackendListener } from '../listeners.js';
import { XendClient, type XendAddress } from './http.js';

export interface XendBackendOptions {
  /** `unix:/var/lib/xend/xend-socket`, `http://host:8000`, or a parsed address. */
  address: string | XendAddress;
  /** How often to look for guests that stopped (ms). Default $XENVIRT_XEND_POLL_MS or 1000. */
  pollIntervalMs?: number;
  /** Where save / restore images pass through on their way to / from XenD (default: the temp dir). */
  imageDir?: string;
  /** Timeout for quick requests (ms). */
  timeoutMs?: number;
}

/** Xen 3.x's MAX_VIRT_CPUS: the most vcpus a XenD guest may have. */
const XEND_MAX_VCPUS = 32;
const EMULATOR = '/usr/lib/xen/bin/qemu-dm';
const HVMLOADER = '/usr/lib/xen/boot/hvmloader';
const DOM0_UUID = '00000000-0000-0000-0000-000000000000';

const xendError = (code: ConstructorParameters<typeof VirtError>[0], message: string) => new VirtError(code, message, ErrorDomain.XEND);

type List = SExpr[];

// ---- reading XenD's answers ------------------------------------------------------------------

function stateOf(flags: string | undefined): GuestRunState {
  const f = flags ?? '';
  if (f.includes('c')) return 'crashed';
  if (f.includes('s')) return 'shutdown';
  if (f.includes('d')) return 'dying';
  if (f.includes('p')) return 'paused';
  if (f.includes('r')) return 'running';
  return 'blocked';
}

const REASONS: Record<string, XenShutdownReason> = {
  poweroff: 'poweroff', halt: 'poweroff', '0': 'poweroff',
  reboot: 'reboot', '1': 'reboot',
  suspend: 'suspend', '2': 'suspend',
  crash: 'crash', '3': 'crash',
  watchdog: 'watchdog', '4': 'watchdog',
  soft_reset: 'soft_reset', '5': 'soft_reset',
};

/** XenD's seconds as a float string, exactly, in nanoseconds. */
export function secondsToNs(s: string | undefined): bigint {
  const m = /^\s*(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/.exec(s ?? '');
  if (!m) return 0n;
  if (m[3] !== undefined) return BigInt(Math.round(Number(s) * 1e9));
  return BigInt(m[1]!) * 1_000_000_000n + BigInt(((m[2] ?? '') + '000000000').slice(0, 9));
}

const popcount = (n: bigint) => n.toString(2).replace(/0/g, '').length;

function intNode(e: SExpr, p: string): number | undefined {
  const v = sexprNode(e, p);
  if (v === undefined || !/^\s*-?\d+(\.\d+)?\s*$/.test(v)) return undefined;
  return Math.trunc(Number(v));
}

/** A running domain from its `?detail=1` answer; undefined for an inactive (defined) one. */
export function guestInfoFromSxpr(e: SExpr): GuestInfo | undefined {
  if (sexprHead(e) !== 'domain') return undefined;
  const domid = intNode(e, 'domain/domid');
  if (domid === undefined) return undefined;
  const name = sexprNode(e, 'domain/name') ?? '';
  const uuid = parseUuid(sexprNode(e, 'domain/uuid') ?? '') ?? (domid === 0 ? DOM0_UUID : '');
  const memMiB = intNode(e, 'domain/memory') ?? 0;
  const maxMiB = intNode(e, 'domain/maxmem') ?? memMiB;
  const vcpus = intNode(e, 'domain/vcpus') ?? 1;
  let online = intNode(e, 'domain/online_vcpus');
  const avail = sexprNode(e, 'domain/vcpu_avail');
  if (online === undefined && avail !== undefined && /^\d+$/.test(avail)) online = Math.min(vcpus, popcount(BigInt(avail)));
  const state = stateOf(sexprNode(e, 'domain/state'));
  const info: GuestInfo = {
    domid,
    name,
    uuid,
    state,
    memory: memMiB * 1024,
    maxMemory: Math.max(maxMiB, memMiB) * 1024,
    vcpus: online ?? vcpus,
    maxVcpus: vcpus,
    cpuTime: secondsToNs(sexprNode(e, 'domain/cpu_time')),
  };
  if (state === 'crashed') info.shutdownReason = 'crash';
  else if (state === 'shutdown') info.shutdownReason = REASONS[sexprNode(e, 'domain/shutdown_reason') ?? ''] ?? 'poweroff';
  return info;
}

const isHvmSxpr = (e: SExpr) => sexprLookupKey(e, 'domain/image/hvm') !== undefined;

/** `node0:0-3\nnode1:4-7` (or `node1:no cpus`) -> cpu ids per cell. */
function parseNodeToCpu(text: string | undefined, nrCpus: number, nodes: number): number[][] {
  const cells: number[][] = [];
  if (text) {
    for (const m of text.matchAll(/node(\d+)\s*:\s*(no cpus|[\d,\-\s]*\d)/g)) {
      const cpus: number[] = [];
      if (m[2] !== 'no cpus') {
        for (const part of m[2]!.split(',')) {
          const r = /^\s*(\d+)(?:\s*-\s*(\d+))?\s*$/.exec(part);
          if (!r) continue;
          const lo = Number(r[1]);
          const hi = r[2] !== undefined ? Number(r[2]) : lo;
          for (let c = lo; c <= hi && c < nrCpus; c++) cpus.push(c);
        }
      }
      cells[Number(m[1])] = cpus;
    }
  }
  if (cells.length === 0) {
    const per = Math.max(1, Math.floor(nrCpus / Math.max(1, nodes)));
    for (let n = 0; n < Math.max(1, nodes); n++) cells.push(Array.from({ length: per }, (_, i) => n * per + i).filter((c) => c < nrCpus));
  }
  return cells.map((c) => c ?? []);
}

/** Guest kinds from `xen_caps` (`xen-3.0-x86_64 xen-3.0-x86_32p hvm-3.0-x86_32 ...`). */
export function guestsFromXenCaps(caps: string, withHap: boolean): GuestArchCaps[] {
  const tokens = caps.split(/\s+/).filter(Boolean);
  const has = (re: RegExp) => tokens.some((t) => re.test(t));
  const out: GuestArchCaps[] = [];
  const hvmFeatures = (): GuestArchCaps['features'] => [
    { name: 'acpi', default: 'on', toggle: 'yes' },
    { name: 'apic', default: 'on', toggle: 'no' },
    ...(withHap ? [{ name: 'hap', default: 'on' as const, toggle: 'yes' as const }] : []),
  ];
  if (has(/^xen-[\d.]+-x86_64$/)) out.push({ osType: 'xen', arch: 'x86_64', wordsize: 64, emulator: EMULATOR, machines: ['xenpv'], features: [] });
  const pv32p = has(/^xen-[\d.]+-x86_32p$/);
  const pv32 = has(/^xen-[\d.]+-x86_32$/);
  if (pv32p || pv32) {
    out.push({ osType: 'xen', arch: 'i686', wordsize: 32, emulator: EMULATOR, machines: ['xenpv'], features: pv32p ? [{ name: 'pae' }] : [{ name: 'nonpae' }] });
  }
  const hvm32p = has(/^hvm-[\d.]+-x86_32p$/);
  const hvm32 = has(/^hvm-[\d.]+-x86_32$/);
  if (hvm32 || hvm32p) {
    const f: GuestArchCaps['features'] = [];
    if (hvm32p) f.push({ name: 'pae' });
    if (hvm32) f.push({ name: 'nonpae' });
    out.push({ osType: 'hvm', arch: 'i686', wordsize: 32, emulator: EMULATOR, loader: HVMLOADER, machines: ['xenfv'], features: [...f, ...hvmFeatures()] });
  }
  if (has(/^hvm-[\d.]+-x86_64$/)) {
    out.push({ osType: 'hvm', arch: 'x86_64', wordsize: 64, emulator: EMULATOR, loader: HVMLOADER, machines: ['xenfv'], features: hvmFeatures() });
  }
  return out;
}

/** XenD's messages, with what to do about them. */
function explain(e: unknown): unknown {
  if (!(e instanceof VirtError)) return e;
  let m = /I need (\d+) KiB(?: more)?.*?(?:leave only|only) (\d+) KiB (?:are )?free/.exec(e.message);
  if (m) {
    const need = Math.ceil(Number(m[1]) / 1024);
    const free = Math.floor(Number(m[2]) / 1024);
    return xendError('OPERATION_FAILED',
      `not enough free memory: the guest needs ${need} MiB, the host has ${free} MiB free; shut down or shrink other guests, or give this one less memory (XenD said: ${e.message.replace(/^.*?: /, '')})`);
  }
  m = /Device (\d+) \((\w+)\) could not be connected\. (.*?) does not exist/.exec(e.message);
  if (m) {
    return xendError('OPERATION_FAILED',
      `the ${m[2]} device ${m[1]} could not be connected: '${m[3]}' does not exist on the Xen host; create it or fix the disk's source`);
  }
  m = /Domain '([^']*)' already exists with ID '(\d+)'/.exec(e.message);
  if (m) {
    return xendError('OPERATION_FAILED',
      `XenD already runs a domain named '${m[1]}' (id ${m[2]}): stop it first ('virsh destroy ${m[1]}') or use another name`);
  }
  return e;
}

interface Seen { uuid: string; name: string; reported: boolean; /** when we started tracking it */ since: number }
interface Known { name: string; uuid: string; hvm: boolean }

export class XendBackend implements HypervisorBackend {
  readonly kind = 'xend';
  readonly client: XendClient;
  /** xend_config_format: 1 (Xen < 3.0.3) .. 4 (Xen >= 3.1) */
  configFormat = 4;
  private readonly pollIntervalMs: number;
  private readonly imageDir: string;
  private readonly listeners = new BackendListeners();
  private readonly known = new Map<number, Known>();
  private readonly snapshot = new Map<number, Seen>();
  /** Domains that left because of us (destroy, save): no event for them. */
  private readonly gone = new Set<number>();
  private readonly requested = new Map<number, 'poweroff' | 'reboot'>();
  private readonly vifs = new Map<number, { next: number; byMac: Map<string, number> }>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;
  /** Counts tracking changes, so that a poll ignores domains tracked after it asked XenD. */
  private tick = 0;
  /** The last polling failure (XenD unreachable ...), for diagnostics. */
  lastPollError: Error | undefined;

  private constructor(opts: XendBackendOptions) {
    this.client = new XendClient(opts.address, opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {});
    const env = Number(process.env['XENVIRT_XEND_POLL_MS']);
    this.pollIntervalMs = opts.pollIntervalMs ?? (Number.isFinite(env) && env > 0 ? env : 1000);
    this.imageDir = opts.imageDir ?? os.tmpdir();
  }

  /** Connect: asks XenD for its node description, which also proves it is XenD. */
  static async open(opts: XendBackendOptions): Promise<XendBackend> {
    const b = new XendBackend(opts);
    const node = await b.node();
    const fmt = intNode(node, 'node/xend_config_format');
    // XenD before 3.0.3 had no xend_config_format: it is format 1.
    b.configFormat = fmt ?? 1;
    return b;
  }

  get address(): string { return this.client.where; }

  // ---- host --------------------------------------------------------------------------------

  private async node(): Promise<SExpr> {
    const n = await this.client.getSexpr('/xend/node/');
    if (sexprHead(n) !== 'node') {
      throw xendError('INTERNAL_ERROR', `the server at ${this.client.where} answered /xend/node/ with no (node ...) description: it is not XenD; check the address`);
    }
    return n!;
  }

  async hostInfo(): Promise<HostInfo> {
    const n = await this.node();
    const cpus = intNode(n, 'node/nr_cpus') ?? 1;
    const nodes = intNode(n, 'node/nr_nodes') || 1;
    const cores = intNode(n, 'node/cores_per_socket') || 1;
    const threads = intNode(n, 'node/threads_per_core') || 1;
    // Xen 3.2 dropped sockets_per_node; derive it from nr_cpus as libvirt did.
    const sockets = intNode(n, 'node/sockets_per_node') || Math.max(1, Math.floor(cpus / (nodes * cores * threads)));
    return {
      model: sexprNode(n, 'node/machine') ?? 'x86_64',
      memory: (intNode(n, 'node/total_memory') ?? 0) * 1024,
      freeMemory: (intNode(n, 'node/free_memory') ?? 0) * 1024,
      cpus,
      mhz: intNode(n, 'node/cpu_mhz') ?? 0,
      nodes,
      sockets,
      cores,
      threads,
      scheduler: sexprNode(n, 'node/xen_scheduler') ?? 'credit',
    };
  }

  async capabilities(): Promise<HostCapabilities> {
    const n = await this.node();
    const h = await this.hostInfo();
    const version = this.versionOf(n);
    const cells = parseNodeToCpu(sexprNode(n, 'node/node_to_cpu'), h.cpus, h.nodes);
    const memText = sexprNode(n, 'node/node_to_memory') ?? '';
    const cellMem = new Map([...memText.matchAll(/node(\d+)\s*:\s*(\d+)/g)].map((m) => [Number(m[1]), Number(m[2]) * 1024]));
    const perSocket = h.cores * h.threads;
    const hvm = (sexprNode(n, 'node/virt_caps') ?? '').includes('hvm') || (sexprNode(n, 'node/xen_caps') ?? '').includes('hvm-');
    return {
      uuid: hostUuid(sexprNode(n, 'node/host') ?? this.client.where),
      arch: sexprNode(n, 'node/machine') === 'i686' ? 'i686' : 'x86_64',
      cpuFeatures: hvm ? ['vmx', 'pae'] : ['pae'],
      topology: { sockets: h.sockets, dies: 1, cores: h.cores, threads: h.threads },
      migrationTransports: ['xenmigr'],
      cells: cells.map((ids, id) => ({
        id,
        memory: cellMem.get(id) ?? Math.floor(h.memory / cells.length),
        cpus: ids.map((c) => {
          const first = c - (c % h.threads);
          return {
            id: c,
            socket: Math.floor(c / perSocket),
            die: 0,
            core: Math.floor(c / h.threads) % h.cores,
            siblings: h.threads > 1 ? `${first}-${first + h.threads - 1}` : String(c),
          };
        }),
      })),
      guests: guestsFromXenCaps(sexprNode(n, 'node/xen_caps') ?? '', version >= 3_003_000),
    };
  }

  private versionOf(n: SExpr): number {
    const major = intNode(n, 'node/xen_major') ?? 0;
    const minor = intNode(n, 'node/xen_minor') ?? 0;
    const micro = Number(/\d+/.exec(sexprNode(n, 'node/xen_extra') ?? '')?.[0] ?? 0);
    return major * 1_000_000 + minor * 1000 + micro;
  }

  async version(): Promise<number> { return this.versionOf(await this.node()); }

  async hostname(): Promise<string> { return sexprNode(await this.node(), 'node/host') ?? os.hostname(); }

  /** XenD reports no SMBIOS data. */
  async sysinfo(): Promise<undefined> { return undefined; }

  async maxGuestVcpus(): Promise<number> { return XEND_MAX_VCPUS; }

  /**
   * Changes when the Xen host reboots: the kernel's boot id when XenD is local (its socket),
   * else the host name with Domain-0's start time.
   */
  async bootId(): Promise<string> {
    if (this.client.address.kind === 'unix') {
      try {
        return `boot:${fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}`;
      } catch {
        // not Linux: fall through
      }
    }
    const dom0 = await this.client.getSexpr('/xend/domain/0?detail=1');
    return `xend:${await this.hostname()}:${sexprNode(dom0, 'domain/start_time') ?? '0'}`;
  }

  // ---- domains -----------------------------------------------------------------------------

  private remember(e: SExpr, info: GuestInfo): void {
    this.known.set(info.domid, { name: info.name, uuid: info.uuid, hvm: isHvmSxpr(e) });
  }

  /** The `?detail=1` answer for a domain reference (name, id or uuid); undefined if XenD has none. */
  private async detail(ref: string | number): Promise<SExpr | undefined> {
    return this.client.getSexpr(`/xend/domain/${encodeURIComponent(String(ref))}?detail=1`);
  }

  async list(): Promise<GuestInfo[]> {
    const names = await this.client.getSexpr('/xend/domain');
    if (!Array.isArray(names)) throw xendError('INTERNAL_ERROR', `XenD's domain list is not a list: '${String(names)}'`);
    const out: GuestInfo[] = [];
    const atoms = names.filter((x): x is string => typeof x === 'string');
    // a handful at a time: XenD serves one request per connection
    for (let i = 0; i < atoms.length; i += 8) {
      const docs = await Promise.all(atoms.slice(i, i + 8).map((n) => this.detail(n)));
      for (const d of docs) {
        const info = d && guestInfoFromSxpr(d);
        if (!info) continue; // gone meanwhile, or inactive
        this.remember(d, info);
        out.push(info);
      }
    }
    return out.sort((a, b) => a.domid - b.domid);
  }

  async info(domid: number): Promise<GuestInfo | undefined> {
    const d = await this.detail(domid);
    const info = d && guestInfoFromSxpr(d);
    if (info && info.domid === domid) {
      this.remember(d, info);
      return info;
    }
    if (!d) return undefined;
    // XenD looks names up first: a domain *named* like this id answered; search properly
    return (await this.list()).find((g) => g.domid === domid);
  }

  /** The name XenD knows the domain by (its URL), learning it if needed. */
  private async ref(domid: number): Promise<Known> {
    const k = this.known.get(domid) ?? (await this.info(domid), this.known.get(domid));
    if (!k) throw xendError('NO_DOMAIN', `XenD has no domain with id ${domid}: it may have stopped meanwhile; list the domains again`);
    return k;
  }

  private async op(domid: number, form: Record<string, string>, timeoutMs?: number): Promise<string> {
    const k = await this.ref(domid);
    try {
      const opts: { target: string; timeoutMs?: number } = { target: `domain '${k.name}' (id ${domid})` };
      if (timeoutMs !== undefined) opts.timeoutMs = timeoutMs;
      return await this.client.post(`/xend/domain/${encodeURIComponent(k.name)}`, form, opts);
    } catch (e) {
      throw explain(e);
    }
  }

  private dom0Refused(domid: number, what: string): void {
    if (domid === 0) throw new VirtError('OPERATION_INVALID', `Requested operation is not valid: Domain-0 cannot be ${what}`, ErrorDomain.XEND);
  }

  /** Our domains stop on XenD's side only when the driver says so (see the header). */
  private configFor(def: Domain): List {
    const d: Domain = { ...def, onPoweroff: 'preserve', onReboot: 'preserve', onCrash: 'preserve' };
    return domainToSxpr(d) as List;
  }

  private track(domid: number, info: { uuid: string; name: string }, nics: InterfaceDevice[]): void {
    this.gone.delete(domid);
    this.snapshot.set(domid, { uuid: info.uuid, name: info.name, reported: false, since: ++this.tick });
    const byMac = new Map<string, number>();
    nics.forEach((n, i) => { if (n.mac) byMac.set(n.mac.toLowerCase(), i); });
    this.vifs.set(domid, { next: nics.length, byMac });
  }

  private forget(domid: number): void {
    this.snapshot.delete(domid);
    this.known.delete(domid);
    this.vifs.delete(domid);
    this.requested.delete(domid);
  }

  async start(def: Domain, opts: StartOptions = {}): Promise<number> {
    if (def.vcpu.count > XEND_MAX_VCPUS) {
      throw new VirtError('CONFIG_UNSUPPORTED', `unsupported configuration: domain '${def.name}' has ${def.vcpu.count} vcpus, more than the ${XEND_MAX_VCPUS} XenD allows`);
    }
    const config = formatSexpr(this.configFor(def));
    try {
      await this.client.post('/xend/domain/', { op: 'create', config }, { target: `new domain '${def.name}'`, timeoutMs: 0 });
    } catch (e) {
      throw explain(e);
    }
    const doc = await this.detail(def.name);
    const info = doc && guestInfoFromSxpr(doc);
    if (!info) throw xendError('INTERNAL_ERROR', `XenD accepted domain '${def.name}' but does not list it running: check 'xm list'`);
    this.remember(doc!, info);
    this.track(info.domid, info, def.devices.interfaces);
    try {
      await this.op(info.domid, { op: 'wait_for_devices' }, 0);
      const tune = def.cputune;
      if (tune && (tune.weight !== undefined || tune.cap !== undefined)) {
        await this.setSchedulerParams(info.domid, { ...(tune.weight !== undefined ? { weight: tune.weight } : {}), ...(tune.cap !== undefined ? { cap: tune.cap } : {}) });
      }
      if (!opts.paused) await this.op(info.domid, { op: 'unpause' });
    } catch (e) {
      // a failed start leaves nothing behind
      this.gone.add(info.domid);
      await this.op(info.domid, { op: 'destroy' }).catch(() => {});
      this.forget(info.domid);
      throw e;
    }
    return info.domid;
  }

  async shutdown(domid: number, kind: 'poweroff' | 'reboot'): Promise<void> {
    this.dom0Refused(domid, 'shut down through XenD');
    await this.op(domid, { op: 'shutdown', reason: kind });
    this.requested.set(domid, kind);
  }

  async destroy(domid: number): Promise<void> {
    this.dom0Refused(domid, 'destroyed');
    const wasGone = !this.snapshot.has(domid) && this.gone.has(domid);
    this.gone.add(domid);
    try {
      await this.op(domid, { op: 'destroy' });
    } catch (e) {
      // already gone (e.g. XenD acted on its own): nothing left to destroy
      if (e instanceof VirtError && e.codeName === 'NO_DOMAIN' && (wasGone || !(await this.info(domid)))) {
        this.forget(domid);
        return;
      }
      this.gone.delete(domid);
      throw e;
    }
    this.forget(domid);
  }

  async pause(domid: number): Promise<void> {
    this.dom0Refused(domid, 'paused');
    await this.op(domid, { op: 'pause' });
  }

  async unpause(domid: number): Promise<void> {
    await this.op(domid, { op: 'unpause' });
  }

  private tempImage(kind: string): string {
    fs.mkdirSync(this.imageDir, { recursive: true });
    return path.join(this.imageDir, `xenvirt-xend-${kind}-${process.pid}-${randomBytes(6).toString('hex')}.img`);
  }

  async save(domid: number, fd: number, progress?: ProgressFn): Promise<void> {
    this.dom0Refused(domid, 'saved');
    const tmp = this.tempImage('save');
    this.gone.add(domid);
    try {
      await this.op(domid, { op: 'save', file: tmp }, 0);
    } catch (e) {
      this.gone.delete(domid);
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    this.forget(domid);
    try {
      copyFileToFd(tmp, fd, progress);
    } catch (e) {
      throw xendError('OPERATION_FAILED', `XenD saved the domain to '${tmp}' but copying it into the save file failed: ${(e as Error).message}; restore from '${tmp}' by hand ('xm restore ${tmp}')`);
    }
    fs.rmSync(tmp, { force: true });
  }

  async restore(def: Domain, fd: number, opts: StartOptions & { progress?: ProgressFn } = {}): Promise<number> {
    const tmp = this.tempImage('restore');
    try {
      copyFdToFile(fd, tmp, opts.progress);
      const form: Record<string, string> = { op: 'restore', file: tmp };
      if (opts.paused) form['paused'] = '1';
      try {
        await this.client.post('/xend/domain/', form, { target: `the image of domain '${def.name}'`, timeoutMs: 0 });
      } catch (e) {
        throw explain(e);
      }
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    // by name: XenD before 3.0.4 looked domains up by name or id only
    const doc = await this.detail(def.name);
    const info = doc && guestInfoFromSxpr(doc);
    if (!info) throw xendError('INTERNAL_ERROR', `XenD restored domain '${def.name}' but does not list it running: check 'xm list'`);
    this.remember(doc!, info);
    this.track(info.domid, info, def.devices.interfaces);
    if (opts.paused && info.state !== 'paused') await this.op(info.domid, { op: 'pause' });
    return info.domid;
  }

  async coreDump(domid: number, file: string, progress?: ProgressFn): Promise<void> {
    const total = ((await this.info(domid))?.memory ?? 0) * 1024;
    progress?.(0, total);
    await this.op(domid, { op: 'dump', file, live: '0', crash: '0' }, 0);
    progress?.(total, total);
  }

  async setMemory(domid: number, kib: number): Promise<void> {
    await this.op(domid, { op: 'mem_target_set', target: String(Math.max(1, Math.floor(kib / 1024))) });
  }

  async setMaxMemory(domid: number, kib: number): Promise<void> {
    this.dom0Refused(domid, 'given a new maximum memory through XenD');
    await this.op(domid, { op: 'maxmem_set', memory: String(Math.max(1, Math.ceil(kib / 1024))) });
  }

  async setVcpus(domid: number, count: number): Promise<void> {
    this.dom0Refused(domid, 'given vcpus through XenD');
    await this.op(domid, { op: 'set_vcpus', vcpus: String(count) });
  }

  private async hvm(domid: number): Promise<boolean> { return (await this.ref(domid)).hvm; }

  async attachDisk(domid: number, disk: DiskDevice): Promise<void> {
    const config = formatSexpr(diskToSxpr(disk, await this.hvm(domid)));
    await this.op(domid, { op: 'device_create', config });
  }

  async detachDisk(domid: number, disk: DiskDevice): Promise<void> {
    let cls = 'vbd';
    try {
      cls = sexprHead(diskToSxpr(disk, await this.hvm(domid))) ?? 'vbd';
    } catch {
      // a disk XenD could not have been given: its class is vbd
    }
    await this.op(domid, { op: 'device_destroy', type: cls, dev: disk.target.dev, force: '0', rm_cfg: '1' });
  }

  async changeMedia(domid: number, disk: DiskDevice): Promise<void> {
    const config = formatSexpr(diskToSxpr(disk, await this.hvm(domid)));
    await this.op(domid, { op: 'device_configure', config, dev: disk.target.dev });
  }

  async attachInterface(domid: number, nic: InterfaceDevice): Promise<void> {
    const config = formatSexpr(interfaceToSxpr(nic, await this.hvm(domid)));
    const t = await this.vifTable(domid);
    await this.op(domid, { op: 'device_create', config });
    if (nic.mac) t.byMac.set(nic.mac.toLowerCase(), t.next);
    t.next++;
  }

  async detachInterface(domid: number, nic: InterfaceDevice): Promise<void> {
    const t = await this.vifTable(domid);
    const mac = nic.mac?.toLowerCase() ?? '';
    const devid = t.byMac.get(mac);
    if (devid === undefined) {
      throw xendError('OPERATION_FAILED', `domain ${domid} has no network device with MAC '${nic.mac ?? ''}' known to XenD`);
    }
    await this.op(domid, { op: 'device_destroy', type: 'vif', dev: String(devid), force: '0', rm_cfg: '1' });
    t.byMac.delete(mac);
  }

  /**
   * XenD numbers a domain's vifs 0, 1, 2 ... in the order they are created, never reusing one.
   * For a domain this backend did not start, the order of XenD's description stands in for it.
   */
  private async vifTable(domid: number): Promise<{ next: number; byMac: Map<string, number> }> {
    let t = this.vifs.get(domid);
    if (!t) {
      const doc = await this.detail((await this.ref(domid)).name);
      const byMac = new Map<string, number>();
      let i = 0;
      for (const dev of sexprChildren(doc, 'device')) {
        const vif = dev[1];
        if (sexprHead(vif) !== 'vif') continue;
        const mac = sexprNode(vif, 'vif/mac');
        if (mac) byMac.set(mac.toLowerCase(), i);
        i++;
      }
      t = { next: i, byMac };
      this.vifs.set(domid, t);
    }
    return t;
  }

  async vcpuInfo(domid: number): Promise<VcpuInfo[]> {
    const k = await this.ref(domid);
    const e = await this.client.getSexpr(`/xend/domain/${encodeURIComponent(k.name)}?op=vcpuinfo`);
    if (e === undefined) throw xendError('NO_DOMAIN', `XenD has no domain '${k.name}' (id ${domid}) any more`);
    const out: VcpuInfo[] = [];
    const items = Array.isArray(e) ? (sexprHead(e) === 'vcpu' ? [e] : e) : [];
    for (const v of items) {
      if (sexprHead(v) !== 'vcpu') continue;
      const online = intNode(v, 'vcpu/online') !== 0;
      const cpumapNode = sexprLookupKey(v, 'vcpu/cpumap');
      const list = cpumapNode?.[1];
      const cpumap = (Array.isArray(list) ? list : cpumapNode?.slice(1) ?? [])
        .filter((x): x is string => typeof x === 'string' && /^\d+$/.test(x)).map(Number);
      out.push({
        number: intNode(v, 'vcpu/number') ?? out.length,
        state: !online ? 'offline' : intNode(v, 'vcpu/running') ? 'running' : 'blocked',
        cpuTime: secondsToNs(sexprNode(v, 'vcpu/cpu_time')),
        cpu: online ? intNode(v, 'vcpu/cpu') ?? -1 : -1,
        cpumap,
      });
    }
    return out;
  }

  async pinVcpu(domid: number, vcpu: number, cpus: number[]): Promise<void> {
    if (cpus.length === 0) throw new VirtError('INVALID_ARG', 'invalid argument: a vcpu must be allowed at least one host cpu', ErrorDomain.XEND);
    const list = [...new Set(cpus)].sort((a, b) => a - b).join(',');
    // XenD changed the cpumap syntax from "[0,1,2]" to "0,1,2" with config format 3
    const cpumap = this.configFormat < 3 ? `[${list}]` : list;
    await this.op(domid, { op: 'pincpu', vcpu: String(vcpu), cpumap });
  }

  async schedulerParams(domid: number): Promise<SchedulerParams> {
    const scheduler = sexprNode(await this.node(), 'node/xen_scheduler') ?? 'credit';
    const k = await this.ref(domid);
    const doc = await this.detail(k.name);
    if (!doc) throw xendError('NO_DOMAIN', `XenD has no domain '${k.name}' (id ${domid}) any more`);
    const out: SchedulerParams = { scheduler };
    if (scheduler === 'credit') {
      out.weight = intNode(doc, 'domain/cpu_weight') ?? 256;
      out.cap = intNode(doc, 'domain/cpu_cap') ?? 0;
    }
    return out;
  }

  async setSchedulerParams(domid: number, params: { weight?: number; cap?: number }): Promise<void> {
    const cur = await this.schedulerParams(domid);
    if (cur.scheduler !== 'credit') {
      throw new VirtError('OPERATION_INVALID', `Requested operation is not valid: the Xen host runs the ${cur.scheduler} scheduler; weight and cap belong to the credit scheduler`, ErrorDomain.XEND);
    }
    const weight = params.weight ?? cur.weight ?? 256;
    const cap = params.cap ?? cur.cap ?? 0;
    await this.op(domid, { op: 'domain_sched_credit_set', weight: String(weight), cap: String(cap) });
  }

  async describe(domid: number): Promise<Domain | undefined> {
    const d = await this.detail(domid);
    if (!d || intNode(d, 'domain/domid') !== domid) return undefined;
    return sxprToDomain(d, { live: true, secrets: true });
  }

  /**
   * Ask XenD to migrate the domain to another XenD (its relocation server). `destination` is a
   * host name, `host:port` or `xenmigr://host[:port]`.
   */
  async migrate(domid: number, destination: string, opts: { live?: boolean } = {}): Promise<void> {
    const m = /^(?:xenmigr:\/\/)?([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])(?::(\d+))?\/?$/.exec(destination);
    if (!m) throw new VirtError('INVALID_ARG', `invalid argument: migration destination '${destination}' is not HOST, HOST:PORT or xenmigr://HOST[:PORT]`, ErrorDomain.XEND);
    const host = m[1]!.replace(/^\[|\]$/g, '');
    const port = m[2] ?? '0';
    this.dom0Refused(domid, 'migrated');
    await this.op(domid, {
      op: 'migrate', destination: host, live: opts.live ? '1' : '0', port, node: '-1', ssl: '0', change_home_server: '0', resource: '0',
    }, 0);
    this.gone.add(domid);
    this.forget(domid);
  }

  // ---- XenD-managed definitions (Xen >= 3.0.4) -----------------------------------------------

  private needManaged(): void {
    if (this.configFormat < 3) {
      throw new VirtError('NO_SUPPORT', 'this function is not supported by the connection driver: XenD before Xen 3.0.4 keeps no inactive domains (they live in /etc/xen config files)', ErrorDomain.XEND);
    }
  }

  /** Names of the domains XenD has defined but not running. */
  async listManaged(): Promise<string[]> {
    this.needManaged();
    const e = await this.client.getSexpr('/xend/domain?state=halted');
    return Array.isArray(e) ? e.filter((x): x is string => typeof x === 'string') : [];
  }

  /** A domain XenD keeps (running or not), converted with our xen-sxpr reader. */
  async managedDefinition(name: string): Promise<Domain | undefined> {
    const d = await this.detail(name);
    return d ? sxprToDomain(d, { secrets: true }) : undefined;
  }

  /** XenD's autostart flag (`on_xend_start start`) of a managed domain. */
  async managedAutostart(name: string): Promise<boolean> {
    const d = await this.detail(name);
    if (!d) throw xendError('NO_DOMAIN', `XenD has no domain '${name}'`);
    return sexprNode(d, 'domain/on_xend_start') === 'start';
  }

  /** Define (or redefine) a persistent domain in XenD (`op=new`). */
  async defineManaged(def: Domain, opts: { autostart?: boolean } = {}): Promise<void> {
    this.needManaged();
    const vm = domainToSxpr(def) as List;
    vm.push(['on_xend_start', opts.autostart ? 'start' : 'ignore']);
    try {
      await this.client.post('/xend/domain/', { op: 'new', config: formatSexpr(vm) }, { target: `domain '${def.name}'` });
    } catch (e) {
      throw explain(e);
    }
  }

  /** Start a domain XenD keeps (`op=start`); returns its domid. */
  async startManaged(name: string, opts: StartOptions = {}): Promise<number> {
    this.needManaged();
    const form: Record<string, string> = { op: 'start' };
    if (opts.paused) form['paused'] = '1';
    try {
      await this.client.post(`/xend/domain/${encodeURIComponent(name)}`, form, { target: `domain '${name}'`, timeoutMs: 0 });
    } catch (e) {
      throw explain(e);
    }
    const doc = await this.detail(name);
    const info = doc && guestInfoFromSxpr(doc);
    if (!info) throw xendError('INTERNAL_ERROR', `XenD started domain '${name}' but does not list it running: check 'xm list'`);
    this.remember(doc!, info);
    this.track(info.domid, info, []);
    this.vifs.delete(info.domid);
    return info.domid;
  }

  /** Remove a stopped domain from XenD (`op=delete`). */
  async deleteManaged(name: string): Promise<void> {
    this.needManaged();
    await this.client.post(`/xend/domain/${encodeURIComponent(name)}`, { op: 'delete' }, { target: `domain '${name}'` });
  }

  // ---- events --------------------------------------------------------------------------------

  onEvent(listener: BackendListener): () => void {
    return this.listeners.add(listener);
  }

  private emit(e: BackendEvent): Promise<void> { return this.listeners.emit(e); }

  async ready(): Promise<void> {
    if (this.closed || this.timer) return;
    await this.poll();
    this.timer = setInterval(() => { void this.poll(); }, this.pollIntervalMs);
  }

  /** Look at XenD once: report domains that stopped or vanished since the last look. */
  poll(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.polling ??= this.pollOnce().finally(() => { this.polling = undefined; });
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    const mark = this.tick;
    let doms: GuestInfo[];
    try {
      doms = await this.list();
      this.lastPollError = undefined;
    } catch (e) {
      this.lastPollError = e as Error;
      return; // XenD unreachable: look again next time
    }
    const now = new Map(doms.filter((d) => d.domid !== 0).map((d) => [d.domid, d]));
    const events: BackendEvent[] = [];
    for (const [domid, seen] of [...this.snapshot]) {
      const cur = now.get(domid);
      if (cur && cur.uuid === seen.uuid) continue;
      // started while XenD was answering: the answer predates it
      if (seen.since > mark) continue;
      this.snapshot.delete(domid);
      if (this.gone.has(domid)) continue;
      const asked = this.requested.get(domid);
      events.push(asked ? { type: 'shutdown', domid, uuid: seen.uuid, reason: asked } : { type: 'death', domid, uuid: seen.uuid });
      this.forget(domid);
    }
    for (const domid of [...this.gone]) if (!now.has(domid)) this.gone.delete(domid);
    for (const cur of now.values()) {
      if (this.gone.has(cur.domid)) continue;
      let seen = this.snapshot.get(cur.domid);
      if (!seen) {
        seen = { uuid: cur.uuid, name: cur.name, reported: false, since: ++this.tick };
        this.snapshot.set(cur.domid, seen);
      }
      const stopped = cur.state === 'shutdown' || cur.state === 'crashed';
      if (stopped && !seen.reported) {
        seen.reported = true;
        const reason = cur.shutdownReason ?? this.requested.get(cur.domid) ?? 'poweroff';
        this.requested.delete(cur.domid);
        events.push({ type: 'shutdown', domid: cur.domid, uuid: cur.uuid, reason });
      } else if (!stopped) seen.reported = false;
    }
    for (const e of events) {
      if (this.closed) return;
      await this.emit(e);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.polling?.catch(() => {});
    this.listeners.clear();
  }
}

/** A stable UUID for the host XenD runs on (XenD reports none). */
function hostUuid(seed: string): string {
  const h = createHash('sha256').update(`xenvirt-xend-host:${seed}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const CHUNK = 1024 * 1024;

function copyFileToFd(file: string, fd: number, progress?: ProgressFn): void {
  const src = fs.openSync(file, 'r');
  try {
    const total = fs.fstatSync(src).size;
    const buf = Buffer.alloc(CHUNK);
    let done = 0;
    progress?.(0, total);
    for (;;) {
      const n = fs.readSync(src, buf, 0, CHUNK, null);
      if (n === 0) break;
      let off = 0;
      while (off < n) off += fs.writeSync(fd, buf, off, n - off);
      done += n;
      progress?.(done, total);
    }
  } finally {
    fs.closeSync(src);
  }
}

function copyFdToFile(fd: number, file: string, progress?: ProgressFn): void {
  const dst = fs.openSync(file, 'w', 0o600);
  try {
    let total = 0;
    try {
      const st = fs.fstatSync(fd);
      total = st.size;
    } catch {
      // a pipe: size unknown
    }
    const buf = Buffer.alloc(CHUNK);
    let done = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) break;
      fs.writeSync(dst, buf, 0, n);
      done += n;
      progress?.(done, Math.max(total, done));
    }
  } finally {
    fs.closeSync(dst);
  }
}
