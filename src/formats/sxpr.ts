/**
 * xen-sxpr: XenD's S-expression domain description, both directions.
 *
 * Reading (`sxprToDomain`) takes what XenD answers to `GET /xend/domain/NAME?detail=1`
 * (`(domain (domid 6)(name ..)(image (linux ..))(device (vbd ..)) ..)`) or a `(vm ..)` config,
 * and produces what libvirt's old sexpr parser (xen_sxpr.c / xend_internal.c) put in its domain
 * definition; libvirt's post-parse defaults (arch, pae, implicit controllers and inputs, video,
 * console mirroring of the first serial, ...) are left to `postParse`.
 *
 * Where libvirt's parser changed over the years the choices are:
 *  - disk devices `hdc:cdrom` are always split into target and device kind (XenD >= 3.0.3), and
 *    XenD 3.0.2's `(image (hvm (cdrom PATH)))` still gives an hdc CD-ROM unless a device already
 *    uses hdc;
 *  - HVM clocks are utc/localtime with adjustment='reset' as the old parser produced, unless the
 *    image carries `rtc_timeoffset` (XenD >= 3.1), which gives a variable clock;
 *  - an HVM VNC display without a port is given XenD 3.0.2's fixed port 5900+domid when the
 *    description has that release's shape (`ioemu:` disk names or an image cdrom); later XenD
 *    picked ports dynamically, so the port stays unknown (-1) there;
 *  - a `(device (vfb ..))` that names no display type is skipped instead of refused, so that the
 *    image's own `(vnc 1)` settings describe the display (libvirt's fv-legacy-vfb test);
 *  - interface names XenD generated (`vifN.M`) are not kept, as libvirt 9.0 drops them, and VNC
 *    passwords are not read, as libvirt's sexpr conversions never showed them; options
 *    (`live`, `secrets`) keep both for a driver describing running domains.
 * Unlike libvirt, malformed values (non-numeric memory, unknown lifecycle actions, unknown
 * device strings) are errors naming the node instead of silently becoming zero.
 *
 * Writing (`domainToSxpr`) produces the `(vm ..)` configuration XenD's `create` and `new`
 * operations accept, in the shape of libvirt's old xenFormatSxpr, written so that reading it
 * back gives the same domain.
 */
import { randomUUID } from 'node:crypto';
import { VirtError, unsupported } from '../errors.js';
import { parseUuid } from '../domain/parse.js';
import {
  emptyDevices,
  type CharDevice, type CharSource, type CharSourceType, type DiskDevice, type Domain, type GraphicsDevice,
  type HostdevDevice, type InterfaceDevice, type LifecycleAction,
} from '../domain/types.js';
import { formatSexpr, joinBackslashNewlines, parseSexpr, sexprHead, type SExpr } from './sexpr.js';

// ---- errors --------------------------------------------------------------------------------

/** libvirt reported every problem in a XenD description as an internal error; so do we. */
function sxprError(message: string): VirtError {
  return new VirtError('INTERNAL_ERROR', message);
}

// ---- small lookups on S-expression nodes ---------------------------------------------------

type List = SExpr[];

/** The first child list of `node` named `name`. */
function child(node: List | undefined, name: string): List | undefined {
  if (!node) return undefined;
  for (let i = 1; i < node.length; i++) {
    const c = node[i]!;
    if (Array.isArray(c) && c[0] === name) return c;
  }
  return undefined;
}

/** Every child list of `node` named `name`, in order. */
function children(node: List | undefined, name: string): List[] {
  const out: List[] = [];
  if (!node) return out;
  for (let i = 1; i < node.length; i++) {
    const c = node[i]!;
    if (Array.isArray(c) && c[0] === name) out.push(c);
  }
  return out;
}

/**
 * The atom value of `(name VALUE)` under `node`; undefined when the child is absent or has no
 * value (`(kernel )`). A list where a single value belongs is an error naming the path.
 */
function atom(node: List | undefined, name: string, path: string): string | undefined {
  const c = child(node, name);
  if (!c || c.length < 2) return undefined;
  const v = c[1]!;
  if (typeof v !== 'string') throw sxprError(`sexpr ${path}/${name}: expected a single value, found a list`);
  return v;
}

/** C's strtol(s, &end, 0) over the whole string: decimal, 0x hex or 0 octal, nothing after. */
function parseWholeInt(s: string): number | undefined {
  // Plain decimals, nearly every number XenD writes, need no regex.
  if (isPlainDecimal(s)) {
    const v = parseInt(s, 10);
    return Number.isSafeInteger(v) ? v : undefined;
  }
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return undefined;
  const body = m[2]!;
  let v: number;
  if (/^0[xX]/.test(body)) v = parseInt(body.slice(2), 16);
  else if (body.length > 1 && body[0] === '0') v = parseInt(body, 8);
  else v = parseInt(body, 10);
  if (!Number.isSafeInteger(v)) return undefined;
  return m[1] === '-' ? -v : v;
}

/** /^(0|[1-9][0-9]*)$/: a decimal without the leading zero that would make it octal. */
function isPlainDecimal(s: string): boolean {
  if (s.length === 0 || (s.charCodeAt(0) === 0x30 && s.length > 1)) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function intAt(node: List | undefined, name: string, path: string, opts: { min?: number; max?: number } = {}): number | undefined {
  const v = atom(node, name, path);
  if (v === undefined) return undefined;
  const n = parseWholeInt(v);
  if (n === undefined || (opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
    const range = opts.min !== undefined ? (opts.max !== undefined ? ` between ${opts.min} and ${opts.max}` : ` of at least ${opts.min}`) : '';
    throw sxprError(`sexpr ${path}/${name}: '${v}' is not a whole number${range}`);
  }
  return n;
}

/** A flag such as `(acpi 1)`: true for a non-zero number, false for zero, undefined if absent. */
function flagAt(node: List | undefined, name: string, path: string): boolean | undefined {
  const n = intAt(node, name, path);
  return n === undefined ? undefined : n !== 0;
}

// ---- reading: options ----------------------------------------------------------------------

export interface SxprReadOptions {
  /** The console pty of a running domain (XenStore `/local/domain/ID/console/tty`). */
  tty?: string;
  /** The VNC port of a running domain (XenStore `/local/domain/ID/console/vnc-port`). */
  vncPort?: number;
  /**
   * Keep XenD's `vncpasswd`. Off by default: libvirt's sexpr conversions never carried VNC
   * passwords into the XML (their expectations have none), and a description read for display
   * should not leak them. A driver that re-creates domains from XenD's answers turns it on.
   */
  secrets?: boolean;
  /**
   * The description is of a running domain and is shown as such: keep the interface names
   * XenD generated (`vifDOMID.N`), and name unnamed interfaces that way as libvirt's old driver
   * did. Off by default, as in libvirt 9.0's conversions, which drop those names.
   */
  live?: boolean;
}

const LIFECYCLE: ReadonlySet<string> = new Set(['destroy', 'restart', 'preserve', 'rename-restart']);
const CRASH_LIFECYCLE: ReadonlySet<string> = new Set([...LIFECYCLE, 'coredump-destroy', 'coredump-restart']);

/** libvirt's storage formats a blktap `tap:FORMAT:` prefix may name (`aio` is raw). */
const DISK_FORMATS: ReadonlySet<string> = new Set([
  'raw', 'dir', 'bochs', 'cloop', 'dmg', 'iso', 'vpc', 'vdi', 'fat', 'vhd', 'ploop', 'cow', 'qcow', 'qcow2', 'qed', 'vmdk',
]);

const SOUND_MODELS: ReadonlySet<string> = new Set(['sb16', 'es1370', 'pcspk', 'ac97', 'ich6', 'ich9', 'usb', 'ich7']);

const CHAR_TYPES: ReadonlySet<string> = new Set([
  'null', 'vc', 'pty', 'dev', 'file', 'pipe', 'stdio', 'udp', 'tcp', 'unix', 'spicevmc',
]);

/** The vif script XenD uses for bridged interfaces; a vif naming it is bridged even without a bridge. */
const DEFAULT_VIF_SCRIPT = 'vif-bridge';

/** Upper bounds that keep hostile numbers out of the model. */
const MAX_MIB = Math.floor(Number.MAX_SAFE_INTEGER / 1024);
const MAX_VCPUS = 4096;

// ---- reading: the domain --------------------------------------------------------------------

/**
 * Converts XenD's description of a domain (`(domain ...)`, or a `(vm ...)` config) into the
 * domain model, without libvirt's post-parse defaults. Throws VirtError naming the node on
 * anything malformed.
 */
export function sxprToDomain(e: SExpr, opts: SxprReadOptions = {}): Domain {
  const head = sexprHead(e);
  if (!Array.isArray(e) || (head !== 'domain' && head !== 'vm')) {
    const found = Array.isArray(e) ? (head === undefined ? 'a list without a name' : `(${head} ...)`) : `the atom '${e}'`;
    throw sxprError(`sexpr: expected a (domain ...) description, found ${found}`);
  }
  const root = e;
  const R = head;

  const domid = intAt(root, 'domid', R);
  const name = atom(root, 'name', R);
  if (name === undefined || name === '') throw sxprError(`domain information incomplete, missing name (${R}/name)`);

  const uuidText = atom(root, 'uuid', R);
  let uuid: string;
  if (uuidText === undefined) {
    // XenD always reports one; a hand-written (vm ...) may leave it out, as a native config may.
    uuid = randomUUID();
  } else {
    const u = parseUuid(uuidText);
    if (!u) throw sxprError(`sexpr ${R}/uuid: '${uuidText}' is not a valid UUID`);
    uuid = u;
  }

  const image = child(root, 'image');
  if (image && !child(image, 'hvm') && !child(image, 'linux') && image.length > 1) {
    const kind = sexprHead(image[1]) ?? String(image[1]);
    throw sxprError(`unknown image kind '${kind}' (${R}/image): expected (linux ...) or (hvm ...)`);
  }
  const hvmImage = child(image, 'hvm');
  const hvm = hvmImage !== undefined;
  const osImage = hvm ? hvmImage : child(image, 'linux');
  const imagePath = `${R}/image/${hvm ? 'hvm' : 'linux'}`;

  const dom: Domain = {
    type: 'xen',
    name,
    uuid,
    memory: 0,
    vcpu: { count: 1 },
    os: { type: hvm ? 'hvm' : 'xen', boot: [] },
    clock: { offset: 'utc', timers: [] },
    devices: emptyDevices(),
  };
  if (domid !== undefined) dom.id = domid;
  const description = atom(root, 'description', R);
  if (description !== undefined) dom.description = description;

  if (!hvm) readBootloader(root, R, dom);
  // Domain-0 has no image of its own to describe.
  if (domid !== 0 && image) readOs(osImage, imagePath, hvm, dom);

  readMemory(root, R, dom);
  readVcpus(root, R, dom);
  dom.onPoweroff = readLifecycle(root, 'on_poweroff', R, 'destroy', LIFECYCLE);
  dom.onReboot = readLifecycle(root, 'on_reboot', R, 'restart', LIFECYCLE);
  dom.onCrash = readLifecycle(root, 'on_crash', R, 'destroy', CRASH_LIFECYCLE);
  if (hvm) readHvmFeatures(hvmImage, imagePath, dom);
  readClock(root, R, osImage, imagePath, hvm, dom);

  const emulator = atom(osImage, 'device_model', imagePath);
  if (emulator !== undefined) dom.devices.emulator = emulator;

  const devices = children(root, 'device');
  checkDeviceKinds(devices, R);
  readDisks(devices, R, dom);
  if (hvm) readImageDisks(hvmImage, imagePath, dom);
  readInterfaces(devices, R, dom, opts.live === true);
  readPciDevices(devices, R, dom);
  readGraphics(devices, R, osImage, imagePath, dom, {
    vncPort: opts.vncPort ?? -1,
    fixedPortXend: hvm && looksLikeXend302(root, hvmImage, imagePath),
    secrets: opts.secrets === true,
  });
  if (hvm) {
    readUsbInputs(hvmImage, imagePath, dom);
    readHvmCharDevices(hvmImage, imagePath, dom, opts.tty);
    readSounds(hvmImage, imagePath, dom);
  } else if (domid !== 0) {
    // XenD does not list the PV console; every PV guest but Domain-0 has one.
    const source: CharSource = { type: 'pty' };
    if (opts.tty !== undefined) source.path = opts.tty;
    dom.devices.consoles.push({ source, target: { type: 'xen', port: 0 } });
  }
  return dom;
}

/**
 * XenD's device classes. The ones the domain XML has no place for (consoles XenD lists for PV
 * guests, vkbd which goes with vfb, vtpm, vscsi, vusb, I/O ports, IRQs) are read past, as
 * libvirt did; anything else is not a XenD description.
 */
const DEVICE_KINDS: ReadonlySet<string> = new Set([
  'vbd', 'tap', 'tap2', 'vif', 'pci', 'vfb', 'vkbd', 'console', 'vtpm', 'vscsi', 'vusb', 'ioports', 'irq',
]);

function checkDeviceKinds(devices: List[], R: string): void {
  devices.forEach((device, i) => {
    const kinds = device.slice(1);
    const first = kinds[0];
    if (kinds.length !== 1 || !Array.isArray(first) || typeof first[0] !== 'string') {
      throw sxprError(`sexpr ${R}/device[${i}]: expected one (KIND ...) list in a device`);
    }
    if (!DEVICE_KINDS.has(first[0])) throw sxprError(`unknown device kind '${first[0]}' (${R}/device[${i}])`);
  });
}

function readBootloader(root: List, R: string, dom: Domain): void {
  const bl = child(root, 'bootloader');
  if (!bl) return;
  // `(bootloader )` means "XenD's default bootloader": keep it as an empty path.
  dom.bootloader = atom(root, 'bootloader', R) ?? '';
  const args = atom(root, 'bootloader_args', R);
  if (args !== undefined) dom.bootloaderArgs = args;
}

function readOs(img: List | undefined, path: string, hvm: boolean, dom: Domain): void {
  const os = dom.os;
  const kernel = atom(img, 'kernel', path);
  if (hvm) {
    const loader = atom(img, 'loader', path);
    if (loader !== undefined) {
      os.loader = { path: loader };
      // Direct kernel boot: the firmware is named by (loader), the guest kernel by (kernel).
      if (kernel !== undefined && kernel !== '' && kernel !== loader) os.kernel = kernel;
      readKernelExtras(img, path, dom);
    } else if (kernel !== undefined) {
      // Older XenD named the firmware in (kernel).
      os.loader = { path: kernel };
    } else {
      throw sxprError(`domain information incomplete, missing HVM loader (${path}/kernel)`);
    }
    if (os.kernel === undefined) os.boot = parseBootOrder(atom(img, 'boot', path));
    return;
  }
  if (kernel !== undefined) os.kernel = kernel;
  readKernelExtras(img, path, dom);
  if (os.kernel === undefined && dom.bootloader === undefined) {
    throw sxprError(`domain information incomplete, missing kernel & bootloader (${path}/kernel)`);
  }
}

function readKernelExtras(img: List | undefined, path: string, dom: Domain): void {
  const initrd = atom(img, 'ramdisk', path);
  if (initrd !== undefined) dom.os.initrd = initrd;
  const cmdline = atom(img, 'args', path);
  if (cmdline !== undefined) dom.os.cmdline = cmdline;
  const root = atom(img, 'root', path);
  if (root !== undefined) dom.os.root = root;
}

/** XenD's boot string: a floppy, c disk, d cdrom, n network; other letters are ignored. */
function parseBootOrder(s: string | undefined): Domain['os']['boot'] {
  const out: Domain['os']['boot'] = [];
  const map: Record<string, Domain['os']['boot'][number]> = { a: 'fd', c: 'hd', d: 'cdrom', n: 'network' };
  for (const ch of s ?? '') {
    if (out.length >= 4) break;
    const dev = map[ch];
    if (dev) out.push(dev);
  }
  return out;
}

function readMemory(root: List, R: string, dom: Domain): void {
  const cur = intAt(root, 'memory', R, { min: 0, max: MAX_MIB });
  const max = intAt(root, 'maxmem', R, { min: 0, max: MAX_MIB });
  if (cur === undefined && max === undefined) throw sxprError(`domain information incomplete, missing memory (${R}/memory)`);
  // A config may give only one of them; XenD treats the other as equal.
  const maxKiB = (max ?? cur!) * 1024;
  const curKiB = (cur ?? max!) * 1024;
  dom.memory = maxKiB;
  dom.currentMemory = Math.min(curKiB, maxKiB);
}

function readVcpus(root: List, R: string, dom: Domain): void {
  const count = intAt(root, 'vcpus', R, { min: 1, max: MAX_VCPUS }) ?? 1;
  dom.vcpu = { count };
  const availText = atom(root, 'vcpu_avail', R);
  if (availText !== undefined) {
    if (!/^\s*[0-9]+$/.test(availText)) throw sxprError(`sexpr ${R}/vcpu_avail: '${availText}' is not a bitmap number`);
    const online = popcount(BigInt(availText.trim()));
    if (online > 0 && online < count) dom.vcpu.current = online;
  }
  readCpus(root, R, dom);
}

function popcount(n: bigint): number {
  let c = 0;
  for (let v = n; v > 0n; v >>= 1n) if (v & 1n) c++;
  return c;
}

const CPUSET_RE = /^\^?\d+(-\d+)?(,\^?\d+(-\d+)?)*$/;

/** `(cpus '0-3')` pins every vcpu; XenD's own `(cpus ((0 1) ()))` lists cpus per vcpu. */
function readCpus(root: List, R: string, dom: Domain): void {
  const node = child(root, 'cpus');
  if (!node || node.length < 2) return;
  const v = node[1]!;
  if (typeof v === 'string') {
    if (v === '') return;
    if (!CPUSET_RE.test(v)) throw sxprError(`sexpr ${R}/cpus: '${v}' is not a cpu list`);
    dom.vcpu.cpuset = v;
    return;
  }
  const pins: Array<{ vcpu: number; cpuset: string }> = [];
  v.forEach((entry, vcpu) => {
    const cpus = typeof entry === 'string' ? [entry] : entry;
    if (!cpus.every((c) => typeof c === 'string' && /^\d+$/.test(c))) {
      throw sxprError(`sexpr ${R}/cpus: the list for vcpu ${vcpu} must hold cpu numbers`);
    }
    if (cpus.length > 0) pins.push({ vcpu, cpuset: cpuRanges((cpus as string[]).map(Number)) });
  });
  if (pins.length === 0) return;
  if (pins.length === dom.vcpu.count && pins.every((p) => p.cpuset === pins[0]!.cpuset)) dom.vcpu.cpuset = pins[0]!.cpuset;
  else dom.cputune = { vcpupins: pins.filter((p) => p.vcpu < dom.vcpu.count) };
}

/** CPU numbers as libvirt writes a cpuset: sorted, runs collapsed (`0-3,6`). */
function cpuRanges(cpus: number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j > i ? `${sorted[i]}-${sorted[j]}` : String(sorted[i]));
    i = j + 1;
  }
  return parts.join(',');
}

function readLifecycle(root: List, key: string, R: string, dflt: LifecycleAction, allowed: ReadonlySet<string>): LifecycleAction {
  const v = atom(root, key, R);
  if (v === undefined) return dflt;
  if (!allowed.has(v)) throw sxprError(`unknown lifecycle type ${v} (${R}/${key})`);
  return v as LifecycleAction;
}

function readHvmFeatures(img: List | undefined, path: string, dom: Domain): void {
  const f: NonNullable<Domain['features']> = {};
  if (flagAt(img, 'acpi', path)) f.acpi = true;
  if (flagAt(img, 'apic', path)) f.apic = true;
  if (flagAt(img, 'pae', path)) f.pae = true;
  const hap = flagAt(img, 'hap', path);
  if (hap !== undefined) f.hap = hap ? 'on' : 'off';
  if (flagAt(img, 'viridian', path)) f.viridian = true;
  if (Object.keys(f).length > 0) dom.features = f;
}

function readClock(root: List, R: string, img: List | undefined, path: string, hvm: boolean, dom: Domain): void {
  // XenD 3.0.3 added a second, lower-priority localtime at the top level.
  let localtime = intAt(root, 'localtime', R) ?? 0;
  const imgLocal = atom(img, 'localtime', path);
  if (imgLocal !== undefined) {
    const n = parseWholeInt(imgLocal);
    if (n === undefined) throw sxprError(`unknown localtime offset ${imgLocal} (${path}/localtime)`);
    localtime = n;
  }
  const basis = localtime ? 'localtime' : 'utc';
  const rtcOffset = hvm ? intAt(img, 'rtc_timeoffset', path) : undefined;
  if (rtcOffset !== undefined) {
    dom.clock = { offset: 'variable', adjustment: rtcOffset, basis, timers: [] };
  } else {
    dom.clock = { offset: basis, adjustment: 'reset', timers: [] };
  }
  if (hvm) {
    const hpet = flagAt(img, 'hpet', path);
    if (hpet !== undefined) dom.clock.timers.push({ name: 'hpet', present: hpet ? 'yes' : 'no' });
  }
}

// ---- reading: disks -------------------------------------------------------------------------

const DISK_KINDS = ['vbd', 'tap', 'tap2'] as const;

function readDisks(devices: List[], R: string, dom: Domain): void {
  devices.forEach((device, i) => {
    const kind = DISK_KINDS.find((k) => child(device, k));
    if (!kind) return;
    const node = child(device, kind)!;
    const disk = readDisk(node, kind, `${R}/device[${i}]/${kind}`);
    const disks = dom.devices.disks;
    // XenD marks the disk to boot from; libvirt swapped it to the front.
    if (atom(node, 'bootable', `${R}/device[${i}]/${kind}`) === '1' && disks.length > 0) {
      disks.push(disks[0]!);
      disks[0] = disk;
    } else {
      disks.push(disk);
    }
  });
}

function readDisk(node: List, kind: 'vbd' | 'tap' | 'tap2', path: string): DiskDevice {
  const uname = atom(node, 'uname', path);
  let dev = atom(node, 'dev', path);
  const mode = atom(node, 'mode', path);
  if (dev === undefined || dev === '') throw sxprError(`domain information incomplete, vbd has no dev (${path}/dev)`);
  if (dev.startsWith('ioemu:')) dev = dev.slice(6);
  let device: DiskDevice['device'] = 'disk';
  const colon = dev.lastIndexOf(':');
  if (colon >= 0) {
    // ':cdrom' and ':disk' say what the device is; anything else is taken for a disk.
    if (dev.slice(colon + 1) === 'cdrom') device = 'cdrom';
    dev = dev.slice(0, colon);
  }
  if (dev === '') throw sxprError(`sexpr ${path}/dev: no target device name`);

  const disk: DiskDevice = { type: 'file', device, target: { dev } };
  if (uname === undefined || uname === '') {
    // An empty CD-ROM drive: XenD lists it without media.
    if (device !== 'cdrom') throw sxprError(`domain information incomplete, vbd has no src (${path}/uname)`);
  } else {
    readDiskSource(uname, kind, path, disk);
  }
  const bus = busForTarget(dev);
  if (bus) disk.target.bus = bus;
  if (mode?.includes('r')) disk.readonly = true;
  if (mode?.includes('!')) disk.shareable = true;
  return disk;
}

/** `file:/path`, `phy:/dev/x`, `tap:aio:/path`, `tap:qcow:/path`, `tap2:aio:/path`, ... */
function readDiskSource(uname: string, kind: string, path: string, disk: DiskDevice): void {
  const colon = uname.indexOf(':');
  if (colon <= 0) throw sxprError(`cannot parse vbd filename '${uname}', missing driver name (${path}/uname)`);
  let driver = uname.slice(0, colon);
  let rest = uname.slice(colon + 1);
  // blktap2 devices were listed with the blktap1 prefix.
  if (kind === 'tap2' && driver === 'tap') driver = 'tap2';
  disk.driver = { name: driver };
  if (driver === 'tap' || driver === 'tap2') {
    // Xen 4's blktap2 spelled its images `tap2:tapdisk:aio:/path`.
    if (rest.startsWith('tapdisk:')) rest = rest.slice(8);
    const c2 = rest.indexOf(':');
    if (c2 < 0) throw sxprError(`cannot parse vbd filename '${uname}', missing driver type (${path}/uname)`);
    const fmt = rest.slice(0, c2) === 'aio' ? 'raw' : rest.slice(0, c2);
    if (!DISK_FORMATS.has(fmt)) throw sxprError(`Unknown driver type ${rest} (${path}/uname)`);
    disk.driver.type = fmt;
    rest = rest.slice(c2 + 1);
    // blktap can serve block devices too, but images are the common case.
    disk.type = 'file';
  } else if (driver === 'phy') {
    disk.type = 'block';
  } else {
    disk.type = 'file';
  }
  if (rest === '') throw sxprError(`cannot parse vbd filename '${uname}', missing path (${path}/uname)`);
  disk.source = { path: rest };
}

function busForTarget(dev: string): DiskDevice['target']['bus'] {
  if (dev.startsWith('xvd')) return 'xen';
  if (dev.startsWith('hd')) return 'ide';
  if (dev.startsWith('sd')) return 'scsi';
  if (dev.startsWith('fd')) return 'fdc';
  return undefined;
}

/** XenD 3.0.2's image-level CD-ROM and the HVM floppies, which never appear as devices. */
function readImageDisks(img: List | undefined, path: string, dom: Domain): void {
  const disks = dom.devices.disks;
  const cdrom = atom(img, 'cdrom', path);
  if (cdrom && !disks.some((d) => d.target.dev === 'hdc')) {
    disks.push({
      type: 'file', device: 'cdrom', driver: { name: 'file' }, source: { path: cdrom },
      target: { dev: 'hdc', bus: 'ide' }, readonly: true,
    });
  }
  for (const fd of ['fda', 'fdb']) {
    const src = atom(img, fd, path);
    if (!src) continue;
    disks.push({ type: 'file', device: 'floppy', driver: { name: 'file' }, source: { path: src }, target: { dev: fd, bus: 'fdc' } });
  }
}

/** The shape of XenD 3.0.2 and older, which gave HVM guests the fixed VNC port 5900+domid. */
function looksLikeXend302(root: List, img: List | undefined, path: string): boolean {
  if (atom(img, 'cdrom', path)) return true;
  return children(root, 'device').some((d) =>
    DISK_KINDS.some((k) => {
      const dev = child(child(d, k), 'dev')?.[1];
      return typeof dev === 'string' && dev.startsWith('ioemu:');
    }));
}

// ---- reading: network interfaces -------------------------------------------------------------

function readInterfaces(devices: List[], R: string, dom: Domain, live: boolean): void {
  devices.forEach((device, i) => {
    const vif = child(device, 'vif');
    if (!vif) return;
    const nic = readInterface(vif, `${R}/device[${i}]/vif`, live);
    // A running domain's backend interfaces are vifDOMID.INDEX unless configured otherwise.
    if (live && nic.target === undefined && dom.id !== undefined && dom.id >= 0) {
      nic.target = `vif${dom.id}.${dom.devices.interfaces.length}`;
    }
    dom.devices.interfaces.push(nic);
  });
}

function readInterface(vif: List, path: string, live: boolean): InterfaceDevice {
  const script = atom(vif, 'script', path);
  const bridge = atom(vif, 'bridge', path);
  const model = atom(vif, 'model', path);
  const type = atom(vif, 'type', path);
  const ip = atom(vif, 'ip', path);

  const nic: InterfaceDevice = { type: 'ethernet', ips: [] };
  if (bridge !== undefined || script === DEFAULT_VIF_SCRIPT) {
    nic.type = 'bridge';
    if (bridge !== undefined) nic.source = { bridge };
  }
  if (script !== undefined) nic.script = script;
  if (ip !== undefined) nic.ips.push(parseIp(ip, `${path}/ip`));

  const vifname = atom(vif, 'vifname', path);
  // Names XenD generated (vifDOMID.N) identify nothing once the domain stops; libvirt 9.0 drops them.
  if (vifname !== undefined && vifname !== '' && (live || !vifname.startsWith('vif'))) nic.target = vifname;

  const mac = atom(vif, 'mac', path);
  if (mac !== undefined) nic.mac = parseMac(mac, `${path}/mac`);
  if (model !== undefined) nic.model = model;
  else if (type === 'netfront') nic.model = 'netfront';

  const rate = atom(vif, 'rate', path);
  if (rate !== undefined) nic.bandwidth = { outbound: { average: parseVifRate(rate, `${path}/rate`) } };
  return nic;
}

function parseMac(s: string, path: string): string {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw sxprError(`malformed mac address '${s}' (${path})`);
  }
  return parts.map((p) => p.toLowerCase().padStart(2, '0')).join(':');
}

function parseIp(s: string, path: string): InterfaceDevice['ips'][number] {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (v4 && v4.slice(1).every((o) => Number(o) <= 255)) return { address: s, family: 'ipv4' };
  if (s.includes(':') && /^[0-9a-fA-F:.]+$/.test(s)) return { address: s, family: 'ipv6' };
  throw sxprError(`invalid IP address '${s}' (${path})`);
}

/** XenD's `rate` (`10240KB/s`, `8Mb/s@20ms`): the bandwidth in kilobytes per second. */
function parseVifRate(rate: string, path: string): number {
  const m = /^([0-9]+)([GMK]?)([Bb])\/s$/.exec(rate.split('@')[0]!);
  if (!m) throw sxprError(`Invalid rate '${rate}' specified (${path})`);
  let v = Number(m[1]);
  if (m[2] === 'G') v *= 1024 * 1024;
  else if (m[2] === 'M') v *= 1024;
  if (m[3] === 'b') v = Math.floor(v / 8);
  if (!Number.isSafeInteger(v)) throw sxprError(`Invalid rate '${rate}' specified (${path})`);
  return v;
}

// ---- reading: PCI passthrough ----------------------------------------------------------------

/** `(device (pci (dev (domain 0x0000)(bus 0x00)(slot 0x1b)(func 0x0)) ...))`: one block, many devices. */
function readPciDevices(devices: List[], R: string, dom: Domain): void {
  devices.forEach((device, i) => {
    const pci = child(device, 'pci');
    if (!pci) return;
    children(pci, 'dev').forEach((dev, j) => {
      const path = `${R}/device[${i}]/pci/dev[${j}]`;
      const field = (name: string, what: string, max: number): number => {
        const v = atom(dev, name, path);
        if (v === undefined) throw sxprError(`missing PCI ${what} (${path}/${name})`);
        const n = parseWholeInt(v);
        if (n === undefined || n < 0 || n > max) throw sxprError(`cannot parse PCI ${what} '${v}' (${path}/${name})`);
        return n;
      };
      const hostdev: HostdevDevice = {
        mode: 'subsystem', type: 'pci', managed: 'no',
        pci: { domain: field('domain', 'domain', 0xffff), bus: field('bus', 'bus', 0xff), slot: field('slot', 'slot', 0x1f), function: field('func', 'func', 7) },
      };
      dom.devices.hostdevs.push(hostdev);
    });
  });
}

// ---- reading: graphics ------------------------------------------------------------------------

interface VncContext { vncPort: number; fixedPortXend: boolean; secrets: boolean }

function readGraphics(devices: List[], R: string, img: List | undefined, imgPath: string, dom: Domain, ctx: VncContext): void {
  // XenD >= 3.0.4 (PV) / 3.0.5 (HVM) describe the display as a vfb device; the first one counts.
  for (let i = 0; i < devices.length; i++) {
    const vfb = child(devices[i], 'vfb');
    if (!vfb) continue;
    const path = `${R}/device[${i}]/vfb`;
    const type = atom(vfb, 'type', path) ?? (atom(vfb, 'vnc', path) !== undefined ? 'vnc' : atom(vfb, 'sdl', path) !== undefined ? 'sdl' : undefined);
    if (type === undefined) continue;
    if (type !== 'vnc' && type !== 'sdl') throw sxprError(`unknown graphics type '${type}' (${path}/type)`);
    dom.devices.graphics.push(type === 'sdl' ? readSdl(vfb, path) : readVnc(vfb, path, ctx, -1));
    return;
  }
  // Older XenD kept the display settings in the image.
  if (atom(img, 'vnc', imgPath)?.startsWith('1')) {
    const fixed = ctx.fixedPortXend && dom.id !== undefined && dom.id > 0 ? 5900 + dom.id : -1;
    dom.devices.graphics.push(readVnc(img!, imgPath, ctx, fixed));
  } else if (atom(img, 'sdl', imgPath)?.startsWith('1')) {
    dom.devices.graphics.push(readSdl(img!, imgPath));
  }
}

function readSdl(node: List, path: string): GraphicsDevice {
  const g: GraphicsDevice = { type: 'sdl', listens: [] };
  const display = atom(node, 'display', path);
  if (display !== undefined) g.display = display;
  const xauth = atom(node, 'xauthority', path);
  if (xauth !== undefined) g.xauth = xauth;
  return g;
}

/**
 * A VNC display: the port XenStore reported, else the configured vncdisplay, else (for XenD
 * 3.0.2) the fixed port; autoport when XenD picks the port (vncunused) or none is known.
 */
function readVnc(node: List, path: string, ctx: VncContext, fixedPort: number): GraphicsDevice {
  let port = ctx.vncPort;
  if (port === -1) {
    const display = intAt(node, 'vncdisplay', path, { min: 0, max: 65535 });
    if (display !== undefined) port = display;
  }
  if (port === -1) port = fixedPort;
  const unused = atom(node, 'vncunused', path);
  const autoport = unused === '1' || port === -1;
  if (port >= 0 && port < 5900) port += 5900;
  const g: GraphicsDevice = { type: 'vnc', port, autoport: autoport ? 'yes' : 'no', listens: [] };
  const listen = atom(node, 'vnclisten', path);
  g.listens.push(listen !== undefined ? { type: 'address', address: listen } : { type: 'address' });
  const passwd = atom(node, 'vncpasswd', path);
  if (passwd !== undefined && ctx.secrets) g.passwd = passwd;
  const keymap = atom(node, 'keymap', path);
  if (keymap !== undefined) g.keymap = keymap;
  return g;
}

// ---- reading: HVM emulated devices ----------------------------------------------------------

function readUsbInputs(img: List | undefined, path: string, dom: Domain): void {
  for (const u of children(img, 'usbdevice')) {
    const v = u[1];
    if (typeof v !== 'string') throw sxprError(`sexpr ${path}/usbdevice: expected a single value, found a list`);
    // Other USB devices (host passthrough) have no domain XML counterpart here.
    if (v === 'tablet' || v === 'mouse' || v === 'keyboard') dom.devices.inputs.push({ type: v, bus: 'usb' });
  }
}

function readHvmCharDevices(img: List | undefined, path: string, dom: Domain, tty: string | undefined): void {
  const serial = child(img, 'serial');
  const lists = (serial ?? []).slice(1).filter((v): v is List => Array.isArray(v));
  if (lists.length > 0) {
    // `(serial (pty none /dev/ttyS1))`: one entry per port, `none` leaving a port unused.
    let port = 0;
    for (const list of lists) {
      for (const entry of list) {
        if (typeof entry !== 'string') throw sxprError(`sexpr ${path}/serial: port ${port} must be a single value`);
        if (entry !== 'none') dom.devices.serials.push(chrDevice(entry, tty, port, `${path}/serial`));
        port++;
      }
    }
  } else {
    const v = atom(img, 'serial', path);
    if (v !== undefined && v !== 'none' && v !== '') dom.devices.serials.push(chrDevice(v, tty, 0, `${path}/serial`));
  }
  const par = atom(img, 'parallel', path);
  if (par !== undefined && par !== 'none' && par !== '') dom.devices.parallels.push(chrDevice(par, undefined, 0, `${path}/parallel`));
}

function chrDevice(value: string, tty: string | undefined, port: number, path: string): CharDevice {
  return { source: parseCharSource(value, tty, path), target: { port } };
}

/** XenD/qemu-dm character device strings: `pty`, `/dev/ttyS0`, `file:PATH`, `tcp:HOST:PORT,server`, ... */
export function parseCharSource(value: string, tty: string | undefined, path: string): CharSource {
  if (value.startsWith('/')) return { type: 'dev', path: value };
  const colon = value.indexOf(':');
  const prefix = colon >= 0 ? value.slice(0, colon) : value;
  const rest = colon >= 0 ? value.slice(colon + 1) : '';
  const malformed = () => sxprError(`malformed char device string '${value}' (${path})`);
  let src: CharSource;
  if (prefix.startsWith('telnet')) src = { type: 'tcp', protocol: 'telnet' };
  else if (CHAR_TYPES.has(prefix)) src = { type: prefix as CharSourceType };
  else throw sxprError(`unknown chr device type '${prefix}' (${path})`);

  switch (src.type) {
    case 'pty':
      if (tty !== undefined) src.path = tty;
      break;
    case 'file': case 'pipe': case 'dev':
      if (rest === '') throw malformed();
      src.path = rest;
      break;
    case 'tcp': {
      const c = rest.indexOf(':');
      if (c < 0) throw malformed();
      const comma = rest.indexOf(',', c);
      if (c > 0) src.host = rest.slice(0, c);
      src.service = rest.slice(c + 1, comma < 0 ? undefined : comma);
      src.mode = comma >= 0 && rest.slice(comma).includes(',server') ? 'bind' : 'connect';
      src.protocol ??= 'raw';
      break;
    }
    case 'udp': {
      // connectHost:connectService[@bindHost:bindService]
      const c = rest.indexOf(':');
      if (c < 0) throw malformed();
      if (c > 0) src.host = rest.slice(0, c);
      const at = rest.indexOf('@', c);
      if (at < 0) {
        src.service = rest.slice(c + 1);
      } else {
        src.service = rest.slice(c + 1, at);
        const c3 = rest.indexOf(':', at);
        if (c3 < 0) throw malformed();
        if (c3 > at + 1) src.bindHost = rest.slice(at + 1, c3);
        if (c3 + 1 < rest.length) src.bindService = rest.slice(c3 + 1);
      }
      break;
    }
    case 'unix': {
      const comma = rest.indexOf(',');
      src.path = comma < 0 ? rest : rest.slice(0, comma);
      if (src.path === '') throw malformed();
      src.mode = comma >= 0 && rest.slice(comma).includes(',server') ? 'bind' : 'connect';
      break;
    }
    default:
      break;
  }
  return src;
}

function readSounds(img: List | undefined, path: string, dom: Domain): void {
  const v = atom(img, 'soundhw', path);
  if (!v) return;
  // `all` meant the two cards XenD's qemu always had.
  const models = v === 'all' ? ['sb16', 'es1370'] : v.split(',');
  for (const m of models) {
    if (!SOUND_MODELS.has(m)) throw sxprError(`unknown sound model '${m}' (${path}/soundhw)`);
    dom.devices.sounds.push({ model: m });
  }
}

/**
 * Reads XenD S-expression text. Read as libvirt did: backslash-newline continuations (libvirt's
 * test files) are joined, and lists left open at the end are closed (XenD's output sometimes is).
 */
export function sxprFromNative(text: string, opts: SxprReadOptions = {}): Domain {
  return sxprToDomain(parseSexpr(joinBackslashNewlines(text), { lenient: true }), opts);
}

// ---- writing ----------------------------------------------------------------------------------

export interface SxprWriteOptions {
  /**
   * Resolves a libvirt network name to its bridge; XenD knows bridges only. Without it,
   * `<interface type='network'>` cannot be written.
   */
  networkBridge?: (network: string) => string | undefined;
}

/** `(key value)` */
const kv = (key: string, value: string | number): SExpr => [key, String(value)];

/**
 * The `(vm ...)` configuration XenD's `create`/`new` take for this domain. Throws VirtError
 * (CONFIG_UNSUPPORTED) for what XenD cannot express.
 */
export function domainToSxpr(dom: Domain, opts: SxprWriteOptions = {}): SExpr {
  if (dom.type !== 'xen') throw unsupported(`XenD runs only domains of type 'xen', not '${dom.type}'`);
  const hvm = dom.os.type === 'hvm';
  if (!hvm && dom.os.type !== 'xen' && dom.os.type !== 'linux') {
    throw unsupported(`XenD does not support os type '${dom.os.type}'`);
  }
  const vm: SExpr[] = ['vm', kv('name', dom.name)];
  const maxKiB = dom.memory;
  const curKiB = Math.min(dom.currentMemory ?? maxKiB, maxKiB);
  vm.push(kv('memory', Math.ceil(curKiB / 1024)), kv('maxmem', Math.ceil(maxKiB / 1024)));
  vm.push(...vcpuItems(dom));
  vm.push(...cpusItems(dom));
  if (dom.uuid) vm.push(kv('uuid', dom.uuid));
  if (dom.description !== undefined) vm.push(kv('description', dom.description));
  if (!hvm && dom.bootloader !== undefined) {
    vm.push(dom.bootloader === '' ? ['bootloader'] : kv('bootloader', dom.bootloader));
    if (dom.bootloaderArgs !== undefined) vm.push(kv('bootloader_args', dom.bootloaderArgs));
  }
  vm.push(kv('on_poweroff', lifecycle(dom.onPoweroff, 'destroy', 'on_poweroff')));
  vm.push(kv('on_reboot', lifecycle(dom.onReboot, 'restart', 'on_reboot')));
  vm.push(kv('on_crash', lifecycle(dom.onCrash, 'destroy', 'on_crash')));

  const { localtime, rtcOffset } = clockSettings(dom, hvm);
  const image = hvm ? hvmImage(dom, rtcOffset) : pvImage(dom);
  image.push(kv('localtime', localtime));
  vm.push(['image', image]);
  // Pre-3.1 XenD read localtime at the top level only.
  vm.push(kv('localtime', localtime));

  for (const disk of dom.devices.disks) {
    if (hvm && disk.device === 'floppy') continue; // written in the image
    vm.push(['device', diskItem(disk, hvm)]);
  }
  for (const nic of dom.devices.interfaces) vm.push(['device', vifItem(nic, hvm, opts)]);
  const pci = pciItem(dom.devices.hostdevs);
  if (pci) vm.push(['device', pci]);
  if (!hvm) vm.push(...pvGraphicsItems(dom));
  checkUnsupportedDevices(dom, hvm);
  return vm;
}

function vcpuItems(dom: Domain): SExpr[] {
  const { count, current } = dom.vcpu;
  if (!Number.isInteger(count) || count < 1) throw unsupported(`invalid vcpu count ${count}`);
  const out: SExpr[] = [kv('vcpus', count)];
  if (current !== undefined && current < count) {
    if (current < 1) throw unsupported(`invalid current vcpu count ${current}`);
    out.push(kv('vcpu_avail', ((1n << BigInt(current)) - 1n).toString()));
  }
  return out;
}

/** `(cpus '0-3')` for a domain-wide set; XenD's per-vcpu lists for individual pins. */
function cpusItems(dom: Domain): SExpr[] {
  const pins = dom.cputune?.vcpupins ?? [];
  if (pins.length === 0) return dom.vcpu.cpuset ? [kv('cpus', dom.vcpu.cpuset)] : [];
  const perVcpu: SExpr[] = [];
  for (let v = 0; v < dom.vcpu.count; v++) {
    const set = pins.find((p) => p.vcpu === v)?.cpuset ?? dom.vcpu.cpuset;
    perVcpu.push(set ? expandCpuset(set) : []);
  }
  return [['cpus', perVcpu]];
}

function expandCpuset(set: string): string[] {
  const include = new Set<number>();
  const exclude = new Set<number>();
  for (const part of set.split(',')) {
    const m = /^(\^?)(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw unsupported(`invalid cpuset '${set}'`);
    const lo = Number(m[2]);
    const hi = m[3] !== undefined ? Number(m[3]) : lo;
    if (hi < lo || hi > 65535) throw unsupported(`invalid cpuset '${set}'`);
    for (let c = lo; c <= hi; c++) (m[1] ? exclude : include).add(c);
  }
  return [...include].filter((c) => !exclude.has(c)).sort((a, b) => a - b).map(String);
}

function lifecycle(v: LifecycleAction | undefined, dflt: LifecycleAction, key: string): string {
  const action = v ?? dflt;
  const allowed = key === 'on_crash' ? CRASH_LIFECYCLE : LIFECYCLE;
  if (!allowed.has(action)) throw unsupported(`XenD does not support ${key} action '${action}'`);
  return action;
}

function clockSettings(dom: Domain, hvm: boolean): { localtime: number; rtcOffset?: number } {
  const c = dom.clock;
  switch (c.offset) {
    case 'utc':
      return { localtime: 0 };
    case 'localtime':
      return { localtime: 1 };
    case 'variable': {
      const adj = typeof c.adjustment === 'number' ? c.adjustment : 0;
      // PV guests have no emulated RTC to offset.
      if (!hvm && adj !== 0) throw unsupported(`unsupported clock offset='variable' with adjustment ${adj} for a PV guest`);
      return { localtime: c.basis === 'localtime' ? 1 : 0, rtcOffset: hvm ? adj : undefined };
    }
    default:
      throw unsupported(`unsupported clock offset='${c.offset}'`);
  }
}

function pvImage(dom: Domain): SExpr[] {
  const os = dom.os;
  if (os.kernel === undefined && dom.bootloader === undefined) {
    throw unsupported('a PV domain needs a kernel or a bootloader for XenD');
  }
  const img: SExpr[] = ['linux'];
  if (os.kernel !== undefined) img.push(kv('kernel', os.kernel));
  if (os.initrd !== undefined) img.push(kv('ramdisk', os.initrd));
  if (os.root !== undefined) img.push(kv('root', os.root));
  if (os.cmdline !== undefined) img.push(kv('args', os.cmdline));
  if (dom.devices.emulator !== undefined) img.push(kv('device_model', dom.devices.emulator));
  return img;
}

const DEFAULT_HVMLOADER = '/usr/lib/xen/boot/hvmloader';

function hvmImage(dom: Domain, rtcOffset: number | undefined): SExpr[] {
  const os = dom.os;
  if (os.loader?.type === 'pflash') throw unsupported('XenD boots HVM guests with hvmloader only, not a pflash firmware');
  const loader = os.loader?.path ?? DEFAULT_HVMLOADER;
  const img: SExpr[] = ['hvm'];
  if (os.kernel !== undefined) img.push(kv('kernel', os.kernel));
  if (os.initrd !== undefined) img.push(kv('ramdisk', os.initrd));
  if (os.root !== undefined) img.push(kv('root', os.root));
  if (os.cmdline !== undefined) img.push(kv('args', os.cmdline));
  img.push(os.kernel !== undefined ? kv('loader', loader) : kv('kernel', loader));
  img.push(...vcpuItems(dom));
  img.push(kv('boot', bootOrder(os.boot)));

  const f = dom.features ?? {};
  if (f.acpi) img.push(kv('acpi', 1));
  if (f.apic) img.push(kv('apic', 1));
  if (f.pae) img.push(kv('pae', 1));
  if (f.hap) img.push(kv('hap', f.hap === 'on' ? 1 : 0));
  if (f.viridian) img.push(kv('viridian', 1));

  const usbInputs = dom.devices.inputs.filter((i) => i.bus === 'usb');
  if (usbInputs.length > 0) img.push(kv('usb', 1));
  for (const i of usbInputs) {
    if (i.type !== 'mouse' && i.type !== 'tablet' && i.type !== 'keyboard') throw unsupported(`unsupported USB input type '${i.type}'`);
    img.push(kv('usbdevice', i.type));
  }
  img.push(['parallel', dom.devices.parallels.length > 0 ? charString(dom.devices.parallels[0]!.source, 'parallel') : 'none']);
  if (dom.devices.parallels.length > 1) throw unsupported('XenD supports one parallel port');
  img.push(serialItem(dom.devices.serials));
  if (dom.devices.sounds.length > 0) {
    for (const s of dom.devices.sounds) if (!SOUND_MODELS.has(s.model)) throw unsupported(`unsupported sound model '${s.model}'`);
    img.push(kv('soundhw', dom.devices.sounds.map((s) => s.model).join(',')));
  }
  if (dom.devices.emulator !== undefined) img.push(kv('device_model', dom.devices.emulator));
  const hpet = dom.clock.timers.find((t) => t.name === 'hpet' && t.present !== undefined);
  if (hpet) img.push(kv('hpet', hpet.present === 'yes' ? 1 : 0));
  const g = singleGraphics(dom);
  if (g) img.push(...graphicsSettings(g, 'image'));
  for (const disk of dom.devices.disks) {
    if (disk.device !== 'floppy') continue;
    if (disk.target.dev !== 'fda' && disk.target.dev !== 'fdb') throw unsupported(`XenD supports floppies fda and fdb only, not '${disk.target.dev}'`);
    if (disk.source?.path === undefined) throw unsupported(`floppy ${disk.target.dev} has no source`);
    img.push(kv(disk.target.dev, disk.source.path));
  }
  if (rtcOffset !== undefined) img.push(kv('rtc_timeoffset', rtcOffset));
  return img;
}

function bootOrder(boot: Domain['os']['boot']): string {
  const letters: Record<string, string> = { fd: 'a', hd: 'c', cdrom: 'd', network: 'n' };
  const s = boot.map((b) => letters[b] ?? 'c').join('');
  return s === '' ? 'c' : s;
}

/** One entry per port up to the highest; the list form whenever port 0 alone does not say it all. */
function serialItem(serials: CharDevice[]): SExpr {
  if (serials.length === 0) return ['serial', 'none'];
  const ports = serials.map((s) => s.target.port ?? 0);
  if (serials.length === 1 && ports[0] === 0) return ['serial', charString(serials[0]!.source, 'serial')];
  const max = Math.max(...ports);
  if (max > 255) throw unsupported(`serial port ${max} is out of range`);
  const entries: SExpr[] = [];
  for (let p = 0; p <= max; p++) {
    const s = serials.find((x) => (x.target.port ?? 0) === p);
    entries.push(s ? charString(s.source, 'serial') : 'none');
  }
  return ['serial', entries];
}

/** The qemu-dm string XenD takes for a character device. */
export function charString(src: CharSource, what: string): string {
  switch (src.type) {
    case 'null': case 'stdio': case 'vc': case 'pty':
      return src.type;
    case 'file': case 'pipe':
      return `${src.type}:${requirePath(src, what)}`;
    case 'dev':
      return requirePath(src, what);
    case 'tcp': {
      const proto = src.protocol === 'telnet' ? 'telnet' : src.protocol === undefined || src.protocol === 'raw' ? 'tcp' : undefined;
      if (!proto) throw unsupported(`unsupported ${what} protocol '${src.protocol}'`);
      return `${proto}:${src.host ?? ''}:${src.service ?? ''}${src.mode === 'bind' ? ',server,nowait' : ''}`;
    }
    case 'udp': {
      const bind = src.bindHost !== undefined || src.bindService !== undefined ? `@${src.bindHost ?? ''}:${src.bindService ?? ''}` : '';
      return `udp:${src.host ?? ''}:${src.service ?? ''}${bind}`;
    }
    case 'unix':
      return `unix:${requirePath(src, what)}${src.mode === 'bind' ? ',server,nowait' : ''}`;
    default:
      throw unsupported(`unsupported ${what} device type '${src.type}'`);
  }
}

function requirePath(src: CharSource, what: string): string {
  if (src.path === undefined || src.path === '') throw unsupported(`${what} device of type '${src.type}' has no path`);
  return src.path;
}

function singleGraphics(dom: Domain): GraphicsDevice | undefined {
  const gs = dom.devices.graphics;
  if (gs.length > 1) throw unsupported('XenD supports one graphics device per domain');
  const g = gs[0];
  if (g && g.type !== 'vnc' && g.type !== 'sdl') throw unsupported(`unsupported graphics type '${g.type}'`);
  return g;
}

/** The display keys, as an HVM image (`(vnc 1) ...`) or a vfb device (`(type vnc) ...`) writes them. */
function graphicsSettings(g: GraphicsDevice, where: 'image' | 'vfb'): SExpr[] {
  const out: SExpr[] = [];
  if (g.type === 'sdl') {
    out.push(where === 'image' ? kv('sdl', 1) : kv('type', 'sdl'));
    if (g.display !== undefined) out.push(kv('display', g.display));
    if (g.xauth !== undefined) out.push(kv('xauthority', g.xauth));
    return out;
  }
  out.push(where === 'image' ? kv('vnc', 1) : kv('type', 'vnc'));
  const port = g.port ?? -1;
  if (g.autoport === 'yes' || port < 0) {
    out.push(kv('vncunused', 1));
  } else {
    out.push(kv('vncunused', 0), kv('vncdisplay', port >= 5900 ? port - 5900 : port));
  }
  const listen = g.listens.find((l) => l.type === 'address')?.address ?? g.listenAttr;
  if (listen !== undefined) out.push(kv('vnclisten', listen));
  if (g.passwd !== undefined) out.push(kv('vncpasswd', g.passwd));
  if (g.keymap !== undefined) out.push(kv('keymap', g.keymap));
  return out;
}

function pvGraphicsItems(dom: Domain): SExpr[] {
  const g = singleGraphics(dom);
  if (!g) return [];
  return [['device', ['vkbd']], ['device', ['vfb', ...graphicsSettings(g, 'vfb')]]];
}

function diskItem(disk: DiskDevice, hvm: boolean): SExpr {
  if (disk.transient) throw unsupported(`transient disks not supported by XenD (${disk.target.dev})`);
  if (disk.type !== 'file' && disk.type !== 'block') throw unsupported(`unsupported disk type ${disk.type} (${disk.target.dev})`);
  if (disk.device !== 'disk' && disk.device !== 'cdrom' && disk.device !== 'floppy') {
    throw unsupported(`unsupported disk device '${disk.device}' (${disk.target.dev})`);
  }
  const uname = diskUname(disk);
  const kind = uname?.startsWith('tap2:') ? 'tap2' : uname?.startsWith('tap:') ? 'tap' : 'vbd';
  const suffix = disk.device === 'cdrom' ? ':cdrom' : hvm ? ':disk' : '';
  const item: SExpr[] = [kind, kv('dev', disk.target.dev + suffix)];
  if (uname !== undefined) item.push(kv('uname', uname));
  else if (disk.device !== 'cdrom') throw unsupported(`disk ${disk.target.dev} has no source`);
  item.push(kv('mode', disk.readonly ? 'r' : disk.shareable ? 'w!' : 'w'));
  return item;
}

/**
 * `driver:path` as XenD wants it. Drivers other than XenD's own (e.g. xl's `qemu`) are chosen
 * from the disk: blktap for non-raw images, file: or phy: otherwise.
 */
function diskUname(disk: DiskDevice): string | undefined {
  const path = disk.source?.path;
  if (path === undefined) return undefined;
  if (path.includes('\n')) throw unsupported(`disk ${disk.target.dev}: a source path cannot contain a newline`);
  const name = disk.driver?.name;
  const fmt = disk.driver?.type;
  const raw = fmt === undefined || fmt === 'raw';
  if (fmt !== undefined && !DISK_FORMATS.has(fmt)) throw unsupported(`unsupported disk format '${fmt}' (${disk.target.dev})`);
  if (name === 'tap' || name === 'tap2' || (!raw && disk.type === 'file')) {
    return `${name === 'tap2' ? 'tap2' : 'tap'}:${raw ? 'aio' : fmt}:${path}`;
  }
  if (!raw) throw unsupported(`disk ${disk.target.dev}: format '${fmt}' needs an image file`);
  if (name === 'file' || name === 'phy') return `${name}:${path}`;
  return disk.type === 'block' ? `phy:${path}` : `file:${path}`;
}

function vifItem(nic: InterfaceDevice, hvm: boolean, opts: SxprWriteOptions): SExpr {
  const item: SExpr[] = ['vif'];
  if (nic.mac !== undefined) item.push(kv('mac', nic.mac));
  const avg = nic.bandwidth?.outbound?.average;
  if (avg) item.push(kv('rate', `${avg}KB/s`));
  if (nic.ips.length > 1) throw unsupported('Driver does not support setting multiple IP addresses');
  switch (nic.type) {
    case 'bridge':
      if (nic.source?.bridge !== undefined) item.push(kv('bridge', nic.source.bridge));
      if (nic.script !== undefined) item.push(kv('script', nic.script));
      else if (nic.source?.bridge === undefined) item.push(kv('script', DEFAULT_VIF_SCRIPT));
      break;
    case 'network': {
      const name = nic.source?.network ?? '';
      const bridge = opts.networkBridge?.(name);
      if (!bridge) throw unsupported(`network '${name}' has no known bridge; XenD needs a bridge name`);
      if (nic.script !== undefined) throw unsupported("scripts are not supported on interfaces of type network");
      item.push(kv('bridge', bridge), kv('script', DEFAULT_VIF_SCRIPT));
      break;
    }
    case 'ethernet':
      if (nic.script !== undefined) item.push(kv('script', nic.script));
      break;
    default:
      throw unsupported(`unsupported network type ${nic.type}`);
  }
  if (nic.ips.length === 1 && nic.type !== 'network') item.push(kv('ip', nic.ips[0]!.address));
  if (nic.target !== undefined && !nic.target.startsWith('vif')) item.push(kv('vifname', nic.target));
  if (nic.model !== undefined) item.push(hvm && nic.model === 'netfront' ? kv('type', 'netfront') : kv('model', nic.model));
  return item;
}

function pciItem(hostdevs: HostdevDevice[]): SExpr[] | undefined {
  const devs: SExpr[] = [];
  for (const h of hostdevs) {
    if (h.type !== 'pci' || !h.pci) throw unsupported(`unsupported hostdev type '${h.type}' for XenD`);
    if (h.managed === 'yes') throw unsupported('managed PCI devices not supported with XenD');
    const p = h.pci;
    const hex = (n: number, w: number) => `0x${n.toString(16).padStart(w, '0')}`;
    devs.push(['dev', kv('domain', hex(p.domain, 4)), kv('bus', hex(p.bus, 2)), kv('slot', hex(p.slot, 2)), kv('func', hex(p.function, 1))]);
  }
  return devs.length > 0 ? ['pci', ...devs] : undefined;
}

/** Devices XenD cannot be told about: refused rather than silently dropped. */
function checkUnsupportedDevices(dom: Domain, hvm: boolean): void {
  const d = dom.devices;
  if (d.channels.length > 0) throw unsupported('XenD does not support channel devices');
  if (d.redirdevs.length > 0) throw unsupported('XenD does not support USB redirection');
  if (!hvm) {
    // A pty on port 0 is the PV console itself, which XenD always provides.
    if (d.serials.some((s) => s.source.type !== 'pty' || (s.target.port ?? 0) !== 0)) {
      throw unsupported('XenD gives PV guests their console only; other serial devices need an HVM guest');
    }
    if (d.parallels.length > 0) throw unsupported('XenD does not support parallel ports for PV guests');
    if (d.sounds.length > 0) throw unsupported('XenD does not support sound devices for PV guests');
  }
}

// ---- single devices, for XenD's device_create / device_configure / device_destroy -------------

/** A disk as XenD's device operations take it: `(vbd ...)`, `(tap ...)` or `(tap2 ...)`. */
export function diskToSxpr(disk: DiskDevice, hvm: boolean): SExpr {
  // XenD keeps HVM floppies in the image: they cannot come and go.
  if (hvm && disk.device === 'floppy') throw new VirtError('INVALID_ARG', `Cannot directly attach floppy ${disk.source?.path ?? disk.target.dev}`);
  return diskItem(disk, hvm);
}

/** A network interface as XenD's device operations take it: `(vif ...)`. */
export function interfaceToSxpr(nic: InterfaceDevice, hvm: boolean, opts: SxprWriteOptions = {}): SExpr {
  return vifItem(nic, hvm, opts);
}

/** One PCI device to hot-plug (`Initialising`) or unplug (`Closing`). */
export function pciHostdevToSxpr(h: HostdevDevice, detach: boolean): SExpr {
  return [...pciItem([h])!, kv('state', detach ? 'Closing' : 'Initialising')];
}

/** The `(vm ...)` configuration text for XenD. */
export function sxprToNative(dom: Domain, opts: SxprWriteOptions = {}): string {
  return formatSexpr(domainToSxpr(dom, opts));
}
