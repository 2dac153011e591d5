/**
 * Typed model -> domain XML in libvirt 9.0's canonical form: its element order, attribute
 * order, two-space indentation, single-quoted attributes and escaping, so that output can be
 * compared byte for byte with what libvirt prints.
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

/** One attribute as libvirt prints it, or nothing when the value is unset. */
function attr(name: string, value: string | number | undefined): string {
  if (value === undefined) return '';
  return ` ${name}='${typeof value === 'number' ? String(value) : escapeXml(String(value))}'`;
}

/** Indentation strings by depth; built once, they are constants. */
const PADS: string[] = [''];
const padFor = (depth: number) => (PADS[depth] ??= '  '.repeat(depth));

/**
 * Collects lines with libvirt's indentation into one string. Element attributes arrive
 * already formatted (see attr()), so nothing is built that is not printed.
 */
class Out {
  private out = '';
  private depth = 0;
  /**
   * Start tags of open blocks whose body has written nothing yet, innermost last. A block
   * prints as `<x/>` when its body writes nothing, which is only known at its end; the first
   * line any body writes prints the start tags still waiting.
   */
  private waiting: string[] = [];
  /** How many entries of `waiting` are live (a count, so that emptying it costs nothing). */
  private waitingCount = 0;

  line(s: string): void {
    if (this.waitingCount > 0) this.flushWaiting();
    this.out += padFor(this.depth) + s + '\n';
  }
  private flushWaiting(): void {
    for (let i = 0; i < this.waitingCount; i++) this.out += this.waiting[i] + '>\n';
    this.waitingCount = 0;
  }
  empty(name: string, attrs: string): void { this.line(`<${name}${attrs}/>`); }
  text(name: string, attrs: string, text: string): void {
    this.line(`<${name}${attrs}>${escapeXml(text)}</${name}>`);
  }
  /** An element whose children `body` writes; printed self-closed when it writes nothing. */
  block(name: string, attrs: string, body: () => void): void {
    const open = `${padFor(this.depth)}<${name}${attrs}`;
    const mark = this.waitingCount;
    this.waiting[this.waitingCount++] = open;
    this.depth++;
    body();
    this.depth--;
    // Still waiting (the body wrote nothing): nested blocks have removed theirs, so ours is
    // last; the enclosing blocks' start tags, if still waiting, go before the self-closed tag.
    if (this.waitingCount > mark) {
      this.waitingCount--;
      if (this.waitingCount > 0) this.flushWaiting();
      this.out += open + '/>\n';
    } else {
      this.out += `${padFor(this.depth)}</${name}>\n`;
    }
  }
  toString(): string { return this.out; }
}

const hex = (n: number, width: number) => `0x${n.toString(16).padStart(width, '0')}`;

export function formatDomainXml(d: Domain, opts: FormatOptions = {}): string {
  const o = new Out();
  let rootAttrs = attr('type', d.type);
  if (!opts.inactive && d.id !== undefined) rootAttrs += attr('id', d.id);
  if (d.xenCommandline?.length) rootAttrs += attr('xmlns:xen', XEN_NAMESPACE);
  o.block('domain', rootAttrs, () => {
    o.text('name', '', d.name);
    if (d.uuid) o.text('uuid', '', d.uuid);
    if (d.title !== undefined) o.text('title', '', d.title);
    if (d.description !== undefined) o.text('description', '', d.description);
    if (d.maxMemory) {
      o.text('maxMemory', attr('slots', d.maxMemory.slots) + attr('unit', 'KiB'), String(d.maxMemory.kib));
    }
    o.text('memory', attr('unit', 'KiB'), String(d.memory));
    o.text('currentMemory', attr('unit', 'KiB'), String(d.currentMemory ?? d.memory));
    const vcpuAttrs = attr('placement', d.vcpu.placement) + attr('cpuset', d.vcpu.cpuset) + attr('current', d.vcpu.current);
    o.text('vcpu', vcpuAttrs, String(d.vcpu.count));
    if (d.cputune) {
      const t = d.cputune;
      o.block('cputune', '', () => {
        if (t.weight !== undefined) o.text('shares', '', String(t.weight));
        for (const p of t.vcpupins) o.empty('vcpupin', attr('vcpu', p.vcpu) + attr('cpuset', p.cpuset));
      });
    }
    if (d.bootloader !== undefined) o.text('bootloader', '', d.bootloader);
    if (d.bootloaderArgs !== undefined) o.text('bootloader_args', '', d.bootloaderArgs);
    // libvirt keeps printing Xen PV guests as the legacy 'linux' for old clients.
    formatOs(o, d.os, d.type === 'xen' && d.os.type === 'xen' ? 'linux' : d.os.type);
    if (d.features) formatFeatures(o, d.features);
    if (d.cpu) formatCpu(o, d.cpu);
    formatClock(o, d.clock);
    if (d.onPoweroff) o.text('on_poweroff', '', d.onPoweroff);
    if (d.onReboot) o.text('on_reboot', '', d.onReboot);
    if (d.onCrash) o.text('on_crash', '', d.onCrash);
    formatDevices(o, d, opts);
    if (d.xenCommandline?.length) {
      o.block('xen:commandline', '', () => {
        for (const a of d.xenCommandline!) o.empty('xen:arg', attr('value', a));
      });
    }
  });
  return o.toString();
}

function formatOs(o: Out, os: DomainOs, osTypeName: string): void {
  o.block('os', '', () => {
    o.text('type', attr('arch', os.arch) + attr('machine', os.machine), osTypeName);
    if (os.loader) {
      const l = os.loader;
      const attrs = attr('readonly', l.readonly) + attr('secure', l.secure) + attr('type', l.type);
      if (l.path !== undefined) o.text('loader', attrs, l.path);
      else o.empty('loader', attrs);
    }
    if (os.nvram) {
      if (os.nvram.path !== undefined) o.text('nvram', attr('template', os.nvram.template), os.nvram.path);
      else o.empty('nvram', attr('template', os.nvram.template));
    }
    if (os.kernel !== undefined) o.text('kernel', '', os.kernel);
    if (os.initrd !== undefined) o.text('initrd', '', os.initrd);
    if (os.cmdline !== undefined) o.text('cmdline', '', os.cmdline);
    if (os.root !== undefined) o.text('root', '', os.root);
    if (os.acpiTables?.length) {
      o.block('acpi', '', () => {
        for (const t of os.acpiTables!) o.text('table', attr('type', t.type), t.path);
      });
    }
    for (const b of os.boot) o.empty('boot', attr('dev', b));
    if (os.bootmenu) o.empty('bootmenu', attr('enable', os.bootmenu.enable) + attr('timeout', os.bootmenu.timeout));
  });
}

function formatFeatures(o: Out, f: DomainFeatures): void {
  o.block('features', '', () => {
    if (f.acpi) o.empty('acpi', '');
    if (f.apic) o.empty('apic', '');
    if (f.pae) o.empty('pae', '');
    if (f.hap) o.empty('hap', attr('state', f.hap));
    if (f.viridian) o.empty('viridian', '');
    if (f.hyperv) {
      const hv = f.hyperv;
      o.block('hyperv', attr('mode', hv.mode), () => {
        for (const h of hv.features) o.empty(h.name, attr('state', h.state) + attr('value', h.value));
      });
    }
    if (f.pvspinlock) o.empty('pvspinlock', attr('state', f.pvspinlock));
    if (f.vmcoreinfo) o.empty('vmcoreinfo', attr('state', f.vmcoreinfo));
    if (f.xen) {
      const x = f.xen;
      o.block('xen', '', () => {
        if (x.e820_host) o.empty('e820_host', attr('state', x.e820_host));
        if (x.passthrough) o.empty('passthrough', attr('state', x.passthrough.state) + attr('mode', x.passthrough.mode));
      });
    }
  });
}

function formatCpu(o: Out, c: DomainCpu): void {
  o.block('cpu', attr('mode', c.mode) + attr('match', c.match) + attr('check', c.check), () => {
    if (c.model) o.text('model', attr('fallback', c.model.fallback), c.model.name);
    if (c.vendor !== undefined) o.text('vendor', '', c.vendor);
    if (c.topology) {
      const t = c.topology;
      o.empty('topology', attr('sockets', t.sockets) + attr('dies', t.dies) + attr('cores', t.cores) +
        attr('threads', t.threads));
    }
    for (const f of c.features) o.empty('feature', attr('policy', f.policy) + attr('name', f.name));
    if (c.numa?.length) {
      o.block('numa', '', () => {
        for (const cell of c.numa!) {
          o.block('cell', attr('id', cell.id) + attr('cpus', cell.cpus) + attr('memory', cell.memory) +
            attr('unit', 'KiB') + attr('memAccess', cell.memAccess), () => {
            if (cell.distances?.length) {
              o.block('distances', '', () => {
                for (const s of cell.distances!) o.empty('sibling', attr('id', s.id) + attr('value', s.value));
              });
            }
          });
        }
      });
    }
  });
}

function formatClock(o: Out, c: DomainClock): void {
  let attrs = attr('offset', c.offset);
  switch (c.offset) {
    case 'utc': case 'localtime':
      attrs += attr('adjustment', c.adjustment);
      break;
    case 'variable':
      attrs += attr('adjustment', c.adjustment ?? 0) + attr('basis', c.basis ?? 'utc');
      break;
    case 'timezone':
      attrs += attr('timezone', c.timezone);
      break;
    case 'absolute':
      attrs += attr('start', c.start);
      break;
  }
  o.block('clock', attrs, () => {
    for (const t of c.timers) {
      o.empty('timer', attr('name', t.name) + attr('present', t.present) + attr('tickpolicy', t.tickpolicy) +
        attr('track', t.track) + attr('frequency', t.frequency) + attr('mode', t.mode));
    }
  });
}

function formatAddress(o: Out, a: DeviceAddress | undefined): void {
  if (!a) return;
  switch (a.type) {
    case 'drive':
      o.empty('address', attr('type', 'drive') + attr('controller', a.controller) + attr('bus', a.bus) +
        attr('target', a.target) + attr('unit', a.unit));
      break;
    case 'pci':
      o.empty('address', attr('type', 'pci') + attr('domain', hex(a.domain, 4)) + attr('bus', hex(a.bus, 2)) +
        attr('slot', hex(a.slot, 2)) + attr('function', hex(a.function, 1)) + attr('multifunction', a.multifunction));
      break;
    case 'usb':
      o.empty('address', attr('type', 'usb') + attr('bus', a.bus) + attr('port', a.port));
      break;
  }
}

function formatDevices(o: Out, d: Domain, opts: FormatOptions): void {
  const dev = d.devices;
  o.block('devices', '', () => {
    if (dev.emulator !== undefined) o.text('emulator', '', dev.emulator);
    for (const disk of dev.disks) formatDisk(o, disk);
    for (const c of dev.controllers) formatController(o, c);
    for (const nic of dev.interfaces) formatInterface(o, nic, opts);
    for (const s of dev.serials) formatChar(o, 'serial', s);
    for (const p of dev.parallels) formatChar(o, 'parallel', p);
    for (const c of dev.consoles) formatChar(o, 'console', c);
    for (const c of dev.channels) formatChar(o, 'channel', c);
    for (const i of dev.inputs) {
      if (i.address) o.block('input', attr('type', i.type) + attr('bus', i.bus), () => formatAddress(o, i.address));
      else o.empty('input', attr('type', i.type) + attr('bus', i.bus));
    }
    for (const g of dev.graphics) formatGraphics(o, g, opts);
    for (const s of dev.sounds) o.empty('sound', attr('model', s.model));
    for (const v of dev.videos) {
      o.block('video', '', () => {
        const m = v.model;
        o.empty('model', attr('type', m.type) + attr('vram', m.vram) + attr('heads', m.heads) +
          attr('primary', m.primary ? 'yes' : undefined));
      });
    }
    for (const h of dev.hostdevs) formatHostdev(o, h);
    for (const r of dev.redirdevs) {
      o.block('redirdev', attr('bus', r.bus) + attr('type', r.type), () => {
        if (r.source) formatCharSource(o, r.source);
      });
    }
    for (const h of dev.hubs) o.empty('hub', attr('type', h.type));
    if (dev.memballoon) o.empty('memballoon', attr('model', dev.memballoon.model) +
      attr('autodeflate', dev.memballoon.autodeflate));
  });
}

function formatDisk(o: Out, disk: DiskDevice): void {
  o.block('disk', attr('type', disk.type) + attr('device', disk.device), () => {
    if (disk.driver) {
      const dr = disk.driver;
      const attrs = attr('name', dr.name) + attr('type', dr.type) + attr('cache', dr.cache) + attr('io', dr.io) +
        attr('discard', dr.discard);
      if (attrs !== '') o.empty('driver', attrs);
    }
    const src = disk.source;
    if (src) {
      if (disk.type === 'network') {
        o.block('source', attr('protocol', src.protocol) + attr('name', src.name), () => {
          for (const h of src.hosts ?? []) o.empty('host', attr('name', h.name) + attr('port', h.port));
          if (src.auth) {
            const a = src.auth;
            o.block('auth', attr('username', a.username), () => o.empty('secret', attr('type', a.secretType) +
              attr('usage', a.usage) + attr('uuid', a.uuid)));
          }
        });
      } else if (src.path !== undefined) {
        const key = disk.type === 'block' ? 'dev' : disk.type === 'dir' ? 'dir' : 'file';
        o.empty('source', attr(key, src.path));
      }
    }
    if (disk.backingStore) o.empty('backingStore', '');
    o.empty('target', attr('dev', disk.target.dev) + attr('bus', disk.target.bus) + attr('tray', disk.target.tray));
    if (disk.readonly) o.empty('readonly', '');
    if (disk.shareable) o.empty('shareable', '');
    if (disk.transient) o.empty('transient', '');
    if (disk.serial !== undefined) o.text('serial', '', disk.serial);
    formatAddress(o, disk.address);
  });
}

function formatController(o: Out, c: ControllerDevice): void {
  o.block('controller', attr('type', c.type) + attr('index', c.index) + attr('model', c.model) +
    attr('ports', c.ports) + attr('maxGrantFrames', c.maxGrantFrames) +
    attr('maxEventChannels', c.maxEventChannels), () => formatAddress(o, c.address));
}

function formatInterface(o: Out, nic: InterfaceDevice, opts: FormatOptions): void {
  o.block('interface', attr('type', nic.type), () => {
    if (nic.mac) o.empty('mac', attr('address', nic.mac));
    if (nic.source) {
      const s = nic.source;
      o.empty('source', attr('bridge', s.bridge) + attr('network', s.network) + attr('portgroup', s.portgroup) +
        attr('dev', s.dev) + attr('mode', s.mode));
    }
    if (nic.vlan) {
      const v = nic.vlan;
      o.block('vlan', attr('trunk', v.trunk ? 'yes' : undefined), () => {
        for (const t of v.tags) o.empty('tag', attr('id', t.id) + attr('nativeMode', t.nativeMode));
      });
    }
    if (nic.virtualport) {
      const vp = nic.virtualport;
      o.block('virtualport', attr('type', vp.type), () => {
        if (vp.interfaceid || vp.profileid) o.empty('parameters', attr('interfaceid', vp.interfaceid) +
          attr('profileid', vp.profileid));
      });
    }
    if (nic.bandwidth) {
      const bw = nic.bandwidth;
      o.block('bandwidth', '', () => {
        if (bw.inbound) o.empty('inbound', attr('average', bw.inbound.average) + attr('peak', bw.inbound.peak) +
          attr('floor', bw.inbound.floor) + attr('burst', bw.inbound.burst));
        if (bw.outbound) o.empty('outbound', attr('average', bw.outbound.average) + attr('peak', bw.outbound.peak) +
          attr('burst', bw.outbound.burst));
      });
    }
    for (const ip of nic.ips) o.empty('ip', attr('address', ip.address) + attr('family', ip.family) +
      attr('prefix', ip.prefix));
    if (nic.script !== undefined) o.empty('script', attr('path', nic.script));
    if (nic.backendDomain !== undefined) o.empty('backenddomain', attr('name', nic.backendDomain));
    if (nic.target !== undefined && !(opts.inactive && nic.target.startsWith(GENERATED_IFNAME_PREFIX))) {
      o.empty('target', attr('dev', nic.target));
    }
    if (nic.model !== undefined) o.empty('model', attr('type', nic.model));
    if (nic.linkState) o.empty('link', attr('state', nic.linkState));
    formatAddress(o, nic.address);
  });
}

function formatCharSource(o: Out, s: CharDevice['source']): void {
  switch (s.type) {
    case 'pty': case 'dev': case 'file': case 'pipe':
      if (s.path !== undefined) o.empty('source', attr('path', s.path) + attr('append', s.append));
      break;
    case 'unix':
      o.empty('source', attr('mode', s.mode) + attr('path', s.path));
      break;
    case 'tcp':
      o.empty('source', attr('mode', s.mode) + attr('host', s.host) + attr('service', s.service));
      o.empty('protocol', attr('type', s.protocol ?? 'raw'));
      break;
    case 'udp':
      if (s.bindHost !== undefined || s.bindService !== undefined) {
        o.empty('source', attr('mode', 'bind') + attr('host', s.bindHost) + attr('service', s.bindService));
      }
      o.empty('source', attr('mode', 'connect') + attr('host', s.host) + attr('service', s.service));
      break;
  }
}

function formatChar(o: Out, name: string, c: CharDevice): void {
  let attrs = attr('type', c.source.type);
  if (name === 'console' && c.source.tty !== undefined && c.source.type === 'pty') attrs += attr('tty', c.source.tty);
  o.block(name, attrs, () => {
    formatCharSource(o, c.source);
    o.empty('target', attr('type', c.target.type) + attr('name', c.target.name) + attr('port', c.target.port));
  });
}

function formatGraphics(o: Out, g: GraphicsDevice, opts: FormatOptions): void {
  let attrs = attr('type', g.type);
  const firstAddress = g.listens[0]?.type === 'address' ? g.listens[0].address : undefined;
  const passwd = opts.secure ? g.passwd : undefined;
  switch (g.type) {
    case 'vnc': case 'spice': {
      const auto = g.autoport === 'yes';
      if (g.port !== undefined && g.port > 0 && !(auto && opts.inactive)) attrs += attr('port', g.port);
      else if (auto) attrs += attr('port', -1);
      if (g.type === 'spice') {
        if (g.tlsPort !== undefined && g.tlsPort > 0 && !(auto && opts.inactive)) attrs += attr('tlsPort', g.tlsPort);
        else if (auto && g.tlsPort !== undefined) attrs += attr('tlsPort', -1);
      }
      attrs += attr('autoport', g.autoport) + attr('listen', firstAddress ?? g.listenAttr) + attr('keymap', g.keymap) +
        attr('passwd', passwd);
      break;
    }
    case 'sdl':
      attrs += attr('display', g.display) + attr('xauth', g.xauth) + attr('fullscreen', g.fullscreen);
      break;
    default:
      break;
  }
  o.block('graphics', attrs, () => {
    for (const l of g.listens) o.empty('listen', attr('type', l.type) + attr('address', l.address) +
      attr('network', l.network) + attr('socket', l.socket));
    if (g.image) o.empty('image', attr('compression', g.image));
    if (g.streaming) o.empty('streaming', attr('mode', g.streaming));
    if (g.mouseMode) o.empty('mouse', attr('mode', g.mouseMode));
    if (g.clipboardCopypaste) o.empty('clipboard', attr('copypaste', g.clipboardCopypaste));
  });
}

function formatHostdev(o: Out, h: HostdevDevice): void {
  o.block('hostdev', attr('mode', h.mode) + attr('type', h.type) + attr('managed', h.managed), () => {
    if (h.driverName !== undefined) o.empty('driver', attr('name', h.driverName));
    o.block('source', attr('writeFiltering', h.writeFiltering), () => {
      if (h.pci) {
        const p = h.pci;
        o.empty('address', attr('domain', hex(p.domain, 4)) + attr('bus', hex(p.bus, 2)) +
          attr('slot', hex(p.slot, 2)) + attr('function', hex(p.function, 1)));
      }
      if (h.usb) {
        const u = h.usb;
        if (u.vendor) o.empty('vendor', attr('id', u.vendor));
        if (u.product) o.empty('product', attr('id', u.product));
        if (u.bus !== undefined) o.empty('address', attr('bus', u.bus) + attr('device', u.device));
      }
    });
    formatAddress(o, h.address);
  });
}
