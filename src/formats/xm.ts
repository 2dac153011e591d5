/**
 * The xen-xm format: the /etc/xen/* domain files of Xen's old `xm` toolstack, converted the
 * way libvirt 9.0's xen_xm.c does. The keys xm shares with xl live in xen-common.ts; this
 * module adds the xm-only parts: the OS keys (builder/kernel/boot for HVM guests, plus
 * xend's loader/kernel/ramdisk/extra for HVM direct kernel boot; bootloader/kernel/ramdisk/
 * extra/root for PV guests), the `disk` list in xm's "SOURCE,TARGET[:cdrom],MODE" syntax,
 * the HVM floppies `fda`/`fdb` and the HVM `usbdevice`.
 */
import {
  type ConfFile, type ConfValue, confGet, confList, confNumber, confSet, confString, formatConf, indexConf, parseConf,
} from './conf.js';
import {
  type XenFormatOptions,
  FLOPPY_DRIVES,
  floppyDisk,
  formatConfigCommon,
  getString,
  hvmFloppies,
  newXenDomain,
  parseConfigCommon,
} from './xen-common.js';
import { XEN_CAPS } from '../domain/defaults.js';
import { VirtError, ErrorDomain, internal, unsupported } from '../errors.js';
import type { DiskDevice, Domain, DomainOs, InputDevice } from '../domain/types.js';

// ---------------------------------------------------------------------------------------
// xm -> Domain
// ---------------------------------------------------------------------------------------

const BOOT_DEVICES: Record<string, DomainOs['boot'][number]> = { a: 'fd', c: 'hd', d: 'cdrom', n: 'network' };
/** libvirt keeps at most this many boot devices. */
const MAX_BOOT_DEVICES = 4;

function parseOs(conf: ConfFile, dom: Domain): void {
  if (dom.os.type === 'hvm') {
    // xend: with a `loader` key the firmware is named there and `kernel` is a kernel to boot
    // directly; without one `kernel` names the firmware (the only form libvirt reads).
    const loader = getString(conf, 'loader');
    if (loader !== undefined) {
      dom.os.loader = { path: loader };
      parseKernelKeys(conf, dom);
    } else {
      const kernel = getString(conf, 'kernel');
      if (kernel === undefined) throw internal('config value kernel was missing');
      dom.os.loader = { path: kernel };
    }
    const boot = getString(conf, 'boot') ?? 'c';
    // Any letter xm does not know boots from the hard disk, as in xend.
    dom.os.boot = [...boot].slice(0, MAX_BOOT_DEVICES).map((c) => BOOT_DEVICES[c] ?? 'hd');
    return;
  }
  const bootloader = getString(conf, 'bootloader');
  if (bootloader !== undefined) dom.bootloader = bootloader;
  const bootargs = getString(conf, 'bootargs');
  if (bootargs !== undefined) dom.bootloaderArgs = bootargs;
  parseKernelKeys(conf, dom);
}

/** kernel, ramdisk, and the command line from root + extra. */
function parseKernelKeys(conf: ConfFile, dom: Domain): void {
  const kernel = getString(conf, 'kernel');
  if (kernel !== undefined) dom.os.kernel = kernel;
  const ramdisk = getString(conf, 'ramdisk');
  if (ramdisk !== undefined) dom.os.initrd = ramdisk;
  const extra = getString(conf, 'extra');
  const root = getString(conf, 'root');
  // xm passes root= to the kernel ahead of the extra arguments.
  if (root !== undefined) dom.os.cmdline = extra !== undefined ? `root=${root} ${extra}` : `root=${root}`;
  else if (extra !== undefined) dom.os.cmdline = extra;
}

/** libvirt's storage formats a tap:FORMAT: prefix may name ("aio" is raw). */
const TAP_FORMATS = [
  'raw', 'dir', 'bochs', 'cloop', 'dmg', 'iso', 'vpc', 'vdi', 'fat', 'vhd', 'ploop',
  'cow', 'qcow', 'qcow2', 'qed', 'vmdk', 'luks',
];

const diskError = (entry: string, why: string) =>
  new VirtError('CONF_SYNTAX', `malformed disk entry '${entry}': ${why}`, ErrorDomain.CONF);

/**
 * One `disk` entry: [DRIVER:[FORMAT:]]SOURCE,[ioemu:]TARGET[:cdrom|:disk],MODE, e.g.
 * "phy:/dev/vg/guest,xvda,w", "tap:aio:/img,hda,w", "file:/x.iso,hdc:cdrom,r" or ",hdc:cdrom,r"
 * for an empty CD-ROM drive.
 */
export function parseXmDisk(entry: string, hvm: boolean): DiskDevice {
  const c1 = entry.indexOf(',');
  if (c1 === -1) throw diskError(entry, 'expected SOURCE,TARGET,MODE');
  let source: string | undefined = c1 === 0 ? undefined : entry.slice(0, c1);
  let head = entry.slice(c1 + 1);
  // "ioemu:" was a hint for xend's qemu and carries no information.
  if (head.startsWith('ioemu:')) head = head.slice(6);
  const c2 = head.indexOf(',');
  if (c2 === -1) throw diskError(entry, 'expected SOURCE,TARGET,MODE');
  let dst = head.slice(0, c2);
  const mode = head.slice(c2 + 1);

  let driverName: string | undefined;
  let format: string | undefined;
  if (source !== undefined) {
    const colon = source.indexOf(':');
    if (colon !== -1) {
      driverName = source.slice(0, colon);
      source = source.slice(colon + 1);
    }
    if (driverName === 'tap' || driverName === 'tap2') {
      const c = source.indexOf(':');
      if (c === -1) throw diskError(entry, `'${driverName}:' needs a format, as in '${driverName}:aio:PATH'`);
      const sub = source.slice(0, c);
      format = sub === 'aio' ? 'raw' : sub;
      if (!TAP_FORMATS.includes(format)) throw internal(`Unknown driver type ${source} in disk entry '${entry}'`);
      source = source.slice(c + 1);
    }
    if (source === '') source = undefined;
  }
  // Without a prefix (or a source) xm means a host block device.
  driverName ??= 'phy';

  let device: DiskDevice['device'] = 'disk';
  const suffix = dst.indexOf(':');
  if (suffix !== -1) {
    if (dst.slice(suffix) === ':cdrom') device = 'cdrom';
    dst = dst.slice(0, suffix);
  }
  if (dst === '') throw diskError(entry, 'no target device');

  const bus: DiskDevice['target']['bus'] =
    dst.startsWith('xvd') || !hvm ? 'xen' : dst.startsWith('sd') ? 'scsi' : 'ide';
  const disk: DiskDevice = {
    type: driverName === 'phy' ? 'block' : 'file',
    device,
    driver: format !== undefined ? { name: driverName, type: format } : { name: driverName },
    target: { dev: dst, bus },
  };
  if (source !== undefined) disk.source = { path: source };
  if (mode === 'r' || mode === 'ro') disk.readonly = true;
  else if (mode === 'w!' || mode === '!') disk.shareable = true;
  return disk;
}

function parseDisks(conf: ConfFile, dom: Domain): void {
  const v = confGet(conf, 'disk');
  if (v === undefined) return;
  if (v.type !== 'list') throw typeError(conf, 'disk', 'a string list');
  const hvm = dom.os.type === 'hvm';
  for (const item of v.value) {
    if (item.type !== 'string') throw typeError(conf, 'disk', 'a string list');
    dom.devices.disks.push(parseXmDisk(item.value, hvm));
  }
}

/**
 * HVM `fda` / `fdb`: image files xend hands to the device model's floppy drives (an empty
 * string is no drive). They follow the `disk` list. PV guests have no floppy controller,
 * and xend ignored the keys for them, as we do.
 */
function parseFloppies(conf: ConfFile, dom: Domain): void {
  if (dom.os.type !== 'hvm') return;
  for (const drive of FLOPPY_DRIVES) {
    const path = getString(conf, drive);
    if (path) dom.devices.disks.push(floppyDisk(drive, path, 'file'));
  }
}

function typeError(conf: ConfFile, key: string, what: string): VirtError {
  return new VirtError('CONF_SYNTAX', `${conf.fileName ?? '<config>'}: expected ${what} for '${key}' parameter`, ErrorDomain.CONF);
}

const USB_DEVICES: Record<string, InputDevice['type']> = { mouse: 'mouse', tablet: 'tablet', keyboard: 'keyboard' };

function parseInputs(conf: ConfFile, dom: Domain): void {
  if (dom.os.type !== 'hvm') return;
  const usbdevice = getString(conf, 'usbdevice');
  const type = usbdevice !== undefined ? USB_DEVICES[usbdevice] : undefined;
  if (type) dom.devices.inputs.push({ type, bus: 'usb' });
}

/**
 * What libvirt's xenParseXM puts in its domain definition for an xm config. The driver's
 * post-parse defaults (postParse) still have to be applied before formatting XML.
 */
export function xmToDomain(file: ConfFile): Domain {
  const conf = indexConf(file);
  const dom = newXenDomain(conf);
  parseConfigCommon(conf, dom, 'xen-xm');
  parseOs(conf, dom);
  parseDisks(conf, dom);
  parseFloppies(conf, dom);
  parseInputs(conf, dom);
  return dom;
}

/** Parses xm configuration text (see xmToDomain; postParse is not applied). */
export function xmFromNative(text: string, fileName?: string): Domain {
  return xmToDomain(parseConf(text, fileName));
}

// ---------------------------------------------------------------------------------------
// Domain -> xm
// ---------------------------------------------------------------------------------------

const BOOT_LETTERS: Record<DomainOs['boot'][number], string> = { fd: 'a', hd: 'c', cdrom: 'd', network: 'n' };

function formatOs(dom: Domain, out: ConfFile): void {
  const set = (key: string, v: string | undefined) => { if (v !== undefined) confSet(out, key, confString(v)); };
  if (dom.os.type === 'hvm') {
    set('builder', 'hvm');
    if (dom.os.kernel !== undefined) {
      // A directly booted kernel needs xend's `loader` key for the firmware (see parseOs).
      // libvirt drops the kernel here; without a direct kernel our output is libvirt's.
      set('loader', dom.os.loader?.path ?? XEN_CAPS.hvmLoader);
      set('kernel', dom.os.kernel);
      set('ramdisk', dom.os.initrd);
      set('extra', dom.os.cmdline);
    } else {
      set('kernel', dom.os.loader?.path);
    }
    const boot = dom.os.boot.slice(0, MAX_BOOT_DEVICES).map((b) => BOOT_LETTERS[b]).join('');
    set('boot', boot || 'c');
    return;
  }
  set('bootloader', dom.bootloader);
  set('bootargs', dom.bootloaderArgs);
  set('kernel', dom.os.kernel);
  set('ramdisk', dom.os.initrd);
  // libvirt keeps root= inside the command line, so `extra` carries it all.
  set('extra', dom.os.cmdline);
}

/** One `disk` entry in xm syntax (see parseXmDisk). */
export function formatXmDisk(disk: DiskDevice): string {
  if (disk.transient) throw unsupported('transient disks not supported yet');
  const src = disk.source?.path ?? disk.source?.name;
  let s = '';
  if (src !== undefined) {
    const format = disk.driver?.type;
    const driver = disk.driver?.name;
    if (format !== undefined && format !== 'none') {
      if (driver !== undefined) {
        s += `${driver}:`;
        if (driver === 'tap' || driver === 'tap2') s += `${format === 'raw' ? 'aio' : format}:`;
      }
    } else if (disk.type === 'file') {
      s += 'file:';
    } else if (disk.type === 'block') {
      s += 'phy:';
    } else {
      throw internal(`unsupported disk type ${disk.type}`);
    }
    s += src;
  }
  s += `,${disk.target.dev}${disk.device === 'cdrom' ? ':cdrom' : ''}`;
  s += disk.readonly ? ',r' : disk.shareable ? ',!' : ',w';
  return s;
}

function formatDisks(dom: Domain, out: ConfFile): void {
  // Floppies are not `disk` entries but HVM keys of their own (see parseFloppies).
  const disks: ConfValue[] = dom.devices.disks
    .filter((d) => d.device !== 'floppy')
    .map((d) => confString(formatXmDisk(d)));
  if (disks.length) confSet(out, 'disk', confList(disks));
  for (const { drive, path } of hvmFloppies(dom, 'xen-xm')) confSet(out, drive, confString(path));
}

function formatInputs(dom: Domain, out: ConfFile): void {
  if (dom.os.type !== 'hvm') return;
  // xm has room for a single USB input: the first USB mouse, tablet or keyboard.
  for (const input of dom.devices.inputs) {
    if (input.bus !== 'usb') continue;
    confSet(out, 'usb', confNumber(1));
    if (input.type === 'mouse' || input.type === 'tablet' || input.type === 'keyboard') {
      confSet(out, 'usbdevice', confString(input.type));
      break;
    }
  }
}

/**
 * The xm config libvirt's xenFormatXM writes for a domain: the shared keys in
 * formatConfigCommon()'s order, then the OS keys, `disk` and the USB input keys.
 * Beyond libvirt (whose output this equals otherwise): an HVM direct kernel is written with
 * xend's `loader` key, and HVM floppies as `fda`/`fdb` after `disk`; a floppy on a PV guest
 * is refused (CONFIG_UNSUPPORTED) instead of silently dropped.
 */
export function domainToXm(dom: Domain, opts: XenFormatOptions = {}): ConfFile {
  const out: ConfFile = { entries: [] };
  formatConfigCommon(dom, out, 'xen-xm', opts);
  formatOs(dom, out);
  formatDisks(dom, out);
  formatInputs(dom, out);
  return out;
}

/** xm configuration text for a domain (see domainToXm). */
export function xmToNative(dom: Domain, opts: XenFormatOptions = {}): string {
  return formatConf(domainToXm(dom, opts));
}
