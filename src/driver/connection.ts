/**
 * The one Connection interface: libvirt's public API for the calls xenvirt supports, with
 * libvirt's semantics (states, reasons, flags, error codes). It is implemented in-process by
 * the driver and remotely by the RPC client; the CLI and the daemon only ever see this.
 */
import type { Domain } from '../domain/types.js';

/** virDomainState */
export const DomainState = {
  NOSTATE: 0, RUNNING: 1, BLOCKED: 2, PAUSED: 3, SHUTDOWN: 4, SHUTOFF: 5, CRASHED: 6, PMSUSPENDED: 7,
} as const;
export type DomainStateCode = (typeof DomainState)[keyof typeof DomainState];

/** Reasons per state (virDomainRunningReason, virDomainPausedReason, virDomainShutoffReason, ...). */
export const RunningReason = { UNKNOWN: 0, BOOTED: 1, MIGRATED: 2, RESTORED: 3, FROM_SNAPSHOT: 4, UNPAUSED: 5, MIGRATION_CANCELED: 6, SAVE_CANCELED: 7, WAKEUP: 8, CRASHED: 9, POSTCOPY: 10 } as const;
export const PausedReason = { UNKNOWN: 0, USER: 1, MIGRATION: 2, SAVE: 3, DUMP: 4, IOERROR: 5, WATCHDOG: 6, FROM_SNAPSHOT: 7, SHUTTING_DOWN: 8, SNAPSHOT: 9, CRASHED: 10, STARTING_UP: 11 } as const;
export const ShutdownReason = { UNKNOWN: 0, USER: 1 } as const;
export const ShutoffReason = { UNKNOWN: 0, SHUTDOWN: 1, DESTROYED: 2, CRASHED: 3, MIGRATED: 4, SAVED: 5, FAILED: 6, FROM_SNAPSHOT: 7, DAEMON: 8 } as const;
export const CrashedReason = { UNKNOWN: 0, PANICKED: 1 } as const;

/** virDomainEventType and the detail codes of each. */
export const EventType = { DEFINED: 0, UNDEFINED: 1, STARTED: 2, SUSPENDED: 3, RESUMED: 4, STOPPED: 5, SHUTDOWN: 6, PMSUSPENDED: 7, CRASHED: 8 } as const;
export const EventDetail = {
  DEFINED: { ADDED: 0, UPDATED: 1, RENAMED: 2, FROM_SNAPSHOT: 3 },
  UNDEFINED: { REMOVED: 0, RENAMED: 1 },
  STARTED: { BOOTED: 0, MIGRATED: 1, RESTORED: 2, FROM_SNAPSHOT: 3, WAKEUP: 4 },
  SUSPENDED: { PAUSED: 0, MIGRATED: 1, IOERROR: 2, WATCHDOG: 3, RESTORED: 4, FROM_SNAPSHOT: 5, API_ERROR: 6, POSTCOPY: 7, POSTCOPY_FAILED: 8 },
  RESUMED: { UNPAUSED: 0, MIGRATED: 1, FROM_SNAPSHOT: 2, POSTCOPY: 3 },
  STOPPED: { SHUTDOWN: 0, DESTROYED: 1, CRASHED: 2, MIGRATED: 3, SAVED: 4, FAILED: 5, FROM_SNAPSHOT: 6 },
  SHUTDOWN: { FINISHED: 0, GUEST: 1, HOST: 2 },
  CRASHED: { PANICKED: 0 },
} as const;

/** virDomainModificationImpact and friends, as bit flags. */
export const ModFlags = { CURRENT: 0, LIVE: 1, CONFIG: 2 } as const;
export const VcpuFlags = { CURRENT: 0, LIVE: 1, CONFIG: 2, MAXIMUM: 4, GUEST: 8, HOTPLUGGABLE: 16 } as const;
export const MemFlags = { CURRENT: 0, LIVE: 1, CONFIG: 2, MAXIMUM: 4 } as const;
export const XmlFlags = { SECURE: 1, INACTIVE: 2, UPDATE_CPU: 4, MIGRATABLE: 8 } as const;
export const UndefineFlags = { MANAGED_SAVE: 1, SNAPSHOTS_METADATA: 2, NVRAM: 4, KEEP_NVRAM: 8 } as const;
/** virConnectListAllDomainsFlags */
export const ListFlags = {
  ACTIVE: 1, INACTIVE: 2, PERSISTENT: 4, TRANSIENT: 8, RUNNING: 16, PAUSED: 32, SHUTOFF: 64, OTHER: 128,
  MANAGEDSAVE: 256, NO_MANAGEDSAVE: 512, AUTOSTART: 1024, NO_AUTOSTART: 2048, HAS_SNAPSHOT: 4096, NO_SNAPSHOT: 8192,
} as const;

/** The domain handle libvirt passes around (remote_nonnull_domain): id is -1 when inactive. */
export interface DomainRef {
  name: string;
  /** dashed lowercase UUID */
  uuid: string;
  id: number;
}

/** virDomainInfo */
export interface DomainInfo {
  state: DomainStateCode;
  /** KiB */
  maxMem: number;
  /** KiB */
  memory: number;
  nrVirtCpu: number;
  /** nanoseconds */
  cpuTime: bigint;
}

/** virNodeInfo */
export interface NodeInfo {
  model: string;
  /** KiB */
  memory: number;
  cpus: number;
  mhz: number;
  nodes: number;
  sockets: number;
  cores: number;
  threads: number;
}

export interface LifecycleEvent {
  domain: DomainRef;
  event: number;
  detail: number;
}

export interface DomainStateInfo { state: DomainStateCode; reason: number }

/** virVcpuState */
export const VcpuState = { OFFLINE: 0, RUNNING: 1, BLOCKED: 2 } as const;

/** virVcpuInfo with its affinity (the cpumap of virDomainGetVcpus, as CPU numbers). */
export interface VcpuInfo {
  number: number;
  state: number;
  /** nanoseconds */
  cpuTime: bigint;
  /** host CPU it runs on, -1 when offline */
  cpu: number;
  affinity: number[];
}

/** virDomainGetSchedulerType */
export interface SchedulerType { type: string; nparams: number }

/** virDomainJobInfo, the part xenvirt reports (times in ms, data in bytes). */
export interface JobInfo {
  /** virDomainJobType: 0 none, 1 bounded, 2 unbounded, 3 completed, 4 failed, 5 cancelled */
  type: number;
  timeElapsed: number;
  timeRemaining: number;
  dataTotal: number;
  dataProcessed: number;
  dataRemaining: number;
}

/** Progress of a long operation run through this connection (save, restore, dump, managed save). */
export interface JobProgressEvent {
  operation: 'save' | 'restore' | 'dump' | 'managedsave';
  domain: { name: string; uuid: string };
  /** bytes */
  processed: number;
  total: number;
}

export interface Connection {
  /** The canonical URI of this connection (virConnectGetURI). */
  getUri(): Promise<string>;
  getHostname(): Promise<string>;
  /** Hypervisor version, libvirt-encoded (major * 1e6 + minor * 1e3 + micro). */
  getVersion(): Promise<number>;
  getLibVersion(): Promise<number>;
  getType(): Promise<string>;
  getCapabilities(): Promise<string>;
  getSysinfo(): Promise<string>;
  nodeGetInfo(): Promise<NodeInfo>;
  nodeGetFreeMemory(): Promise<bigint>;
  isReadOnly(): boolean;

  listAllDomains(flags?: number): Promise<DomainRef[]>;
  lookupByName(name: string): Promise<DomainRef>;
  lookupByUuid(uuid: string): Promise<DomainRef>;
  lookupById(id: number): Promise<DomainRef>;

  defineXml(xml: string, flags?: number): Promise<DomainRef>;
  undefine(dom: DomainRef, flags?: number): Promise<void>;
  createXml(xml: string, flags?: number): Promise<DomainRef>;
  create(dom: DomainRef, flags?: number): Promise<void>;
  shutdown(dom: DomainRef, flags?: number): Promise<void>;
  reboot(dom: DomainRef, flags?: number): Promise<void>;
  destroy(dom: DomainRef, flags?: number): Promise<void>;
  suspend(dom: DomainRef): Promise<void>;
  resume(dom: DomainRef): Promise<void>;
  save(dom: DomainRef, path: string, xml?: string, flags?: number): Promise<void>;
  restore(path: string, xml?: string, flags?: number): Promise<void>;
  coreDump(dom: DomainRef, path: string, flags?: number): Promise<void>;
  managedSave(dom: DomainRef, flags?: number): Promise<void>;
  hasManagedSaveImage(dom: DomainRef): Promise<boolean>;
  managedSaveRemove(dom: DomainRef): Promise<void>;

  getInfo(dom: DomainRef): Promise<DomainInfo>;
  getState(dom: DomainRef): Promise<DomainStateInfo>;
  getXmlDesc(dom: DomainRef, flags?: number): Promise<string>;
  getOsType(dom: DomainRef): Promise<string>;
  isActive(dom: DomainRef): Promise<boolean>;
  isPersistent(dom: DomainRef): Promise<boolean>;
  getAutostart(dom: DomainRef): Promise<boolean>;
  setAutostart(dom: DomainRef, autostart: boolean): Promise<void>;
  getMaxMemory(dom: DomainRef): Promise<number>;
  /** KiB; flags are MemFlags */
  setMemory(dom: DomainRef, kib: number, flags?: number): Promise<void>;
  setMaxMemory(dom: DomainRef, kib: number): Promise<void>;
  /** flags are VcpuFlags */
  setVcpus(dom: DomainRef, count: number, flags?: number): Promise<void>;
  getVcpusFlags(dom: DomainRef, flags?: number): Promise<number>;
  getMaxVcpus(dom: DomainRef): Promise<number>;
  /** Per-vcpu state of a running domain (virDomainGetVcpus). */
  getVcpus(dom: DomainRef): Promise<VcpuInfo[]>;
  /** Each vcpu's allowed host CPUs, live or in the persistent config (virDomainGetVcpuPinInfo; flags are ModFlags). */
  getVcpuPinInfo(dom: DomainRef, flags?: number): Promise<number[][]>;
  /** virDomainPinVcpuFlags; flags are ModFlags */
  pinVcpu(dom: DomainRef, vcpu: number, cpus: number[], flags?: number): Promise<void>;
  getSchedulerType(dom: DomainRef): Promise<SchedulerType>;
  /** virDomainGetSchedulerParametersFlags: field name to value (all unsigned ints for Xen's schedulers). */
  getSchedulerParameters(dom: DomainRef, flags?: number): Promise<Record<string, number>>;
  setSchedulerParameters(dom: DomainRef, params: Record<string, number>, flags?: number): Promise<void>;
  attachDevice(dom: DomainRef, xml: string, flags?: number): Promise<void>;
  detachDevice(dom: DomainRef, xml: string, flags?: number): Promise<void>;

  domainXmlFromNative(format: string, config: string): Promise<string>;
  domainXmlToNative(format: string, xml: string): Promise<string>;

  /** Lifecycle events; returns a function that unsubscribes. `dom` narrows to one domain. */
  onLifecycle(listener: (e: LifecycleEvent) => void, dom?: DomainRef): Promise<() => Promise<void>>;

  /** Optional: the domain's current long job (virDomainGetJobInfo); type 0 when there is none. */
  getJobInfo?(dom: DomainRef): Promise<JobInfo>;
  /** Optional: progress reports of save / restore / dump calls made through this connection. */
  onJobProgress?(listener: (p: JobProgressEvent) => void): () => void;

  close(): Promise<void>;
}

export type { Domain };
