/**
 * What xenvirtd answers to each REMOTE procedure, over the Connection of the driver the client
 * opened. Every one of libvirt's 443 procedures gets a handler here, so that the order of the
 * checks is libvirtd's for all of them:
 *
 *   1. the payload decodes (the dispatcher; "Unable to decode message payload");
 *   2. the connection is open ("hypervisor connection not open"), except for the handshake;
 *   3. a read-only connection may make this call ("operation forbidden: read only access
 *      prevents virXxx", see readonly.ts);
 *   4. the driver implements it ("this function is not supported by the connection driver");
 *   5. the driver's own answer or error.
 *
 * The set implemented is what virsh and python3-libvirt send for the driver's features
 * (design facts §8, §10) plus the rest of the Connection interface.
 */
import { ErrorDomain } from '../errors.js';
import { DomainState, ListFlags, MemFlags, ModFlags, VcpuFlags, type Connection, type DomainRef } from '../driver/connection.js';
import { allCpus } from '../driver/tuning.js';
import { cpuMapLen, cpusFromMap, mapsFromCpus, recordFromTypedParams, typedParamsFromRecord } from '../rpc/cpumap.js';
import { Dispatcher, EncodedReply, apiName, type Handler } from '../rpc/dispatcher.js';
import { Feature, AuthType, ConnectFlags } from '../rpc/protocol.js';
import { cStringBytes, encode, uuidToString, uuidFromString, type Codec } from '../rpc/xdr.js';
import {
  REMOTE_PROCEDURE_LIST, RemoteProcedure, type RemoteProcedureName,
} from '../rpc/generated/remote-procedures.js';
import {
  RemoteConnectListAllDomainsRet, RemoteDomainGetInfoRet, RemoteDomainGetStateRet, RemoteDomainGetXmlDescRet,
  RemoteDomainLookupByNameRet, type RemoteNonnullDomain,
} from '../rpc/generated/remote-types.js';
import type { DriverEntry, ReplyCache } from './drivers.js';
import { readOnlyDenial, apiErrorDomain } from './readonly.js';
import { libvirtError, noSupport, notOpen, rpcInternal } from './errors.js';

/** What the handlers need from the daemon. */
export interface DaemonServices {
  openDriver(name: string): Promise<DriverEntry>;
  /** Register a domain event callback (316); returns its daemon-wide id. */
  addCallback(s: Session, eventID: number, uuid: string | undefined): number;
  /** Deregister it (317); false when `s` has no such callback. */
  removeCallback(s: Session, id: number): boolean;
}

/** One client's connection state, as the handlers see it. */
export interface Session {
  /** The client came in on the read-only socket. */
  readonly roSocket: boolean;
  readonly services: DaemonServices;
  /** The opened driver; undefined before CONNECT_OPEN (and after a failed second open). */
  entry: DriverEntry | undefined;
  readOnly: boolean;
  /** The URI the client opened (CONNECT_GET_URI). */
  uri: string;
  /** The client asked SUPPORTS_FEATURE(PROGRAM_KEEPALIVE): the daemon may PING it. */
  keepaliveRequested: boolean;
  closeCallback: boolean;
  /** eventIDs registered with the legacy REGISTER_ANY (167), and the older REGISTER (105). */
  readonly legacyEvents: Set<number>;
  legacyRegister: boolean;
  /** Called by CONNECT_CLOSE: close the socket once the reply is out. */
  closeAfterReply(): void;
}

type Impl = { [K in RemoteProcedureName]?: Handler<K, Session> };

/** Procedures allowed before CONNECT_OPEN. */
const HANDSHAKE = new Set<number>([
  RemoteProcedure.AUTH_LIST, RemoteProcedure.AUTH_SASL_INIT, RemoteProcedure.AUTH_SASL_START,
  RemoteProcedure.AUTH_SASL_STEP, RemoteProcedure.AUTH_POLKIT, RemoteProcedure.CONNECT_OPEN,
  RemoteProcedure.CONNECT_CLOSE, RemoteProcedure.CONNECT_SUPPORTS_FEATURE,
]);

/** virDomainEventID values 0..26 exist in libvirt 9.0 (LIFECYCLE .. MEMORY_DEVICE_SIZE_CHANGE). */
const EVENT_ID_LAST = 27;
/** libvirtd's legacy REGISTER_ANY knows only the first 16. */
const LEGACY_EVENT_ID_LAST = 16;
/** REMOTE_DOMAIN_LIST_MAX */
const DOMAIN_LIST_MAX = 16384;

/** DomainRef <-> wire handle. UUID bytes are cached: listing a thousand domains converts a thousand. */
const uuidBytes = new Map<string, Buffer>();
function wireUuid(uuid: string): Buffer {
  let b = uuidBytes.get(uuid);
  if (!b) {
    if (uuidBytes.size > 65536) uuidBytes.clear();
    b = uuidFromString(uuid);
    uuidBytes.set(uuid, b);
  }
  return b;
}
const toWire = (r: DomainRef): RemoteNonnullDomain => ({ name: r.name, uuid: wireUuid(r.uuid), id: r.id });
const fromWire = (d: RemoteNonnullDomain): DomainRef => ({ name: d.name, uuid: uuidToString(d.uuid), id: d.id });

const conn = (s: Session): Connection => s.entry!.conn;

/**
 * A reply that depends only on the driver's stored state: from `cache` when the driver has
 * one (see ReplyCache), kept encoded and answered at once while nothing changes. `keep` says
 * whether a computed answer may be cached.
 */
function stateReply<T>(
  cache: ReplyCache<EncodedReply> | undefined, s: Session, key: string, codec: Codec<T>,
  compute: (c: Connection) => Promise<T>, keep?: (v: T) => boolean,
): T | EncodedReply | Promise<T | EncodedReply> {
  const c = conn(s);
  if (!cache) return compute(c);
  let cacheable = true;
  return cache.get(key, () => compute(c).then((v) => {
    cacheable = keep?.(v) ?? true;
    return new EncodedReply(encode(codec, v));
  }), () => cacheable);
}

/** remote.c's bounds on a cpumap answer (REMOTE_VCPUINFO_MAX, REMOTE_CPUMAPS_MAX). */
function checkMaps(count: number, maplen: number, what: string): void {
  if (count < 0 || count > 16384) throw rpcInternal(`${what} > REMOTE_VCPUINFO_MAX`);
  if (maplen < 0 || count * maplen > 8388608) throw rpcInternal(`${what} * maplen > REMOTE_CPUMAPS_MAX`);
}

/** The first `nparams` scheduler parameters, as typed parameters (virsh asks with the count GET_SCHEDULER_TYPE gave). */
const schedParams = (p: Record<string, number>, nparams: number) => typedParamsFromRecord(p).slice(0, Math.max(0, nparams));
const bool = (b: boolean) => (b ? 1 : 0);

/** The features of CONNECT_SUPPORTS_FEATURE xenvirtd has (facts §2.3; no fd passing). */
const FEATURES_AFTER_OPEN = new Set<number>([
  Feature.TYPED_PARAM_STRING, Feature.PROGRAM_KEEPALIVE, Feature.REMOTE_EVENT_CALLBACK,
  Feature.REMOTE_CLOSE_CALLBACK, Feature.NETWORK_UPDATE_HAS_CORRECT_ORDER,
]);

const authFailed = () => libvirtError('AUTH_FAILED', ErrorDomain.RPC, 'authentication failed: %s', 'authentication failed');

const IMPL: Impl = {
  // -- handshake ------------------------------------------------------------------------------
  AUTH_LIST: () => ({ types: [AuthType.NONE] }),
  AUTH_POLKIT: () => { throw authFailed(); },
  AUTH_SASL_INIT: () => { throw authFailed(); },
  AUTH_SASL_START: () => { throw authFailed(); },
  AUTH_SASL_STEP: () => { throw authFailed(); },

  CONNECT_SUPPORTS_FEATURE: ({ feature }, s) => {
    if (feature === Feature.PROGRAM_KEEPALIVE) {
      s.keepaliveRequested = true;
      return { supported: 1 };
    }
    if (!s.entry) throw notOpen();
    return { supported: bool(FEATURES_AFTER_OPEN.has(feature)) };
  },

  CONNECT_OPEN: async ({ name, flags }, s) => {
    if (s.entry) {
      // libvirtd: the second open fails, and the connection is no longer usable as open.
      s.entry = undefined;
      throw rpcInternal('connection already open');
    }
    if (name === null) throw rpcInternal('connection not open');
    const entry = await s.services.openDriver(name);
    s.entry = entry;
    s.readOnly = s.roSocket || (flags & ConnectFlags.RO) !== 0;
    s.uri = name === '' ? entry.uri : name;
  },

  CONNECT_CLOSE: (_a, s) => { s.closeAfterReply(); },
  CONNECT_GET_URI: (_a, s) => ({ uri: s.uri }),
  CONNECT_REGISTER_CLOSE_CALLBACK: (_a, s) => { s.closeCallback = true; },
  CONNECT_UNREGISTER_CLOSE_CALLBACK: (_a, s) => { s.closeCallback = false; },
  /** A UNIX socket on this host is secure (libvirtd says the same). */
  CONNECT_IS_SECURE: () => ({ secure: 1 }),

  // -- host -----------------------------------------------------------------------------------
  CONNECT_GET_TYPE: async (_a, s) => ({ type: await conn(s).getType() }),
  CONNECT_GET_VERSION: async (_a, s) => ({ hv_ver: BigInt(await conn(s).getVersion()) }),
  CONNECT_GET_LIB_VERSION: async (_a, s) => ({ lib_ver: BigInt(await conn(s).getLibVersion()) }),
  CONNECT_GET_HOSTNAME: async (_a, s) => ({ hostname: await conn(s).getHostname() }),
  CONNECT_GET_CAPABILITIES: async (_a, s) => ({ capabilities: await conn(s).getCapabilities() }),
  CONNECT_GET_SYSINFO: async ({ flags }, s) => {
    if (flags !== 0) throw libvirtError('INVALID_ARG', ErrorDomain.LIBXL, 'invalid argument: %s', `unsupported flags (0x${flags.toString(16)}) in function libxlConnectGetSysinfo`);
    return { sysinfo: await conn(s).getSysinfo() };
  },
  NODE_GET_INFO: async (_a, s) => {
    const n = await conn(s).nodeGetInfo();
    return {
      model: Buffer.from(n.model, 'utf8').subarray(0, 31), memory: BigInt(n.memory), cpus: n.cpus, mhz: n.mhz,
      nodes: n.nodes, sockets: n.sockets, cores: n.cores, threads: n.threads,
    };
  },
  NODE_GET_FREE_MEMORY: async (_a, s) => ({ freeMem: await conn(s).nodeGetFreeMemory() }),
  /** Every host CPU is online to Xen's guests (python-libvirt sizes its vcpu maps from this). */
  NODE_GET_CPU_MAP: async ({ need_map, need_online, flags }, s) => {
    if (flags !== 0) throw libvirtError('INVALID_ARG', ErrorDomain.LIBXL, 'invalid argument: %s', `unsupported flags (0x${flags.toString(16)}) in function libxlNodeGetCPUMap`);
    const { cpus } = await conn(s).nodeGetInfo();
    return { cpumap: need_map ? mapsFromCpus([allCpus(cpus)], cpuMapLen(cpus)) : Buffer.alloc(0), online: need_online ? cpus : 0, ret: cpus };
  },
  /** No security driver: an empty model, which virsh dominfo prints nothing for. */
  NODE_GET_SECURITY_MODEL: () => ({ model: cStringBytes(''), doi: cStringBytes('') }),

  // -- lists and lookups ----------------------------------------------------------------------
  // Kept encoded: with a thousand domains, encoding the list costs more than the rest of the call.
  CONNECT_LIST_ALL_DOMAINS: ({ need_results, flags }, s) => stateReply(s.entry!.listCache, s, `${need_results}/${flags}`, RemoteConnectListAllDomainsRet, async (c) => {
    const doms = await c.listAllDomains(flags);
    return { domains: need_results ? doms.map(toWire) : [], ret: doms.length };
  }),
  CONNECT_NUM_OF_DOMAINS: async (_a, s) => ({ num: (await conn(s).listAllDomains(ListFlags.ACTIVE)).length }),
  CONNECT_NUM_OF_DEFINED_DOMAINS: async (_a, s) => ({ num: (await conn(s).listAllDomains(ListFlags.INACTIVE)).length }),
  CONNECT_LIST_DOMAINS: async ({ maxids }, s) => {
    if (maxids > DOMAIN_LIST_MAX) throw tooMany('domains', maxids);
    const doms = await conn(s).listAllDomains(ListFlags.ACTIVE);
    return { ids: doms.slice(0, Math.max(0, maxids)).map((d) => d.id) };
  },
  CONNECT_LIST_DEFINED_DOMAINS: async ({ maxnames }, s) => {
    if (maxnames > DOMAIN_LIST_MAX) throw tooMany('domain names', maxnames);
    const doms = await conn(s).listAllDomains(ListFlags.INACTIVE);
    return { names: doms.slice(0, Math.max(0, maxnames)).map((d) => d.name) };
  },
  DOMAIN_LOOKUP_BY_NAME: ({ name }, s) => stateReply(s.entry!.replyCache, s, `name/${name}`, RemoteDomainLookupByNameRet, async (c) => ({ dom: toWire(await c.lookupByName(name)) })),
  DOMAIN_LOOKUP_BY_UUID: async ({ uuid }, s) => ({ dom: toWire(await conn(s).lookupByUuid(uuidToString(uuid))) }),
  DOMAIN_LOOKUP_BY_ID: async ({ id }, s) => ({ dom: toWire(await conn(s).lookupById(id)) }),

  // -- per-domain queries ---------------------------------------------------------------------
  // The driver finds a domain by UUID alone: with the flags, the UUID determines the answer.
  DOMAIN_GET_INFO: ({ dom }, s) => stateReply(s.entry!.replyCache, s, `info/${dom.uuid.toString('hex')}`, RemoteDomainGetInfoRet, async (c) => {
    const i = await c.getInfo(fromWire(dom));
    return { state: i.state, maxMem: BigInt(i.maxMem), memory: BigInt(i.memory), nrVirtCpu: i.nrVirtCpu, cpuTime: i.cpuTime };
  }, (i) => i.state === DomainState.SHUTOFF), // a running domain's memory and CPU time are the hypervisor's
  DOMAIN_GET_STATE: ({ dom }, s) => stateReply(s.entry!.replyCache, s, `state/${dom.uuid.toString('hex')}`, RemoteDomainGetStateRet, async (c) => {
    const st = await c.getState(fromWire(dom));
    return { state: st.state, reason: st.reason };
  }),
  DOMAIN_GET_XML_DESC: ({ dom, flags }, s) => stateReply(s.entry!.replyCache, s, `xml/${dom.uuid.toString('hex')}/${flags}`, RemoteDomainGetXmlDescRet, async (c) => ({
    xml: await c.getXmlDesc(fromWire(dom), flags),
  })),
  DOMAIN_GET_OS_TYPE: async ({ dom }, s) => ({ type: await conn(s).getOsType(fromWire(dom)) }),
  DOMAIN_IS_ACTIVE: async ({ dom }, s) => ({ active: bool(await conn(s).isActive(fromWire(dom))) }),
  DOMAIN_IS_PERSISTENT: async ({ dom }, s) => ({ persistent: bool(await conn(s).isPersistent(fromWire(dom))) }),
  DOMAIN_IS_UPDATED: async ({ dom }, s) => {
    await conn(s).isActive(fromWire(dom)); // the domain must exist
    return { updated: 0 };
  },
  DOMAIN_GET_AUTOSTART: async ({ dom }, s) => ({ autostart: bool(await conn(s).getAutostart(fromWire(dom))) }),
  DOMAIN_HAS_MANAGED_SAVE_IMAGE: async ({ dom }, s) => ({ result: bool(await conn(s).hasManagedSaveImage(fromWire(dom))) }),
  DOMAIN_GET_MAX_MEMORY: async ({ dom }, s) => ({ memory: BigInt(await conn(s).getMaxMemory(fromWire(dom))) }),
  DOMAIN_GET_MAX_VCPUS: async ({ dom }, s) => ({ num: await conn(s).getMaxVcpus(fromWire(dom)) }),
  DOMAIN_GET_VCPUS_FLAGS: async ({ dom, flags }, s) => ({ num: await conn(s).getVcpusFlags(fromWire(dom), flags) }),
  DOMAIN_GET_VCPUS: async ({ dom, maxinfo, maplen }, s) => {
    checkMaps(maxinfo, maplen, 'maxinfo');
    const list = (await conn(s).getVcpus(fromWire(dom))).slice(0, maxinfo);
    const cpumaps = mapsFromCpus(list.map((v) => v.affinity), maplen, maxinfo);
    return { info: list.map((v) => ({ number: v.number, state: v.state, cpu_time: v.cpuTime, cpu: v.cpu })), cpumaps };
  },
  DOMAIN_GET_VCPU_PIN_INFO: async ({ dom, ncpumaps, maplen, flags }, s) => {
    checkMaps(ncpumaps, maplen, 'ncpumaps');
    const pins = (await conn(s).getVcpuPinInfo(fromWire(dom), flags)).slice(0, ncpumaps);
    return { cpumaps: mapsFromCpus(pins, maplen, ncpumaps), num: pins.length };
  },
  // virDomainPinVcpu is the live-only form
  DOMAIN_PIN_VCPU: async ({ dom, vcpu, cpumap }, s) => { await conn(s).pinVcpu(fromWire(dom), vcpu, cpusFromMap(cpumap, cpumap.length), ModFlags.LIVE); },
  DOMAIN_PIN_VCPU_FLAGS: async ({ dom, vcpu, cpumap, flags }, s) => { await conn(s).pinVcpu(fromWire(dom), vcpu, cpusFromMap(cpumap, cpumap.length), flags); },
  DOMAIN_GET_SCHEDULER_TYPE: async ({ dom }, s) => conn(s).getSchedulerType(fromWire(dom)),
  DOMAIN_GET_SCHEDULER_PARAMETERS: async ({ dom, nparams }, s) => ({ params: schedParams(await conn(s).getSchedulerParameters(fromWire(dom)), nparams) }),
  DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS: async ({ dom, nparams, flags }, s) => ({ params: schedParams(await conn(s).getSchedulerParameters(fromWire(dom), flags), nparams) }),
  DOMAIN_SET_SCHEDULER_PARAMETERS: async ({ dom, params }, s) => { await conn(s).setSchedulerParameters(fromWire(dom), recordFromTypedParams(params)); },
  DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS: async ({ dom, params, flags }, s) => { await conn(s).setSchedulerParameters(fromWire(dom), recordFromTypedParams(params), flags); },
  DOMAIN_GET_SECURITY_LABEL: async ({ dom }, s) => {
    await conn(s).isActive(fromWire(dom));
    return { label: cStringBytes(''), enforcing: 0 };
  },
  DOMAIN_GET_MESSAGES: async ({ dom }, s) => {
    await conn(s).isActive(fromWire(dom));
    return { msgs: [] };
  },
  /** xenvirt keeps no snapshots: zero of them, for virsh undefine's check. */
  DOMAIN_SNAPSHOT_NUM: async ({ dom }, s) => {
    await conn(s).isActive(fromWire(dom));
    return { num: 0 };
  },
  DOMAIN_LIST_ALL_SNAPSHOTS: async ({ dom }, s) => {
    await conn(s).isActive(fromWire(dom));
    return { snapshots: [], ret: 0 };
  },
  DOMAIN_GET_JOB_INFO: async ({ dom }, s) => {
    const c = conn(s);
    const j = c.getJobInfo ? await c.getJobInfo(fromWire(dom)) : undefined;
    const n = (v: number | undefined) => BigInt(Math.max(0, Math.round(v ?? 0)));
    return {
      type: j?.type ?? 0, timeElapsed: n(j?.timeElapsed), timeRemaining: n(j?.timeRemaining),
      dataTotal: n(j?.dataTotal), dataProcessed: n(j?.dataProcessed), dataRemaining: n(j?.dataRemaining),
      memTotal: 0n, memProcessed: 0n, memRemaining: 0n, fileTotal: 0n, fileProcessed: 0n, fileRemaining: 0n,
    };
  },

  // -- define, lifecycle ----------------------------------------------------------------------
  DOMAIN_DEFINE_XML: async ({ xml }, s) => ({ dom: toWire(await conn(s).defineXml(xml)) }),
  DOMAIN_DEFINE_XML_FLAGS: async ({ xml, flags }, s) => ({ dom: toWire(await conn(s).defineXml(xml, flags)) }),
  DOMAIN_UNDEFINE: async ({ dom }, s) => { await conn(s).undefine(fromWire(dom)); },
  DOMAIN_UNDEFINE_FLAGS: async ({ dom, flags }, s) => { await conn(s).undefine(fromWire(dom), flags); },
  DOMAIN_CREATE: async ({ dom }, s) => { await conn(s).create(fromWire(dom)); },
  DOMAIN_CREATE_WITH_FLAGS: async ({ dom, flags }, s) => {
    const c = conn(s);
    const ref = fromWire(dom);
    await c.create(ref, flags);
    return { dom: toWire(await c.lookupByUuid(ref.uuid)) };
  },
  DOMAIN_CREATE_XML: async ({ xml_desc, flags }, s) => ({ dom: toWire(await conn(s).createXml(xml_desc, flags)) }),
  DOMAIN_SHUTDOWN: async ({ dom }, s) => { await conn(s).shutdown(fromWire(dom)); },
  DOMAIN_SHUTDOWN_FLAGS: async ({ dom, flags }, s) => { await conn(s).shutdown(fromWire(dom), flags); },
  DOMAIN_REBOOT: async ({ dom, flags }, s) => { await conn(s).reboot(fromWire(dom), flags); },
  DOMAIN_DESTROY: async ({ dom }, s) => { await conn(s).destroy(fromWire(dom)); },
  DOMAIN_DESTROY_FLAGS: async ({ dom, flags }, s) => { await conn(s).destroy(fromWire(dom), flags); },
  DOMAIN_SUSPEND: async ({ dom }, s) => { await conn(s).suspend(fromWire(dom)); },
  DOMAIN_RESUME: async ({ dom }, s) => { await conn(s).resume(fromWire(dom)); },
  // Save and restore paths are the daemon's (libvirt's semantics: the file is on the host).
  DOMAIN_SAVE: async ({ dom, to }, s) => { await conn(s).save(fromWire(dom), to); },
  DOMAIN_SAVE_FLAGS: async ({ dom, to, dxml, flags }, s) => { await conn(s).save(fromWire(dom), to, dxml ?? undefined, flags); },
  DOMAIN_RESTORE: async ({ from }, s) => { await conn(s).restore(from); },
  DOMAIN_RESTORE_FLAGS: async ({ from, dxml, flags }, s) => { await conn(s).restore(from, dxml ?? undefined, flags); },
  DOMAIN_CORE_DUMP: async ({ dom, to, flags }, s) => { await conn(s).coreDump(fromWire(dom), to, flags); },
  DOMAIN_MANAGED_SAVE: async ({ dom, flags }, s) => { await conn(s).managedSave(fromWire(dom), flags); },
  DOMAIN_MANAGED_SAVE_REMOVE: async ({ dom }, s) => { await conn(s).managedSaveRemove(fromWire(dom)); },
  DOMAIN_SET_AUTOSTART: async ({ dom, autostart }, s) => { await conn(s).setAutostart(fromWire(dom), autostart !== 0); },

  // -- resources ------------------------------------------------------------------------------
  // The plain calls are the libxl driver's: SetMemory and SetVcpus act on the live domain.
  DOMAIN_SET_MEMORY: async ({ dom, memory }, s) => { await conn(s).setMemory(fromWire(dom), kib(memory), MemFlags.LIVE); },
  DOMAIN_SET_MEMORY_FLAGS: async ({ dom, memory, flags }, s) => { await conn(s).setMemory(fromWire(dom), kib(memory), flags); },
  DOMAIN_SET_MAX_MEMORY: async ({ dom, memory }, s) => { await conn(s).setMaxMemory(fromWire(dom), kib(memory)); },
  DOMAIN_SET_VCPUS: async ({ dom, nvcpus }, s) => { await conn(s).setVcpus(fromWire(dom), nvcpus, VcpuFlags.LIVE); },
  DOMAIN_SET_VCPUS_FLAGS: async ({ dom, nvcpus, flags }, s) => { await conn(s).setVcpus(fromWire(dom), nvcpus, flags); },
  DOMAIN_ATTACH_DEVICE: async ({ dom, xml }, s) => { await conn(s).attachDevice(fromWire(dom), xml); },
  DOMAIN_ATTACH_DEVICE_FLAGS: async ({ dom, xml, flags }, s) => { await conn(s).attachDevice(fromWire(dom), xml, flags); },
  DOMAIN_DETACH_DEVICE: async ({ dom, xml }, s) => { await conn(s).detachDevice(fromWire(dom), xml); },
  DOMAIN_DETACH_DEVICE_FLAGS: async ({ dom, xml, flags }, s) => { await conn(s).detachDevice(fromWire(dom), xml, flags); },

  // -- native formats -------------------------------------------------------------------------
  CONNECT_DOMAIN_XML_FROM_NATIVE: async ({ nativeFormat, nativeConfig, flags }, s) => {
    checkNoFlags(flags, 'libxlConnectDomainXMLFromNative');
    return { domainXml: await conn(s).domainXmlFromNative(nativeFormat, nativeConfig) };
  },
  CONNECT_DOMAIN_XML_TO_NATIVE: async ({ nativeFormat, domainXml, flags }, s) => {
    checkNoFlags(flags, 'libxlConnectDomainXMLToNative');
    return { nativeConfig: await conn(s).domainXmlToNative(nativeFormat, domainXml) };
  },

  // -- events ---------------------------------------------------------------------------------
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: ({ eventID, dom }, s) => {
    if (eventID < 0 || eventID >= EVENT_ID_LAST) throw rpcInternal(`unsupported event ID ${eventID}`);
    return { callbackID: s.services.addCallback(s, eventID, dom ? uuidToString(dom.uuid) : undefined) };
  },
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: ({ callbackID }, s) => {
    if (!s.services.removeCallback(s, callbackID)) throw rpcInternal(`domain event callback ${callbackID} not registered`);
  },
  CONNECT_DOMAIN_EVENT_REGISTER_ANY: ({ eventID }, s) => {
    if (eventID < 0 || eventID >= LEGACY_EVENT_ID_LAST) throw rpcInternal(`unsupported event ID ${eventID}`);
    if (s.legacyEvents.has(eventID)) throw rpcInternal(`domain event ${eventID} already registered`);
    s.legacyEvents.add(eventID);
  },
  CONNECT_DOMAIN_EVENT_DEREGISTER_ANY: ({ eventID }, s) => {
    if (eventID < 0 || eventID >= LEGACY_EVENT_ID_LAST) throw rpcInternal(`unsupported event ID ${eventID}`);
    if (!s.legacyEvents.delete(eventID)) throw rpcInternal(`domain event ${eventID} not registered`);
  },
  CONNECT_DOMAIN_EVENT_REGISTER: (_a, s) => {
    s.legacyRegister = true;
    return { cb_registered: 1 };
  },
  CONNECT_DOMAIN_EVENT_DEREGISTER: (_a, s) => {
    s.legacyRegister = false;
    return { cb_registered: 0 };
  },
};

function kib(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw libvirtError('INVALID_ARG', ErrorDomain.DOMAIN, 'invalid argument: %s', `memory size ${v} KiB is too large`);
  return Number(v);
}

function checkNoFlags(flags: number, fn: string): void {
  if (flags !== 0) {
    throw libvirtError('INVALID_ARG', ErrorDomain.LIBXL, 'invalid argument: %s', `unsupported flags (0x${(flags >>> 0).toString(16)}) in function ${fn}`);
  }
}

function tooMany(what: string, n: number) {
  return libvirtError('RPC', ErrorDomain.RPC, '%s', `Too many ${what} '${n}' for limit '${DOMAIN_LIST_MAX}'`);
}

/** The dispatcher every client of a daemon shares. */
export function createDispatcher(): Dispatcher<Session> {
  const d = new Dispatcher<Session>();
  for (const info of REMOTE_PROCEDURE_LIST) {
    if (info.msg) continue; // events flow from the daemon only
    const name = info.name as RemoteProcedureName;
    const num = info.num;
    const impl = IMPL[name] as Handler<RemoteProcedureName, Session> | undefined;
    const api = apiName(name);
    const handshake = HANDSHAKE.has(num);
    const handler: Handler<RemoteProcedureName, Session> = (args, s, h) => {
      if (!handshake && !s.entry) throw notOpen();
      if (s.readOnly) {
        const denied = readOnlyDenial(num, args);
        if (denied) throw denied;
      }
      if (!impl) throw noSupport(api, apiErrorDomain(api));
      return impl(args, s, h);
    };
    d.handle(name, handler as Handler<typeof name, Session>);
  }
  return d;
}
