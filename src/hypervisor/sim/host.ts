/**
 * A simulated Xen host: enough of Xen's behaviour to run the driver without Xen.
 *
 * - Memory is accounted: Domain-0 holds its share, every guest its allocation plus video RAM,
 *   and a start that does not fit fails, naming what was needed and what was free.
 * - Domain ids increase from 1 and are never reused until the host reboots.
 * - A shutdown or reboot request completes later (`shutdownDelayMs`), like a guest OS
 *   taking its time, and is then reported as a 'shutdown' event with Xen's reason.
 * - CPU time accrues while a guest runs; save, restore and core dumps take time in
 *   proportion to guest memory and report progress.
 * - `crash(domid)` makes a guest crash, for tests of on_crash.
 *
 * It never touches guest files (kernels, disks): they belong to the simulated machine.
 * All state lives in the KvStore, so a host kept in a directory survives across processes,
 * and a pending shutdown completes in whichever process is around when it falls due.
 */
import fs from 'node:fs';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { VirtError } from '../../errors.js';
import type { DiskDevice, Domain, InterfaceDevice } from '../../domain/types.js';
import { isHvm } from '../../domain/types.js';
import type { KvStore } from '../../driver/store.js';
import type {
  BackendEvent, GuestInfo, GuestRunState, HostCapabilities, HostInfo, HypervisorBackend, ProgressFn,
  SchedulerParams, StartOptions, SysinfoData, VcpuInfo, XenShutdownReason,
} from '../backend.js';
import { BackendListeners, type BackendListener } from '../listeners.js';
import { allCpus, pinsOf } from '../../driver/tuning.js';

export interface SimHostConfig {
  hostname: string;
  /** KiB of host RAM */
  memory: number;
  sockets: number;
  cores: number;
  threads: number;
  nodes: number;
  mhz: number;
  model: string;
  /** KiB given to Domain-0 (Xen's dom0_mem) */
  dom0Memory: number;
  dom0Vcpus: number;
  /** Xen version, e.g. '4.17.0' */
  xenVersion: string;
  /** How long a guest takes to act on shutdown / reboot requests (ms). */
  shutdownDelayMs: number;
  /** Simulated save / restore / dump throughput, MiB/s. */
  transferMiBps: number;
}

export const DEFAULT_SIM_CONFIG: SimHostConfig = {
  hostname: 'xensim',
  memory: 16 * 1024 * 1024,
  sockets: 1,
  cores: 4,
  threads: 2,
  nodes: 1,
  mhz: 2400,
  model: 'x86_64',
  dom0Memory: 2 * 1024 * 1024,
  dom0Vcpus: 8,
  xenVersion: '4.17.0',
  shutdownDelayMs: 100,
  transferMiBps: 8192,
};

/** Env overrides for knobs tests and users may want to turn. */
function envConfig(): Partial<SimHostConfig> {
  const out: Partial<SimHostConfig> = {};
  const num = (name: string) => {
    const v = process.env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) && n >= 0 ? n : undefined;
  };
  const d = num('XENVIRT_SIM_SHUTDOWN_DELAY_MS');
  if (d !== undefined) out.shutdownDelayMs = d;
  const t = num('XENVIRT_SIM_TRANSFER_MIBPS');
  if (t !== undefined && t > 0) out.transferMiBps = t;
  return out;
}

interface HostRecord {
  v: 1;
  bootId: string;
  uuid: string;
  nextDomid: number;
  config: SimHostConfig;
  dom0: { memory: number; maxMemory: number; vcpus: number; bootedAt: number };
}

interface DomRecord {
  domid: number;
  name: string;
  uuid: string;
  osType: string;
  state: GuestRunState;
  shutdownReason?: XenShutdownReason;
  /** KiB allocated */
  memory: number;
  maxMemory: number;
  /** KiB of video RAM (HVM device model), counted against the host */
  videoMemory: number;
  vcpus: number;
  maxVcpus: number;
  /** CPU ns accumulated before `runningSince` */
  cpuNs: string;
  /** ms epoch when the guest last started running, null while not running */
  runningSince: number | null;
  /** A request the guest will act on at `due` (ms epoch). */
  pending?: { kind: 'poweroff' | 'reboot'; due: number };
  /** A long operation (save, dump) in progress, by process id: others must wait. */
  busy?: { pid: number; kind: string; prev: GuestRunState };
  disks: string[];
  nics: string[];
  /** host CPUs each vcpu may run on; a missing entry means all */
  pins?: number[][];
  /** credit scheduler parameters; missing means Xen's defaults (256, 0) */
  weight?: number;
  cap?: number;
}

interface ImageRecord {
  name: string;
  uuid: string;
  osType: string;
  memory: number;
  maxMemory: number;
  vcpus: number;
  maxVcpus: number;
  cpuNs: string;
  disks: string[];
  nics: string[];
}

const HOST_KEY = 'sim/host.json';
const domKey = (domid: number) => `sim/dom/${domid}.json`;
const IMAGE_MAGIC = 'XENVIRT-SIM-IMAGE 1\n';
const CORE_MAGIC = 'XENVIRT-SIM-CORE 1\n';
/** Share of each online vcpu a simulated guest keeps busy (for cpu time). */
const GUEST_LOAD = 0.05;
const PV_MAX_VCPUS = 512;
const HVM_MAX_VCPUS = 128;

const libxlError = (msg: string) => new VirtError('INTERNAL_ERROR', `internal error: ${msg}`);

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class SimHost implements HypervisorBackend {
  readonly kind = 'sim';
  private readonly listeners = new BackendListeners();
  private timers = new Map<number, NodeJS.Timeout>();
  private active = false;
  private closed = false;
  private unsubscribe: () => void;

  private constructor(private readonly store: KvStore) {
    this.unsubscribe = store.onChange((key) => {
      if (key.startsWith('sim/dom/')) this.scheduleFromStore();
    });
  }

  /** Open the simulated host kept in `store`, booting a new one if the store has none. */
  static async open(store: KvStore, config: Partial<SimHostConfig> = {}): Promise<SimHost> {
    const h = new SimHost(store);
    if (!store.get(HOST_KEY)) {
      await store.transaction((tx) => {
        if (tx.get(HOST_KEY)) return;
        const cfg = { ...DEFAULT_SIM_CONFIG, ...config, ...envConfig() };
        const rec: HostRecord = {
          v: 1,
          bootId: randomUUID(),
          uuid: randomUUID(),
          nextDomid: 1,
          config: cfg,
          dom0: { memory: cfg.dom0Memory, maxMemory: cfg.dom0Memory, vcpus: cfg.dom0Vcpus, bootedAt: Date.now() },
        };
        tx.put(HOST_KEY, JSON.stringify(rec));
      });
    }
    return h;
  }

  // ---- state access

  private host(): HostRecord {
    const raw = this.store.get(HOST_KEY);
    if (!raw) throw libxlError('the simulated host has no state (was it removed?)');
    const rec = JSON.parse(raw) as HostRecord;
    // Env knobs apply to whichever process runs the host now.
    rec.config = { ...rec.config, ...envConfig() };
    return rec;
  }

  private doms(): DomRecord[] {
    const out: DomRecord[] = [];
    for (const k of this.store.keys('sim/dom/')) {
      const raw = this.store.get(k);
      if (raw) out.push(JSON.parse(raw) as DomRecord);
    }
    return out.sort((a, b) => a.domid - b.domid);
  }

  private dom(domid: number): DomRecord | undefined {
    const raw = this.store.get(domKey(domid));
    return raw ? (JSON.parse(raw) as DomRecord) : undefined;
  }

  private need(domid: number): DomRecord {
    if (domid === 0) throw new VirtError('OPERATION_INVALID', 'Requested operation is not valid: Domain-0 does not support requested operation');
    const d = this.dom(domid);
    if (!d) throw libxlError(`libxenlight has no domain with id ${domid}`);
    if (d.busy && d.busy.pid !== process.pid && !pidAlive(d.busy.pid)) {
      // the process doing a save or dump died: the guest is back as it was
      d.state = d.busy.prev;
      delete d.busy;
    }
    if (d.busy) throw new VirtError('OPERATION_FAILED', `operation failed: domain ${domid} is busy (${d.busy.kind} in progress)`);
    return d;
  }

  private putDom(d: DomRecord): Promise<void> {
    return this.store.transaction((tx) => tx.put(domKey(d.domid), JSON.stringify(d)));
  }

  private cpuNs(d: DomRecord, now = Date.now()): bigint {
    let ns = BigInt(d.cpuNs);
    if (d.runningSince !== null && (d.state === 'running' || d.state === 'blocked')) {
      ns += BigInt(Math.floor((now - d.runningSince) * 1e6 * d.vcpus * GUEST_LOAD));
    }
    return ns;
  }

  /** Stop the CPU clock (pause, shutdown) keeping what was used. */
  private stopClock(d: DomRecord): void {
    d.cpuNs = this.cpuNs(d).toString();
    d.runningSince = null;
  }

  private startClock(d: DomRecord): void {
    if (d.runningSince === null) d.runningSince = Date.now();
  }

  private usedMemory(h: HostRecord, doms = this.doms()): number {
    let used = h.dom0.memory;
    for (const d of doms) used += d.memory + d.videoMemory;
    return used;
  }

  private cpuCount(h = this.host()): number {
    const c = h.config;
    return c.sockets * c.cores * c.threads * c.nodes;
  }

  private freeMemory(h = this.host()): number {
    return Math.max(0, h.config.memory - this.usedMemory(h));
  }

  private info0(h: HostRecord): GuestInfo {
    const elapsed = Date.now() - h.dom0.bootedAt;
    return {
      domid: 0,
      name: 'Domain-0',
      uuid: '00000000-0000-0000-0000-000000000000',
      state: 'running',
      memory: h.dom0.memory,
      maxMemory: h.dom0.maxMemory,
      vcpus: h.dom0.vcpus,
      maxVcpus: h.dom0.vcpus,
      cpuTime: BigInt(Math.floor(elapsed * 1e6 * h.dom0.vcpus * 0.02)),
    };
  }

  private toInfo(d: DomRecord): GuestInfo {
    const i: GuestInfo = {
      domid: d.domid,
      name: d.name,
      uuid: d.uuid,
      state: d.state,
      memory: d.memory,
      maxMemory: d.maxMemory,
      vcpus: d.vcpus,
      maxVcpus: d.maxVcpus,
      cpuTime: this.cpuNs(d),
    };
    if (d.shutdownReason) i.shutdownReason = d.shutdownReason;
    return i;
  }

  // ---- host queries

  async hostInfo(): Promise<HostInfo> {
    const h = this.host();
    const c = h.config;
    return {
      model: c.model,
      memory: c.memory,
      freeMemory: this.freeMemory(h),
      cpus: this.cpuCount(h),
      mhz: c.mhz,
      nodes: c.nodes,
      sockets: c.sockets,
      cores: c.cores,
      threads: c.threads,
      scheduler: 'credit',
    };
  }

  async capabilities(): Promise<HostCapabilities> {
    const h = this.host();
    const c = h.config;
    const cpus = c.sockets * c.cores * c.threads * c.nodes;
    const perNode = cpus / c.nodes;
    const cells: HostCapabilities['cells'] = [];
    for (let n = 0; n < c.nodes; n++) {
      const list: HostCapabilities['cells'][number]['cpus'] = [];
      for (let i = 0; i < perNode; i++) {
        const id = n * perNode + i;
        const core = Math.floor(i / c.threads) % c.cores;
        const socket = Math.floor(i / (c.threads * c.cores));
        const first = id - (i % c.threads);
        const siblings = c.threads > 1 ? `${first}-${first + c.threads - 1}` : String(id);
        list.push({ id, socket, die: 0, core, siblings });
      }
      cells.push({ id: n, memory: Math.floor(c.memory / c.nodes), cpus: list });
    }
    const emulator = '/usr/lib/xen/bin/qemu-system-i386';
    const hvmFeatures: HostCapabilities['guests'][number]['features'] = [
      { name: 'acpi', default: 'on', toggle: 'yes' },
      { name: 'apic', default: 'on', toggle: 'no' },
      { name: 'hap', default: 'on', toggle: 'yes' },
    ];
    return {
      uuid: h.uuid,
      arch: 'x86_64',
      cpuFeatures: ['vmx', 'pae'],
      topology: { sockets: c.sockets, dies: 1, cores: c.cores, threads: c.threads },
      migrationTransports: ['xenmigr'],
      cells,
      guests: [
        { osType: 'xen', arch: 'x86_64', wordsize: 64, emulator, machines: ['xenpv'], features: [] },
        { osType: 'xen', arch: 'i686', wordsize: 32, emulator, machines: ['xenpv'], features: [{ name: 'pae' }] },
        { osType: 'hvm', arch: 'i686', wordsize: 32, emulator, loader: '/usr/lib/xen/boot/hvmloader', machines: ['xenfv'], features: [{ name: 'pae' }, { name: 'nonpae' }, ...hvmFeatures] },
        { osType: 'hvm', arch: 'x86_64', wordsize: 64, emulator, loader: '/usr/lib/xen/boot/hvmloader', machines: ['xenfv'], features: hvmFeatures },
        { osType: 'xenpvh', arch: 'x86_64', wordsize: 64, emulator, machines: ['xenpvh'], features: [] },
      ],
    };
  }

  async version(): Promise<number> {
    const [maj = 0, min = 0, mic = 0] = this.host().config.xenVersion.split('.').map((s) => parseInt(s, 10) || 0);
    return maj * 1_000_000 + min * 1000 + mic;
  }

  /** Like libvirt's test driver: the simulated host answers with this machine's name. */
  async hostname(): Promise<string> { return os.hostname(); }

  async sysinfo(): Promise<SysinfoData> {
    const h = this.host();
    const c = h.config;
    return {
      bios: { vendor: 'Xen', version: c.xenVersion, date: '01/01/2023', release: c.xenVersion.split('.').slice(0, 2).join('.') },
      system: { manufacturer: 'Xen', product: 'HVM domU', version: c.xenVersion, serial: h.uuid, uuid: h.uuid, family: 'xenvirt simulated host' },
      baseBoard: { manufacturer: 'Xen', product: 'Simulated board', version: '1.0' },
      processors: Array.from({ length: c.sockets }, (_, i) => ({
        socket_destination: `CPU ${i}`, type: 'Central Processor', family: 'Other', manufacturer: 'Simulated',
        version: `${c.model} ${c.mhz} MHz`, external_clock: '100 MHz', max_speed: `${c.mhz} MHz`, status: 'Populated, Enabled',
      })),
      memoryDevices: [{ size: `${Math.floor(c.memory / 1024)} MB`, form_factor: 'DIMM', locator: 'DIMM 0', bank_locator: 'Bank 0', type: 'RAM', type_detail: 'Synchronous', speed: 'Unknown', manufacturer: 'Simulated' }],
    };
  }

  async maxGuestVcpus(osType: string): Promise<number> {
    return osType === 'hvm' ? HVM_MAX_VCPUS : PV_MAX_VCPUS;
  }

  async bootId(): Promise<string> { return this.host().bootId; }

  async list(): Promise<GuestInfo[]> {
    const h = this.host();
    return [this.info0(h), ...this.doms().map((d) => this.toInfo(d))];
  }

  async info(domid: number): Promise<GuestInfo | undefined> {
    if (domid === 0) return this.info0(this.host());
    const d = this.dom(domid);
    return d && this.toInfo(d);
  }

  // ---- lifecycle

  private videoMemory(def: Domain): number {
    if (!isHvm(def)) return 0;
    return def.devices.videos[0]?.model.vram ?? 0;
  }

  private checkFits(name: string, need: number): void {
    const free = this.freeMemory();
    if (need > free) {
      throw new VirtError('OPERATION_FAILED',
        `operation failed: libxenlight failed to get free memory for domain '${name}': it needs ${need} KiB, the host has ${free} KiB free`);
    }
  }

  private async create(rec: Omit<DomRecord, 'domid'>, paused: boolean): Promise<number> {
    return this.store.transaction((tx) => {
      const h = this.host();
      const doms = this.doms();
      if (doms.some((d) => d.name === rec.name)) throw libxlError(`libxenlight failed to create new domain '${rec.name}': a domain with that name exists`);
      if (doms.some((d) => d.uuid === rec.uuid)) throw libxlError(`libxenlight failed to create new domain '${rec.name}': a domain with uuid ${rec.uuid} exists`);
      this.checkFits(rec.name, rec.memory + rec.videoMemory);
      const domid = h.nextDomid;
      h.nextDomid += 1;
      const d: DomRecord = { ...rec, domid, state: paused ? 'paused' : 'running', runningSince: paused ? null : Date.now() };
      tx.put(HOST_KEY, JSON.stringify(h));
      tx.put(domKey(domid), JSON.stringify(d));
      return domid;
    });
  }

  async start(def: Domain, opts: StartOptions = {}): Promise<number> {
    const max = await this.maxGuestVcpus(def.os.type);
    if (def.vcpu.count > max) {
      throw new VirtError('CONFIG_UNSUPPORTED', `unsupported configuration: domain '${def.name}' has ${def.vcpu.count} vcpus, more than the ${max} a ${def.os.type} guest can have`);
    }
    if (!def.uuid) throw libxlError(`domain '${def.name}' has no uuid`);
    const memory = Math.min(def.currentMemory ?? def.memory, def.memory);
    return this.create({
      name: def.name,
      uuid: def.uuid,
      osType: def.os.type,
      state: 'running',
      memory,
      maxMemory: def.memory,
      videoMemory: this.videoMemory(def),
      vcpus: def.vcpu.current ?? def.vcpu.count,
      maxVcpus: def.vcpu.count,
      cpuNs: '0',
      runningSince: null,
      disks: def.devices.disks.map((x) => x.target.dev),
      nics: def.devices.interfaces.map((n) => n.mac ?? ''),
      ...this.tuningOf(def),
    }, opts.paused === true);
  }

  async shutdown(domid: number, kind: 'poweroff' | 'reboot'): Promise<void> {
    const h = this.host();
    const d = this.need(domid);
    if (d.state === 'shutdown' || d.state === 'crashed' || d.state === 'dying') {
      throw libxlError(`Failed to shutdown domain '${domid}' with libxenlight: it is already shut down`);
    }
    d.pending = { kind, due: Date.now() + h.config.shutdownDelayMs };
    await this.putDom(d);
    this.schedule(d);
  }

  async destroy(domid: number): Promise<void> {
    if (domid === 0) throw new VirtError('OPERATION_INVALID', 'Requested operation is not valid: Domain-0 does not support requested operation');
    this.clearTimer(domid);
    await this.store.transaction((tx) => {
      if (!tx.get(domKey(domid))) throw libxlError(`Failed to destroy domain '${domid}': no such domain`);
      tx.del(domKey(domid));
    });
  }

  async pause(domid: number): Promise<void> {
    const d = this.need(domid);
    if (d.state === 'paused') return;
    if (d.state !== 'running' && d.state !== 'blocked') throw libxlError(`Failed to suspend domain '${domid}' with libxenlight: it is ${d.state}`);
    this.stopClock(d);
    d.state = 'paused';
    await this.putDom(d);
  }

  async unpause(domid: number): Promise<void> {
    const d = this.need(domid);
    if (d.state !== 'paused') return;
    d.state = 'running';
    this.startClock(d);
    await this.putDom(d);
    if (d.pending) this.schedule(d);
  }

  /** Sleep in proportion to `bytes` at the configured rate, reporting progress. */
  private async transfer(bytes: number, progress?: ProgressFn): Promise<void> {
    const rate = this.host().config.transferMiBps * 1024 * 1024;
    const totalMs = (bytes / rate) * 1000;
    const steps = Math.max(1, Math.min(20, Math.ceil(totalMs / 25)));
    progress?.(0, bytes);
    for (let i = 1; i <= steps; i++) {
      if (totalMs >= 1) await sleep(totalMs / steps);
      progress?.(Math.round((bytes * i) / steps), bytes);
    }
  }

  private async beginBusy(domid: number, kind: string): Promise<DomRecord> {
    return this.store.transaction((tx) => {
      const d = this.need(domid);
      if (d.state === 'dying') throw libxlError(`domain ${domid} is dying`);
      d.busy = { pid: process.pid, kind, prev: d.state };
      if (d.state === 'running' || d.state === 'blocked') this.stopClock(d);
      if (d.state !== 'shutdown' && d.state !== 'crashed') d.state = 'paused';
      tx.put(domKey(domid), JSON.stringify(d));
      return d;
    });
  }

  private async endBusy(domid: number, remove: boolean): Promise<void> {
    await this.store.transaction((tx) => {
      const raw = tx.get(domKey(domid));
      if (!raw) return;
      const d = JSON.parse(raw) as DomRecord;
      if (remove) {
        tx.del(domKey(domid));
        return;
      }
      if (d.busy) {
        d.state = d.busy.prev;
        delete d.busy;
        if (d.state === 'running' || d.state === 'blocked') this.startClock(d);
      }
      tx.put(domKey(domid), JSON.stringify(d));
    });
  }

  async save(domid: number, fd: number, progress?: ProgressFn): Promise<void> {
    const d = await this.beginBusy(domid, 'save');
    this.clearTimer(domid);
    try {
      const img: ImageRecord = {
        name: d.name, uuid: d.uuid, osType: d.osType, memory: d.memory, maxMemory: d.maxMemory,
        vcpus: d.vcpus, maxVcpus: d.maxVcpus, cpuNs: d.cpuNs, disks: d.disks, nics: d.nics,
      };
      await this.transfer(d.memory * 1024, progress);
      fs.writeSync(fd, IMAGE_MAGIC + JSON.stringify(img) + '\n');
    } catch (e) {
      await this.endBusy(domid, false);
      throw e;
    }
    await this.endBusy(domid, true);
  }

  async restore(def: Domain, fd: number, opts: StartOptions & { progress?: ProgressFn } = {}): Promise<number> {
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text.startsWith(IMAGE_MAGIC)) throw new VirtError('INVALID_ARG', 'invalid argument: the save image holds no simulated domain state (image magic is incorrect)');
    let img: ImageRecord;
    try {
      img = JSON.parse(text.slice(IMAGE_MAGIC.length)) as ImageRecord;
    } catch {
      throw new VirtError('OPERATION_FAILED', 'operation failed: the domain state in the save image is corrupt');
    }
    this.checkFits(def.name, img.memory + this.videoMemory(def));
    await this.transfer(img.memory * 1024, opts.progress);
    const domid = await this.create({
      name: def.name,
      uuid: def.uuid ?? img.uuid,
      osType: def.os.type,
      state: 'running',
      memory: img.memory,
      maxMemory: img.maxMemory,
      videoMemory: this.videoMemory(def),
      vcpus: img.vcpus,
      maxVcpus: img.maxVcpus,
      cpuNs: img.cpuNs,
      runningSince: null,
      disks: img.disks,
      nics: img.nics,
    }, opts.paused === true);
    return domid;
  }

  async coreDump(domid: number, file: string, progress?: ProgressFn): Promise<void> {
    const d = await this.beginBusy(domid, 'dump');
    try {
      await this.transfer(d.memory * 1024, progress);
      const body = JSON.stringify({ domid: d.domid, name: d.name, uuid: d.uuid, memory: d.memory, vcpus: d.vcpus, cpuTime: this.cpuNs(d).toString(), dumpedAt: new Date().toISOString() });
      fs.writeFileSync(file, CORE_MAGIC + body + '\n', { mode: 0o600 });
    } catch (e) {
      await this.endBusy(domid, false);
      if (e instanceof VirtError) throw e;
      throw new VirtError('OPERATION_FAILED', `operation failed: cannot write core dump '${file}': ${(e as Error).message}`);
    }
    await this.endBusy(domid, false);
  }

  // ---- resources

  async setMemory(domid: number, kib: number): Promise<void> {
    if (domid === 0) {
      await this.store.transaction((tx) => {
        const h = this.host();
        if (kib > h.dom0.maxMemory) throw libxlError(`Failed to set memory for domain '0' with libxenlight: ${kib} KiB is above its maximum ${h.dom0.maxMemory} KiB`);
        const grow = kib - h.dom0.memory;
        if (grow > this.freeMemory(h)) throw libxlError(`Failed to set memory for domain '0' with libxenlight: the host has only ${this.freeMemory(h)} KiB free`);
        h.dom0.memory = kib;
        tx.put(HOST_KEY, JSON.stringify(h));
      });
      return;
    }
    await this.store.transaction(() => {
      const d = this.need(domid);
      if (kib > d.maxMemory) throw libxlError(`Failed to set memory for domain '${domid}' with libxenlight: ${kib} KiB is above its maximum ${d.maxMemory} KiB`);
      const free = this.freeMemory();
      if (kib - d.memory > free) throw libxlError(`Failed to set memory for domain '${domid}' with libxenlight: it needs ${kib - d.memory} KiB more, the host has ${free} KiB free`);
      d.memory = kib;
      return this.putDom(d);
    });
  }

  async setMaxMemory(domid: number, kib: number): Promise<void> {
    if (domid === 0) {
      await this.store.transaction((tx) => {
        const h = this.host();
        if (kib < h.dom0.memory) throw libxlError(`Failed to set maximum memory for domain '0' with libxenlight: ${kib} KiB is below its current ${h.dom0.memory} KiB`);
        h.dom0.maxMemory = kib;
        tx.put(HOST_KEY, JSON.stringify(h));
      });
      return;
    }
    await this.store.transaction(() => {
      const d = this.need(domid);
      // Xen keeps static-max >= dynamic-max: the guest must balloon down first.
      if (kib < d.memory) {
        throw libxlError(`Failed to set maximum memory for domain '${domid}' with libxenlight: ${kib} KiB is below its current allocation of ${d.memory} KiB (lower the memory first)`);
      }
      d.maxMemory = kib;
      return this.putDom(d);
    });
  }

  async setVcpus(domid: number, count: number): Promise<void> {
    await this.store.transaction(() => {
      const d = this.need(domid);
      if (count < 1 || count > d.maxVcpus) {
        throw libxlError(`Failed to set vcpus for domain '${domid}' with libxenlight: ${count} is outside 1..${d.maxVcpus}`);
      }
      if (d.runningSince !== null) {
        this.stopClock(d);
        d.vcpus = count;
        this.startClock(d);
      } else d.vcpus = count;
      return this.putDom(d);
    });
  }

  /** What a start applies from <vcpu cpuset>, <cputune><vcpupin> and <shares>, as xl does. */
  private tuningOf(def: Domain): Pick<DomRecord, 'pins' | 'weight' | 'cap'> {
    const n = this.cpuCount();
    const out: Pick<DomRecord, 'pins' | 'weight' | 'cap'> = {};
    if (def.vcpu.cpuset !== undefined || def.cputune?.vcpupins.length) {
      out.pins = pinsOf(def, n).map((set) => set.filter((c) => c < n));
    }
    if (def.cputune?.weight !== undefined) out.weight = def.cputune.weight;
    if (def.cputune?.cap !== undefined) out.cap = def.cputune.cap;
    return out;
  }

  async vcpuInfo(domid: number): Promise<VcpuInfo[]> {
    const d = domid === 0 ? undefined : this.need(domid);
    const h = this.host();
    const all = allCpus(this.cpuCount(h));
    const count = d ? d.maxVcpus : h.dom0.vcpus;
    const online = d ? d.vcpus : h.dom0.vcpus;
    const running = !d || d.state === 'running' || d.state === 'blocked';
    const total = d ? this.cpuNs(d) : this.info0(h).cpuTime;
    const out: VcpuInfo[] = [];
    for (let v = 0; v < count; v++) {
      const affinity = d?.pins?.[v] ?? all;
      const on = v < online;
      out.push({
        number: v,
        state: !on ? 'offline' : running ? 'running' : 'blocked',
        cpuTime: on ? total / BigInt(online) : 0n,
        // a stable placement inside the affinity, so repeated calls agree
        cpu: on ? affinity[(domid + v) % affinity.length]! : -1,
        cpumap: affinity,
      });
    }
    return out;
  }

  async pinVcpu(domid: number, vcpu: number, cpus: number[]): Promise<void> {
    await this.store.transaction(() => {
      const d = this.need(domid);
      if (vcpu >= d.maxVcpus) throw libxlError(`Failed to pin vcpu ${vcpu} of domain '${domid}' with libxenlight: it has ${d.maxVcpus} vcpus`);
      const all = allCpus(this.cpuCount());
      d.pins = Array.from({ length: d.maxVcpus }, (_, v) => (v === vcpu ? [...cpus] : d.pins?.[v] ?? all));
      return this.putDom(d);
    });
  }

  async schedulerParams(domid: number): Promise<SchedulerParams> {
    const d = domid === 0 ? undefined : this.need(domid);
    return { scheduler: 'credit', weight: d?.weight ?? 256, cap: d?.cap ?? 0 };
  }

  async setSchedulerParams(domid: number, params: { weight?: number; cap?: number }): Promise<void> {
    await this.store.transaction(() => {
      const d = this.need(domid);
      if (params.weight !== undefined) d.weight = params.weight;
      if (params.cap !== undefined) d.cap = params.cap;
      return this.putDom(d);
    });
  }

  async attachDisk(domid: number, disk: DiskDevice): Promise<void> {
    await this.store.transaction(() => {
      const d = this.need(domid);
      if (d.disks.includes(disk.target.dev)) throw libxlError(`libxenlight failed to attach disk '${disk.target.dev}': the target is in use`);
      d.disks.push(disk.target.dev);
      return this.putDom(d);
    });
  }

  async detachDisk(domid: number, disk: DiskDevice): Promise<void> {
    await this.store.transaction(() => {
      const d = this.need(domid);
      const i = d.disks.indexOf(disk.target.dev);
      if (i < 0) throw libxlError(`libxenlight failed to detach disk '${disk.target.dev}': no such disk`);
      d.disks.splice(i, 1);
      return this.putDom(d);
    });
  }

  async attachInterface(domid: number, nic: InterfaceDevice): Promise<void> {
    await this.store.transaction(() => {
      const d = this.need(domid);
      if (nic.mac && d.nics.includes(nic.mac)) throw libxlError(`libxenlight failed to attach network device: mac ${nic.mac} is in use`);
      d.nics.push(nic.mac ?? '');
      return this.putDom(d);
    });
  }

  async detachInterface(domid: number, nic: InterfaceDevice): Promise<void> {
    await this.store.transaction(() => {
      const d = this.need(domid);
      const i = d.nics.indexOf(nic.mac ?? '');
      if (i < 0) throw libxlError(`libxenlight failed to detach network device ${nic.mac ?? ''}: no such device`);
      d.nics.splice(i, 1);
      return this.putDom(d);
    });
  }

  // ---- events and asynchronous completion

  onEvent(listener: BackendListener): () => void {
    return this.listeners.add(listener);
  }

  private emit(e: BackendEvent): Promise<void> { return this.listeners.emit(e); }

  /** The driver is listening: complete whatever fell due while nobody was around. */
  async ready(): Promise<void> {
    this.active = true;
    await this.processDue();
    this.scheduleFromStore();
  }

  private clearTimer(domid: number): void {
    const t = this.timers.get(domid);
    if (t) clearTimeout(t);
    this.timers.delete(domid);
  }

  private schedule(d: DomRecord): void {
    this.clearTimer(d.domid);
    if (!this.active || this.closed || !d.pending) return;
    const delay = Math.max(0, d.pending.due - Date.now());
    this.timers.set(d.domid, setTimeout(() => {
      this.timers.delete(d.domid);
      void this.processDue().catch(() => {});
    }, delay));
  }

  private scheduleFromStore(): void {
    if (!this.active || this.closed) return;
    for (const d of this.doms()) {
      if (d.pending && !this.timers.has(d.domid)) this.schedule(d);
      if (!d.pending) this.clearTimer(d.domid);
    }
  }

  /** Carry out every request whose time has come, each in its own transaction. */
  async processDue(): Promise<void> {
    if (this.closed) return;
    // a paused guest cannot act on a request: it waits until it runs again
    const due = this.doms().filter((d) => d.pending && d.pending.due <= Date.now() && d.state !== 'paused');
    for (const { domid } of due) {
      await this.store.transaction(async (tx) => {
        const raw = tx.get(domKey(domid));
        if (!raw) return;
        const d = JSON.parse(raw) as DomRecord;
        if (!d.pending || d.pending.due > Date.now() || d.busy || d.state === 'paused') return; // not (or no longer) due
        const reason: XenShutdownReason = d.pending.kind;
        delete d.pending;
        this.stopClock(d);
        d.state = 'shutdown';
        d.shutdownReason = reason;
        tx.put(domKey(domid), JSON.stringify(d));
        await this.emit({ type: 'shutdown', domid, uuid: d.uuid, reason });
      });
    }
  }

  /** Test trigger: the guest crashes now (Xen reports a 'crash' shutdown). */
  async crash(domid: number): Promise<void> {
    await this.store.transaction(async (tx) => {
      const d = this.need(domid);
      if (d.state === 'shutdown' || d.state === 'crashed') throw libxlError(`domain ${domid} is not running`);
      this.clearTimer(domid);
      delete d.pending;
      this.stopClock(d);
      d.state = 'crashed';
      d.shutdownReason = 'crash';
      tx.put(domKey(domid), JSON.stringify(d));
      await this.emit({ type: 'shutdown', domid, uuid: d.uuid, reason: 'crash' });
    });
  }

  /** Test trigger: the guest powers itself off (as if `poweroff` ran inside it). */
  async guestPoweroff(domid: number, kind: 'poweroff' | 'reboot' = 'poweroff'): Promise<void> {
    const d = this.need(domid);
    d.pending = { kind, due: Date.now() };
    await this.putDom(d);
    await this.processDue();
  }

  /**
   * Reboot the simulated host: every guest is gone, ids start again at 1, and the boot id
   * changes, so the next driver to start runs autostart.
   */
  async rebootHost(): Promise<void> {
    for (const domid of [...this.timers.keys()]) this.clearTimer(domid);
    await this.store.transaction((tx) => {
      const h = this.host();
      for (const k of this.store.keys('sim/dom/')) tx.del(k);
      h.bootId = randomUUID();
      h.nextDomid = 1;
      h.dom0 = { memory: h.config.dom0Memory, maxMemory: h.config.dom0Memory, vcpus: h.config.dom0Vcpus, bootedAt: Date.now() };
      tx.put(HOST_KEY, JSON.stringify(h));
    });
  }

  /** The host's free memory in KiB. */
  async freeMemoryKiB(): Promise<number> { return this.freeMemory(); }

  async close(): Promise<void> {
    this.closed = true;
    for (const domid of [...this.timers.keys()]) this.clearTimer(domid);
    this.unsubscribe();
    this.listeners.clear();
  }
}
