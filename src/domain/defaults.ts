/**
 * libvirt 9.0's post-parse step for Xen guests: the defaults and implicit devices that the
 * libxl driver's callbacks and libvirt's common post-parse code add after any parser (XML or
 * native) has built a definition. Every path into the model runs through here once, so the
 * converters only translate what the input says.
 */
import { VirtError } from '../errors.js';
import type { CharDevice, ControllerDevice, DiskDevice, Domain, InputDevice } from './types.js';
import { isHvm } from './types.js';

export interface PostParseOptions {
  /**
   * Check the guest against the host capabilities and fill the machine type from them
   * (libvirt's Xen test-suite host: x86_64 only, machines xenpv/xenfv/xenpvh). The sexpr
   * corpus was rendered without capabilities, so its converter turns this off.
   */
  capabilities?: boolean;
}

/** The capabilities libvirt's Xen tests use, which the conformance corpus encodes. */
export const XEN_CAPS = {
  arch: 'x86_64',
  hvmLoader: '/usr/lib/xen/boot/hvmloader',
  /** The emulator a guest gets when it names none (not written into its definition). */
  emulator: '/usr/lib/xen/bin/qemu-system-i386',
  machines: { xen: 'xenpv', linux: 'xenpv', hvm: 'xenfv', xenpvh: 'xenpvh' } as Record<string, string>,
};

export function postParse(d: Domain, opts: PostParseOptions = {}): Domain {
  const caps = opts.capabilities !== false;
  d.os.arch ??= XEN_CAPS.arch;
  if (caps) {
    checkCapabilities(d);
    d.os.machine ??= XEN_CAPS.machines[d.os.type];
  }
  if (d.os.loader?.path !== undefined) d.os.loader.type ??= 'rom';
  // An HVM guest that names no boot device boots from its first disk (per-device boot
  // order is not modelled, so the os-level list is the only one).
  if (isHvm(d) && d.os.boot.length === 0) d.os.boot.push('hd');
  if (isHvm(d)) {
    if (caps && !d.os.loader) d.os.loader = { type: 'rom', path: XEN_CAPS.hvmLoader };
  }
  postParseMemory(d);
  d.vcpu.placement ??= 'static';
  if (d.vcpu.current !== undefined && d.vcpu.current >= d.vcpu.count) delete d.vcpu.current;

  for (const disk of d.devices.disks) postParseDisk(d, disk);
  for (const h of d.devices.hostdevs) if (h.type === 'pci') h.driverName ??= 'xen';
  postParseGraphics(d);

  // libxl's domain callback, in its order.
  if (!isHvm(d) && d.devices.consoles.length === 0) {
    d.devices.consoles.push({ source: { type: 'pty' }, target: { type: 'xen', port: 0 } });
  }
  addImplicitInputs(d);
  if (isHvm(d) && d.os.arch === 'x86_64') {
    d.features ??= {};
    d.features.pae = true;
    if (d.cpu?.numa?.length) d.features.acpi = true;
  }
  d.devices.memballoon ??= { model: 'xen' };
  if (!d.devices.controllers.some((c) => c.type === 'xenbus')) addController(d, { type: 'xenbus', index: 0 });

  // libvirt's common callbacks.
  assignCharPorts(d.devices.serials);
  assignCharPorts(d.devices.parallels);
  consoleCompatibility(d);
  for (const c of d.devices.consoles) {
    if (!c.target.type && !isHvm(d)) c.target.type = 'xen';
    c.target.port ??= 0;
  }
  addImplicitControllers(d);
  addImplicitVideo(d);
  return d;
}

function checkCapabilities(d: Domain): void {
  if (d.os.arch !== XEN_CAPS.arch || !(d.os.type in XEN_CAPS.machines)) {
    const osType = isHvm(d) ? '' : `ostype=${d.os.type === 'linux' ? 'xen' : d.os.type} `;
    throw new VirtError('INVALID_ARG', `invalid argument: could not find capabilities for ${osType}arch=${d.os.arch} domaintype=${d.type}`);
  }
}

function postParseMemory(d: Domain): void {
  if (d.currentMemory === undefined || d.currentMemory === 0 || d.currentMemory > d.memory) d.currentMemory = d.memory;
}

const BUS_BY_PREFIX: Array<[string, DiskDevice['target']['bus']]> = [
  ['hd', 'ide'], ['sd', 'scsi'], ['vd', 'virtio'], ['xvd', 'xen'],
];

/** The disk name prefixes diskNameToIndex knows (no one is a prefix of another). */
const DISK_NAME_PREFIXES = ['hd', 'sd', 'vd', 'xvd', 'fd', 'ubd'];

/** libvirt's disk name -> index: 'a'..'z', 'aa'.. as a bijective base-26 number; partitions ignored. */
export function diskNameToIndex(name: string): number | undefined {
  // PREFIX LETTERS [DIGITS], read without a regex (this runs for every disk of every domain).
  const prefix = DISK_NAME_PREFIXES.find((p) => name.startsWith(p));
  if (prefix === undefined) return undefined;
  let i = prefix.length;
  let idx = 0;
  for (; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x61 || c > 0x7a) break;
    idx = idx * 26 + (c - 0x60);
  }
  if (i === prefix.length) return undefined;
  for (; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
  }
  return idx - 1;
}

function postParseDisk(d: Domain, disk: DiskDevice): void {
  if (!disk.target.bus) {
    if (disk.device === 'floppy') disk.target.bus = 'fdc';
    else disk.target.bus = BUS_BY_PREFIX.find(([p]) => disk.target.dev.startsWith(p))?.[1] ?? 'ide';
  }
  if (disk.device === 'cdrom') disk.readonly = true;
  // libxl's device callback: network disks default to the qemu backend; xl's format default is raw.
  // Set in place (the driver object is this disk's own, as every other post-parse change is
  // made in place): rebuilding it with an object spread takes the engine's slow path.
  if (disk.type === 'network' && !disk.driver?.name) {
    if (disk.driver) disk.driver.name = 'qemu';
    else disk.driver = { name: 'qemu' };
  }
  if (!disk.driver?.type) {
    if (disk.driver) disk.driver.type = 'raw';
    else disk.driver = { type: 'raw' };
  }
  if (!disk.address) {
    const idx = diskNameToIndex(disk.target.dev);
    if (idx !== undefined) {
      if (disk.target.bus === 'ide') {
        disk.address = { type: 'drive', controller: Math.floor(idx / 4), bus: Math.floor((idx % 4) / 2), target: 0, unit: idx % 2 };
      } else if (disk.target.bus === 'scsi') {
        disk.address = { type: 'drive', controller: Math.floor(idx / 7), bus: 0, target: 0, unit: idx % 7 };
      } else if (disk.target.bus === 'fdc') {
        disk.address = { type: 'drive', controller: 0, bus: 0, target: 0, unit: idx % 2 };
      }
    }
  }
  void d;
}

function postParseGraphics(d: Domain): void {
  for (const g of d.devices.graphics) {
    if (g.type !== 'vnc' && g.type !== 'spice') continue;
    // port -1 (or none at all) means "the host picks", which libvirt records as autoport.
    if (g.port === -1 || (g.port === undefined && g.autoport !== 'no')) {
      g.autoport = 'yes';
      g.port = -1;
    }
    g.autoport ??= 'no';
    if (g.listens.length === 0) {
      g.listens.push(g.listenAttr !== undefined ? { type: 'address', address: g.listenAttr } : { type: 'address' });
    }
  }
}

function addImplicitInputs(d: Domain): void {
  const bus: InputDevice['bus'] = isHvm(d) ? 'ps2' : 'xen';
  for (const type of ['mouse', 'keyboard'] as const) {
    if (!d.devices.inputs.some((i) => i.type === type && i.bus === bus)) d.devices.inputs.push({ type, bus });
  }
}

function addController(d: Domain, c: ControllerDevice): void {
  d.devices.controllers.push(c);
}

function addImplicitControllers(d: Domain): void {
  const need = (type: ControllerDevice['type'], index: number) => {
    if (!d.devices.controllers.some((c) => c.type === type && c.index === index)) addController(d, { type, index });
  };
  for (const disk of d.devices.disks) {
    const ctrl = disk.address?.type === 'drive' ? disk.address.controller : 0;
    if (disk.target.bus === 'ide') need('ide', ctrl);
    else if (disk.target.bus === 'scsi') need('scsi', ctrl);
    else if (disk.target.bus === 'fdc') need('fdc', ctrl);
    else if (disk.target.bus === 'sata') need('sata', ctrl);
  }
}

function addImplicitVideo(d: Domain): void {
  const dev = d.devices;
  if (dev.graphics.length > 0 && dev.videos.length === 0) {
    dev.videos.push({ model: { type: isHvm(d) ? 'cirrus' : 'xen' } });
  }
  dev.videos.forEach((v, i) => {
    const m = v.model;
    if (m.vram === undefined || m.vram === 0) {
      // libxl's defaults for qemu-xen first (HVM only), then libvirt's generic ones.
      if (isHvm(d) && (m.type === 'vga' || m.type === 'xen')) m.vram = 16384;
      else if (isHvm(d) && m.type === 'cirrus') m.vram = 8192;
      else if (m.type === 'qxl') m.vram = isHvm(d) ? 131072 : 65536;
      else if (m.type === 'xen') m.vram = 4096;
      else if (m.type === 'vga' || m.type === 'cirrus' || m.type === 'bochs') m.vram = 16384;
    }
    m.heads ??= 1;
    if (i === 0 && m.type !== 'none') m.primary = true;
  });
}

function sameChar(a: CharDevice, b: CharDevice): boolean {
  return JSON.stringify(a.source) === JSON.stringify(b.source);
}

/**
 * The serial/console aliasing libvirt keeps for HVM guests: the first console of an HVM
 * guest *is* its first serial port, shown in both places.
 */
function consoleCompatibility(d: Domain): void {
  if (!isHvm(d)) return;
  const dev = d.devices;
  const first = dev.consoles[0];
  if (first && (first.target.type === undefined || first.target.type === 'serial')) {
    if (dev.serials.length === 0) {
      dev.serials.push({ source: { ...first.source }, target: { port: 0 } });
    } else if (!sameChar(first, dev.serials[0]!)) {
      // A console distinct from serial0 is a separate device: keep it as it is.
      return;
    }
    first.target = { type: 'serial', port: dev.serials[0]!.target.port ?? 0 };
    first.source = { ...dev.serials[0]!.source };
  } else if (!first && dev.serials.length > 0) {
    const s = dev.serials[0]!;
    if (s.target.type === undefined || s.target.type === 'isa-serial') {
      dev.consoles.unshift({ source: { ...s.source }, target: { type: 'serial', port: s.target.port ?? 0 } });
    }
  }
}

function assignCharPorts(list: CharDevice[]): void {
  let next = 0;
  for (const c of list) {
    if (c.target.port === undefined) c.target.port = next;
    next = Math.max(next, c.target.port + 1);
  }
}
