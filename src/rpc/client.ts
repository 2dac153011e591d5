/**
 * RemoteConnection: the Connection interface over libvirt's remote protocol, so xenvirt talks
 * to a real libvirtd (or to xenvirtd) exactly as libvirt's own remote driver does.
 *
 * openRemote() performs the handshake libvirt 9.0's client performs (design facts §2.1):
 * AUTH_LIST, SUPPORTS_FEATURE(PROGRAM_KEEPALIVE) before the open, CONNECT_OPEN with the URI
 * minus its transport and client-side parameters (§3), CONNECT_GET_URI when that name is
 * empty, then SUPPORTS_FEATURE(REMOTE_EVENT_CALLBACK) and (REMOTE_CLOSE_CALLBACK). Keepalive
 * starts when the daemon supports it. Only the unix transport exists for now.
 */
import { existsSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { VirtError, ErrorDomain } from '../errors.js';
import type {
  Connection, DomainRef, DomainInfo, DomainStateCode, DomainStateInfo, NodeInfo, LifecycleEvent, JobInfo,
  SchedulerType, VcpuInfo,
} from '../driver/connection.js';
import { VcpuFlags } from '../driver/connection.js';
import { cpuMapLen, cpusFromMap, mapsFromCpus, recordFromTypedParams, typedParamsFromRecord } from './cpumap.js';
import { parseUri, defaultSocketPath, type ParsedUri } from '../uri/index.js';
import { RpcClient, connectUnix } from './rpc-client.js';
import { RpcError, Feature, AuthType, ConnectFlags, DomainEventId, domainRefFromWire, domainRefToWire, KEEPALIVE_INTERVAL_MS, KEEPALIVE_COUNT } from './protocol.js';
import { fromCString, uuidFromString, XdrReader } from './xdr.js';
import type { Packet } from './packet.js';
import { RemoteDomainEventCallbackLifecycleMsg, RemoteDomainEventLifecycleMsg } from './generated/remote-types.js';
import { RemoteProcedure } from './generated/remote-procedures.js';

export interface OpenRemoteOptions {
  /** Open read-only (CONNECT_OPEN flag VIR_CONNECT_RO; the `-ro` socket by default). */
  readonly?: boolean;
  /** The socket to use instead of the URI's `?socket=` or the default rules (facts §4). */
  socketPath?: string;
  /** The name sent in CONNECT_OPEN instead of the one derived from the URI. */
  name?: string;
  /** Keepalive interval and count; `false` never probes PROGRAM_KEEPALIVE (like python without an event loop). */
  keepalive?: false | { intervalMs?: number; count?: number };
  /** An already-connected stream to speak over (tests, proxies); skips the socket lookup. */
  stream?: Duplex;
}

/** The capabilities the daemon reported during the handshake. */
export interface RemoteFeatures {
  keepalive: boolean;
  eventCallbacks: boolean;
  closeCallbacks: boolean;
}

type LifecycleListener = (e: LifecycleEvent) => void;

/** Events that arrived before their registration's reply was processed, by callback id. */
const MAX_EARLY_EVENTS = 64;

export class RemoteConnection implements Connection {
  /** The low-level RPC client (for procedures the Connection interface does not cover). */
  readonly rpc: RpcClient;
  private uri: string;
  private readonly ro: boolean;
  private featureSet: RemoteFeatures = { keepalive: false, eventCallbacks: false, closeCallbacks: false };
  private readonly callbacks = new Map<number, LifecycleListener>();
  private readonly early = new Map<number, LifecycleEvent[]>();
  /** Listeners of the legacy (pre-callback-id) event API, with their optional domain filter. */
  private readonly legacyListeners = new Set<{ listener: LifecycleListener; uuid?: string }>();
  private legacyRegistered = false;
  private closing = false;

  private constructor(stream: Duplex, uri: string, readonly: boolean) {
    this.uri = uri;
    this.ro = readonly;
    this.rpc = new RpcClient(stream, { onMessage: (p) => this.onMessage(p) });
  }

  /** Connect over `stream` and run the open handshake. Prefer openRemote(). */
  static async open(stream: Duplex, opts: { uri: string; name: string; readonly: boolean; keepalive: OpenRemoteOptions['keepalive'] }): Promise<RemoteConnection> {
    const conn = new RemoteConnection(stream, opts.uri, opts.readonly);
    try {
      await conn.handshake(opts.name, opts.keepalive);
    } catch (e) {
      // libvirt's client sends no CONNECT_CLOSE after a failed open; it just drops the socket.
      conn.rpc.close();
      throw e;
    }
    return conn;
  }

  get features(): RemoteFeatures {
    return { ...this.featureSet };
  }

  private async handshake(name: string, keepalive: OpenRemoteOptions['keepalive']): Promise<void> {
    await this.authenticate();
    if (keepalive !== false) this.featureSet.keepalive = await this.probe(Feature.PROGRAM_KEEPALIVE);
    await this.rpc.callProc('CONNECT_OPEN', { name, flags: this.ro ? ConnectFlags.RO : 0 });
    if (name === '') this.uri = (await this.rpc.callProc('CONNECT_GET_URI')).uri;
    this.featureSet.eventCallbacks = await this.probe(Feature.REMOTE_EVENT_CALLBACK);
    this.featureSet.closeCallbacks = await this.probe(Feature.REMOTE_CLOSE_CALLBACK);
    if (this.featureSet.keepalive && keepalive !== false) {
      this.rpc.startKeepalive(keepalive?.intervalMs ?? KEEPALIVE_INTERVAL_MS, keepalive?.count ?? KEEPALIVE_COUNT);
    }
  }

  /** AUTH_LIST; "none" needs nothing more, polkit one call; an old daemon without AUTH_LIST means none. */
  private async authenticate(): Promise<void> {
    let types: number[];
    try {
      types = (await this.rpc.callProc('AUTH_LIST')).types;
    } catch (e) {
      if (e instanceof VirtError && e.codeName === 'NO_SUPPORT') return;
      throw e;
    }
    if (types.length === 0 || types.includes(AuthType.NONE)) return;
    if (types.includes(AuthType.POLKIT)) {
      const r = await this.rpc.callProc('AUTH_POLKIT');
      if (r.complete) return;
    }
    throw new VirtError('AUTH_FAILED', `authentication failed: unsupported authentication type${types.length > 1 ? 's' : ''} ${types.join(', ')} (only none and polkit are implemented)`, ErrorDomain.REMOTE);
  }

  /** SUPPORTS_FEATURE; an error answer (e.g. before the open) means "no". */
  private async probe(feature: number): Promise<boolean> {
    try {
      return (await this.rpc.callProc('CONNECT_SUPPORTS_FEATURE', { feature })).supported !== 0;
    } catch (e) {
      if (e instanceof RpcError) return false;
      throw e;
    }
  }

  // -- host ------------------------------------------------------------------------------------

  async getUri(): Promise<string> {
    return this.uri;
  }

  async getHostname(): Promise<string> {
    return (await this.rpc.callProc('CONNECT_GET_HOSTNAME')).hostname;
  }

  async getVersion(): Promise<number> {
    return Number((await this.rpc.callProc('CONNECT_GET_VERSION')).hv_ver);
  }

  async getLibVersion(): Promise<number> {
    return Number((await this.rpc.callProc('CONNECT_GET_LIB_VERSION')).lib_ver);
  }

  async getType(): Promise<string> {
    return (await this.rpc.callProc('CONNECT_GET_TYPE')).type;
  }

  async getCapabilities(): Promise<string> {
    return (await this.rpc.callProc('CONNECT_GET_CAPABILITIES')).capabilities;
  }

  async getSysinfo(): Promise<string> {
    return (await this.rpc.callProc('CONNECT_GET_SYSINFO', { flags: 0 })).sysinfo;
  }

  async nodeGetInfo(): Promise<NodeInfo> {
    const r = await this.rpc.callProc('NODE_GET_INFO');
    return {
      model: fromCString(r.model), memory: Number(r.memory), cpus: r.cpus, mhz: r.mhz,
      nodes: r.nodes, sockets: r.sockets, cores: r.cores, threads: r.threads,
    };
  }

  async nodeGetFreeMemory(): Promise<bigint> {
    return (await this.rpc.callProc('NODE_GET_FREE_MEMORY')).freeMem;
  }

  isReadOnly(): boolean {
    return this.ro;
  }

  // -- lookups and lists -----------------------------------------------------------------------

  async listAllDomains(flags = 0): Promise<DomainRef[]> {
    const r = await this.rpc.callProc('CONNECT_LIST_ALL_DOMAINS', { need_results: 1, flags });
    return r.domains.map(domainRefFromWire);
  }

  async lookupByName(name: string): Promise<DomainRef> {
    return domainRefFromWire((await this.rpc.callProc('DOMAIN_LOOKUP_BY_NAME', { name })).dom);
  }

  async lookupByUuid(uuid: string): Promise<DomainRef> {
    return domainRefFromWire((await this.rpc.callProc('DOMAIN_LOOKUP_BY_UUID', { uuid: uuidFromString(uuid) })).dom);
  }

  async lookupById(id: number): Promise<DomainRef> {
    return domainRefFromWire((await this.rpc.callProc('DOMAIN_LOOKUP_BY_ID', { id })).dom);
  }

  // -- lifecycle -------------------------------------------------------------------------------
  // Where libvirt has a plain and a *_FLAGS procedure, the plain one is used when no flags
  // are given: that is what virsh and python send (facts §8), and old daemons know it.

  async defineXml(xml: string, flags?: number): Promise<DomainRef> {
    const r = flags === undefined
      ? await this.rpc.callProc('DOMAIN_DEFINE_XML', { xml })
      : await this.rpc.callProc('DOMAIN_DEFINE_XML_FLAGS', { xml, flags });
    return domainRefFromWire(r.dom);
  }

  async undefine(dom: DomainRef, flags?: number): Promise<void> {
    if (flags === undefined) await this.rpc.callProc('DOMAIN_UNDEFINE', { dom: domainRefToWire(dom) });
    else await this.rpc.callProc('DOMAIN_UNDEFINE_FLAGS', { dom: domainRefToWire(dom), flags });
  }

  async createXml(xml: string, flags = 0): Promise<DomainRef> {
    return domainRefFromWire((await this.rpc.callProc('DOMAIN_CREATE_XML', { xml_desc: xml, flags })).dom);
  }

  /** Start a defined domain; `dom.id` is refreshed, as libvirt's remote driver does with a lookup. */
  async create(dom: DomainRef, flags?: number): Promise<void> {
    if (flags === undefined) {
      await this.rpc.callProc('DOMAIN_CREATE', { dom: domainRefToWire(dom) });
      const fresh = await this.rpc.callProc('DOMAIN_LOOKUP_BY_UUID', { uuid: uuidFromString(dom.uuid) });
      dom.id = fresh.dom.id;
    } else {
      const r = await this.rpc.callProc('DOMAIN_CREATE_WITH_FLAGS', { dom: domainRefToWire(dom), flags });
      dom.id = r.dom.id;
    }
  }

  async shutdown(dom: DomainRef, flags?: number): Promise<void> {
    if (flags === undefined) await this.rpc.callProc('DOMAIN_SHUTDOWN', { dom: domainRefToWire(dom) });
    else await this.rpc.callProc('DOMAIN_SHUTDOWN_FLAGS', { dom: domainRefToWire(dom), flags });
  }

  async reboot(dom: DomainRef, flags = 0): Promise<void> {
    await this.rpc.callProc('DOMAIN_REBOOT', { dom: domainRefToWire(dom), flags });
  }

  async destroy(dom: DomainRef, flags?: number): Promise<void> {
    if (flags === undefined) await this.rpc.callProc('DOMAIN_DESTROY', { dom: domainRefToWire(dom) });
    else await this.rpc.callProc('DOMAIN_DESTROY_FLAGS', { dom: domainRefToWire(dom), flags });
    dom.id = -1;
  }

  async suspend(dom: DomainRef): Promise<void> {
    await this.rpc.callProc('DOMAIN_SUSPEND', { dom: domainRefToWire(dom) });
  }

  async resume(dom: DomainRef): Promise<void> {
    await this.rpc.callProc('DOMAIN_RESUME', { dom: domainRefToWire(dom) });
  }

  async save(dom: DomainRef, path: string, xml?: string, flags?: number): Promise<void> {
    if (xml === undefined && flags === undefined) await this.rpc.callProc('DOMAIN_SAVE', { dom: domainRefToWire(dom), to: path });
    else await this.rpc.callProc('DOMAIN_SAVE_FLAGS', { dom: domainRefToWire(dom), to: path, dxml: xml ?? null, flags: flags ?? 0 });
  }

  async restore(path: string, xml?: string, flags?: number): Promise<void> {
    if (xml === undefined && flags === undefined) await this.rpc.callProc('DOMAIN_RESTORE', { from: path });
    else await this.rpc.callProc('DOMAIN_RESTORE_FLAGS', { from: path, dxml: xml ?? null, flags: flags ?? 0 });
  }

  async coreDump(dom: DomainRef, path: string, flags = 0): Promise<void> {
    await this.rpc.callProc('DOMAIN_CORE_DUMP', { dom: domainRefToWire(dom), to: path, flags });
  }

  async managedSave(dom: DomainRef, flags = 0): Promise<void> {
    await this.rpc.callProc('DOMAIN_MANAGED_SAVE', { dom: domainRefToWire(dom), flags });
  }

  async hasManagedSaveImage(dom: DomainRef): Promise<boolean> {
    return (await this.rpc.callProc('DOMAIN_HAS_MANAGED_SAVE_IMAGE', { dom: domainRefToWire(dom), flags: 0 })).result !== 0;
  }

  async managedSaveRemove(dom: DomainRef): Promise<void> {
    await this.rpc.callProc('DOMAIN_MANAGED_SAVE_REMOVE', { dom: domainRefToWire(dom), flags: 0 });
  }

  // -- per-domain queries and settings ---------------------------------------------------------

  async getInfo(dom: DomainRef): Promise<DomainInfo> {
    const r = await this.rpc.callProc('DOMAIN_GET_INFO', { dom: domainRefToWire(dom) });
    return {
      state: r.state as DomainStateCode, maxMem: Number(r.maxMem), memory: Number(r.memory),
      nrVirtCpu: r.nrVirtCpu, cpuTime: r.cpuTime,
    };
  }

  async getState(dom: DomainRef): Promise<DomainStateInfo> {
    const r = await this.rpc.callProc('DOMAIN_GET_STATE', { dom: domainRefToWire(dom), flags: 0 });
    return { state: r.state as DomainStateCode, reason: r.reason };
  }

  async getXmlDesc(dom: DomainRef, flags = 0): Promise<string> {
    return (await this.rpc.callProc('DOMAIN_GET_XML_DESC', { dom: domainRefToWire(dom), flags })).xml;
  }

  async getJobInfo(dom: DomainRef): Promise<JobInfo> {
    const r = await this.rpc.callProc('DOMAIN_GET_JOB_INFO', { dom: domainRefToWire(dom) });
    return {
      type: r.type, timeElapsed: Number(r.timeElapsed), timeRemaining: Number(r.timeRemaining),
      dataTotal: Number(r.dataTotal), dataProcessed: Number(r.dataProcessed), dataRemaining: Number(r.dataRemaining),
    };
  }

  async getOsType(dom: DomainRef): Promise<string> {
    return (await this.rpc.callProc('DOMAIN_GET_OS_TYPE', { dom: domainRefToWire(dom) })).type;
  }

  async isActive(dom: DomainRef): Promise<boolean> {
    return (await this.rpc.callProc('DOMAIN_IS_ACTIVE', { dom: domainRefToWire(dom) })).active !== 0;
  }

  async isPersistent(dom: DomainRef): Promise<boolean> {
    return (await this.rpc.callProc('DOMAIN_IS_PERSISTENT', { dom: domainRefToWire(dom) })).persistent !== 0;
  }

  async getAutostart(dom: DomainRef): Promise<boolean> {
    return (await this.rpc.callProc('DOMAIN_GET_AUTOSTART', { dom: domainRefToWire(dom) })).autostart !== 0;
  }

  async setAutostart(dom: DomainRef, autostart: boolean): Promise<void> {
    await this.rpc.callProc('DOMAIN_SET_AUTOSTART', { dom: domainRefToWire(dom), autostart: autostart ? 1 : 0 });
  }

  async getMaxMemory(dom: DomainRef): Promise<number> {
    return Number((await this.rpc.callProc('DOMAIN_GET_MAX_MEMORY', { dom: domainRefToWire(dom) })).memory);
  }

  async setMemory(dom: DomainRef, kib: number, flags?: number): Promise<void> {
    const memory = BigInt(kib);
    if (flags === undefined) await this.rpc.callProc('DOMAIN_SET_MEMORY', { dom: domainRefToWire(dom), memory });
    else await this.rpc.callProc('DOMAIN_SET_MEMORY_FLAGS', { dom: domainRefToWire(dom), memory, flags });
  }

  async setMaxMemory(dom: DomainRef, kib: number): Promise<void> {
    await this.rpc.callProc('DOMAIN_SET_MAX_MEMORY', { dom: domainRefToWire(dom), memory: BigInt(kib) });
  }

  async setVcpus(dom: DomainRef, count: number, flags?: number): Promise<void> {
    if (flags === undefined) await this.rpc.callProc('DOMAIN_SET_VCPUS', { dom: domainRefToWire(dom), nvcpus: count });
    else await this.rpc.callProc('DOMAIN_SET_VCPUS_FLAGS', { dom: domainRefToWire(dom), nvcpus: count, flags });
  }

  async getVcpusFlags(dom: DomainRef, flags = 0): Promise<number> {
    return (await this.rpc.callProc('DOMAIN_GET_VCPUS_FLAGS', { dom: domainRefToWire(dom), flags })).num;
  }

  async getMaxVcpus(dom: DomainRef): Promise<number> {
    return (await this.rpc.callProc('DOMAIN_GET_MAX_VCPUS', { dom: domainRefToWire(dom) })).num;
  }

  /** Map width for the host's CPUs, as virsh sizes it (from virNodeGetInfo). */
  private async mapLen(): Promise<number> {
    return cpuMapLen((await this.rpc.callProc('NODE_GET_INFO')).cpus);
  }

  async getVcpus(dom: DomainRef): Promise<VcpuInfo[]> {
    const maplen = await this.mapLen();
    const maxinfo = await this.getMaxVcpus(dom);
    const r = await this.rpc.callProc('DOMAIN_GET_VCPUS', { dom: domainRefToWire(dom), maxinfo, maplen });
    return r.info.map((v, i) => ({ number: v.number, state: v.state, cpuTime: v.cpu_time, cpu: v.cpu, affinity: cpusFromMap(r.cpumaps, maplen, i) }));
  }

  async getVcpuPinInfo(dom: DomainRef, flags = 0): Promise<number[][]> {
    const maplen = await this.mapLen();
    const ncpumaps = await this.getVcpusFlags(dom, (flags & 3) | VcpuFlags.MAXIMUM);
    const r = await this.rpc.callProc('DOMAIN_GET_VCPU_PIN_INFO', { dom: domainRefToWire(dom), ncpumaps, maplen, flags });
    return Array.from({ length: r.num }, (_, i) => cpusFromMap(r.cpumaps, maplen, i));
  }

  async pinVcpu(dom: DomainRef, vcpu: number, cpus: number[], flags = 0): Promise<void> {
    const maplen = cpuMapLen(Math.max(await this.mapLen() * 8, ...cpus.map((c) => c + 1)));
    await this.rpc.callProc('DOMAIN_PIN_VCPU_FLAGS', { dom: domainRefToWire(dom), vcpu, cpumap: mapsFromCpus([cpus], maplen), flags });
  }

  async getSchedulerType(dom: DomainRef): Promise<SchedulerType> {
    return this.rpc.callProc('DOMAIN_GET_SCHEDULER_TYPE', { dom: domainRefToWire(dom) });
  }

  async getSchedulerParameters(dom: DomainRef, flags = 0): Promise<Record<string, number>> {
    const { nparams } = await this.getSchedulerType(dom);
    const r = await this.rpc.callProc('DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS', { dom: domainRefToWire(dom), nparams, flags });
    return recordFromTypedParams(r.params);
  }

  async setSchedulerParameters(dom: DomainRef, params: Record<string, number>, flags = 0): Promise<void> {
    await this.rpc.callProc('DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS', { dom: domainRefToWire(dom), params: typedParamsFromRecord(params), flags });
  }

  async attachDevice(dom: DomainRef, xml: string, flags?: number): Promise<void> {
    if (flags === undefined) await this.rpc.callProc('DOMAIN_ATTACH_DEVICE', { dom: domainRefToWire(dom), xml });
    else await this.rpc.callProc('DOMAIN_ATTACH_DEVICE_FLAGS', { dom: domainRefToWire(dom), xml, flags });
  }

  async detachDevice(dom: DomainRef, xml: string, flags?: number): Promise<void> {
    if (flags === undefined) await this.rpc.callProc('DOMAIN_DETACH_DEVICE', { dom: domainRefToWire(dom), xml });
    else await this.rpc.callProc('DOMAIN_DETACH_DEVICE_FLAGS', { dom: domainRefToWire(dom), xml, flags });
  }

  async domainXmlFromNative(format: string, config: string): Promise<string> {
    const r = await this.rpc.callProc('CONNECT_DOMAIN_XML_FROM_NATIVE', { nativeFormat: format, nativeConfig: config, flags: 0 });
    return r.domainXml;
  }

  async domainXmlToNative(format: string, xml: string): Promise<string> {
    const r = await this.rpc.callProc('CONNECT_DOMAIN_XML_TO_NATIVE', { nativeFormat: format, domainXml: xml, flags: 0 });
    return r.nativeConfig;
  }

  // -- events ----------------------------------------------------------------------------------

  /**
   * Lifecycle events through CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY (one callback id per
   * listener, delivered as DOMAIN_EVENT_CALLBACK_LIFECYCLE messages). A daemon without
   * REMOTE_EVENT_CALLBACK gets the legacy REGISTER_ANY once, and events are filtered here.
   */
  async onLifecycle(listener: LifecycleListener, dom?: DomainRef): Promise<() => Promise<void>> {
    if (!this.featureSet.eventCallbacks) return this.onLifecycleLegacy(listener, dom);
    const r = await this.rpc.callProc('CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY', {
      eventID: DomainEventId.LIFECYCLE, dom: dom ? domainRefToWire(dom) : null,
    });
    const id = r.callbackID;
    this.callbacks.set(id, listener);
    const early = this.early.get(id);
    this.early.delete(id);
    for (const e of early ?? []) listener(e);
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      this.callbacks.delete(id);
      if (!this.rpc.closed) await this.rpc.callProc('CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY', { callbackID: id });
    };
  }

  private async onLifecycleLegacy(listener: LifecycleListener, dom?: DomainRef): Promise<() => Promise<void>> {
    const entry = { listener, uuid: dom?.uuid };
    if (!this.legacyRegistered) {
      await this.rpc.callProc('CONNECT_DOMAIN_EVENT_REGISTER_ANY', { eventID: DomainEventId.LIFECYCLE });
      this.legacyRegistered = true;
    }
    this.legacyListeners.add(entry);
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      this.legacyListeners.delete(entry);
      if (this.legacyListeners.size === 0 && this.legacyRegistered && !this.rpc.closed) {
        this.legacyRegistered = false;
        await this.rpc.callProc('CONNECT_DOMAIN_EVENT_DEREGISTER_ANY', { eventID: DomainEventId.LIFECYCLE });
      }
    };
  }

  private onMessage(p: Packet): void {
    try {
      if (p.header.proc === RemoteProcedure.DOMAIN_EVENT_CALLBACK_LIFECYCLE) {
        const m = RemoteDomainEventCallbackLifecycleMsg.dec(new XdrReader(p.payload));
        const e: LifecycleEvent = { domain: domainRefFromWire(m.msg.dom), event: m.msg.event, detail: m.msg.detail };
        const listener = this.callbacks.get(m.callbackID);
        if (listener) listener(e);
        else this.keepEarly(m.callbackID, e);
      } else if (p.header.proc === RemoteProcedure.DOMAIN_EVENT_LIFECYCLE) {
        const m = RemoteDomainEventLifecycleMsg.dec(new XdrReader(p.payload));
        const e: LifecycleEvent = { domain: domainRefFromWire(m.dom), event: m.event, detail: m.detail };
        for (const l of this.legacyListeners) if (!l.uuid || l.uuid === e.domain.uuid) l.listener(e);
      }
      // Other events are not part of the Connection interface yet; they are dropped.
    } catch {
      // A malformed event must not take the connection down; libvirt's client drops it too.
    }
  }

  /** A MESSAGE can be read before the reply that names its callback id has been handled. */
  private keepEarly(id: number, e: LifecycleEvent): void {
    const list = this.early.get(id) ?? [];
    if (list.length < MAX_EARLY_EVENTS) list.push(e);
    this.early.set(id, list);
    if (this.early.size > MAX_EARLY_EVENTS) this.early.delete(this.early.keys().next().value!);
  }

  // -- close -----------------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    try {
      if (!this.rpc.closed) await this.rpc.callProc('CONNECT_CLOSE');
    } catch (e) {
      // The daemon closes the socket right after replying; only a real error reply matters.
      if (e instanceof RpcError) throw e;
    } finally {
      this.rpc.close();
    }
  }
}

/**
 * Open a connection through the remote driver: `test+unix:///default?socket=...`,
 * `xen:///system` (default socket rules), ... Only the unix transport is implemented.
 */
export async function openRemote(uri: ParsedUri | string, opts: OpenRemoteOptions = {}): Promise<RemoteConnection> {
  const p = typeof uri === 'string' ? parseUri(uri) : uri;
  const readonly = opts.readonly ?? false;
  const name = opts.name ?? p.client.name ?? p.daemonUri;
  let stream = opts.stream;
  if (!stream) {
    const transport = p.effectiveTransport ?? p.transport ?? 'unix';
    if (transport !== 'unix') {
      throw new VirtError('NO_SUPPORT', `this function is not supported by the connection driver: the '${transport}' transport is not implemented yet (only unix)`, ErrorDomain.REMOTE);
    }
    const path = opts.socketPath ?? defaultSocketPath(p, readonly, existsSync);
    stream = await connectUnix(path);
  }
  return RemoteConnection.open(stream, { uri: p.uri, name, readonly, keepalive: opts.keepalive });
}
