/**
 * The hypervisor backend: what the driver needs from "Xen" itself, below libvirt's semantics.
 *
 * The driver (src/driver) owns names, UUIDs, persistent configs, libvirt states and reasons,
 * events and flags; a backend only runs guests, identified by their Xen domain id, the way
 * libxenlight does for libvirt's libxl driver. The simulated host (./sim) implements it now;
 * an `xl` backend (libxl through the xl tool) and a `xend` backend (the legacy HTTP/sexpr
 * interface) plug into the same interface later.
 *
 * Asynchronous behaviour follows Xen: shutdown and reboot only *ask* the guest, which acts
 * later; the backend then reports a `shutdown` event with Xen's reason (poweroff, reboot,
 * crash, ...), and the driver applies the domain's on_poweroff / on_reboot / on_crash action.
 */
import type { DiskDevice, Domain, InterfaceDevice } from '../domain/types.js';

/** What Xen says a domain is doing (libxl_dominfo's flags, flattened). */
export type GuestRunState = 'running' | 'blocked' | 'paused' | 'shutdown' | 'crashed' | 'dying';

/** libxl_shutdown_reason */
export type XenShutdownReason = 'poweroff' | 'reboot' | 'suspend' | 'crash' | 'watchdog' | 'soft_reset';

export interface GuestInfo {
  domid: number;
  name: string;
  /** dashed lowercase */
  uuid: string;
  state: GuestRunState;
  /** Set when state is 'shutdown': why the guest stopped. */
  shutdownReason?: XenShutdownReason;
  /** KiB currently allocated */
  memory: number;
  /** KiB: the balloon ceiling (maxmem) */
  maxMemory: number;
  /** online vcpus */
  vcpus: number;
  /** vcpus the domain was built with */
  maxVcpus: number;
  /** nanoseconds of CPU consumed */
  cpuTime: bigint;
}

export interface HostInfo {
  /** CPU model string as virNodeInfo reports it ('x86_64'). */
  model: string;
  /** KiB */
  memory: number;
  /** KiB not used by any domain */
  freeMemory: number;
  cpus: number;
  mhz: number;
  nodes: number;
  sockets: number;
  cores: number;
  threads: number;
  /** The hypervisor's CPU scheduler ('credit', 'credit2', ...), when known. */
  scheduler?: string;
}

export interface GuestArchCaps {
  osType: 'xen' | 'hvm' | 'xenpvh';
  arch: 'x86_64' | 'i686';
  wordsize: 32 | 64;
  emulator: string;
  loader?: string;
  machines: string[];
  /** guest features: `pae`/`nonpae` plain, the others with default/toggle */
  features: Array<{ name: string; default?: 'on' | 'off'; toggle?: 'yes' | 'no' }>;
}

export interface HostCapabilities {
  /** host UUID */
  uuid: string;
  arch: string;
  /** host CPU feature flags shown under <host><cpu><features> */
  cpuFeatures: string[];
  topology: { sockets: number; dies: number; cores: number; threads: number };
  migrationTransports: string[];
  /** NUMA cells with their memory (KiB) and CPUs */
  cells: Array<{ id: number; memory: number; cpus: Array<{ id: number; socket: number; die: number; core: number; siblings: string }> }>;
  guests: GuestArchCaps[];
}

/** SMBIOS data for virConnectGetSysinfo. */
export interface SysinfoData {
  bios: Record<string, string>;
  system: Record<string, string>;
  baseBoard: Record<string, string>;
  processors: Array<Record<string, string>>;
  memoryDevices: Array<Record<string, string>>;
}

export type BackendEvent =
  /** The guest stopped on its own or at our request; the driver decides what happens next. */
  | { type: 'shutdown'; domid: number; uuid: string; reason: XenShutdownReason }
  /** The domain vanished without a shutdown (destroyed behind our back). */
  | { type: 'death'; domid: number; uuid: string };

export interface StartOptions {
  /** Leave the new domain paused (VIR_DOMAIN_START_PAUSED). */
  paused?: boolean;
}

/** One vcpu of a running domain (virVcpuInfo plus its affinity). */
export interface VcpuInfo {
  number: number;
  state: 'offline' | 'running' | 'blocked';
  /** nanoseconds */
  cpuTime: bigint;
  /** host cpu it runs on, -1 when offline */
  cpu: number;
  /** host cpus it may run on */
  cpumap: number[];
}

export interface SchedulerParams {
  /** 'credit', 'credit2', 'sedf', ... */
  scheduler: string;
  weight?: number;
  cap?: number;
}

/** Reports bytes done out of a total, for save / restore / dump progress. */
export type ProgressFn = (processed: number, total: number) => void;

export interface HypervisorBackend {
  /** 'sim', 'xl', 'xend' */
  readonly kind: string;

  hostInfo(): Promise<HostInfo>;
  capabilities(): Promise<HostCapabilities>;
  /** Hypervisor version, libvirt-encoded: major * 1e6 + minor * 1e3 + micro. */
  version(): Promise<number>;
  hostname(): Promise<string>;
  /** undefined when the host has no SMBIOS data */
  sysinfo(): Promise<SysinfoData | undefined>;
  /** The most vcpus one guest of this kind may have. */
  maxGuestVcpus(osType: string): Promise<number>;
  /**
   * An identifier that changes whenever the host (re)boots: the driver runs autostart once
   * per boot, as libvirtd does once per start.
   */
  bootId(): Promise<string>;

  /** Every domain Xen knows, Domain-0 (domid 0) included. */
  list(): Promise<GuestInfo[]>;
  info(domid: number): Promise<GuestInfo | undefined>;

  /** Build and boot a domain from its definition; returns the new domid. */
  start(def: Domain, opts?: StartOptions): Promise<number>;
  /** Ask the guest to power off or reboot; completion comes as a 'shutdown' event. */
  shutdown(domid: number, kind: 'poweroff' | 'reboot'): Promise<void>;
  /** Kill the domain now. */
  destroy(domid: number): Promise<void>;
  pause(domid: number): Promise<void>;
  unpause(domid: number): Promise<void>;
  /** Suspend the domain into the file descriptor (at its current offset); the domain is gone afterwards. */
  save(domid: number, fd: number, progress?: ProgressFn): Promise<void>;
  /** Rebuild a saved domain from the file descriptor (positioned at the backend's image); returns the domid. */
  restore(def: Domain, fd: number, opts?: StartOptions & { progress?: ProgressFn }): Promise<number>;
  /** Write the domain's memory image to a new file. */
  coreDump(domid: number, file: string, progress?: ProgressFn): Promise<void>;

  /** Set the balloon target (KiB). */
  setMemory(domid: number, kib: number): Promise<void>;
  /** Set the balloon ceiling (KiB). */
  setMaxMemory(domid: number, kib: number): Promise<void>;
  /** Set the number of online vcpus. */
  setVcpus(domid: number, count: number): Promise<void>;
  attachDisk(domid: number, disk: DiskDevice): Promise<void>;
  detachDisk(domid: number, disk: DiskDevice): Promise<void>;
  attachInterface(domid: number, nic: InterfaceDevice): Promise<void>;
  detachInterface(domid: number, nic: InterfaceDevice): Promise<void>;

  // Optional capabilities: a backend that lacks one leaves it undefined, and the driver
  // answers the matching API with "not supported".

  /** Per-vcpu state and affinity (virDomainGetVcpus). */
  vcpuInfo?(domid: number): Promise<VcpuInfo[]>;
  /** Restrict one vcpu to the given host cpus (virDomainPinVcpu). */
  pinVcpu?(domid: number, vcpu: number, cpus: number[]): Promise<void>;
  /** The host's scheduler and the domain's parameters under it (virDomainGetSchedulerParameters). */
  schedulerParams?(domid: number): Promise<SchedulerParams>;
  /** Change credit scheduler parameters; omitted ones stay as they are. */
  setSchedulerParams?(domid: number, params: { weight?: number; cap?: number }): Promise<void>;
  /** Insert, change or eject the medium of a live CD-ROM or floppy (virDomainUpdateDeviceFlags). */
  changeMedia?(domid: number, disk: DiskDevice): Promise<void>;
  /** The definition of a running domain as the hypervisor describes it (for domains the driver did not start). */
  describe?(domid: number): Promise<Domain | undefined>;

  /**
   * The driver has subscribed and loaded its state: from now on the backend may deliver
   * events, starting with whatever fell due while no driver was around.
   */
  ready(): Promise<void>;
  /** Subscribe to domain events; the driver awaits its listener before the next event. */
  onEvent(listener: (e: BackendEvent) => void | Promise<void>): () => void;
  close(): Promise<void>;
}
