/**
 * The Xen driver: libvirt's domain semantics (libxl driver flavour) over a hypervisor backend
 * and a state store.
 *
 * - Registry: unique names and UUIDs, ids while active, Domain-0 always listed (id 0).
 * - Persistent definitions, autostart markers and runtime records live in the store; every
 *   change is one transaction, so a crash leaves each domain as it was before or after a call.
 * - States and reasons, lifecycle events and error texts are libvirt's.
 * - Jobs on one domain are serialised; different domains proceed in parallel.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseDomainXml, parseUuid } from '../domain/parse.js';
import { formatDomainXml } from '../domain/format.js';
import { emptyDevices, type Domain, type LifecycleAction } from '../domain/types.js';
import { domainFromNative, domainToNative } from '../formats/native.js';
import type { BackendEvent, HypervisorBackend, GuestInfo } from '../hypervisor/backend.js';
import {
  DomainState, EventDetail, EventType, ListFlags, MemFlags, ModFlags, PausedReason, RunningReason,
  ShutoffReason, UndefineFlags, VcpuFlags, XmlFlags,
  type DomainInfo, type DomainRef, type DomainStateCode, type DomainStateInfo, type JobInfo, type JobProgressEvent,
  type LifecycleEvent, type NodeInfo, type SchedulerType, type VcpuInfo, VcpuState,
} from './connection.js';
import { SCHED_FIELDS, checkPin, checkSchedParams, pinsOf, withPin } from './tuning.js';
import type { KvStore, StoreEvent, Tx } from './store.js';
import {
  DOM0_NAME, DOM0_UUID, DomainObj, Registry, autostartKey, configKey, decodeName, managedSaveBlob, peekIdentity, runKey,
  type RunRecord,
} from './registry.js';
import {
  checkFlags, configUnsupported, dom0Unsupported, internalError, invalidArg, noDomainById, noDomainByName,
  noDomainByUuid, noSupport, notRunning, opFailed, opInvalid, argUnsupported, systemError,
} from './errors.js';
import { assignMacs, cloneDomain, diskIndex, nicIndex, parseDeviceXml, type DeviceDef } from './devices.js';
import { formatCapabilities, formatSysinfo } from './caps.js';
import { readSaveHeader, writeSaveHeader, type SavedRunState } from './savefile.js';
import { JobType, Jobs } from './jobs.js';

const BOOT_KEY = 'driver/boot.json';
/** The libvirt version we behave like (virConnectGetLibVersion). */
export const LIB_VERSION = 9_000_000;

const START_PAUSED = 1;
const START_AUTODESTROY = 2;
const START_BYPASS_CACHE = 4;
const START_FORCE_BOOT = 8;
const START_VALIDATE = 16;
const SAVE_BYPASS_CACHE = 1;
const SAVE_RUNNING = 2;
const SAVE_PAUSED = 4;
const DUMP_CRASH = 1;
const DUMP_LIVE = 2;
const DUMP_BYPASS_CACHE = 4;
const SHUTDOWN_ACPI = 1;
const SHUTDOWN_PARAVIRT = 16;
const REBOOT_ACPI = 1;
const REBOOT_PARAVIRT = 16;
const DESTROY_GRACEFUL = 1;
const DESTROY_REMOVE_LOGS = 2;
/** Clients (virsh) add it to say they accept string typed parameters; Xen's are all integers. */
const TYPED_PARAM_STRING_OKAY = 4;

/** Store transaction with the driver's bookkeeping: registry updates and lifecycle events. */
interface DTx {
  put(key: string, value: string, hint?: Domain): void;
  del(key: string): void;
  event(obj: DomainObj, event: number, detail: number, id?: number): void;
  raw: Tx;
}

/** Record `def` as domain `name`'s persistent definition, in the form its config key holds. */
function putConfig(t: DTx, name: string, def: Domain): void {
  t.put(configKey(name), formatDomainXml(def, { inactive: true, secure: true }), def);
}

export interface DriverOptions {
  /** The canonical URI reported by virConnectGetURI. */
  uri: string;
  store: KvStore;
  backend: HypervisorBackend;
  /** Definitions to put in place when the store is new: test:///default's guests. */
  preload?: Array<{ xml: string; autostart?: boolean }>;
}


export class XenDriver {
  readonly uri: string;
  readonly store: KvStore;
  readonly backend: HypervisorBackend;
  private readonly reg = new Registry();
  private readonly jobs = new Jobs();
  private readonly listeners = new Set<{ fn: (e: LifecycleEvent) => void; uuid?: string }>();
  private readonly progressListeners = new Set<(p: JobProgressEvent) => void>();
  private readonly unsubs: Array<() => void> = [];
  private poller: NodeJS.Timeout | undefined;
  private readonly txTouched = new WeakMap<Tx, Set<string>>();
  private closed = false;
  /** Errors from autostart at driver start (libvirt only logs them). */
  readonly autostartErrors: Array<{ name: string; error: Error }> = [];

  private constructor(opts: DriverOptions) {
    this.uri = opts.uri;
    this.store = opts.store;
    this.backend = opts.backend;
  }

  /** Load the state, reconcile it with the hypervisor and, on a freshly booted host, autostart. */
  static async start(opts: DriverOptions): Promise<XenDriver> {
    const d = new XenDriver(opts);
    d.unsubs.push(d.store.onChange((k, v) => d.applyKey(k, v)));
    d.unsubs.push(d.store.onEvent((e) => d.foreignEvent(e)));
    d.unsubs.push(d.backend.onEvent((e) => d.onBackendEvent(e)));
    d.load();
    if (opts.preload && !d.store.get(BOOT_KEY) && d.reg.byName.size <= 1) await d.preload(opts.preload);
    await d.reconcile();
    await d.driverStart();
    await d.backend.ready();
    return d;
  }

  // ---------------------------------------------------------------------------------------
  // state

  private load(): void {
    this.reg.add(new DomainObj(DOM0_NAME, DOM0_UUID, true));
    for (const k of this.store.keys('config/')) this.applyKey(k, this.store.get(k));
    for (const k of this.store.keys('run/')) this.applyKey(k, this.store.get(k));
  }

  /** Bring the registry in line with one store key (our own writes and other processes'). */
  private applyKey(key: string, value: string | undefined, hint?: Domain): void {
    if (key.startsWith('config/') && key.endsWith('.xml')) {
      const name = decodeName(key.slice(7, -4));
      let obj = this.reg.byName.get(name);
      if (value === undefined) {
        if (!obj) return;
        obj.setConfig(undefined);
        this.reg.prune(obj);
        return;
      }
      const uuid = hint?.uuid ?? peekIdentity(value).uuid;
      if (!uuid) return;
      if (!obj) {
        obj = new DomainObj(name, uuid);
        this.reg.add(obj);
      } else if (obj.uuid !== uuid) this.reg.reindexUuid(obj, uuid);
      obj.setConfig(value, hint);
    } else if (key.startsWith('run/') && key.endsWith('.json')) {
      const name = decodeName(key.slice(4, -5));
      let obj = this.reg.byName.get(name);
      if (value === undefined) {
        if (!obj) return;
        const old = obj.id;
        obj.setRun(undefined);
        this.reg.reindexId(obj, old);
        this.reg.prune(obj);
        return;
      }
      const rec = JSON.parse(value) as RunRecord;
      if (!obj) {
        obj = new DomainObj(name, rec.uuid);
        this.reg.add(obj);
      } else if (obj.uuid !== rec.uuid) this.reg.reindexUuid(obj, rec.uuid);
      const old = obj.id;
      obj.setRun(rec, hint);
      this.reg.reindexId(obj, old);
      this.reg.prune(obj);
    }
  }

  /**
   * A store transaction whose puts also update the registry, and whose events reach local
   * listeners after commit. If it rolls back, the registry is re-read from the store.
   */
  private tx<T>(fn: (t: DTx) => T | Promise<T>): Promise<T> {
    return this.store.transaction((raw) => {
      let touched = this.txTouched.get(raw);
      if (!touched) {
        const keys = new Set<string>();
        touched = keys;
        this.txTouched.set(raw, keys);
        raw.onRollback(() => { for (const k of keys) this.applyKey(k, this.store.get(k)); });
      }
      const keys = touched;
      const t: DTx = {
        raw,
        put: (key, value, hint) => {
          keys.add(key);
          raw.put(key, value);
          this.applyKey(key, value, hint);
        },
        del: (key) => {
          keys.add(key);
          raw.del(key);
          this.applyKey(key, undefined);
        },
        event: (obj, event, detail, id) => {
          const ev: LifecycleEvent = { domain: { name: obj.name, uuid: obj.uuid, id: id ?? obj.id }, event, detail };
          raw.event({ k: 'lifecycle', ...ev.domain, event, detail });
          raw.afterCommit(() => this.deliver(ev));
        },
      };
      return fn(t);
    });
  }

  private ref(obj: DomainObj): DomainRef {
    return { name: obj.name, uuid: obj.uuid, id: obj.id };
  }

  private find(dom: DomainRef): DomainObj {
    this.checkOpen();
    this.store.refresh();
    const uuid = parseUuid(dom?.uuid ?? '') ?? dom?.uuid;
    const obj = uuid ? this.reg.byUuid.get(uuid) : undefined;
    if (!obj) throw noDomainByUuid(uuid ?? '', dom?.name);
    return obj;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('the driver is closed');
  }

  private putRun(t: DTx, obj: DomainObj, rec: Omit<RunRecord, 'name' | 'uuid'>, live?: Domain): void {
    const full: RunRecord = { name: obj.name, uuid: obj.uuid, ...rec };
    if (live) {
      live.id = rec.id;
      full.xml = formatDomainXml(live, { secure: true });
    }
    t.put(runKey(obj.name), JSON.stringify(full), live);
  }

  private setState(t: DTx, obj: DomainObj, state: DomainStateCode, reason: number, live?: Domain): void {
    if (!obj.active) throw internalError(`domain '${obj.name}' is not active`);
    this.putRun(t, obj, { id: obj.id, state, reason }, live ?? cloneDomain(obj.liveDef()));
  }

  /** The domain is no longer running: record why, or forget a transient domain. */
  private markStopped(t: DTx, obj: DomainObj, reason: number): void {
    if (obj.persistent) this.putRun(t, obj, { id: -1, state: DomainState.SHUTOFF, reason });
    else t.del(runKey(obj.name));
  }

  // ---------------------------------------------------------------------------------------
  // driver start

  private async preload(list: Array<{ xml: string; autostart?: boolean }>): Promise<void> {
    await this.tx((t) => {
      for (const { xml, autostart } of list) {
        const def = this.parseDef(xml, 'preloaded domain');
        assignMacs(def);
        putConfig(t, def.name, def);
        if (autostart) t.put(autostartKey(def.name), configKey(def.name));
      }
    });
  }

  /** Runtime records whose domain the hypervisor no longer has are stale: the domain is off. */
  private async reconcile(): Promise<void> {
    const stale: DomainObj[] = [];
    for (const obj of this.reg.byName.values()) {
      if (obj.dom0 || !obj.active) continue;
      const info = await this.backend.info(obj.id);
      if (!info || info.uuid !== obj.uuid) stale.push(obj);
    }
    if (!stale.length) return;
    await this.tx(async (t) => {
      for (const obj of stale) {
        if (!obj.active) continue;
        const info = await this.backend.info(obj.id);
        if (!info || info.uuid !== obj.uuid) this.markStopped(t, obj, ShutoffReason.UNKNOWN);
      }
    });
  }

  /** Once per host boot, like libvirtd starting: forget what ran before, then autostart. */
  private async driverStart(): Promise<void> {
    const bootId = await this.backend.bootId();
    const seen = () => {
      const raw = this.store.get(BOOT_KEY);
      return raw !== undefined && (JSON.parse(raw) as { bootId: string }).bootId === bootId;
    };
    if (seen()) return;
    await this.tx(async (t) => {
      if (seen()) return;
      for (const obj of [...this.reg.byName.values()]) {
        if (!obj.dom0 && obj.run && obj.run.id >= 0) this.markStopped(t, obj, ShutoffReason.UNKNOWN);
      }
      t.put(BOOT_KEY, JSON.stringify({ bootId, at: new Date().toISOString() }));
      for (const obj of [...this.reg.byName.values()].sort((a, b) => a.name.localeCompare(b.name))) {
        if (obj.dom0 || !obj.persistent || obj.active || !this.store.get(autostartKey(obj.name))) continue;
        try {
          await this.startPersistent(t, obj, 0);
        } catch (e) {
          this.autostartErrors.push({ name: obj.name, error: e as Error });
        }
      }
    });
  }

  // ---------------------------------------------------------------------------------------
  // events

  private deliver(ev: LifecycleEvent): void {
    for (const l of this.listeners) {
      if (l.uuid && l.uuid !== ev.domain.uuid) continue;
      queueMicrotask(() => {
        try { l.fn(ev); } catch { /* a listener's failure is its own */ }
      });
    }
  }

  private foreignEvent(e: StoreEvent): void {
    if (e['k'] !== 'lifecycle') return;
    this.deliver({
      domain: { name: String(e['name']), uuid: String(e['uuid']), id: Number(e['id']) },
      event: Number(e['event']),
      detail: Number(e['detail']),
    });
  }

  async onLifecycle(fn: (e: LifecycleEvent) => void, dom?: DomainRef): Promise<() => Promise<void>> {
    this.checkOpen();
    const entry: { fn: (e: LifecycleEvent) => void; uuid?: string } = { fn };
    if (dom) entry.uuid = this.find(dom).uuid;
    this.listeners.add(entry);
    this.updatePoller();
    return async () => {
      this.listeners.delete(entry);
      this.updatePoller();
    };
  }

  onJobProgress(fn: (p: JobProgressEvent) => void): () => void {
    this.progressListeners.add(fn);
    return () => { this.progressListeners.delete(fn); };
  }

  /** With a shared state directory, watch it for other processes' events while anyone listens. */
  private updatePoller(): void {
    const want = this.store.persistent && this.listeners.size > 0 && !this.closed;
    if (want && !this.poller) {
      this.poller = setInterval(() => {
        try { this.store.refresh(); } catch { /* try again next tick */ }
      }, 50);
    } else if (!want && this.poller) {
      clearInterval(this.poller);
      this.poller = undefined;
    }
  }

  /** Xen says a guest stopped: apply libvirt's bookkeeping and the domain's lifecycle action. */
  private async onBackendEvent(e: BackendEvent): Promise<void> {
    await this.tx(async (t) => {
      const obj = this.reg.byId.get(e.domid);
      if (!obj || obj.uuid !== e.uuid || obj.dom0) return;
      const domid = obj.id;
      if (e.type === 'death') {
        this.markStopped(t, obj, ShutoffReason.DESTROYED);
        t.event(obj, EventType.STOPPED, EventDetail.STOPPED.DESTROYED, domid);
        return;
      }
      let action: LifecycleAction;
      let reason: number;
      let detail: number;
      const live = obj.liveDef();
      switch (e.reason) {
        case 'poweroff':
          action = live.onPoweroff ?? 'destroy';
          reason = ShutoffReason.SHUTDOWN;
          detail = EventDetail.STOPPED.SHUTDOWN;
          break;
        case 'reboot':
          action = live.onReboot ?? 'restart';
          reason = ShutoffReason.SHUTDOWN;
          detail = EventDetail.STOPPED.SHUTDOWN;
          break;
        case 'crash':
          action = live.onCrash ?? 'destroy';
          reason = ShutoffReason.CRASHED;
          detail = EventDetail.STOPPED.CRASHED;
          break;
        default:
          return; // suspend and soft reset are handled by whoever asked for them
      }
      if (action === 'preserve') {
        // Xen keeps the dead domain around (for inspection) until someone destroys it.
        this.setState(t, obj, DomainState.SHUTOFF, reason);
        t.event(obj, EventType.STOPPED, detail, domid);
        return;
      }
      if (action === 'coredump-destroy' || action === 'coredump-restart') await this.autoCoreDump(obj);
      await this.backend.destroy(domid);
      const restart = action === 'restart' || action === 'rename-restart' || action === 'coredump-restart';
      const transientDef = obj.persistent ? undefined : cloneDomain(live);
      if (restart && !obj.persistent) {
        // keep the transient domain's object: it comes straight back
        this.putRun(t, obj, { id: -1, state: DomainState.SHUTOFF, reason });
      } else this.markStopped(t, obj, reason);
      t.event(obj, EventType.STOPPED, detail, domid);
      if (restart) {
        try {
          const def = transientDef ?? obj.configDef();
          await this.bootDomain(t, obj, def, { paused: false });
        } catch {
          if (!obj.persistent) t.del(runKey(obj.name));
        }
      }
    });
  }

  /** on_crash coredump-*: libvirt writes NAME-TIMESTAMP into the driver's dump directory. */
  private async autoCoreDump(obj: DomainObj): Promise<void> {
    const stamp = new Date().toISOString().replace(/\.\d+Z$/, '').replace('T', '-');
    const blob = `dump/${obj.name.replace(/\//g, '_')}-${stamp}.core`;
    try {
      const file = this.store.blobPath(blob);
      if (file) {
        fs.mkdirSync(path.dirname(file), { recursive: true });
        await this.backend.coreDump(obj.id, file);
      } else {
        const tmp = path.join(os.tmpdir(), `xenvirt-dump-${process.pid}-${randomBytes(4).toString('hex')}`);
        await this.backend.coreDump(obj.id, tmp);
        await this.store.writeBlob(blob, fs.readFileSync(tmp));
        fs.rmSync(tmp, { force: true });
      }
    } catch {
      // libvirt logs a failed automatic dump and carries on with the action
    }
  }

  // ---------------------------------------------------------------------------------------
  // host

  async getCapabilities(): Promise<string> { return formatCapabilities(await this.backend.capabilities()); }

  async getSysinfo(flags = 0): Promise<string> {
    checkFlags(flags, 0, 'libxlConnectGetSysinfo');
    const s = await this.backend.sysinfo();
    if (!s) throw configUnsupported('Host SMBIOS information is not available');
    return formatSysinfo(s);
  }

  async nodeGetInfo(): Promise<NodeInfo> {
    const h = await this.backend.hostInfo();
    return { model: h.model, memory: h.memory, cpus: h.cpus, mhz: h.mhz, nodes: h.nodes, sockets: h.sockets, cores: h.cores, threads: h.threads };
  }

  async nodeGetFreeMemory(): Promise<bigint> {
    return BigInt((await this.backend.hostInfo()).freeMemory) * 1024n;
  }

  // ---------------------------------------------------------------------------------------
  // lookups and listing

  listAllDomains(flags = 0): DomainRef[] {
    this.checkOpen();
    checkFlags(flags, 0x3fff, 'virConnectListAllDomains');
    this.store.refresh();
    const want = (a: number, b: number, isA: boolean) => !(flags & (a | b)) || Boolean(flags & (isA ? a : b));
    const active: DomainObj[] = [];
    const inactive: DomainObj[] = [];
    for (const obj of this.reg.byName.values()) {
      if (!want(ListFlags.ACTIVE, ListFlags.INACTIVE, obj.active)) continue;
      if (!want(ListFlags.PERSISTENT, ListFlags.TRANSIENT, obj.persistent)) continue;
      if (flags & (ListFlags.RUNNING | ListFlags.PAUSED | ListFlags.SHUTOFF | ListFlags.OTHER)) {
        const st = obj.stateInfo().state;
        const ok = (st === DomainState.RUNNING && flags & ListFlags.RUNNING)
          || (st === DomainState.PAUSED && flags & ListFlags.PAUSED)
          || (st === DomainState.SHUTOFF && flags & ListFlags.SHUTOFF)
          || (st !== DomainState.RUNNING && st !== DomainState.PAUSED && st !== DomainState.SHUTOFF && flags & ListFlags.OTHER);
        if (!ok) continue;
      }
      if (flags & (ListFlags.MANAGEDSAVE | ListFlags.NO_MANAGEDSAVE)) {
        if (!want(ListFlags.MANAGEDSAVE, ListFlags.NO_MANAGEDSAVE, this.hasManagedSave(obj))) continue;
      }
      if (flags & (ListFlags.AUTOSTART | ListFlags.NO_AUTOSTART)) {
        if (!want(ListFlags.AUTOSTART, ListFlags.NO_AUTOSTART, this.autostart(obj))) continue;
      }
      if ((flags & ListFlags.HAS_SNAPSHOT) && !(flags & ListFlags.NO_SNAPSHOT)) continue; // no snapshots here
      (obj.active ? active : inactive).push(obj);
    }
    active.sort((a, b) => a.id - b.id);
    inactive.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const out: DomainRef[] = new Array(active.length + inactive.length);
    let i = 0;
    for (const o of active) out[i++] = { name: o.name, uuid: o.uuid, id: o.id };
    for (const o of inactive) out[i++] = { name: o.name, uuid: o.uuid, id: -1 };
    return out;
  }

  lookupByName(name: string): DomainRef {
    this.checkOpen();
    this.store.refresh();
    const obj = this.reg.byName.get(name);
    if (!obj) throw noDomainByName(name);
    return this.ref(obj);
  }

  lookupByUuid(uuid: string): DomainRef {
    this.checkOpen();
    this.store.refresh();
    const norm = parseUuid(uuid);
    if (!norm) throw invalidArg(`'${uuid}' is not a valid UUID`);
    const obj = this.reg.byUuid.get(norm);
    if (!obj) throw noDomainByUuid(norm);
    return this.ref(obj);
  }

  lookupById(id: number): DomainRef {
    this.checkOpen();
    if (!Number.isInteger(id) || id < 0) throw invalidArg(`id in virDomainLookupByID must be greater than or equal to 0`);
    this.store.refresh();
    const obj = this.reg.byId.get(id);
    if (!obj) throw noDomainById(id);
    return this.ref(obj);
  }

  // ---------------------------------------------------------------------------------------
  // define / undefine

  private parseDef(xml: string, what = 'domain definition'): Domain {
    if (typeof xml !== 'string' || xml.trim() === '') throw invalidArg(`${what}: the XML document is empty`);
    const def = parseDomainXml(xml, { fileName: what });
    if (def.type !== 'xen') {
      throw invalidArg(`could not find capabilities for domaintype=${def.type} (this driver runs Xen guests: use <domain type='xen'>)`);
    }
    if (def.name.includes('\n')) throw invalidArg(`name '${def.name}' contains a newline`);
    if (Buffer.byteLength(def.name) > 200) throw invalidArg(`domain name '${def.name.slice(0, 40)}...' is longer than 200 bytes`);
    return def;
  }

  /** virDomainObjListAdd's checks: one name per UUID and one UUID per name. */
  private checkUnique(def: Domain, live: boolean): DomainObj | undefined {
    const byU = this.reg.byUuid.get(def.uuid!);
    if (byU) {
      if (byU.name !== def.name) throw opFailed(`domain '${byU.name}' is already defined with uuid ${byU.uuid}`);
      if (byU.dom0) throw dom0Unsupported();
      if (live && byU.active) throw opInvalid(`domain '${def.name}' is already active`);
      return byU;
    }
    const byN = this.reg.byName.get(def.name);
    if (byN) throw opFailed(`domain '${def.name}' already exists with uuid ${byN.uuid}`);
    return undefined;
  }

  async defineXml(xml: string, flags = 0): Promise<DomainRef> {
    this.checkOpen();
    checkFlags(flags, 1 /* VALIDATE */, 'libxlDomainDefineXMLFlags');
    const def = this.parseDef(xml);
    assignMacs(def);
    const canonical = formatDomainXml(def, { inactive: true, secure: true });
    return this.jobs.run(def.uuid!, () => this.tx((t) => {
      const existing = this.checkUnique(def, false);
      const added = !existing?.persistent;
      t.put(configKey(def.name), canonical, def);
      const obj = this.reg.byName.get(def.name)!;
      t.event(obj, EventType.DEFINED, added ? EventDetail.DEFINED.ADDED : EventDetail.DEFINED.UPDATED);
      return this.ref(obj);
    }));
  }

  async undefine(dom: DomainRef, flags = 0): Promise<void> {
    checkFlags(flags, UndefineFlags.MANAGED_SAVE | UndefineFlags.SNAPSHOTS_METADATA | UndefineFlags.NVRAM | UndefineFlags.KEEP_NVRAM, 'libxlDomainUndefineFlags');
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, async () => {
      if (obj.dom0) throw dom0Unsupported();
      if (!obj.persistent) throw opInvalid('cannot undefine transient domain');
      if (this.hasManagedSave(obj)) {
        if (!(flags & UndefineFlags.MANAGED_SAVE)) throw opInvalid('Refusing to undefine while domain managed save image exists');
        await this.store.removeBlob(managedSaveBlob(obj.name));
      }
      await this.tx((t) => {
        if (!obj.persistent) throw opInvalid('cannot undefine transient domain');
        t.event(obj, EventType.UNDEFINED, EventDetail.UNDEFINED.REMOVED);
        t.del(autostartKey(obj.name));
        if (!obj.active && obj.run) t.del(runKey(obj.name));
        t.del(configKey(obj.name));
      });
    });
  }

  // ---------------------------------------------------------------------------------------
  // start / create / restore

  /** Give autoport graphics the lowest free port from 5900, as libxl's port allocator does. */
  private assignGraphicsPorts(live: Domain): void {
    const used = new Set<number>();
    for (const o of this.reg.byId.values()) {
      if (o.dom0 || !o.run?.xml) continue;
      for (const g of o.liveDef().devices.graphics) if (g.port !== undefined && g.port > 0) used.add(g.port);
    }
    for (const g of live.devices.graphics) {
      if ((g.type === 'vnc' || g.type === 'spice') && (g.autoport === 'yes' || g.port === -1 || g.port === undefined)) {
        let p = 5900;
        while (used.has(p)) p++;
        g.port = p;
        used.add(p);
      }
    }
  }

  /** Build the domain from `def` and record it running (or paused). */
  private async bootDomain(t: DTx, obj: DomainObj, def: Domain, opts: { paused: boolean }): Promise<void> {
    const live = cloneDomain(def);
    delete live.id;
    this.assignGraphicsPorts(live);
    const domid = await this.backend.start(live, { paused: opts.paused });
    this.putRun(t, obj, {
      id: domid,
      state: opts.paused ? DomainState.PAUSED : DomainState.RUNNING,
      reason: opts.paused ? PausedReason.USER : RunningReason.BOOTED,
    }, live);
    // a new transient domain entered the registry with its run record
    t.event(this.reg.byName.get(obj.name) ?? obj, EventType.STARTED, EventDetail.STARTED.BOOTED);
  }

  /** libxlDomainStartNew for a persistent domain: a managed save image is restored instead. */
  private async startPersistent(t: DTx, obj: DomainObj, flags: number): Promise<void> {
    const blob = managedSaveBlob(obj.name);
    if (this.store.hasBlob(blob)) {
      if (flags & START_FORCE_BOOT) await this.store.removeBlob(blob);
      else {
        await this.withImageFile(blob, async (file) => {
          const opts: { paused?: boolean; expect: DomainObj } = { expect: obj };
          if (flags & START_PAUSED) opts.paused = true;
          await this.restoreInto(t, file, opts);
        });
        await this.store.removeBlob(blob);
        return;
      }
    }
    await this.bootDomain(t, obj, obj.configDef(), { paused: (flags & START_PAUSED) !== 0 });
  }

  async create(dom: DomainRef, flags = 0): Promise<void> {
    checkFlags(flags, START_PAUSED | START_BYPASS_CACHE | START_FORCE_BOOT, 'libxlDomainCreateWithFlags');
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, () => this.tx(async (t) => {
      if (obj.active) throw opInvalid('domain is already running');
      if (!obj.persistent) throw noDomainByUuid(obj.uuid, obj.name);
      await this.startPersistent(t, obj, flags);
    }));
  }

  async createXml(xml: string, flags = 0): Promise<DomainRef> {
    this.checkOpen();
    checkFlags(flags, START_PAUSED | START_VALIDATE | START_BYPASS_CACHE, 'libxlDomainCreateXML');
    if (flags & START_AUTODESTROY) throw argUnsupported('autodestroy is not supported');
    const def = this.parseDef(xml);
    assignMacs(def);
    return this.jobs.run(def.uuid!, () => this.tx(async (t) => {
      let obj = this.checkUnique(def, true);
      if (!obj) {
        obj = new DomainObj(def.name, def.uuid!);
        // not in the registry until its run record is written: a failed start leaves no trace
      }
      await this.bootDomain(t, obj, def, { paused: (flags & START_PAUSED) !== 0 });
      return this.ref(this.reg.byName.get(def.name)!);
    }));
  }

  /** Let a managed-save blob be read through a real file (MemoryStore keeps blobs in memory). */
  private async withImageFile<T>(blob: string, fn: (file: string) => Promise<T>): Promise<T> {
    const real = this.store.blobPath(blob);
    if (real) return fn(real);
    const data = this.store.readBlob(blob);
    if (!data) throw opFailed(`managed save image ${blob} is missing`);
    const tmp = path.join(os.tmpdir(), `xenvirt-img-${process.pid}-${randomBytes(4).toString('hex')}`);
    fs.writeFileSync(tmp, data, { mode: 0o600 });
    try {
      return await fn(tmp);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  /**
   * Restore a save image (libxlDomainRestoreFlags / managed-save start). With `t` the domain is
   * recorded in that transaction, else in one of its own after the (slow) restore.
   */
  private async restoreInto(t: DTx | undefined, file: string, opts: { paused?: boolean; expect?: DomainObj }): Promise<DomainRef> {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw systemError(`Failed to open domain image file '${file}'`, e);
    }
    try {
      const hdr = readSaveHeader(fd, file);
      const def = parseDomainXml(hdr.xml, { fileName: `domain XML in ${file}` });
      delete def.id;
      if (opts.expect && (def.uuid !== opts.expect.uuid || def.name !== opts.expect.name)) {
        throw opFailed(`managed save image '${file}' holds domain '${def.name}', not '${opts.expect.name}'`);
      }
      const paused = opts.paused ?? hdr.runState === 2;
      const record = async (tt: DTx, domid: number) => {
        let obj = this.reg.byUuid.get(def.uuid!);
        if (!obj) obj = new DomainObj(def.name, def.uuid!);
        def.id = domid;
        this.putRun(tt, obj, {
          id: domid,
          state: paused ? DomainState.PAUSED : DomainState.RUNNING,
          reason: paused ? PausedReason.USER : RunningReason.RESTORED,
        }, def);
        obj = this.reg.byName.get(def.name)!;
        tt.event(obj, EventType.STARTED, EventDetail.STARTED.RESTORED);
        return this.ref(obj);
      };
      const progress = (processed: number, total: number) => this.progress('restore', def, processed, total);
      if (t) {
        this.checkUnique(def, true);
        const domid = await this.backend.restore(def, fd, { paused, progress });
        return await record(t, domid);
      }
      return await this.jobs.run(def.uuid!, async () => {
        await this.tx(() => { this.checkUnique(def, true); });
        const domid = await this.jobs.track(def.uuid!, 'restore', (p) => this.backend.restore(def, fd, {
          paused,
          progress: (a, b) => { p(a, b); progress(a, b); },
        }));
        try {
          return await this.tx((tt) => {
            this.checkUnique(def, true);
            return record(tt, domid);
          });
        } catch (e) {
          await this.backend.destroy(domid).catch(() => {});
          throw e;
        }
      });
    } finally {
      fs.closeSync(fd);
    }
  }

  async restore(file: string, xml?: string, flags = 0): Promise<DomainRef> {
    this.checkOpen();
    checkFlags(flags, SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED, 'libxlDomainRestoreFlags');
    if (xml) throw argUnsupported('xml modification unsupported');
    if ((flags & SAVE_RUNNING) && (flags & SAVE_PAUSED)) throw invalidArg('flags running and paused are mutually exclusive');
    const opts: { paused?: boolean } = {};
    if (flags & SAVE_PAUSED) opts.paused = true;
    if (flags & SAVE_RUNNING) opts.paused = false;
    return this.restoreInto(undefined, path.resolve(file), opts);
  }

  // ---------------------------------------------------------------------------------------
  // stop

  private requireActive(obj: DomainObj): void {
    if (obj.dom0) throw dom0Unsupported();
    if (!obj.active) throw notRunning();
  }

  async shutdown(dom: DomainRef, flags = 0): Promise<void> {
    checkFlags(flags, SHUTDOWN_ACPI | SHUTDOWN_PARAVIRT, 'libxlDomainShutdownFlags');
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, async () => {
      this.requireActive(obj);
      await this.backend.shutdown(obj.id, 'poweroff');
    });
  }

  async reboot(dom: DomainRef, flags = 0): Promise<void> {
    checkFlags(flags, REBOOT_ACPI | REBOOT_PARAVIRT, 'libxlDomainReboot');
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, async () => {
      this.requireActive(obj);
      await this.backend.shutdown(obj.id, 'reboot');
    });
  }

  async destroy(dom: DomainRef, flags = 0): Promise<void> {
    checkFlags(flags, DESTROY_GRACEFUL | DESTROY_REMOVE_LOGS, 'libxlDomainDestroyFlags');
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, () => this.tx(async (t) => {
      this.requireActive(obj);
      const domid = obj.id;
      await this.backend.destroy(domid);
      this.markStopped(t, obj, ShutoffReason.DESTROYED);
      t.event(obj, EventType.STOPPED, EventDetail.STOPPED.DESTROYED, domid);
    }));
  }

  async suspend(dom: DomainRef): Promise<void> {
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, () => this.tx(async (t) => {
      this.requireActive(obj);
      if (obj.stateInfo().state === DomainState.PAUSED) return;
      if (obj.stateInfo().state !== DomainState.RUNNING) throw opInvalid('domain is not running');
      await this.backend.pause(obj.id);
      this.setState(t, obj, DomainState.PAUSED, PausedReason.USER);
      t.event(obj, EventType.SUSPENDED, EventDetail.SUSPENDED.PAUSED);
    }));
  }

  async resume(dom: DomainRef): Promise<void> {
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, () => this.tx(async (t) => {
      this.requireActive(obj);
      if (obj.stateInfo().state !== DomainState.PAUSED) return;
      await this.backend.unpause(obj.id);
      this.setState(t, obj, DomainState.RUNNING, RunningReason.UNPAUSED);
      t.event(obj, EventType.RESUMED, EventDetail.RESUMED.UNPAUSED);
    }));
  }

  // ---------------------------------------------------------------------------------------
  // save / managed save / core dump

  private progress(operation: JobProgressEvent['operation'], d: { name: string; uuid?: string }, processed: number, total: number): void {
    for (const l of this.progressListeners) {
      try { l({ operation, domain: { name: d.name, uuid: d.uuid ?? '' }, processed, total }); } catch { /* ignore */ }
    }
  }

  /** libxlDoDomainSave: header + XML, then the hypervisor's image; the domain stops (saved). */
  private async doSave(obj: DomainObj, file: string, runState: SavedRunState, managed: boolean): Promise<void> {
    this.requireActive(obj);
    if (obj.stateInfo().state === DomainState.PAUSED) {
      throw opInvalid(`Domain '${obj.id}' has to be running because libxenlight will suspend it`);
    }
    if (obj.stateInfo().state !== DomainState.RUNNING) throw notRunning();
    const domid = obj.id;
    const xml = formatDomainXml(obj.liveDef(), { secure: true });
    let fd: number;
    try {
      fd = fs.openSync(file, 'w', 0o600);
    } catch (e) {
      throw systemError(`Failed to create domain save file '${file}'`, e);
    }
    const op = managed ? 'managedsave' : 'save';
    try {
      writeSaveHeader(fd, xml, runState);
      await this.jobs.track(obj.uuid, op, (p) => this.backend.save(domid, fd, (a, b) => {
        p(a, b);
        this.progress(op, obj, a, b);
      }));
      fs.fsyncSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(file, { force: true });
      throw e;
    }
    fs.closeSync(fd);
    await this.tx((t) => {
      this.markStopped(t, obj, ShutoffReason.SAVED);
      t.event(obj, EventType.STOPPED, EventDetail.STOPPED.SAVED, domid);
    });
  }

  async save(dom: DomainRef, file: string, xml?: string, flags = 0): Promise<void> {
    checkFlags(flags, SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED, 'libxlDomainSaveFlags');
    if (xml) throw argUnsupported('xml modification unsupported');
    if ((flags & SAVE_RUNNING) && (flags & SAVE_PAUSED)) throw invalidArg('flags running and paused are mutually exclusive');
    const obj = this.find(dom);
    const runState: SavedRunState = flags & SAVE_RUNNING ? 1 : flags & SAVE_PAUSED ? 2 : 0;
    await this.jobs.run(obj.uuid, () => this.doSave(obj, path.resolve(file), runState, false));
  }

  async managedSave(dom: DomainRef, flags = 0): Promise<void> {
    checkFlags(flags, SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED, 'libxlDomainManagedSave');
    const obj = this.find(dom);
    const runState: SavedRunState = flags & SAVE_RUNNING ? 1 : flags & SAVE_PAUSED ? 2 : 0;
    await this.jobs.run(obj.uuid, async () => {
      this.requireActive(obj);
      if (!obj.persistent) throw opInvalid('cannot do managed save for transient domain');
      const blob = managedSaveBlob(obj.name);
      const real = this.store.blobPath(blob);
      if (real) {
        fs.mkdirSync(path.dirname(real), { recursive: true });
        const tmp = `${real}.tmp-${process.pid}`;
        await this.doSave(obj, tmp, runState, true);
        fs.renameSync(tmp, real);
        const dfd = fs.openSync(path.dirname(real), 'r');
        try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
      } else {
        const tmp = path.join(os.tmpdir(), `xenvirt-msave-${process.pid}-${randomBytes(4).toString('hex')}`);
        try {
          await this.doSave(obj, tmp, runState, true);
          await this.store.writeBlob(blob, fs.readFileSync(tmp));
        } finally {
          fs.rmSync(tmp, { force: true });
        }
      }
    });
  }

  private hasManagedSave(obj: DomainObj): boolean {
    return !obj.dom0 && obj.persistent && this.store.hasBlob(managedSaveBlob(obj.name));
  }

  async hasManagedSaveImage(dom: DomainRef): Promise<boolean> { return this.hasManagedSave(this.find(dom)); }

  async managedSaveRemove(dom: DomainRef): Promise<void> {
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, () => this.store.removeBlob(managedSaveBlob(obj.name)));
  }

  async coreDump(dom: DomainRef, file: string, flags = 0): Promise<void> {
    checkFlags(flags, DUMP_CRASH | DUMP_LIVE | DUMP_BYPASS_CACHE, 'libxlDomainCoreDump');
    const obj = this.find(dom);
    const target = path.resolve(file);
    await this.jobs.run(obj.uuid, async () => {
      this.requireActive(obj);
      const domid = obj.id;
      // a file we cannot write fails the call before the guest is touched
      try {
        fs.writeFileSync(target, '', { flag: 'w', mode: 0o600 });
      } catch (e) {
        throw systemError(`Failed to create core dump file '${target}'`, e);
      }
      let paused = false;
      if (!(flags & DUMP_LIVE) && obj.stateInfo().state === DomainState.RUNNING) {
        await this.tx(async (t) => {
          await this.backend.pause(domid);
          this.setState(t, obj, DomainState.PAUSED, PausedReason.DUMP);
        });
        paused = true;
      }
      try {
        await this.jobs.track(obj.uuid, 'dump', (p) => this.backend.coreDump(domid, target, (a, b) => {
          p(a, b);
          this.progress('dump', obj, a, b);
        }));
        if (flags & DUMP_CRASH) {
          await this.tx(async (t) => {
            await this.backend.destroy(domid);
            this.markStopped(t, obj, ShutoffReason.CRASHED);
            t.event(obj, EventType.STOPPED, EventDetail.STOPPED.CRASHED, domid);
          });
        }
      } finally {
        if (paused && obj.active && obj.id === domid) {
          await this.tx(async (t) => {
            await this.backend.unpause(domid);
            this.setState(t, obj, DomainState.RUNNING, RunningReason.UNPAUSED);
          }).catch(() => {});
        }
      }
    });
  }

  // ---------------------------------------------------------------------------------------
  // information

  private dom0Def(info: GuestInfo): Domain {
    const d: Domain = {
      type: 'xen',
      id: 0,
      name: DOM0_NAME,
      uuid: DOM0_UUID,
      memory: info.maxMemory,
      currentMemory: info.memory,
      vcpu: { count: info.maxVcpus, placement: 'static' },
      os: { type: 'xen', arch: 'x86_64', machine: 'xenpv', boot: [] },
      clock: { offset: 'utc', adjustment: 'reset', timers: [] },
      onPoweroff: 'destroy',
      onReboot: 'restart',
      onCrash: 'restart',
      devices: emptyDevices(),
    };
    if (info.vcpus < info.maxVcpus) d.vcpu.current = info.vcpus;
    return d;
  }

  private async dom0Info(): Promise<GuestInfo> {
    const i = await this.backend.info(0);
    if (!i) throw internalError('unable to get Domain-0 information from libxenlight');
    return i;
  }

  async getInfo(dom: DomainRef): Promise<DomainInfo> {
    const obj = this.find(dom);
    if (obj.active) {
      const info = await this.backend.info(obj.id);
      if (info) {
        const def = obj.dom0 ? this.dom0Def(info) : obj.liveDef();
        return {
          state: obj.stateInfo().state,
          maxMem: def.memory,
          memory: info.memory,
          nrVirtCpu: info.vcpus,
          cpuTime: info.cpuTime,
        };
      }
    }
    const def = obj.currentDef();
    return {
      state: obj.stateInfo().state,
      maxMem: def.memory,
      memory: def.currentMemory ?? def.memory,
      nrVirtCpu: def.vcpu.current ?? def.vcpu.count,
      cpuTime: 0n,
    };
  }

  async getState(dom: DomainRef): Promise<DomainStateInfo> { return this.find(dom).stateInfo(); }

  async getXmlDesc(dom: DomainRef, flags = 0): Promise<string> {
    checkFlags(flags, XmlFlags.SECURE | XmlFlags.INACTIVE | XmlFlags.UPDATE_CPU | XmlFlags.MIGRATABLE, 'libxlDomainGetXMLDesc');
    const obj = this.find(dom);
    const secure = (flags & XmlFlags.SECURE) !== 0;
    if (obj.dom0) return formatDomainXml(this.dom0Def(await this.dom0Info()), { secure, inactive: (flags & XmlFlags.INACTIVE) !== 0 });
    const inactive = (flags & XmlFlags.INACTIVE) !== 0;
    const def = inactive && obj.persistent ? obj.configDef() : obj.currentDef();
    return formatDomainXml(def, { secure, inactive: inactive || !obj.active });
  }

  async getOsType(dom: DomainRef): Promise<string> {
    const obj = this.find(dom);
    return obj.dom0 ? 'xen' : obj.currentDef().os.type;
  }

  async isActive(dom: DomainRef): Promise<boolean> { return this.find(dom).active; }
  async isPersistent(dom: DomainRef): Promise<boolean> { return this.find(dom).persistent; }

  private autostart(obj: DomainObj): boolean {
    return !obj.dom0 && this.store.get(autostartKey(obj.name)) !== undefined;
  }

  async getAutostart(dom: DomainRef): Promise<boolean> { return this.autostart(this.find(dom)); }

  async setAutostart(dom: DomainRef, autostart: boolean): Promise<void> {
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, () => this.tx((t) => {
      if (obj.dom0) throw dom0Unsupported();
      if (!obj.persistent) throw opInvalid('cannot set autostart for transient domain');
      if (autostart === this.autostart(obj)) return;
      if (autostart) t.put(autostartKey(obj.name), configKey(obj.name));
      else t.del(autostartKey(obj.name));
    }));
  }

  async getMaxMemory(dom: DomainRef): Promise<number> {
    const obj = this.find(dom);
    if (obj.dom0) return (await this.dom0Info()).maxMemory;
    return obj.currentDef().memory;
  }

  /** virDomainObjUpdateModificationImpact: CURRENT means LIVE when running, else CONFIG. */
  private impact(obj: DomainObj, flags: number): { live: boolean; config: boolean } {
    let f = flags & (ModFlags.LIVE | ModFlags.CONFIG);
    if (f === 0) f = obj.active ? ModFlags.LIVE : ModFlags.CONFIG;
    if ((f & ModFlags.LIVE) && !obj.active) throw notRunning();
    if ((f & ModFlags.CONFIG) && (!obj.persistent || obj.dom0)) {
      throw opInvalid('transient domains do not have any persistent config');
    }
    return { live: (f & ModFlags.LIVE) !== 0, config: (f & ModFlags.CONFIG) !== 0 };
  }

  async setMemory(dom: DomainRef, kib: number, flags = 0): Promise<void> {
    checkFlags(flags, MemFlags.LIVE | MemFlags.CONFIG | MemFlags.MAXIMUM, 'libxlDomainSetMemoryFlags');
    if (!Number.isSafeInteger(kib) || kib < 0) throw invalidArg(`memory ${kib} is not a valid size in KiB`);
    if (kib === 0) throw invalidArg('memory in virDomainSetMemoryFlags must not be zero');
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, () => this.tx(async (t) => {
      const { live, config } = this.impact(obj, flags);
      const maximum = (flags & MemFlags.MAXIMUM) !== 0;
      if (obj.dom0) {
        if (maximum) await this.backend.setMaxMemory(0, kib);
        else {
          const info = await this.dom0Info();
          if (kib > info.maxMemory) throw invalidArg('cannot set memory higher than max memory');
          await this.backend.setMemory(0, kib);
        }
        return;
      }
      const cfg = config ? cloneDomain(obj.configDef()) : undefined;
      const lv = live ? cloneDomain(obj.liveDef()) : undefined;
      if (maximum) {
        if (lv) {
          await this.backend.setMaxMemory(obj.id, kib);
          lv.memory = kib;
          if ((lv.currentMemory ?? kib) > kib) lv.currentMemory = kib;
        }
        if (cfg) {
          cfg.memory = kib;
          if ((cfg.currentMemory ?? kib) > kib) cfg.currentMemory = kib;
        }
      } else {
        for (const d of [lv, cfg]) {
          if (d && kib > d.memory) throw invalidArg('cannot set memory higher than max memory');
        }
        if (lv) {
          await this.backend.setMemory(obj.id, kib);
          lv.currentMemory = kib;
        }
        if (cfg) cfg.currentMemory = kib;
      }
      if (lv) this.setState(t, obj, obj.stateInfo().state, obj.stateInfo().reason, lv);
      if (cfg) putConfig(t, obj.name, cfg);
    }));
  }

  async setMaxMemory(dom: DomainRef, kib: number): Promise<void> {
    await this.setMemory(dom, kib, MemFlags.MAXIMUM);
  }

  async setVcpus(dom: DomainRef, count: number, flags = 0): Promise<void> {
    checkFlags(flags, VcpuFlags.LIVE | VcpuFlags.CONFIG | VcpuFlags.MAXIMUM, 'libxlDomainSetVcpusFlags');
    if (!Number.isSafeInteger(count) || count < 0) throw invalidArg(`vcpu count ${count} is not valid`);
    if (count === 0) throw invalidArg('nvcpus is zero');
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, () => this.tx(async (t) => {
      if (obj.dom0) throw dom0Unsupported();
      let f = flags;
      if ((f & (VcpuFlags.LIVE | VcpuFlags.CONFIG)) === 0) f |= obj.active && !(f & VcpuFlags.MAXIMUM) ? VcpuFlags.LIVE : VcpuFlags.CONFIG;
      if ((f & (VcpuFlags.MAXIMUM | VcpuFlags.LIVE)) === (VcpuFlags.MAXIMUM | VcpuFlags.LIVE)) {
        throw invalidArg(`invalid flag combination: (0x${f.toString(16)})`);
      }
      if (!obj.active && (f & VcpuFlags.LIVE)) throw opInvalid('cannot set vcpus on an inactive domain');
      if (!obj.persistent && (f & VcpuFlags.CONFIG)) throw opInvalid('cannot change persistent config of a transient domain');
      let max = (await this.backend.hostInfo()).cpus;
      if (!(f & VcpuFlags.MAXIMUM)) {
        if (f & VcpuFlags.LIVE) max = Math.min(max, obj.liveDef().vcpu.count);
        if (f & VcpuFlags.CONFIG) max = Math.min(max, obj.configDef().vcpu.count);
      }
      if (count > max) throw invalidArg(`requested vcpus is greater than max allowable vcpus for the domain: ${count} > ${max}`);
      if (f & VcpuFlags.CONFIG) {
        const cfg = cloneDomain(obj.configDef());
        if (f & VcpuFlags.MAXIMUM) {
          // virDomainDefSetVcpusMax: new vcpus come offline, fewer ones take online ones away
          const online = Math.min(cfg.vcpu.current ?? cfg.vcpu.count, count);
          cfg.vcpu.count = count;
          if (online === count) delete cfg.vcpu.current;
          else cfg.vcpu.current = online;
        } else if (count === cfg.vcpu.count) delete cfg.vcpu.current;
        else cfg.vcpu.current = count;
        putConfig(t, obj.name, cfg);
      }
      if (f & VcpuFlags.LIVE) {
        await this.backend.setVcpus(obj.id, count);
        const lv = cloneDomain(obj.liveDef());
        if (count === lv.vcpu.count) delete lv.vcpu.current;
        else lv.vcpu.current = count;
        this.setState(t, obj, obj.stateInfo().state, obj.stateInfo().reason, lv);
      }
    }));
  }

  async getVcpusFlags(dom: DomainRef, flags = 0): Promise<number> {
    checkFlags(flags, VcpuFlags.LIVE | VcpuFlags.CONFIG | VcpuFlags.MAXIMUM, 'libxlDomainGetVcpusFlags');
    const obj = this.find(dom);
    let f = flags;
    if ((f & (VcpuFlags.LIVE | VcpuFlags.CONFIG)) === 0) f |= obj.active ? VcpuFlags.LIVE : VcpuFlags.CONFIG;
    if ((f & VcpuFlags.LIVE) && (f & VcpuFlags.CONFIG)) throw invalidArg(`invalid flag combination: (0x${f.toString(16)})`);
    let def: Domain;
    if (f & VcpuFlags.LIVE) {
      if (!obj.active) throw opInvalid('Domain is not running');
      def = obj.dom0 ? this.dom0Def(await this.dom0Info()) : obj.liveDef();
    } else {
      if (!obj.persistent) throw opInvalid('domain is transient');
      def = obj.dom0 ? this.dom0Def(await this.dom0Info()) : obj.configDef();
    }
    return f & VcpuFlags.MAXIMUM ? def.vcpu.count : def.vcpu.current ?? def.vcpu.count;
  }

  async getMaxVcpus(dom: DomainRef): Promise<number> {
    return this.getVcpusFlags(dom, VcpuFlags.LIVE | VcpuFlags.MAXIMUM);
  }

  // ---------------------------------------------------------------------------------------
  // vcpu affinity and scheduler

  /** The backend's optional call, or libvirt's "not supported" naming the API. */
  private backendCall<K extends 'vcpuInfo' | 'pinVcpu' | 'schedulerParams' | 'setSchedulerParams'>(k: K, api: string): NonNullable<HypervisorBackend[K]> {
    const fn = this.backend[k];
    if (!fn) throw noSupport(api);
    return fn.bind(this.backend) as NonNullable<HypervisorBackend[K]>;
  }

  async getVcpus(dom: DomainRef): Promise<VcpuInfo[]> {
    const obj = this.find(dom);
    if (!obj.active) throw opInvalid('cannot list vcpus for an inactive domain');
    const list = await this.backendCall('vcpuInfo', 'virDomainGetVcpus')(obj.id);
    return list.map((v) => ({
      number: v.number,
      state: v.state === 'offline' ? VcpuState.OFFLINE : v.state === 'running' ? VcpuState.RUNNING : VcpuState.BLOCKED,
      cpuTime: v.cpuTime,
      cpu: v.cpu,
      affinity: v.cpumap,
    }));
  }

  async getVcpuPinInfo(dom: DomainRef, flags = 0): Promise<number[][]> {
    checkFlags(flags, ModFlags.LIVE | ModFlags.CONFIG, 'libxlDomainGetVcpuPinInfo');
    const obj = this.find(dom);
    const { live } = this.impact(obj, flags);
    if (live) return (await this.getVcpus(dom)).map((v) => v.affinity);
    return pinsOf(obj.configDef(), (await this.backend.hostInfo()).cpus);
  }

  async pinVcpu(dom: DomainRef, vcpu: number, cpus: number[], flags = 0): Promise<void> {
    checkFlags(flags, ModFlags.LIVE | ModFlags.CONFIG, 'libxlDomainPinVcpuFlags');
    const obj = this.find(dom);
    const hostCpus = (await this.backend.hostInfo()).cpus;
    await this.jobs.run(obj.uuid, () => this.tx(async (t) => {
      const { live, config } = this.impact(obj, flags);
      if (config) {
        const cfg = obj.configDef();
        checkPin(vcpu, cpus, cfg.vcpu.count, hostCpus);
        const next = withPin(cfg, vcpu, cpus);
        putConfig(t, obj.name, next);
      }
      if (live) {
        const lv = obj.liveDef();
        checkPin(vcpu, cpus, lv.vcpu.current ?? lv.vcpu.count, hostCpus);
        await this.backendCall('pinVcpu', 'virDomainPinVcpuFlags')(obj.id, vcpu, cpus);
        this.setState(t, obj, obj.stateInfo().state, obj.stateInfo().reason, withPin(lv, vcpu, cpus));
      }
    }));
  }

  private async scheduler(): Promise<string> {
    const host = await this.backend.hostInfo();
    return host.scheduler ?? 'credit';
  }

  async getSchedulerType(dom: DomainRef): Promise<SchedulerType> {
    this.find(dom);
    const type = await this.scheduler();
    return { type, nparams: SCHED_FIELDS[type]?.length ?? 0 };
  }

  async getSchedulerParameters(dom: DomainRef, flags = 0): Promise<Record<string, number>> {
    checkFlags(flags, ModFlags.LIVE | ModFlags.CONFIG | TYPED_PARAM_STRING_OKAY, 'libxlDomainGetSchedulerParametersFlags');
    const obj = this.find(dom);
    const { live } = this.impact(obj, flags);
    const fields = SCHED_FIELDS[await this.scheduler()] ?? [];
    const src: { weight?: number; cap?: number } = live
      ? await this.backendCall('schedulerParams', 'virDomainGetSchedulerParameters')(obj.id)
      // what a start applies: the definition's values, else Xen's defaults
      : { weight: 256, cap: 0, ...obj.configDef().cputune };
    const out: Record<string, number> = {};
    for (const f of fields) out[f] = (f === 'weight' ? src.weight : src.cap) ?? 0;
    return out;
  }

  async setSchedulerParameters(dom: DomainRef, params: Record<string, number>, flags = 0): Promise<void> {
    checkFlags(flags, ModFlags.LIVE | ModFlags.CONFIG | TYPED_PARAM_STRING_OKAY, 'libxlDomainSetSchedulerParametersFlags');
    const obj = this.find(dom);
    const p = checkSchedParams(await this.scheduler(), params);
    await this.jobs.run(obj.uuid, () => this.tx(async (t) => {
      if (obj.dom0 && (flags & ModFlags.CONFIG)) throw dom0Unsupported();
      const { live, config } = obj.dom0 ? { live: true, config: false } : this.impact(obj, flags);
      const apply = (def: Domain): Domain => {
        const next = cloneDomain(def);
        next.cputune = { ...(next.cputune ?? { vcpupins: [] }), ...p };
        return next;
      };
      if (config) {
        // libvirt's domain XML keeps the weight (<shares>) but has no element for the cap
        if (p.cap !== undefined) throw argUnsupported('the scheduler cap can only be changed on the running domain (--live)');
        const next = apply(obj.configDef());
        putConfig(t, obj.name, next);
      }
      if (live) {
        await this.backendCall('setSchedulerParams', 'virDomainSetSchedulerParameters')(obj.id, p);
        if (!obj.dom0) this.setState(t, obj, obj.stateInfo().state, obj.stateInfo().reason, apply(obj.liveDef()));
      }
    }));
  }

  getJobInfo(dom: DomainRef): JobInfo {
    const obj = this.find(dom);
    const p = this.jobs.progress.get(obj.uuid);
    if (!p) return { type: JobType.NONE, timeElapsed: 0, timeRemaining: 0, dataTotal: 0, dataProcessed: 0, dataRemaining: 0 };
    return {
      type: JobType.UNBOUNDED,
      timeElapsed: Date.now() - p.startedAt,
      timeRemaining: 0,
      dataTotal: p.total,
      dataProcessed: p.processed,
      dataRemaining: Math.max(0, p.total - p.processed),
    };
  }

  // ---------------------------------------------------------------------------------------
  // devices

  private deviceFlags(flags: number, fn: string): void {
    checkFlags(flags, ModFlags.LIVE | ModFlags.CONFIG, fn);
  }

  async attachDevice(dom: DomainRef, xml: string, flags = 0): Promise<void> {
    this.deviceFlags(flags, 'libxlDomainAttachDeviceFlags');
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, () => this.tx(async (t) => {
      if (obj.dom0) throw dom0Unsupported();
      const { live, config } = this.impact(obj, flags);
      const owner = live ? obj.liveDef() : obj.configDef();
      const dev = parseDeviceXml(xml, owner, 'attached');
      if (dev.kind === 'interface' && !dev.nic.mac) {
        const wrap = cloneDomain(owner);
        wrap.devices.interfaces.push(dev.nic);
        assignMacs(wrap);
      }
      let cfg: Domain | undefined;
      if (config) {
        cfg = cloneDomain(obj.configDef());
        this.attachConfig(cfg, structuredClone(dev));
      }
      if (live) {
        const lv = cloneDomain(obj.liveDef());
        await this.attachLive(obj, lv, structuredClone(dev));
        this.setState(t, obj, obj.stateInfo().state, obj.stateInfo().reason, lv);
      }
      if (cfg) putConfig(t, obj.name, cfg);
    }));
  }

  private attachConfig(cfg: Domain, dev: DeviceDef): void {
    if (dev.kind === 'disk') {
      if (diskIndex(cfg, dev.disk.target.dev) >= 0) throw opInvalid(`target ${dev.disk.target.dev} already exists.`);
      cfg.devices.disks.push(dev.disk);
    } else {
      if (cfg.devices.interfaces.some((n) => n.mac === dev.nic.mac)) throw invalidArg(`network device with mac ${dev.nic.mac} already exists`);
      cfg.devices.interfaces.push(dev.nic);
    }
  }

  private async attachLive(obj: DomainObj, lv: Domain, dev: DeviceDef): Promise<void> {
    if (dev.kind === 'disk') {
      const disk = dev.disk;
      if (disk.device === 'cdrom') {
        const i = lv.devices.disks.findIndex((d) => d.target.dev === disk.target.dev && d.target.bus === disk.target.bus);
        if (i < 0) throw internalError(`No device with bus '${disk.target.bus}' and target '${disk.target.dev}'`);
        const orig = lv.devices.disks[i]!;
        if (orig.device !== 'cdrom') throw internalError(`Removable media not supported for ${disk.device} device`);
        if (disk.source) orig.source = disk.source;
        else delete orig.source;
        orig.type = disk.type;
        return;
      }
      if (disk.device !== 'disk') throw configUnsupported(`disk device type '${disk.device}' cannot be hotplugged`);
      if (disk.target.bus !== 'xen') throw configUnsupported(`disk bus '${disk.target.bus}' cannot be hotplugged.`);
      if (diskIndex(lv, disk.target.dev) >= 0) throw opFailed(`target ${disk.target.dev} already exists`);
      if (!disk.source?.path && disk.type !== 'network') throw internalError('disk source path is missing');
      await this.backend.attachDisk(obj.id, disk);
      lv.devices.disks.push(disk);
    } else {
      if (lv.devices.interfaces.some((n) => n.mac === dev.nic.mac)) throw invalidArg(`network device with mac ${dev.nic.mac} already exists`);
      await this.backend.attachInterface(obj.id, dev.nic);
      lv.devices.interfaces.push(dev.nic);
    }
  }

  async detachDevice(dom: DomainRef, xml: string, flags = 0): Promise<void> {
    this.deviceFlags(flags, 'libxlDomainDetachDeviceFlags');
    const obj = this.find(dom);
    await this.jobs.run(obj.uuid, () => this.tx(async (t) => {
      if (obj.dom0) throw dom0Unsupported();
      const { live, config } = this.impact(obj, flags);
      const dev = parseDeviceXml(xml, live ? obj.liveDef() : obj.configDef(), 'detached');
      let cfg: Domain | undefined;
      if (config) {
        cfg = cloneDomain(obj.configDef());
        if (dev.kind === 'disk') {
          const i = diskIndex(cfg, dev.disk.target.dev);
          if (i < 0) throw invalidArg(`no target device ${dev.disk.target.dev}`);
          cfg.devices.disks.splice(i, 1);
        } else cfg.devices.interfaces.splice(nicIndex(cfg, dev.nic), 1);
      }
      if (live) {
        const lv = cloneDomain(obj.liveDef());
        if (dev.kind === 'disk') {
          const i = diskIndex(lv, dev.disk.target.dev);
          if (i < 0) throw opFailed(`disk ${dev.disk.target.dev} not found`);
          const disk = lv.devices.disks[i]!;
          if (disk.device !== 'disk') throw configUnsupported(`device type '${disk.device}' cannot hot unplugged`);
          if (disk.target.bus !== 'xen') throw configUnsupported(`disk bus '${disk.target.bus}' cannot be hot unplugged.`);
          await this.backend.detachDisk(obj.id, disk);
          lv.devices.disks.splice(i, 1);
        } else {
          const i = nicIndex(lv, dev.nic);
          await this.backend.detachInterface(obj.id, lv.devices.interfaces[i]!);
          lv.devices.interfaces.splice(i, 1);
        }
        this.setState(t, obj, obj.stateInfo().state, obj.stateInfo().reason, lv);
      }
      if (cfg) putConfig(t, obj.name, cfg);
    }));
  }

  // ---------------------------------------------------------------------------------------
  // native formats

  domainXmlFromNative(format: string, config: string): string {
    // As libvirt's libxl driver: inactive, without secrets (virsh never shows VNC passwords here).
    return formatDomainXml(domainFromNative(format, config), { inactive: true });
  }

  domainXmlToNative(format: string, xml: string): string {
    return domainToNative(format, parseDomainXml(xml, { fileName: 'domain XML' }));
  }

  // ---------------------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.updatePoller();
    for (const u of this.unsubs) u();
    this.listeners.clear();
    await this.backend.close();
    await this.store.close();
  }
}
