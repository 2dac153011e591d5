/**
 * The typed model of libvirt's <domain> document, as far as Xen guests use it.
 *
 * Conventions:
 * - Memory sizes are KiB numbers (libvirt's canonical unit); the parser scales any unit.
 * - Optional fields are absent when the document did not say, so the formatter can
 *   reproduce libvirt's "only what is set" output, and converters can tell defaults apart.
 * - Tri-state switches ('on'/'off'/'default' in libvirt) are kept as the strings libvirt
 *   prints, because libvirt formats them verbatim.
 * - Arrays keep document order: libvirt formats devices of one kind in insertion order.
 */

export type TriState = 'on' | 'off';
export type YesNo = 'yes' | 'no';
export type LifecycleAction =
  | 'destroy' | 'restart' | 'rename-restart' | 'preserve'
  | 'coredump-destroy' | 'coredump-restart';

export type OsType = 'xen' | 'linux' | 'hvm' | 'xenpvh' | 'exe';

export interface DomainOs {
  /** As written: 'linux' is libvirt's legacy spelling of 'xen' and is printed as given. */
  type: OsType;
  arch?: string;
  machine?: string;
  loader?: {
    path?: string;
    readonly?: YesNo;
    type?: 'rom' | 'pflash';
    secure?: YesNo;
  };
  nvram?: { path?: string; template?: string };
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  root?: string;
  /** <acpi><table type='slic'>path</table></acpi> */
  acpiTables?: Array<{ type: 'slic' | 'rsdt' | 'msdm'; path: string }>;
  boot: Array<'fd' | 'hd' | 'cdrom' | 'network'>;
  bootmenu?: { enable: YesNo; timeout?: number };
}

export interface DomainFeatures {
  /** Features printed as <NAME/> (libvirt 'on' with no state attribute). */
  pae?: boolean;
  acpi?: boolean;
  apic?: boolean;
  viridian?: boolean;
  /** hap, viridian-like features that carry state='on|off'. */
  hap?: TriState;
  pvspinlock?: TriState;
  vmcoreinfo?: TriState;
  /** <hyperv mode='custom'> with a subset of Hyper-V enlightenments. */
  hyperv?: { mode?: 'custom' | 'passthrough'; features: Array<{ name: string; state: TriState; value?: string }> };
  /** <xen> sub-features. */
  xen?: {
    e820_host?: TriState;
    passthrough?: { state: TriState; mode?: 'sync_pt' | 'share_pt' };
  };
  /** msrs, kvm etc. are out of scope for Xen. */
}

export interface CpuFeature { policy: 'force' | 'require' | 'optional' | 'disable' | 'forbid'; name: string }
export interface NumaCell {
  id: number;
  cpus: string;
  /** KiB */
  memory: number;
  memAccess?: 'shared' | 'private';
  distances?: Array<{ id: number; value: number }>;
}
export interface DomainCpu {
  mode?: 'custom' | 'host-model' | 'host-passthrough' | 'maximum';
  match?: 'minimum' | 'exact' | 'strict';
  check?: 'none' | 'partial' | 'full';
  model?: { name: string; fallback?: 'allow' | 'forbid' };
  vendor?: string;
  topology?: { sockets: number; dies?: number; cores: number; threads: number };
  features: CpuFeature[];
  numa?: NumaCell[];
}

export interface ClockTimer {
  name: 'platform' | 'pit' | 'rtc' | 'hpet' | 'tsc' | 'kvmclock' | 'hypervclock' | 'armvtimer';
  present?: YesNo;
  tickpolicy?: 'delay' | 'catchup' | 'merge' | 'discard';
  track?: 'boot' | 'guest' | 'wall' | 'realtime';
  mode?: 'auto' | 'native' | 'emulate' | 'paravirt' | 'smpsafe';
  frequency?: number;
}
export interface DomainClock {
  offset: 'utc' | 'localtime' | 'timezone' | 'variable' | 'absolute';
  /** 'reset' or a signed number of seconds (utc/localtime/variable). */
  adjustment?: 'reset' | number;
  basis?: 'utc' | 'localtime';
  timezone?: string;
  start?: number;
  timers: ClockTimer[];
}

export interface DriveAddress { type: 'drive'; controller: number; bus: number; target: number; unit: number }
export interface PciAddress { type: 'pci'; domain: number; bus: number; slot: number; function: number; multifunction?: TriState }
export interface UsbAddress { type: 'usb'; bus: number; port: string }
export interface XenAddress { type: 'xen'; }
export type DeviceAddress = DriveAddress | PciAddress | UsbAddress;

export interface NetHost { name: string; port?: number; transport?: string; socket?: string }

export interface DiskDevice {
  type: 'file' | 'block' | 'network' | 'dir' | 'volume';
  device: 'disk' | 'cdrom' | 'floppy' | 'lun';
  driver?: { name?: string; type?: string; cache?: string; io?: string; discard?: string };
  /** file path (file/dir), device node (block); absent = empty (e.g. a cdrom without media). */
  source?: {
    path?: string;
    /** for type='network' */
    protocol?: string;
    name?: string;
    hosts?: NetHost[];
    auth?: { username: string; secretType: string; usage?: string; uuid?: string };
  };
  /** libvirt 9.0 prints <backingStore/> for disks whose backing chain is known to be empty. */
  backingStore?: boolean;
  target: { dev: string; bus?: 'ide' | 'scsi' | 'virtio' | 'xen' | 'usb' | 'sata' | 'fdc' | 'sd'; tray?: 'open' | 'closed' };
  readonly?: boolean;
  shareable?: boolean;
  transient?: boolean;
  serial?: string;
  address?: DeviceAddress;
}

export interface ControllerDevice {
  type: 'xenbus' | 'ide' | 'usb' | 'scsi' | 'fdc' | 'pci' | 'virtio-serial' | 'sata' | 'ccid';
  index: number;
  model?: string;
  ports?: number;
  maxGrantFrames?: number;
  maxEventChannels?: number;
  address?: DeviceAddress;
}

export interface InterfaceDevice {
  type: 'bridge' | 'ethernet' | 'network' | 'direct' | 'user' | 'vhostuser' | 'hostdev';
  mac?: string;
  /** bridge name, network name, or direct dev, depending on type */
  source?: { bridge?: string; network?: string; dev?: string; mode?: string; portgroup?: string };
  bandwidth?: {
    inbound?: { average: number; peak?: number; burst?: number; floor?: number };
    outbound?: { average: number; peak?: number; burst?: number };
  };
  vlan?: { trunk?: boolean; tags: Array<{ id: number; nativeMode?: 'tagged' | 'untagged' }> };
  virtualport?: { type: 'openvswitch' | '802.1Qbg' | '802.1Qbh' | 'midonet'; interfaceid?: string; profileid?: string };
  ips: Array<{ address: string; family?: 'ipv4' | 'ipv6'; prefix?: number }>;
  script?: string;
  /** Xen backend domain: <backenddomain name='...'/> */
  backendDomain?: string;
  target?: string;
  model?: string;
  linkState?: 'up' | 'down';
  address?: DeviceAddress;
}

export type CharSourceType = 'null' | 'vc' | 'pty' | 'dev' | 'file' | 'pipe' | 'stdio' | 'udp' | 'tcp' | 'unix' | 'spicevmc';
export interface CharSource {
  type: CharSourceType;
  /** pty/dev/file/pipe/unix path */
  path?: string;
  /** tcp/unix: 'bind' (listen) or 'connect' */
  mode?: 'bind' | 'connect';
  host?: string;
  service?: string;
  /** udp: the local (bind) end; host/service are the remote (connect) end */
  bindHost?: string;
  bindService?: string;
  /** tcp: 'raw' or 'telnet' (and TLS variants) */
  protocol?: 'raw' | 'telnet' | 'telnets' | 'tls';
  append?: TriState;
  /** legacy console tty attribute */
  tty?: string;
}
export interface CharDevice {
  source: CharSource;
  target: {
    type?: string;          // console: 'xen' | 'serial'; serial: 'isa-serial'...; channel: 'xen' | 'virtio'
    port?: number;
    name?: string;          // channel target name
  };
}

export interface InputDevice { type: 'mouse' | 'tablet' | 'keyboard' | 'passthrough' | 'evdev'; bus: 'ps2' | 'usb' | 'xen' | 'virtio' | 'none'; address?: DeviceAddress }

export interface GraphicsListen { type: 'address' | 'network' | 'socket' | 'none'; address?: string; network?: string; socket?: string }
export interface GraphicsDevice {
  type: 'vnc' | 'sdl' | 'spice' | 'rdp' | 'desktop' | 'egl-headless';
  /** vnc/spice: -1 means "let the host pick" (autoport) */
  port?: number;
  tlsPort?: number;
  autoport?: YesNo;
  /** The legacy listen attribute: libvirt mirrors the first address listen into it. */
  listenAttr?: string;
  passwd?: string;
  keymap?: string;
  /** sdl */
  display?: string;
  xauth?: string;
  fullscreen?: YesNo;
  listens: GraphicsListen[];
  /** spice sub-elements */
  mouseMode?: 'server' | 'client';
  clipboardCopypaste?: YesNo;
  image?: string;
  streaming?: string;
}

export interface VideoDevice {
  model: { type: 'cirrus' | 'vga' | 'xen' | 'qxl' | 'virtio' | 'none' | 'bochs' | 'ramfb'; vram?: number; heads?: number; primary?: boolean };
}

export interface SoundDevice { model: string }

export interface HostdevDevice {
  mode: 'subsystem';
  type: 'pci' | 'usb';
  managed: YesNo;
  driverName?: string;
  /** pci: <source writeFiltering='..'> */
  writeFiltering?: YesNo;
  pci?: { domain: number; bus: number; slot: number; function: number };
  usb?: { vendor?: string; product?: string; bus?: number; device?: number };
  /** guest-side address */
  address?: DeviceAddress;
}

export interface RedirdevDevice { bus: 'usb'; type: 'spicevmc' | 'tcp'; source?: CharSource }
export interface HubDevice { type: 'usb' }
export interface MemballoonDevice { model: 'xen' | 'virtio' | 'none'; autodeflate?: TriState }

export interface DomainDevices {
  emulator?: string;
  disks: DiskDevice[];
  controllers: ControllerDevice[];
  interfaces: InterfaceDevice[];
  serials: CharDevice[];
  parallels: CharDevice[];
  consoles: CharDevice[];
  channels: CharDevice[];
  inputs: InputDevice[];
  graphics: GraphicsDevice[];
  sounds: SoundDevice[];
  videos: VideoDevice[];
  hostdevs: HostdevDevice[];
  redirdevs: RedirdevDevice[];
  hubs: HubDevice[];
  memballoon?: MemballoonDevice;
}

export interface DomainVcpu {
  count: number;
  placement?: 'static' | 'auto';
  cpuset?: string;
  current?: number;
}

export interface Domain {
  /** 'xen' for every guest we manage; kept for documents of other hypervisors. */
  type: string;
  /** Running domain id (printed only for live XML). */
  id?: number;
  name: string;
  uuid?: string;
  title?: string;
  description?: string;
  /** <maxMemory slots='N'>: hotplug ceiling, KiB */
  maxMemory?: { kib: number; slots: number };
  /** <memory>: the maximum balloon size, KiB */
  memory: number;
  /** <currentMemory>, KiB; libvirt prints it always (defaulting to memory). */
  currentMemory?: number;
  vcpu: DomainVcpu;
  cputune?: { weight?: number; cap?: number; vcpupins: Array<{ vcpu: number; cpuset: string }> };
  bootloader?: string;
  bootloaderArgs?: string;
  os: DomainOs;
  features?: DomainFeatures;
  cpu?: DomainCpu;
  clock: DomainClock;
  onPoweroff?: LifecycleAction;
  onReboot?: LifecycleAction;
  onCrash?: LifecycleAction;
  devices: DomainDevices;
  /** libvirt's Xen namespace: <xen:commandline><xen:arg value='..'/></xen:commandline> */
  xenCommandline?: string[];
}

export function emptyDevices(): DomainDevices {
  return {
    disks: [], controllers: [], interfaces: [], serials: [], parallels: [], consoles: [],
    channels: [], inputs: [], graphics: [], sounds: [], videos: [], hostdevs: [], redirdevs: [], hubs: [],
  };
}

/** A PV guest in libvirt's sense: os type xen/linux (pvh is neither PV nor HVM). */
export const isHvm = (d: Domain): boolean => d.os.type === 'hvm';
export const isPvh = (d: Domain): boolean => d.os.type === 'xenpvh';
export const isPv = (d: Domain): boolean => d.os.type === 'xen' || d.os.type === 'linux';

/** libvirt's Xen namespace for <xen:commandline>. */
export const XEN_NAMESPACE = 'http://libvirt.org/schemas/domain/xen/1.0';

/** Interface names Xen generates itself (vifDOMID.N): meaningless outside one run of a guest. */
export const GENERATED_IFNAME_PREFIX = 'vif';
