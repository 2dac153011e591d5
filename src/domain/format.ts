/**
 * Typed model -> domain XML in libvirt 9.0's canonical form: its element order, attribute
 * order, two-space indentation, single-quoted attributes and escaping, so that output can be
 * compared byte for byte with what libvirt prints.
 *
 * Each element is one template string: fixed attributes are part of the literal, set-or-unset
 * ones come from attr()/word()/num(). Formatting is on the path of every conversion to XML, and
 * building a line from a few large pieces costs a fraction of joining many small ones.
 */
import { escapeXml } from './xml.js';
import type {
  CharDevice, ControllerDevice, DeviceAddress, DiskDevice, Domain, DomainClock, DomainCpu, DomainFeatures,
  DomainOs, GraphicsDevice, HostdevDevice, InterfaceDevice,
} from './types.js';
import { GENERATED_IFNAME_PREFIX, XEN_NAMESPACE } from './types.js';

export interface FormatOptions {
  /** Keep secrets (graphics passwords); libvirt's VIR_DOMAIN_XML_SECURE. */
  secure?: boolean;
  /** Leave out live-only data such as the domain id; libvirt's VIR_DOMAIN_XML_INACTIVE. */
  inactive?: boolean;
}

// String and number attributes have a helper each: one that handles both has to test the
// type of every value, and measured several times slower. Each takes the attribute's
// ` name='` as one constant, so that an attribute costs two concatenations, not four.

/** ` name='value'` (escaped) when the value is set; nothing when it is not. */
function attr(nameEq: string, value: string | undefined): string {
  return value === undefined ? '' : nameEq + escapeXml(value) + "'";
}

/**
 * The same for a value of one of the model's closed sets of words (its union types: 'file',
 * 'ide', 'yes', ...), none of which has a character to escape. Escaping is a good part of
 * the cost of formatting, and most attributes are such words.
 */
function word(nameEq: string, value: string | undefined): string {
  return value === undefined ? '' : nameEq + value + "'";
}

/** ` name='N'` when the number is set; nothing when it is not. */
function num(nameEq: string, value: number | undefined): string {
  return value === undefined ? '' : nameEq + value + "'";
}

const esc = escapeXml;

/**
 * Line starts by depth: a newline and the indentation, built once. Each line begins with
 * the newline that ends the one before it, so that adding a line is one concatenation
 * fewer; the document's first line (the root element, depth 0) has none, and toString()
 * adds the final one.
 */
const LINE_STARTS: string[] = [''];
const lineStart = (depth: number) => (LINE_STARTS[depth] ??= '\n' + '  '.repeat(depth));

/**
 * Collects lines with libvirt's indentation into one string. An element with children is
 * written as open(start tag) ... close(name); one whose children all turn out to be absent
 * prints as `<x/>` instead, which is only known at its close.
 */
class Out {
  // Fields are `declare`d and set in the constructor: V8 (as in Node 20) does not inline `new`
  // for a class with field initialisers.
  private declare out: string;
  private declare depth: number;
  /** lineStart(depth), kept at hand: every line needs it. */
  private declare start: string;
  /**
   * Start tags (with their line start, without their '>') of open elements that have
   * written nothing yet, innermost last. The first line written inside prints the ones
   * still waiting.
   */
  private declare waiting: string[];
  /** How many entries of `waiting` are live (a count, so that emptying it costs nothing). */
  private declare waitingCount: number;

  constructor() {
    this.out = '';
    this.depth = 0;
    this.start = '';
    this.waiting = [];
    this.waitingCount = 0;
  }

  line(s: string): void {
    if (this.waitingCount > 0) this.flushWaiting();
    this.out += this.start + s;
  }
  private flushWaiting(): void {
    for (let i = 0; i < this.waitingCount; i++) this.out += this.waiting[i] + '>';
    this.waitingCount = 0;
  }
  /** Opens an element whose children follow: `tag` is its start tag without the '>'. */
  open(tag: string): void {
    this.waiting[this.waitingCount++] = this.start + tag;
    this.start = lineStart(++this.depth);
  }
  close(name: string): void {
    this.start = lineStart(--this.depth);
    // Still waiting means nothing was written inside: every nested element has closed, so
    // this start tag is the last one waiting. The enclosing ones, if still waiting, go
    // before the self-closed tag.
    if (this.waitingCount > 0) {
      const open = this.waiting[--this.waitingCount];
      if (this.waitingCount > 0) this.flushWaiting();
      this.out += open + '/>';
    } else {
      // The root's closing tag needs the newline its depth's line start leaves out.
      this.out += `${this.depth === 0 ? '\n' : this.start}</${name}>`;
    }
  }
  toString(): string { return this.out + '\n'; }
}

const hex = (n: number, width: number) => `0x${n.toString(16).padStart(width, '0')}`;

export function formatDomainXml(d: Domain, opts: FormatOptions = {}): string {
  const o = new Out();
  let rootAttrs = attr(" type='", d.type);
  if (!opts.inactive) rootAttrs += num(" id='", d.id);
  if (d.xenCommandline?.length) rootAttrs += ` xmlns:xen='${XEN_NAMESPACE}'`;
  o.open(`<domain${rootAttrs}`);
  o.line(`<name>${esc(d.name)}</name>`);
  if (d.uuid) o.line(`<uuid>${esc(d.uuid)}</uuid>`);
  if (d.title !== undefined) o.line(`<title>${esc(d.title)}</title>`);
  if (d.description !== undefined) o.line(`<description>${esc(d.description)}</description>`);
  if (d.maxMemory) o.line(`<maxMemory${num(" slots='", d.maxMemory.slots)} unit='KiB'>${d.maxMemory.kib}</maxMemory>`);
  o.line(`<memory unit='KiB'>${d.memory}</memory>`);
  o.line(`<currentMemory unit='KiB'>${d.currentMemory ?? d.memory}</currentMemory>`);
  const v = d.vcpu;
  o.line(`<vcpu${word(" placement='", v.placement)}${attr(" cpuset='", v.cpuset)}${num(" current='", v.current)}>${v.count}</vcpu>`);
  if (d.cputune) {
    const t = d.cputune;
    o.open('<cputune');
    if (t.weight !== undefined) o.line(`<shares>${t.weight}</shares>`);
    for (const p of t.vcpupins) o.line(`<vcpupin${num(" vcpu='", p.vcpu)}${attr(" cpuset='", p.cpuset)}/>`);
    o.close('cputune');
  }
  if (d.bootloader !== undefined) o.line(`<bootloader>${esc(d.bootloader)}</bootloader>`);
  if (d.bootloaderArgs !== undefined) o.line(`<bootloader_args>${esc(d.bootloaderArgs)}</bootloader_args>`);
  // libvirt keeps printing Xen PV guests as the legacy 'linux' for old clients.
  formatOs(o, d.os, d.type === 'xen' && d.os.type === 'xen' ? 'linux' : d.os.type);
  if (d.features) formatFeatures(o, d.features);
  if (d.cpu) formatCpu(o, d.cpu);
  formatClock(o, d.clock);
  if (d.onPoweroff) o.line(`<on_poweroff>${d.onPoweroff}</on_poweroff>`);
  if (d.onReboot) o.line(`<on_reboot>${d.onReboot}</on_reboot>`);
  if (d.onCrash) o.line(`<on_crash>${d.onCrash}</on_crash>`);
  formatDevices(o, d, opts);
  if (d.xenCommandline?.length) {
    o.open('<xen:commandline');
    for (const a of d.xenCommandline) o.line(`<xen:arg${attr(" value='", a)}/>`);
    o.close('xen:commandline');
  }
  o.close('domain');
  return o.toString();
}

/** An element with optional text: `<name attrs>text</name>`, or `<name attrs/>` without text. */
function textOrEmpty(o: Out, name: string, attrs: string, text: string | undefined): void {
  o.line(text !== undefined ? `<${name}${attrs}>${esc(text)}</${name}>` : `<${name}${attrs}/>`);
}

function formatOs(o: Out, os: DomainOs, osTypeName: DomainOs['type'] | 'linux'): void {
  o.open('<os');
  o.line(`<type${attr(" arch='", os.arch)}${attr(" machine='", os.machine)}>${osTypeName}</type>`);
  if (os.loader) {
    const l = os.loader;
    textOrEmpty(o, 'loader', word(" readonly='", l.readonly) + word(" secure='", l.secure) + word(" type='", l.type), l.path);
  }
  if (os.nvram) textOrEmpty(o, 'nvram', attr(" template='", os.nvram.template), os.nvram.path);
  if (os.kernel !== undefined) o.line(`<kernel>${esc(os.kernel)}</kernel>`);
  if (os.initrd !== undefined) o.line(`<initrd>${esc(os.initrd)}</initrd>`);
  if (os.cmdline !== undefined) o.line(`<cmdline>${esc(os.cmdline)}</cmdline>`);
  if (os.root !== undefined) o.line(`<root>${esc(os.root)}</root>`);
  if (os.acpiTables?.length) {
    o.open('<acpi');
    for (const t of os.acpiTables) o.line(`<table${word(" type='", t.type)}>${esc(t.path)}</table>`);
    o.close('acpi');
  }
  for (const b of os.boot) o.line(`<boot${word(" dev='", b)}/>`);
  if (os.bootmenu) o.line(`<bootmenu${word(" enable='", os.bootmenu.enable)}${num(" timeout='", os.bootmenu.timeout)}/>`);
  o.close('os');
}

function formatFeatures(o: Out, f: DomainFeatures): void {
  o.open('<features');
  if (f.acpi) o.line('<acpi/>');
  if (f.apic) o.line('<apic/>');
  if (f.pae) o.line('<pae/>');
  if (f.hap) o.line(`<hap${word(" state='", f.hap)}/>`);
  if (f.viridian) o.line('<viridian/>');
  if (f.hyperv) {
    const hv = f.hyperv;
    o.open(`<hyperv${word(" mode='", hv.mode)}`);
    for (const h of hv.features) o.line(`<${h.name}${word(" state='", h.state)}${attr(" value='", h.value)}/>`);
    o.close('hyperv');
  }
  if (f.pvspinlock) o.line(`<pvspinlock${word(" state='", f.pvspinlock)}/>`);
  if (f.vmcoreinfo) o.line(`<vmcoreinfo${word(" state='", f.vmcoreinfo)}/>`);
  if (f.xen) {
    const x = f.xen;
    o.open('<xen');
    if (x.e820_host) o.line(`<e820_host${word(" state='", x.e820_host)}/>`);
    if (x.passthrough) o.line(`<passthrough${word(" state='", x.passthrough.state)}${word(" mode='", x.passthrough.mode)}/>`);
    o.close('xen');
  }
  o.close('features');
}

function formatCpu(o: Out, c: DomainCpu): void {
  o.open(`<cpu${word(" mode='", c.mode)}${word(" match='", c.match)}${word(" check='", c.check)}`);
  if (c.model) o.line(`<model${word(" fallback='", c.model.fallback)}>${esc(c.model.name)}</model>`);
  if (c.vendor !== undefined) o.line(`<vendor>${esc(c.vendor)}</vendor>`);
  if (c.topology) {
    const t = c.topology;
    o.line(`<topology${num(" sockets='", t.sockets)}${num(" dies='", t.dies)}${num(" cores='", t.cores)}${num(" threads='", t.threads)}/>`);
  }
  for (const f of c.features) o.line(`<feature${word(" policy='", f.policy)}${attr(" name='", f.name)}/>`);
  if (c.numa?.length) {
    o.open('<numa');
    for (const cell of c.numa) {
      o.open(`<cell${num(" id='", cell.id)}${attr(" cpus='", cell.cpus)}${num(" memory='", cell.memory)} unit='KiB'${word(" memAccess='", cell.memAccess)}`);
      if (cell.distances?.length) {
        o.open('<distances');
        for (const s of cell.distances) o.line(`<sibling${num(" id='", s.id)}${num(" value='", s.value)}/>`);
        o.close('distances');
      }
      o.close('cell');
    }
    o.close('numa');
  }
  o.close('cpu');
}

/** The clock adjustment is 'reset' or a number of seconds. */
function adjustmentAttr(value: DomainClock['adjustment']): string {
  return typeof value === 'number' ? num(" adjustment='", value) : word(" adjustment='", value);
}

function formatClock(o: Out, c: DomainClock): void {
  let attrs = word(" offset='", c.offset);
  switch (c.offset) {
    case 'utc': case 'localtime':
      attrs += adjustmentAttr(c.adjustment);
      break;
    case 'variable':
      attrs += adjustmentAttr(c.adjustment ?? 0) + word(" basis='", c.basis ?? 'utc');
      break;
    case 'timezone':
      attrs += attr(" timezone='", c.timezone);
      break;
    case 'absolute':
      attrs += num(" start='", c.start);
      break;
  }
  o.open(`<clock${attrs}`);
  for (const t of c.timers) {
    o.line(`<timer${word(" name='", t.name)}${word(" present='", t.present)}${word(" tickpolicy='", t.tickpolicy)}` +
      `${word(" track='", t.track)}${num(" frequency='", t.frequency)}${word(" mode='", t.mode)}/>`);
  }
  o.close('clock');
}

function formatAddress(o: Out, a: DeviceAddress | undefined): void {
  if (!a) return;
  switch (a.type) {
    case 'drive':
      o.line(`<address type='drive'${num(" controller='", a.controller)}${num(" bus='", a.bus)}${num(" target='", a.target)}${num(" unit='", a.unit)}/>`);
      break;
    case 'pci':
      o.line(`<address type='pci' domain='${hex(a.domain, 4)}' bus='${hex(a.bus, 2)}' slot='${hex(a.slot, 2)}'` +
        ` function='${hex(a.function, 1)}'${word(" multifunction='", a.multifunction)}/>`);
      break;
    case 'usb':
      o.line(`<address type='usb'${num(" bus='", a.bus)}${attr(" port='", a.port)}/>`);
      break;
  }
}

function formatDevices(o: Out, d: Domain, opts: FormatOptions): void {
  const dev = d.devices;
  o.open('<devices');
  if (dev.emulator !== undefined) o.line(`<emulator>${esc(dev.emulator)}</emulator>`);
  for (const disk of dev.disks) formatDisk(o, disk);
  for (const c of dev.controllers) formatController(o, c);
  for (const nic of dev.interfaces) formatInterface(o, nic, opts);
  for (const s of dev.serials) formatChar(o, 'serial', s);
  for (const p of dev.parallels) formatChar(o, 'parallel', p);
  for (const c of dev.consoles) formatChar(o, 'console', c);
  for (const c of dev.channels) formatChar(o, 'channel', c);
  for (const i of dev.inputs) {
    const tag = `<input${word(" type='", i.type)}${word(" bus='", i.bus)}`;
    if (i.address) {
      o.open(tag);
      formatAddress(o, i.address);
      o.close('input');
    } else {
      o.line(`${tag}/>`);
    }
  }
  for (const g of dev.graphics) formatGraphics(o, g, opts);
  for (const s of dev.sounds) o.line(`<sound${attr(" model='", s.model)}/>`);
  for (const v of dev.videos) {
    const m = v.model;
    o.open('<video');
    o.line(`<model${word(" type='", m.type)}${num(" vram='", m.vram)}${num(" heads='", m.heads)}${m.primary ? " primary='yes'" : ''}/>`);
    o.close('video');
  }
  for (const h of dev.hostdevs) formatHostdev(o, h);
  for (const r of dev.redirdevs) {
    o.open(`<redirdev${word(" bus='", r.bus)}${word(" type='", r.type)}`);
    if (r.source) formatCharSource(o, r.source);
    o.close('redirdev');
  }
  for (const h of dev.hubs) o.line(`<hub${word(" type='", h.type)}/>`);
  if (dev.memballoon) {
    o.line(`<memballoon${word(" model='", dev.memballoon.model)}${word(" autodeflate='", dev.memballoon.autodeflate)}/>`);
  }
  o.close('devices');
}

/** The attribute a disk's source path goes in, by disk type. */
const sourcePathAttr = (type: DiskDevice['type']) => (type === 'block' ? " dev='" : type === 'dir' ? " dir='" : " file='");

function formatDisk(o: Out, disk: DiskDevice): void {
  o.open(`<disk${word(" type='", disk.type)}${word(" device='", disk.device)}`);
  if (disk.driver) {
    const dr = disk.driver;
    const attrs = attr(" name='", dr.name) + attr(" type='", dr.type) + attr(" cache='", dr.cache) + attr(" io='", dr.io) +
      attr(" discard='", dr.discard);
    if (attrs !== '') o.line(`<driver${attrs}/>`);
  }
  const src = disk.source;
  if (src) {
    if (disk.type === 'network') {
      o.open(`<source${attr(" protocol='", src.protocol)}${attr(" name='", src.name)}`);
      for (const h of src.hosts ?? []) o.line(`<host${attr(" name='", h.name)}${num(" port='", h.port)}/>`);
      if (src.auth) {
        const a = src.auth;
        o.open(`<auth${attr(" username='", a.username)}`);
        o.line(`<secret${attr(" type='", a.secretType)}${attr(" usage='", a.usage)}${attr(" uuid='", a.uuid)}/>`);
        o.close('auth');
      }
      o.close('source');
    } else if (src.path !== undefined) {
      o.line(`<source${attr(sourcePathAttr(disk.type), src.path)}/>`);
    }
  }
  if (disk.backingStore) o.line('<backingStore/>');
  const t = disk.target;
  o.line(`<target${attr(" dev='", t.dev)}${word(" bus='", t.bus)}${word(" tray='", t.tray)}/>`);
  if (disk.readonly) o.line('<readonly/>');
  if (disk.shareable) o.line('<shareable/>');
  if (disk.transient) o.line('<transient/>');
  if (disk.serial !== undefined) o.line(`<serial>${esc(disk.serial)}</serial>`);
  formatAddress(o, disk.address);
  o.close('disk');
}

function formatController(o: Out, c: ControllerDevice): void {
  o.open(`<controller${word(" type='", c.type)}${num(" index='", c.index)}${attr(" model='", c.model)}${num(" ports='", c.ports)}` +
    `${num(" maxGrantFrames='", c.maxGrantFrames)}${num(" maxEventChannels='", c.maxEventChannels)}`);
  formatAddress(o, c.address);
  o.close('controller');
}

function formatInterface(o: Out, nic: InterfaceDevice, opts: FormatOptions): void {
  o.open(`<interface${word(" type='", nic.type)}`);
  if (nic.mac) o.line(`<mac${attr(" address='", nic.mac)}/>`);
  if (nic.source) {
    const s = nic.source;
    o.line(`<source${attr(" bridge='", s.bridge)}${attr(" network='", s.network)}${attr(" portgroup='", s.portgroup)}` +
      `${attr(" dev='", s.dev)}${word(" mode='", s.mode)}/>`);
  }
  if (nic.vlan) {
    const v = nic.vlan;
    o.open(`<vlan${v.trunk ? " trunk='yes'" : ''}`);
    for (const t of v.tags) o.line(`<tag${num(" id='", t.id)}${word(" nativeMode='", t.nativeMode)}/>`);
    o.close('vlan');
  }
  if (nic.virtualport) {
    const vp = nic.virtualport;
    o.open(`<virtualport${word(" type='", vp.type)}`);
    if (vp.interfaceid || vp.profileid) {
      o.line(`<parameters${attr(" interfaceid='", vp.interfaceid)}${attr(" profileid='", vp.profileid)}/>`);
    }
    o.close('virtualport');
  }
  if (nic.bandwidth) {
    const { inbound: i, outbound: u } = nic.bandwidth;
    o.open('<bandwidth');
    if (i) o.line(`<inbound${num(" average='", i.average)}${num(" peak='", i.peak)}${num(" floor='", i.floor)}${num(" burst='", i.burst)}/>`);
    if (u) o.line(`<outbound${num(" average='", u.average)}${num(" peak='", u.peak)}${num(" burst='", u.burst)}/>`);
    o.close('bandwidth');
  }
  for (const ip of nic.ips) o.line(`<ip${attr(" address='", ip.address)}${word(" family='", ip.family)}${num(" prefix='", ip.prefix)}/>`);
  if (nic.script !== undefined) o.line(`<script${attr(" path='", nic.script)}/>`);
  if (nic.backendDomain !== undefined) o.line(`<backenddomain${attr(" name='", nic.backendDomain)}/>`);
  if (nic.target !== undefined && !(opts.inactive && nic.target.startsWith(GENERATED_IFNAME_PREFIX))) {
    o.line(`<target${attr(" dev='", nic.target)}/>`);
  }
  if (nic.model !== undefined) o.line(`<model${attr(" type='", nic.model)}/>`);
  if (nic.linkState) o.line(`<link${word(" state='", nic.linkState)}/>`);
  formatAddress(o, nic.address);
  o.close('interface');
}

function formatCharSource(o: Out, s: CharDevice['source']): void {
  switch (s.type) {
    case 'pty': case 'dev': case 'file': case 'pipe':
      if (s.path !== undefined) o.line(`<source${attr(" path='", s.path)}${word(" append='", s.append)}/>`);
      break;
    case 'unix':
      o.line(`<source${word(" mode='", s.mode)}${attr(" path='", s.path)}/>`);
      break;
    case 'tcp':
      o.line(`<source${word(" mode='", s.mode)}${attr(" host='", s.host)}${attr(" service='", s.service)}/>`);
      o.line(`<protocol${word(" type='", s.protocol ?? 'raw')}/>`);
      break;
    case 'udp':
      if (s.bindHost !== undefined || s.bindService !== undefined) {
        o.line(`<source mode='bind'${attr(" host='", s.bindHost)}${attr(" service='", s.bindService)}/>`);
      }
      o.line(`<source mode='connect'${attr(" host='", s.host)}${attr(" service='", s.service)}/>`);
      break;
  }
}

function formatChar(o: Out, name: string, c: CharDevice): void {
  let attrs = word(" type='", c.source.type);
  if (name === 'console' && c.source.tty !== undefined && c.source.type === 'pty') attrs += attr(" tty='", c.source.tty);
  o.open(`<${name}${attrs}`);
  formatCharSource(o, c.source);
  o.line(`<target${attr(" type='", c.target.type)}${attr(" name='", c.target.name)}${num(" port='", c.target.port)}/>`);
  o.close(name);
}

function formatGraphics(o: Out, g: GraphicsDevice, opts: FormatOptions): void {
  let attrs = word(" type='", g.type);
  const firstAddress = g.listens[0]?.type === 'address' ? g.listens[0].address : undefined;
  const passwd = opts.secure ? g.passwd : undefined;
  switch (g.type) {
    case 'vnc': case 'spice': {
      const auto = g.autoport === 'yes';
      if (g.port !== undefined && g.port > 0 && !(auto && opts.inactive)) attrs += num(" port='", g.port);
      else if (auto) attrs += " port='-1'";
      if (g.type === 'spice') {
        if (g.tlsPort !== undefined && g.tlsPort > 0 && !(auto && opts.inactive)) attrs += num(" tlsPort='", g.tlsPort);
        else if (auto && g.tlsPort !== undefined) attrs += " tlsPort='-1'";
      }
      attrs += word(" autoport='", g.autoport) + attr(" listen='", firstAddress ?? g.listenAttr) + attr(" keymap='", g.keymap) +
        attr(" passwd='", passwd);
      break;
    }
    case 'sdl':
      attrs += attr(" display='", g.display) + attr(" xauth='", g.xauth) + word(" fullscreen='", g.fullscreen);
      break;
    default:
      break;
  }
  o.open(`<graphics${attrs}`);
  for (const l of g.listens) {
    o.line(`<listen${word(" type='", l.type)}${attr(" address='", l.address)}${attr(" network='", l.network)}${attr(" socket='", l.socket)}/>`);
  }
  if (g.image) o.line(`<image${attr(" compression='", g.image)}/>`);
  if (g.streaming) o.line(`<streaming${attr(" mode='", g.streaming)}/>`);
  if (g.mouseMode) o.line(`<mouse${word(" mode='", g.mouseMode)}/>`);
  if (g.clipboardCopypaste) o.line(`<clipboard${word(" copypaste='", g.clipboardCopypaste)}/>`);
  o.close('graphics');
}

function formatHostdev(o: Out, h: HostdevDevice): void {
  o.open(`<hostdev${word(" mode='", h.mode)}${word(" type='", h.type)}${word(" managed='", h.managed)}`);
  if (h.driverName !== undefined) o.line(`<driver${attr(" name='", h.driverName)}/>`);
  o.open(`<source${word(" writeFiltering='", h.writeFiltering)}`);
  if (h.pci) {
    const p = h.pci;
    o.line(`<address domain='${hex(p.domain, 4)}' bus='${hex(p.bus, 2)}' slot='${hex(p.slot, 2)}' function='${hex(p.function, 1)}'/>`);
  }
  if (h.usb) {
    const u = h.usb;
    if (u.vendor) o.line(`<vendor${attr(" id='", u.vendor)}/>`);
    if (u.product) o.line(`<product${attr(" id='", u.product)}/>`);
    if (u.bus !== undefined) o.line(`<address${num(" bus='", u.bus)}${num(" device='", u.device)}/>`);
  }
  o.close('source');
  formatAddress(o, h.address);
  o.close('hostdev');
}
