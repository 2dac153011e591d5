/**
 * The xl backend: a real Xen host (4.x, libxl toolstack) driven through the `xl` tool, for
 * `xen:///system` on a Xen control domain.
 *
 * What comes from where:
 * - domains, states, memory, vcpus, cpu time: `xl list -v` (one process per snapshot, shared
 *   by every read within a short time); memory and vcpu limits from XenStore (the daemon's
 *   socket) or, without it, `xl list -l`'s JSON;
 * - host facts and capabilities: `xl info`; per-vcpu facts: `xl vcpu-list`;
 * - lifecycle events: XenStore's `@introduceDomain` / `@releaseDomain` watches, each firing
 *   followed by `xl list -v` to learn which domain stopped and why (Xen's shutdown reason).
 *
 * Starting: the definition is rendered by our own xen-xl formatter into a config file, then
 * `xl create -e FILE` (-e: no xl monitor process, the driver applies on_poweroff/on_reboot/
 * on_crash itself, as libvirt does) and the new domain id is looked up by UUID in XenStore.
 * A paused start is `xl create -e -p`. With createMode 'paused', every start is `xl create -p`
 * then `xl unpause`, as libvirt does inside libxl; here that second call is a whole xl process
 * (0.3-1 s under emulation, 6-15 % of a small guest's start), hence not the default. Either
 * way, whatever fails, nothing is left half-started: xl removes what it built, and any domain
 * left with our UUID is destroyed.
 *
 * Save/restore stream through pipes (`xl save D /proc/self/fd/1`, `xl restore
 * /proc/self/fd/0`) so that xl's image follows the driver's header in the same file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { ErrorDomain, VirtError } from '../../errors.js';
import { emptyDevices, isHvm, type DiskDevice, type Domain, type InterfaceDevice } from '../../domain/types.js';
import { domainToXl, formatXlDisk } from '../../formats/xl.js';
import { applyCpuTuning } from './tuning.js';
import { confGet, formatConf } from '../../formats/conf.js';
import type { XenFormatOptions } from '../../formats/xen-common.js';
import type {
  BackendEvent, GuestInfo, HostCapabilities, HostInfo, HypervisorBackend, ProgressFn, SchedulerParams, StartOptions,
  SysinfoData, GuestArchCaps, VcpuInfo,
} from '../backend.js';
import { BackendListeners, type BackendListener } from '../listeners.js';
import { LocalExec, type Exec, type ExecResult } from './exec.js';
import { openXenStore, type XenStore } from './xenstore.js';
import {
  expandCpuList, parseProgress, parseSchedRow, parseVcpuList, parseXlInfo, parseXlList, parseXlListLong, runState,
  type XlListEntry,
} from './parse.js';
import { xlError, xlFailed, type XlFailureContext } from './errors.js';

const D = ErrorDomain.LIBXL;
const DOM0_UUID = '00000000-0000-0000-0000-000000000000';

export interface XlBackendOptions {
  exec?: Exec;
  /** XenStore access; default: the xenstored socket, else the xenstore-* tools. */
  xenstore?: XenStore;
  xenstoredSocket?: string;
  /** Where rendered configs are written (default /run/xenvirt/xl as root, else the tmp dir). */
  runDir?: string;
  /**
   * 'direct' (default): one `xl create` (with -p only for a paused start).
   * 'paused': always `xl create -p`, then `xl unpause` once the domain id is known.
   */
  createMode?: 'paused' | 'direct';
  /** How long a snapshot of `xl list -v` serves reads (ms, default 250). */
  listTtlMs?: number;
  /** Timeout for create/restore/save/dump (default 15 min) and for other calls (default 2 min). */
  longTimeoutMs?: number;
  shortTimeoutMs?: number;
  /** For <interface type='network'>: the bridge of a network. */
  networkBridge?: XenFormatOptions['networkBridge'];
  /** Files that identify the host and its boot (tests point these elsewhere). */
  bootIdFile?: string;
  dmiDir?: string;
  /** How long a watch firing caused by our own operation waits before it is looked at (ms, default 750). */
  deferredScanDelayMs?: number;
  /** Check dom0 kernel modules and bridges before starting (default: when /sys/module exists). */
  hostChecks?: boolean;
}

export interface ShutdownOptions {
  /** Return only once the guest has shut down (`xl shutdown -w`). */
  wait?: boolean;
}

interface Snapshot {
  /** when `xl list` was started: later changes may be missing from it */
  at: number;
  entries: XlListEntry[];
  /** KiB, by domid */
  maxMem: Map<number, number>;
  maxVcpus: Map<number, number>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * xl opens its image as a file name; /proc/self/fd/N reaches our pipe only if it is a real pipe
 * (Node's stdio pipes are socket pairs, which cannot be opened that way: ENXIO). So the image
 * goes through `cat`, with bash's pipefail keeping xl's exit status.
 */
function pipeline(xlArgv: string[], dir: 'in' | 'out'): string[] {
  const script = dir === 'out' ? 'set -o pipefail; "$@" | cat' : 'set -o pipefail; cat | "$@"';
  return ['bash', '-c', script, 'xenvirt-xl', ...xlArgv];
}

function defaultRunDir(): string {
  if (process.getuid?.() === 0) return '/run/xenvirt/xl';
  return path.join(os.tmpdir(), `xenvirt-xl-${process.getuid?.() ?? 'u'}`);
}

/** The host CPU's vendor as dom0's /proc/cpuinfo reports it. */
function cpuVendor(): string | undefined {
  try {
    return /^vendor_id\s*:\s*(\S+)/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** A UUID-shaped host id: SMBIOS, else machine-id, else a hash of the hostname. */
function hostUuid(dmiDir: string): string {
  const fmt = (hex: string) => `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
  try {
    const u = fs.readFileSync(path.join(dmiDir, 'product_uuid'), 'utf8').trim().toLowerCase();
    if (/^[0-9a-f-]{36}$/.test(u)) return u;
  } catch { /* no SMBIOS in a PV dom0 */ }
  for (const f of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      const id = fs.readFileSync(f, 'utf8').trim().toLowerCase();
      if (/^[0-9a-f]{32}$/.test(id)) return fmt(id);
    } catch { /* try the next */ }
  }
  return fmt(createHash('sha256').update(os.hostname()).digest('hex'));
}

export class XlBackend implements HypervisorBackend {
  readonly kind = 'xl';
  readonly exec: Exec;
  readonly xenstore: XenStore;
  private readonly opts: XlBackendOptions;
  private readonly listeners = new BackendListeners();
  private snap: Promise<Snapshot> | undefined;
  private snapAt = 0;
  private infoCache: { at: number; map: Map<string, string> } | undefined;
  /** Domains we removed ourselves (destroy, save): their disappearance is no news. */
  private readonly expectGone = new Set<number>();
  /** What the last scan saw: domid -> uuid. */
  private known = new Map<number, string>();
  /** When we added a domain of our own to `known` (a look taken before cannot have it). */
  private readonly knownSince = new Map<number, number>();
  /** Shutdowns already reported: domid -> `uuid:reason`. */
  private readonly reported = new Map<number, string>();
  private unwatch: Array<() => void> = [];
  private scanning: Promise<void> | undefined;
  private rescan = false;
  private debounce: NodeJS.Timeout | undefined;
  private active = false;
  /** Our own operations in flight (start, restore, save, destroy): scans wait for them. */
  private ops = 0;
  private deferred = false;
  /** Kills the scans' toolstack calls at close. */
  private readonly aborter = new AbortController();
  /** When the domain watches were set; a firing before ready() sets `dirty`. */
  private armedAt: number | undefined;
  private dirty = false;
  private closed = false;
  private readonly children = new Set<ChildProcess>();
  /** How the last start() spent its time (ms), for benchmarks. */
  lastStart: { total: number; phases: Record<string, number> } | undefined;

  private constructor(exec: Exec, xenstore: XenStore, opts: XlBackendOptions) {
    this.exec = exec;
    this.xenstore = xenstore;
    this.opts = opts;
  }

  static async open(opts: XlBackendOptions = {}): Promise<XlBackend> {
    const exec = opts.exec ?? new LocalExec();
    const xs = opts.xenstore ?? await openXenStore(exec, opts.xenstoredSocket);
    const b = new XlBackend(exec, xs, opts);
    // watching from the start lets ready() trust the driver's first look at the domains
    if (xs.kind === 'socket') await b.arm();
    return b;
  }

  // ---------------------------------------------------------------------------------------
  // running xl

  private get longTimeout(): number { return this.opts.longTimeoutMs ?? 15 * 60_000; }
  private get shortTimeout(): number { return this.opts.shortTimeoutMs ?? 2 * 60_000; }

  /** Run an xl (or other) command; a failure becomes a clear VirtError. */
  private async xl(args: string[], ctx: Omit<XlFailureContext, 'command'>, opts: { timeoutMs?: number; input?: string; signal?: AbortSignal } = {}): Promise<ExecResult> {
    const argv = ['xl', ...args];
    const r = await this.exec.run(argv, {
      timeoutMs: opts.timeoutMs ?? this.shortTimeout,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (xlFailed(r)) throw xlError(r, { ...ctx, command: this.exec.describe(argv) });
    return r;
  }

  private invalidate(): void {
    this.snap = undefined;
  }

  /** `xl info`, cached for a second (free memory moves; the rest does not). */
  private async xlInfo(maxAgeMs = 1000): Promise<Map<string, string>> {
    if (this.infoCache && Date.now() - this.infoCache.at <= maxAgeMs) return this.infoCache.map;
    const r = await this.xl(['info'], { op: 'query the host with' });
    const map = parseXlInfo(r.stdout);
    this.infoCache = { at: Date.now(), map };
    return map;
  }

  /** `xl list -v` plus the limits XenStore (or `xl list -l`) knows, shared for listTtlMs. */
  private snapshot(fresh = false, forScan = false): Promise<Snapshot> {
    const ttl = this.opts.listTtlMs ?? 250;
    if (!fresh && this.snap && Date.now() - this.snapAt <= ttl) return this.snap;
    const p = this.takeSnapshot(forScan ? this.aborter.signal : undefined);
    this.snap = p;
    this.snapAt = Date.now();
    p.catch(() => { if (this.snap === p) this.snap = undefined; });
    return p;
  }

  private async takeSnapshot(signal?: AbortSignal): Promise<Snapshot> {
    const at = Date.now();
    const r = await this.xl(['list', '-v'], { op: 'list the domains with' }, signal ? { signal } : {});
    const entries = parseXlList(r.stdout);
    const maxMem = new Map<number, number>();
    const maxVcpus = new Map<number, number>();
    if (this.xenstore.kind === 'socket') {
      await Promise.all(entries.map(async (e) => {
        const [mem, cpus] = await Promise.all([
          this.xenstore.read(`/local/domain/${e.domid}/memory/static-max`).catch(() => undefined),
          this.xenstore.directory(`/local/domain/${e.domid}/cpu`).catch(() => [] as string[]),
        ]);
        if (mem !== undefined && /^\d+$/.test(mem)) maxMem.set(e.domid, Number(mem));
        if (cpus.length) maxVcpus.set(e.domid, cpus.length);
      }));
    } else {
      const l = await this.exec.run(['xl', 'list', '-l'], { timeoutMs: this.shortTimeout });
      if (!xlFailed(l)) {
        for (const c of parseXlListLong(l.stdout)) {
          if (c.maxMemKiB !== undefined) maxMem.set(c.domid, c.maxMemKiB);
          if (c.maxVcpus !== undefined) maxVcpus.set(c.domid, c.maxVcpus);
        }
      }
    }
    return { at, entries, maxMem, maxVcpus };
  }

  private toInfo(e: XlListEntry, s: Snapshot): GuestInfo {
    const memory = e.memMiB * 1024;
    const i: GuestInfo = {
      domid: e.domid,
      name: e.name,
      uuid: e.domid === 0 ? DOM0_UUID : e.uuid ?? '',
      state: runState(e),
      memory,
      maxMemory: Math.max(s.maxMem.get(e.domid) ?? memory, memory),
      vcpus: e.vcpus,
      maxVcpus: Math.max(s.maxVcpus.get(e.domid) ?? e.vcpus, e.vcpus),
      cpuTime: BigInt(Math.round(e.cpuSeconds * 1e9)),
    };
    if (e.shutdown && e.shutdownReason) i.shutdownReason = e.shutdownReason;
    return i;
  }

  // ---------------------------------------------------------------------------------------
  // host

  async hostInfo(): Promise<HostInfo> {
    const x = await this.xlInfo();
    const num = (k: string, d = 0) => {
      const v = Number(x.get(k));
      return Number.isFinite(v) ? v : d;
    };
    const cpus = num('nr_cpus', 1);
    const nodes = Math.max(1, num('nr_nodes', 1));
    const cores = Math.max(1, num('cores_per_socket', 1));
    const threads = Math.max(1, num('threads_per_core', 1));
    return {
      model: x.get('machine') ?? os.machine?.() ?? 'x86_64',
      memory: num('total_memory') * 1024,
      freeMemory: num('free_memory') * 1024,
      cpus,
      mhz: Math.floor(num('cpu_mhz')),
      nodes,
      sockets: Math.max(1, Math.floor(cpus / (cores * threads * nodes))),
      cores,
      threads,
      scheduler: x.get('xen_scheduler') ?? 'credit',
    };
  }

  async capabilities(): Promise<HostCapabilities> {
    const x = await this.xlInfo(Infinity);
    const info = await this.hostInfo();
    const caps = (x.get('xen_caps') ?? '').split(/\s+/).filter(Boolean);
    const virt = (x.get('virt_caps') ?? '').split(/\s+/);
    const hap = virt.includes('hap');
    const emulator = ['/usr/lib/xen-4.17/bin/qemu-system-i386', '/usr/lib/xen/bin/qemu-system-i386', '/usr/bin/qemu-system-i386']
      .find((p) => fs.existsSync(p)) ?? '/usr/lib/xen/bin/qemu-system-i386';
    const loader = ['/usr/lib/xen-4.17/boot/hvmloader', '/usr/lib/xen/boot/hvmloader'].find((p) => fs.existsSync(p)) ?? '/usr/lib/xen/boot/hvmloader';
    const hvmFeatures: GuestArchCaps['features'] = [
      { name: 'acpi', default: 'on', toggle: 'yes' },
      { name: 'apic', default: 'on', toggle: 'no' },
      ...(hap ? [{ name: 'hap', default: 'on' as const, toggle: 'yes' as const }] : []),
    ];
    const guests: GuestArchCaps[] = [];
    for (const c of caps) {
      const m = /^(xen|hvm)-\d+\.\d+-(x86_64|x86_32p?)$/.exec(c);
      if (!m) continue;
      const arch = m[2] === 'x86_64' ? 'x86_64' : 'i686';
      const pae = m[2] === 'x86_32p';
      if (m[1] === 'xen') {
        guests.push({ osType: 'xen', arch, wordsize: arch === 'x86_64' ? 64 : 32, emulator, machines: ['xenpv'], features: pae ? [{ name: 'pae' }] : [] });
      } else {
        const f: GuestArchCaps['features'] = arch === 'i686' ? [{ name: pae ? 'pae' : 'nonpae' }, ...hvmFeatures] : hvmFeatures;
        const existing = guests.find((g) => g.osType === 'hvm' && g.arch === arch);
        if (existing) {
          if (!existing.features.some((x2) => x2.name === 'pae')) existing.features.unshift({ name: 'pae' });
          continue;
        }
        guests.push({ osType: 'hvm', arch, wordsize: arch === 'x86_64' ? 64 : 32, emulator, loader, machines: ['xenfv'], features: f });
      }
    }
    // PVH guests run in an HVM container without a device model.
    if (caps.includes('hvm-3.0-x86_64')) {
      guests.push({ osType: 'xenpvh', arch: 'x86_64', wordsize: 64, emulator, machines: ['xenpvh'], features: [] });
    }
    const cpus = info.cpus;
    const perNode = Math.max(1, Math.floor(cpus / info.nodes));
    const cells: HostCapabilities['cells'] = [];
    for (let n = 0; n < info.nodes; n++) {
      const list: HostCapabilities['cells'][number]['cpus'] = [];
      for (let i = 0; i < perNode; i++) {
        const id = n * perNode + i;
        const first = id - (i % info.threads);
        list.push({
          id,
          socket: Math.floor(i / (info.threads * info.cores)),
          die: 0,
          core: Math.floor(i / info.threads) % info.cores,
          siblings: info.threads > 1 ? `${first}-${first + info.threads - 1}` : String(id),
        });
      }
      cells.push({ id: n, memory: Math.floor(info.memory / info.nodes), cpus: list });
    }
    return {
      uuid: hostUuid(this.opts.dmiDir ?? '/sys/class/dmi/id'),
      arch: info.model,
      cpuFeatures: [...(virt.includes('hvm') ? [cpuVendor() === 'AuthenticAMD' ? 'svm' : 'vmx'] : []), 'pae'],
      topology: { sockets: info.sockets, dies: 1, cores: info.cores, threads: info.threads },
      migrationTransports: ['xenmigr'],
      cells,
      guests,
    };
  }

  async version(): Promise<number> {
    const x = await this.xlInfo(Infinity);
    const maj = parseInt(x.get('xen_major') ?? '0', 10) || 0;
    const min = parseInt(x.get('xen_minor') ?? '0', 10) || 0;
    const mic = parseInt((x.get('xen_extra') ?? '').replace(/^\./, ''), 10) || 0;
    return maj * 1_000_000 + min * 1000 + mic;
  }

  async hostname(): Promise<string> { return os.hostname(); }

  async sysinfo(): Promise<SysinfoData | undefined> {
    const dir = this.opts.dmiDir ?? '/sys/class/dmi/id';
    const rd = (f: string) => {
      try { return fs.readFileSync(path.join(dir, f), 'utf8').trim(); } catch { return undefined; }
    };
    if (!fs.existsSync(dir)) return undefined;
    const pick = (pairs: Array<[string, string]>) => {
      const o: Record<string, string> = {};
      for (const [k, f] of pairs) { const v = rd(f); if (v) o[k] = v; }
      return o;
    };
    return {
      bios: pick([['vendor', 'bios_vendor'], ['version', 'bios_version'], ['date', 'bios_date'], ['release', 'bios_release']]),
      system: pick([['manufacturer', 'sys_vendor'], ['product', 'product_name'], ['version', 'product_version'],
        ['serial', 'product_serial'], ['uuid', 'product_uuid'], ['family', 'product_family']]),
      baseBoard: pick([['manufacturer', 'board_vendor'], ['product', 'board_name'], ['version', 'board_version']]),
      processors: [],
      memoryDevices: [],
    };
  }

  /** libvirt asks libxl_get_max_cpus: the host's CPU count, for any guest type. */
  async maxGuestVcpus(_osType: string): Promise<number> {
    const x = await this.xlInfo(Infinity);
    const maxId = Number(x.get('max_cpu_id'));
    return Number.isFinite(maxId) ? maxId + 1 : Number(x.get('nr_cpus') ?? 1);
  }

  async bootId(): Promise<string> {
    try {
      return fs.readFileSync(this.opts.bootIdFile ?? '/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      const x = await this.xlInfo(Infinity);
      return `xen-${x.get('xen_version') ?? ''}-${x.get('xen_commandline') ?? ''}`;
    }
  }

  // ---------------------------------------------------------------------------------------
  // domains

  async list(): Promise<GuestInfo[]> {
    const s = await this.snapshot();
    return s.entries.map((e) => this.toInfo(e, s));
  }

  async info(domid: number): Promise<GuestInfo | undefined> {
    const s = await this.snapshot();
    const e = s.entries.find((x) => x.domid === domid);
    return e && this.toInfo(e, s);
  }

  /** The domain id of the domain with this UUID, or undefined. */
  async findDomid(uuid: string, name?: string): Promise<number | undefined> {
    if (this.xenstore.kind === 'socket') {
      const ids = await this.xenstore.directory('/local/domain').catch(() => [] as string[]);
      const hits = await Promise.all(ids.map(async (id) => {
        const vm = await this.xenstore.read(`/local/domain/${id}/vm`).catch(() => undefined);
        return vm !== undefined && vm.toLowerCase().endsWith(`/${uuid.toLowerCase()}`) ? Number(id) : undefined;
      }));
      const found = hits.find((h) => h !== undefined);
      if (found !== undefined) return found;
    }
    if (name !== undefined) {
      const r = await this.exec.run(['xl', 'domid', name], { timeoutMs: this.shortTimeout });
      if (!xlFailed(r) && /^\d+\s*$/.test(r.stdout)) return Number(r.stdout.trim());
    }
    const s = await this.snapshot(true);
    return s.entries.find((e) => e.uuid === uuid.toLowerCase())?.domid;
  }

  /** Remove whatever a failed start left behind under this UUID. */
  private async cleanup(uuid: string | undefined): Promise<void> {
    if (!uuid) return;
    const domid = await this.findDomid(uuid).catch(() => undefined);
    if (domid === undefined || domid === 0) return;
    this.expectGone.add(domid);
    await this.exec.run(['xl', 'destroy', String(domid)], { timeoutMs: this.shortTimeout }).catch(() => undefined);
    this.invalidate();
  }

  private runDir(): string {
    const dir = this.opts.runDir ?? defaultRunDir();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /** The xl config for `def`, written to a private file; the caller removes it. */
  renderConfig(def: Domain): string {
    const opts: XenFormatOptions = {};
    if (this.opts.networkBridge) opts.networkBridge = this.opts.networkBridge;
    const file = domainToXl(def, opts);
    applyCpuTuning(file, def);
    return formatConf(file);
  }

  private writeConfig(def: Domain): string {
    const text = this.renderConfig(def);
    const safe = def.name.replace(/[^\w.-]/g, '_').slice(0, 64);
    const file = path.join(this.runDir(), `${safe}.${process.pid}.${randomBytes(4).toString('hex')}.cfg`);
    fs.writeFileSync(file, `# generated by xenvirt for domain '${def.name}'\n${text}`, { mode: 0o600 });
    return file;
  }

  private hostChecks(): boolean {
    return this.opts.hostChecks ?? fs.existsSync('/sys/module/xen_privcmd');
  }

  /** Problems we can see before asking xl, said plainly. */
  preflight(def: Domain): void {
    const who = `domain '${def.name}'`;
    const need = (p: string | undefined, what: string) => {
      if (p && !fs.existsSync(p)) throw new VirtError('OPERATION_FAILED', `operation failed: cannot start ${who}: its ${what} '${p}' does not exist in dom0`, D);
    };
    if (!def.bootloader) {
      need(def.os.kernel, 'kernel');
      need(def.os.initrd, 'initrd');
    }
    for (const d of def.devices.disks) {
      if ((d.type === 'file' || d.type === 'block') && d.source?.path && d.device !== 'cdrom' && d.device !== 'floppy') {
        need(d.source.path, `disk ${d.target.dev}`);
      }
    }
    if (!this.hostChecks()) return;
    const pvDisks = def.devices.disks.some((d) => d.device === 'disk' && d.target.bus === 'xen');
    if (pvDisks && !fs.existsSync('/sys/module/xen_blkback') && !isHvm(def)) {
      throw new VirtError('OPERATION_FAILED', `operation failed: cannot start ${who}: its disks need the block backend in dom0; load it with 'modprobe xen-blkback loop'`, D);
    }
    for (const n of def.devices.interfaces) {
      if (!fs.existsSync('/sys/module/xen_netback')) {
        throw new VirtError('OPERATION_FAILED', `operation failed: cannot start ${who}: its network interface needs the netback driver in dom0; load it with 'modprobe xen-netback'`, D);
      }
      const br = n.type === 'bridge' ? n.source?.bridge : undefined;
      if (br && !fs.existsSync(`/sys/class/net/${br}`)) {
        throw new VirtError('OPERATION_FAILED', `operation failed: cannot start ${who}: bridge '${br}' does not exist in dom0 (create it, e.g. 'ip link add ${br} type bridge && ip link set ${br} up')`, D);
      }
    }
  }

  /** MiB the guest needs and the host has free, for a memory failure's message. */
  private async memoryFacts(def: Domain): Promise<{ needMiB: number; freeMiB?: number }> {
    const video = isHvm(def) ? def.devices.videos[0]?.model.vram ?? 0 : 0;
    const needMiB = Math.ceil(((def.currentMemory ?? def.memory) + video) / 1024);
    try {
      const x = await this.xlInfo(0);
      const free = Number(x.get('free_memory'));
      return Number.isFinite(free) ? { needMiB, freeMiB: free } : { needMiB };
    } catch {
      return { needMiB };
    }
  }

  private async failStart(def: Domain, r: ExecResult, argv: string[], op: string): Promise<never> {
    await this.cleanup(def.uuid);
    const ctx: XlFailureContext = { op, name: def.name, command: this.exec.describe(argv) };
    if (/memory|claim/i.test(r.stderr)) Object.assign(ctx, await this.memoryFacts(def));
    throw xlError(r, ctx);
  }

  start(def: Domain, opts: StartOptions = {}): Promise<number> { return this.op(() => this.startNow(def, opts)); }

  private async startNow(def: Domain, opts: StartOptions): Promise<number> {
    if (!def.uuid) throw new VirtError('INTERNAL_ERROR', `internal error: domain '${def.name}' has no uuid`, D);
    const t0 = Date.now();
    this.preflight(def);
    const file = this.writeConfig(def);
    const paused = opts.paused === true;
    const viaPause = paused || (this.opts.createMode ?? 'direct') === 'paused';
    const phases: Record<string, number> = { prepare: Date.now() - t0 };
    try {
      const argv = ['xl', 'create', '-e', ...(viaPause ? ['-p'] : []), file];
      const r = await this.exec.run(argv, { timeoutMs: this.longTimeout });
      phases['xl create'] = r.ms;
      this.invalidate();
      if (xlFailed(r, true)) await this.failStart(def, r, argv, 'start');
      return await this.settleNew(def, paused, viaPause, 'start', phases);
    } finally {
      fs.rmSync(file, { force: true });
      this.lastStart = { total: Date.now() - t0, phases };
    }
  }

  /** After create/restore: find the new domain, unpause it if asked; destroy it on failure. */
  private async settleNew(def: Domain, paused: boolean, isPaused: boolean, op: string, phases: Record<string, number> = {}): Promise<number> {
    let t = Date.now();
    const domid = await this.findDomid(def.uuid!, def.name);
    phases['find domid'] = Date.now() - t;
    t = Date.now();
    if (domid === undefined) {
      throw new VirtError('INTERNAL_ERROR', `internal error: cannot ${op} domain '${def.name}': xl reported success but Xen has no domain with uuid ${def.uuid}`, D);
    }
    this.known.set(domid, def.uuid!.toLowerCase());
    this.knownSince.set(domid, Date.now());
    if (isPaused && !paused) {
      const argv = ['xl', 'unpause', String(domid)];
      const u = await this.exec.run(argv, { timeoutMs: this.shortTimeout });
      if (xlFailed(u)) {
        this.expectGone.add(domid);
        await this.exec.run(['xl', 'destroy', String(domid)], { timeoutMs: this.shortTimeout });
        throw xlError(u, { op: `${op} (unpause)`, name: def.name, domid, command: this.exec.describe(argv) });
      }
      phases['xl unpause'] = Date.now() - t;
    }
    this.invalidate();
    return domid;
  }

  async shutdown(domid: number, kind: 'poweroff' | 'reboot', opts: ShutdownOptions = {}): Promise<void> {
    this.notDom0(domid);
    // -F: fall back to an ACPI event for an HVM guest without PV drivers
    const args = [kind === 'reboot' ? 'reboot' : 'shutdown', '-F', ...(opts.wait ? ['-w'] : []), String(domid)];
    await this.xl(args, { op: kind === 'reboot' ? 'reboot' : 'shut down', domid }, { timeoutMs: opts.wait ? this.longTimeout : this.shortTimeout });
    this.invalidate();
  }

  private notDom0(domid: number): void {
    if (domid === 0) throw new VirtError('OPERATION_INVALID', 'Requested operation is not valid: Domain-0 does not support requested operation', D);
  }

  destroy(domid: number): Promise<void> { return this.op(() => this.destroyNow(domid)); }

  private async destroyNow(domid: number): Promise<void> {
    this.notDom0(domid);
    this.expectGone.add(domid);
    const argv = ['xl', 'destroy', String(domid)];
    const r = await this.exec.run(argv, { timeoutMs: this.shortTimeout });
    this.invalidate();
    if (!xlFailed(r)) return;
    // already gone is what the caller wanted
    if (/Non-existant domain|does not exist|invalid domain identifier/i.test(r.stderr)) {
      const still = await this.info(domid);
      if (!still) return;
    }
    this.expectGone.delete(domid);
    throw xlError(r, { op: 'destroy', domid, command: this.exec.describe(argv) });
  }

  async pause(domid: number): Promise<void> {
    this.notDom0(domid);
    await this.xl(['pause', String(domid)], { op: 'pause', domid });
    this.invalidate();
  }

  async unpause(domid: number): Promise<void> {
    this.notDom0(domid);
    await this.xl(['unpause', String(domid)], { op: 'resume', domid });
    this.invalidate();
  }

  private track(child: ChildProcess): void {
    this.children.add(child);
    child.once('close', () => this.children.delete(child));
  }

  /** Collect a child's stderr lines, reporting xl's progress lines as they come. */
  private watchStderr(child: ChildProcess, onProgress?: (done: number, total: number) => void): () => string {
    const chunks: string[] = [];
    let partial = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (s: string) => {
      chunks.push(s);
      partial += s;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        const p = parseProgress(l);
        if (p && onProgress) onProgress(p.done, p.total);
      }
    });
    return () => chunks.join('');
  }

  private waitChild(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean; error?: NodeJS.ErrnoException }> {
    return new Promise((resolve) => {
      let timedOut = false;
      const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
      child.once('error', (error: NodeJS.ErrnoException) => { clearTimeout(timer); resolve({ code: null, signal: null, timedOut, error }); });
      child.once('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, timedOut }); });
    });
  }

  save(domid: number, fd: number, progress?: ProgressFn): Promise<void> { return this.op(() => this.saveNow(domid, fd, progress)); }

  private async saveNow(domid: number, fd: number, progress?: ProgressFn): Promise<void> {
    this.notDom0(domid);
    const before = await this.info(domid);
    if (!before) throw new VirtError('NO_DOMAIN', `Domain not found: domain ${domid} is not running on this Xen host`, D);
    const argv = ['xl', 'save', String(domid), '/proc/self/fd/1'];
    const started = Date.now();
    this.expectGone.add(domid);
    const child = this.exec.spawn(pipeline(argv, 'out'), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.track(child);
    const estimate = before.memory * 1024;
    let written = 0;
    let writeError: Error | undefined;
    progress?.(0, estimate);
    child.stdout!.on('data', (chunk: Buffer) => {
      if (writeError) return;
      try {
        let off = 0;
        while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
        written += chunk.length;
      } catch (e) {
        writeError = e as Error;
        child.kill('SIGKILL');
      }
    });
    const stderr = this.watchStderr(child, (done, total) => progress?.(Math.round((done / total) * estimate), estimate));
    const end = await this.waitChild(child, this.longTimeout);
    this.invalidate();
    const r: ExecResult = { code: end.code, signal: end.signal, stdout: '', stderr: stderr(), ms: Date.now() - started };
    if (end.timedOut) r.timedOut = true;
    if (end.error) r.spawnError = end.error;
    if (writeError || xlFailed(r, true) || written === 0) {
      // xl resumes the guest when the save fails; it is not gone after all
      const still = await this.info(domid).catch(() => undefined);
      if (still) this.expectGone.delete(domid);
      if (writeError) throw new VirtError('OPERATION_FAILED', `operation failed: cannot write the save image of domain ${domid}: ${writeError.message}`, D);
      if (written === 0 && !xlFailed(r, true)) throw new VirtError('OPERATION_FAILED', `operation failed: xl save of domain ${domid} produced no image`, D);
      throw xlError(r, { op: 'save', domid, name: before.name, command: this.exec.describe(argv) });
    }
    progress?.(written, written);
  }

  restore(def: Domain, fd: number, opts: StartOptions & { progress?: ProgressFn } = {}): Promise<number> {
    return this.op(() => this.restoreNow(def, fd, opts));
  }

  private async restoreNow(def: Domain, fd: number, opts: StartOptions & { progress?: ProgressFn }): Promise<number> {
    if (!def.uuid) throw new VirtError('INTERNAL_ERROR', `internal error: domain '${def.name}' has no uuid`, D);
    const paused = opts.paused === true;
    const viaPause = paused || (this.opts.createMode ?? 'direct') === 'paused';
    const file = this.writeConfig(def);
    const argv = ['xl', 'restore', '-e', ...(viaPause ? ['-p'] : []), file, '/proc/self/fd/0'];
    const started = Date.now();
    try {
      const st = fs.fstatSync(fd);
      const child = this.exec.spawn(pipeline(argv, 'in'), { stdio: ['pipe', 'pipe', 'pipe'] });
      this.track(child);
      child.stdout!.resume();
      const stderr = this.watchStderr(child);
      const total = st.isFile() ? st.size : 0;
      const feeding = this.feed(fd, child, (n) => opts.progress?.(n, Math.max(total, n)));
      const end = await this.waitChild(child, this.longTimeout);
      await feeding.catch(() => undefined);
      this.invalidate();
      const r: ExecResult = { code: end.code, signal: end.signal, stdout: '', stderr: stderr(), ms: Date.now() - started };
      if (end.timedOut) r.timedOut = true;
      if (end.error) r.spawnError = end.error;
      if (xlFailed(r, true)) await this.failStart(def, r, argv, 'restore');
      const domid = await this.settleNew(def, paused, viaPause, 'restore');
      return domid;
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /** Copy the rest of `fd` into the child's stdin, honouring back-pressure. */
  private async feed(fd: number, child: ChildProcess, progress: (bytes: number) => void): Promise<void> {
    const stdin = child.stdin!;
    let closed = false;
    stdin.on('error', () => { closed = true; });
    child.once('close', () => { closed = true; });
    const buf = Buffer.alloc(1024 * 1024);
    let sent = 0;
    progress(0);
    for (;;) {
      if (closed) return;
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const ok = stdin.write(Buffer.from(buf.subarray(0, n)));
      sent += n;
      progress(sent);
      if (!ok) {
        await new Promise<void>((resolve) => {
          const done = () => { stdin.off('drain', done); child.off('close', done); resolve(); };
          stdin.once('drain', done);
          child.once('close', done);
        });
      }
    }
    stdin.end();
  }

  async coreDump(domid: number, file: string, progress?: ProgressFn): Promise<void> {
    this.notDom0(domid);
    const info = await this.info(domid);
    const total = (info?.memory ?? 0) * 1024;
    progress?.(0, total);
    await this.xl(['dump-core', String(domid), file], { op: 'dump the core of', domid }, { timeoutMs: this.longTimeout });
    progress?.(total, total);
  }

  // ---------------------------------------------------------------------------------------
  // resources

  async setMemory(domid: number, kib: number): Promise<void> {
    await this.xl(['mem-set', String(domid), `${kib}k`], { op: 'set the memory of', domid });
    this.invalidate();
  }

  async setMaxMemory(domid: number, kib: number): Promise<void> {
    await this.xl(['mem-max', String(domid), `${kib}k`], { op: 'set the maximum memory of', domid });
    this.invalidate();
  }

  async setVcpus(domid: number, count: number): Promise<void> {
    await this.xl(['vcpu-set', String(domid), String(count)], { op: 'set the vcpus of', domid });
    this.invalidate();
  }

  /** Per-vcpu state and affinity (virDomainGetVcpus), from `xl vcpu-list`. */
  async vcpuInfo(domid: number): Promise<VcpuInfo[]> {
    const r = await this.xl(['vcpu-list', String(domid)], { op: 'list the vcpus of', domid });
    const nr = Number((await this.xlInfo(Infinity)).get('nr_cpus') ?? 1);
    return parseVcpuList(r.stdout).filter((v) => v.domid === domid).map((v): VcpuInfo => ({
      number: v.vcpu,
      state: !v.online ? 'offline' : v.state[0] === 'r' ? 'running' : 'blocked',
      cpuTime: BigInt(Math.round(v.cpuSeconds * 1e9)),
      cpu: v.online ? v.cpu : -1,
      cpumap: expandCpuList(v.hardAffinity, nr),
    }));
  }

  /** Pin a vcpu to host CPUs (virDomainPinVcpu). */
  async pinVcpu(domid: number, vcpu: number, cpus: number[]): Promise<void> {
    if (!cpus.length) throw new VirtError('INVALID_ARG', 'invalid argument: the CPU map is empty', D);
    await this.xl(['vcpu-pin', String(domid), String(vcpu), cpus.join(',')], { op: `pin vcpu ${vcpu} of`, domid });
  }

  private async schedCommand(): Promise<{ scheduler: string; cmd: string }> {
    const scheduler = (await this.xlInfo(Infinity)).get('xen_scheduler') ?? 'credit';
    if (scheduler === 'credit' || scheduler === 'credit2') return { scheduler, cmd: scheduler === 'credit' ? 'sched-credit' : 'sched-credit2' };
    throw new VirtError('OPERATION_UNSUPPORTED', `Operation not supported: the host runs the '${scheduler}' scheduler, which has no weight/cap parameters`, D);
  }

  /** Credit scheduler weight and cap (virDomainGetSchedulerParameters). */
  async schedulerParams(domid: number): Promise<SchedulerParams> {
    const { scheduler, cmd } = await this.schedCommand();
    const r = await this.xl([cmd, '-d', String(domid)], { op: 'read the scheduler parameters of', domid });
    const row = parseSchedRow(r.stdout);
    if (!row) throw new VirtError('INTERNAL_ERROR', `internal error: cannot read the scheduler parameters of domain ${domid} from: ${r.stdout.trim()}`, D);
    return { scheduler, ...row };
  }

  async setSchedulerParams(domid: number, p: { weight?: number; cap?: number }): Promise<void> {
    const { cmd } = await this.schedCommand();
    if (p.weight !== undefined && (!Number.isInteger(p.weight) || p.weight < 1 || p.weight > 65535)) {
      throw new VirtError('INVALID_ARG', `invalid argument: scheduler weight ${p.weight} must be between 1 and 65535`, D);
    }
    if (p.cap !== undefined && (!Number.isInteger(p.cap) || p.cap < 0 || p.cap > 65535)) {
      throw new VirtError('INVALID_ARG', `invalid argument: scheduler cap ${p.cap} must be between 0 and 65535`, D);
    }
    const args = [cmd, '-d', String(domid)];
    if (p.weight !== undefined) args.push('-w', String(p.weight));
    if (p.cap !== undefined) args.push('-c', String(p.cap));
    await this.xl(args, { op: 'set the scheduler parameters of', domid });
  }

  async attachDisk(domid: number, disk: DiskDevice): Promise<void> {
    if (disk.source?.path && (disk.type === 'file' || disk.type === 'block') && !fs.existsSync(disk.source.path)) {
      throw new VirtError('OPERATION_FAILED', `operation failed: cannot attach disk ${disk.target.dev}: '${disk.source.path}' does not exist in dom0`, D);
    }
    await this.xl(['block-attach', String(domid), formatXlDisk(disk)], { op: `attach disk ${disk.target.dev} to`, domid });
  }

  async detachDisk(domid: number, disk: DiskDevice): Promise<void> {
    await this.xl(['block-detach', String(domid), disk.target.dev], { op: `detach disk ${disk.target.dev} from`, domid });
  }

  /** Insert or eject the medium of a live CD-ROM (`xl cd-insert` / `xl cd-eject`). */
  async changeMedia(domid: number, disk: DiskDevice): Promise<void> {
    const dev = disk.target.dev;
    const p = disk.source?.path;
    if (p) {
      if (!fs.existsSync(p)) throw new VirtError('OPERATION_FAILED', `operation failed: cannot insert '${p}' into ${dev}: no such file in dom0`, D);
      await this.xl(['cd-insert', String(domid), dev, p], { op: `insert a medium into ${dev} of`, domid });
    } else {
      await this.xl(['cd-eject', String(domid), dev], { op: `eject the medium of ${dev} of`, domid });
    }
  }

  /** xl's vif spec for one interface, written by the same formatter `xl create` gets. */
  vifSpec(nic: InterfaceDevice): string {
    const probe: Domain = {
      type: 'xen', name: 'vif', memory: 1024, vcpu: { count: 1 },
      os: { type: 'xen', boot: [] },
      clock: { offset: 'utc', timers: [] },
      devices: { ...emptyDevices(), interfaces: [nic] },
    } as unknown as Domain;
    const opts: XenFormatOptions = {};
    if (this.opts.networkBridge) opts.networkBridge = this.opts.networkBridge;
    const v = confGet(domainToXl(probe, opts), 'vif');
    const first = v?.type === 'list' ? v.value[0] : undefined;
    if (first?.type !== 'string') throw new VirtError('INTERNAL_ERROR', 'internal error: cannot format the network interface for xl', D);
    return first.value;
  }

  async attachInterface(domid: number, nic: InterfaceDevice): Promise<void> {
    const br = nic.type === 'bridge' ? nic.source?.bridge : undefined;
    if (br && this.hostChecks() && !fs.existsSync(`/sys/class/net/${br}`)) {
      throw new VirtError('OPERATION_FAILED', `operation failed: cannot attach the interface: bridge '${br}' does not exist in dom0`, D);
    }
    // network-attach takes the vif spec's key=value pairs as separate arguments
    const parts = this.vifSpec(nic).split(',').filter(Boolean);
    await this.xl(['network-attach', String(domid), ...parts], { op: 'attach a network interface to', domid });
  }

  async detachInterface(domid: number, nic: InterfaceDevice): Promise<void> {
    if (!nic.mac) throw new VirtError('INVALID_ARG', 'invalid argument: the interface to detach has no MAC address', D);
    await this.xl(['network-detach', String(domid), nic.mac], { op: `detach interface ${nic.mac} from`, domid });
  }

  // ---------------------------------------------------------------------------------------
  // events

  onEvent(listener: BackendListener): () => void {
    return this.listeners.add(listener);
  }

  private emit(e: BackendEvent): Promise<void> { return this.listeners.emit(e); }

  /**
   * The driver listens: report what happened while nobody watched (guests that stopped
   * since), then follow XenStore's domain watches.
   */
  async ready(): Promise<void> {
    if (this.active || this.closed) return;
    this.active = true;
    await this.arm();
    // a look taken after the watches were set, with nothing fired since, is current
    const fresh = !(this.armedAt !== undefined && !this.dirty && this.snap && this.snapAt >= this.armedAt);
    this.dirty = false;
    await this.scan(fresh);
  }

  /** Run one of our own domain-changing operations, holding watch-triggered scans back. */
  private async op<T>(fn: () => Promise<T>): Promise<T> {
    this.ops++;
    try {
      return await fn();
    } finally {
      this.ops--;
      if (this.ops === 0 && this.deferred) {
        this.deferred = false;
        // what our own call changed is known already; look a little later, so that the
        // look (a whole `xl list`) does not compete with the caller finishing its work
        this.kick(this.opts.deferredScanDelayMs ?? 750);
      }
    }
  }

  /** Set the domain watches (once); firings before ready() only mark the state as changed. */
  private async arm(): Promise<void> {
    if (this.armedAt !== undefined || this.closed) return;
    this.armedAt = Date.now();
    try {
      for (const p of ['@releaseDomain', '@introduceDomain']) {
        this.unwatch.push(await this.xenstore.watch(p, () => this.kick()));
      }
    } catch {
      // without watches, events arrive with the scans later calls trigger
    }
  }

  /** A watch fired: scan soon (firings come in bursts). */
  private kick(delayMs = 20): void {
    if (this.closed) return;
    if (!this.active) {
      this.dirty = true;
      return;
    }
    if (this.ops > 0) {
      // our own create/destroy fired the watch: look once it is done, not in the middle
      this.deferred = true;
      return;
    }
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.scan();
    }, delayMs);
    this.debounce.unref();
  }

  /** Compare Xen's domains with the last look; report shutdowns and disappearances. */
  scan(fresh = true): Promise<void> {
    if (this.scanning) {
      this.rescan = true;
      return this.scanning;
    }
    const run = async () => {
      let first = true;
      do {
        this.rescan = false;
        await this.scanOnce(fresh || !first).catch(() => undefined);
        first = false;
      } while (this.rescan && !this.closed);
    };
    this.scanning = run().finally(() => { this.scanning = undefined; });
    return this.scanning;
  }

  private async scanOnce(fresh: boolean): Promise<void> {
    if (this.closed) return;
    const s = fresh ? await this.snapshot(true, true) : await (this.snap ?? this.snapshot(true, true));
    const now = new Map<number, string>();
    const events: BackendEvent[] = [];
    for (const e of s.entries) {
      if (e.domid === 0 || !e.uuid) continue;
      now.set(e.domid, e.uuid);
      if (e.shutdown && e.shutdownReason) {
        const key = `${e.uuid}:${e.shutdownReason}`;
        if (this.reported.get(e.domid) !== key) {
          this.reported.set(e.domid, key);
          events.push({ type: 'shutdown', domid: e.domid, uuid: e.uuid, reason: e.shutdownReason });
        }
      } else if (this.reported.has(e.domid) && !e.dying) {
        // running again (a reused id, or a resumed suspend): a later shutdown is news
        this.reported.delete(e.domid);
      }
    }
    for (const [domid, uuid] of this.known) {
      if (now.get(domid) === uuid) continue;
      if ((this.knownSince.get(domid) ?? 0) >= s.at && !now.has(domid)) {
        // started while this look was being taken: not gone, just not in it yet
        now.set(domid, uuid);
        continue;
      }
      this.knownSince.delete(domid);
      const last = this.reported.get(domid);
      this.reported.delete(domid);
      if (this.expectGone.delete(domid)) continue;
      // a domain that suspended and then vanished was saved or migrated: whoever did it records it
      if (last === `${uuid}:suspend`) continue;
      events.push({ type: 'death', domid, uuid });
    }
    for (const domid of [...this.expectGone]) if (!now.has(domid)) this.expectGone.delete(domid);
    this.known = now;
    for (const ev of events) {
      if (this.closed) return;
      await this.emit(ev);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.aborter.abort();
    if (this.debounce) clearTimeout(this.debounce);
    for (const u of this.unwatch) { try { u(); } catch { /* closing anyway */ } }
    this.unwatch = [];
    this.xenstore.close();
    for (const c of this.children) c.kill('SIGKILL');
    this.children.clear();
    this.listeners.clear();
    await sleep(0);
  }

  /** For tests and tools: forget cached answers. */
  flush(): void {
    this.invalidate();
    this.infoCache = undefined;
  }

}
