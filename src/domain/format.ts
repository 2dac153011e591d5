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

type Attr = [string, string | number | undefined];

/** Collects lines with libvirt's indentation. */
class Out {
  private parts: string[] = [];
  private pad = '';
  indent(): void { this.pad += '  '; }
  dedent(): void { this.pad = this.pad.slice(2); }
  line(s: string): void { this.parts.push(this.pad, s, '\n'); }
  empty(name: string, attrs: Attr[]): void { this.line(`<${name}${fmtAttrs(attrs)}/>`); }
  text(name: string, attrs: Attr[], text: string): void {
    this.line(`<${name}${fmtAttrs(attrs)}>${escapeXml(text)}</${name}>`);
  }
  /** An element whose children `body` writes; printed self-closed when it writes nothing. */
  block(name: string, attrs: Attr[], body: () => void): void {
    const mark = this.parts.length;
    this.indent();
    body();
    this.dedent();
    if (this.parts.length === mark) { this.empty(name, attrs); return; }
    const inner = this.parts.splice(mark);
    this.line(`<${name}${fmtAttrs(attrs)}>`);
    this.parts.push(...inner);
    this.line(`</${name}>`);
  }
  toString(): string { return this.parts.join(''); }
}

function fmtAttrs(attrs: Attr[]): string {
  let s = '';
  for (const [k, v] of attrs) if (v !== undefined) s += ` ${k}='${escapeXml(String(v))}'`;
  return s;
}

const hex = (n: number, width: number) => `0x${n.toString(16).padStart(width, '0')}`;

export function formatDomainXml(d: Domain, opts: FormatOptions = {}): string {
  const o = new Out();
  const rootAttrs: Attr[] = [['type', d.type]];
  if (!opts.inactive && d.id !== undefined) rootAttrs.push(['id', d.id]);
  if (d.xenCommandline?.length) rootAttrs.push(['xmlns:xen', XEN_NAMESPACE]);
  o.block('domain', rootAttrs, () => {
    o.text('name', [], d.name);
    if (d.uuid) o.text('uuid', [], d.uuid);
    if (d.title !== undefined) o.text('title', [], d.title);
    if (d.description !== undefined) o.text('description', [], d.description);
    if (d.maxMemory) o.text('maxMemory', [['slots', d.maxMemory.slots], ['unit', 'KiB']], String(d.maxMemory.kib));
    o.text('memory', [['unit', 'KiB']], String(d.memory));
    o.text('currentMemory', [['unit', 'KiB']], String(d.currentMemory ?? d.memory));
    o.text('vcpu', [['placement', d.vcpu.placement], ['cpuset', d.vcpu.cpuset], ['current', d.vcpu.current]], String(d.vcpu.count));
    if (d.cputune) {
      const t = d.cputune;
      o.block('cputune', [], () => {
        if (t.weight !== undefined) o.text('shares', [], String(t.weight));
        for (const p of t.vcpupins) o.empty('vcpupin', [['vcpu', p.vcpu], ['cpuset', p.cpuset]]);
      });
    }
    if (d.bootloader !== undefined) o.text('bootloader', [], d.bootloader);
    if (d.bootloaderArgs !== undefined) o.text('bootloader_args', [], d.bootloaderArgs);
    // libvirt keeps printing Xen PV guests as the legacy 'linux' for old clients.
    formatOs(o, d.os, d.type === 'xen' && d.os.type === 'xen' ? 'linux' : d.os.type);
    if (d.features) formatFeatures(o, d.features);
    if (d.cpu) formatCpu(o, d.cpu);
    formatClock(o, d.clock);
    if (d.onPoweroff) o.text('on_poweroff', [], d.onPoweroff);
    if (d.onReboot) o.text('on_reboot', [], d.onReboot);
    if (d.onCrash) o.text('on_crash', [], d.onCrash);
    formatDevices(o, d, opts);
    if (d.xenCommandline?.length) {
      o.block('xen:commandline', [], () => {
        for (const a of d.xenCommandline!) o.empty('xen:arg', [['value', a]]);
      });
    }
  });
  return o.toString();
}

function formatOs(o: Out, os: DomainOs, osTypeName: string): void {
  o.block('os', [], () => {
    o.text('type', [['arch', os.arch], ['machine', os.machine]], osTypeName);
    if (os.loader) {
      const l = os.loader;
      const attrs: Attr[] = [['readonly', l.readonly], ['secure', l.secure], ['type', l.type]];
      if (l.path !== undefined) o.text('loader', attrs, l.path);
      else o.empty('loader', attrs);
    }
    if (os.nvram) {
      if (os.nvram.path !== undefined) o.text('nvram', [['template', os.nvram.template]], os.nvram.path);
      else o.empty('nvram', [['template', os.nvram.template]]);
    }
    if (os.kernel !== undefined) o.text('kernel', [], os.kernel);
    if (os.initrd !== undefined) o.text('initrd', [], os.initrd);
    if (os.cmdline !== undefined) o.text('cmdline', [], os.cmdline);
    if (os.root !== undefined) o.text('root', [], os.root);
    if (os.acpiTables?.length) {
      o.block('acpi', [], () => {
        for (const t of os.acpiTables!) o.text('table', [['type', t.type]], t.path);
      });
    }
    for (const b of os.boot) o.empty('boot', [['dev', b]]);
    if (os.bootmenu) o.empty('bootmenu', [['enable', os.bootmenu.enable], ['timeout', os.bootmenu.timeout]]);
  });
}

function formatFeatures(o: Out, f: DomainFeatures): void {
  o.block('features', [], () => {
    if (f.acpi) o.empty('acpi', []);
    if (f.apic) o.empty('apic', []);
    if (f.pae) o.empty('pae', []);
    if (f.hap) o.empty('hap', [['state', f.hap]]);
    if (f.viridian) o.empty('viridian', []);
    if (f.hyperv) {
      const hv = f.hyperv;
      o.block('hyperv', [['mode', hv.mode]], () => {
        for (const h of hv.features) o.empty(h.name, [['state', h.state], ['value', h.value]]);
      });
    }
    if (f.pvspinlock) o.empty('pvspinlock', [['state', f.pvspinlock]]);
    if (f.vmcoreinfo) o.empty('vmcoreinfo', [['state', f.vmcoreinfo]]);
    if (f.xen) {
      const x = f.xen;
      o.block('xen', [], () => {
        if (x.e820_host) o.empty('e820_host', [['state', x.e820_host]]);
        if (x.passthrough) o.empty('passthrough', [['state', x.passthrough.state], ['mode', x.passthrough.mode]]);
      });
    }
  });
}

function formatCpu(o: Out, c: DomainCpu): void {
  o.block('cpu', [['mode', c.mode], ['match', c.match], ['check', c.check]], () => {
    if (c.model) o.text('model', [['fallback', c.model.fallback]], c.model.name);
    if (c.vendor !== undefined) o.text('vendor', [], c.vendor);
    if (c.topology) {
      const t = c.topology;
      o.empty('topology', [['sockets', t.sockets], ['dies', t.dies], ['cores', t.cores], ['threads', t.threads]]);
    }
    for (const f of c.features) o.empty('feature', [['policy', f.policy], ['name', f.name]]);
    if (c.numa?.length) {
      o.block('numa', [], () => {
        for (const cell of c.numa!) {
          o.block('cell', [['id', cell.id], ['cpus', cell.cpus], ['memory', cell.memory], ['unit', 'KiB'], ['memAccess', cell.memAccess]], () => {
            if (cell.distances?.length) {
              o.block('distances', [], () => {
                for (const s of cell.distances!) o.empty('sibling', [['id', s.id], ['value', s.value]]);
              });
            }
          });
        }
      });
    }
  });
}

function formatClock(o: Out, c: DomainClock): void {
  const attrs: Attr[] = [['offset', c.offset]];
  switch (c.offset) {
    case 'utc': case 'localtime':
      attrs.push(['adjustment', c.adjustment]);
      break;
    case 'variable':
      attrs.push(['adjustment', c.adjustment ?? 0], ['basis', c.basis ?? 'utc']);
      break;
    case 'timezone':
      attrs.push(['timezone', c.timezone]);
      break;
    case 'absolute':
      attrs.push(['start', c.start]);
      break;
  }
  o.block('clock', attrs, () => {
    for (const t of c.timers) {
      o.empty('timer', [['name', t.name], ['present', t.present], ['tickpolicy', t.tickpolicy], ['track', t.track],
        ['frequency', t.frequency], ['mode', t.mode]]);
    }
  });
}

function formatAddress(o: Out, a: DeviceAddress | undefined): void {
  if (!a) return;
  switch (a.type) {
    case 'drive':
      o.empty('address', [['type', 'drive'], ['controller', a.controller], ['bus', a.bus], ['target', a.target], ['unit', a.unit]]);
      break;
    case 'pci':
      o.empty('address', [['type', 'pci'], ['domain', hex(a.domain, 4)], ['bus', hex(a.bus, 2)], ['slot', hex(a.slot, 2)],
        ['function', hex(a.function, 1)], ['multifunction', a.multifunction]]);
      break;
    case 'usb':
      o.empty('address', [['type', 'usb'], ['bus', a.bus], ['port', a.port]]);
      break;
  }
}

function formatDevices(o: Out, d: Domain, opts: FormatOptions): void {
  const dev = d.devices;
  o.block('devices', [], () => {
    if (dev.emulator !== undefined) o.text('emulator', [], dev.emulator);
    for (const disk of dev.disks) formatDisk(o, disk);
    for (const c of dev.controllers) formatController(o, c);
    for (const nic of dev.interfaces) formatInterface(o, nic, opts);
    for (const s of dev.serials) formatChar(o, 'serial', s);
    for (const p of dev.parallels) formatChar(o, 'parallel', p);
    for (const c of dev.consoles) formatChar(o, 'console', c);
    for (const c of dev.channels) formatChar(o, 'channel', c);
    for (const i of dev.inputs) {
      if (i.address) o.block('input', [['type', i.type], ['bus', i.bus]], () => formatAddress(o, i.address));
      else o.empty('input', [['type', i.type], ['bus', i.bus]]);
    }
    for (const g of dev.graphics) formatGraphics(o, g, opts);
    for (const s of dev.sounds) o.empty('sound', [['model', s.model]]);
    for (const v of dev.videos) {
      o.block('video', [], () => {
        const m = v.model;
        o.empty('model', [['type', m.type], ['vram', m.vram], ['heads', m.heads], ['primary', m.primary ? 'yes' : undefined]]);
      });
    }
    for (const h of dev.hostdevs) formatHostdev(o, h);
    for (const r of dev.redirdevs) {
      o.block('redirdev', [['bus', r.bus], ['type', r.type]], () => {
        if (r.source) formatCharSource(o, r.source);
      });
    }
    for (const h of dev.hubs) o.empty('hub', [['type', h.type]]);
    if (dev.memballoon) o.empty('memballoon', [['model', dev.memballoon.model], ['autodeflate', dev.memballoon.autodeflate]]);
  });
}

function formatDisk(o: Out, disk: DiskDevice): void {
  o.block('disk', [['type', disk.type], ['device', disk.device]], () => {
    if (disk.driver) {
      const dr = disk.driver;
      const attrs: Attr[] = [['name', dr.name], ['type', dr.type], ['cache', dr.cache], ['io', dr.io], ['discard', dr.discard]];
      if (attrs.some(([, v]) => v !== undefined)) o.empty('driver', attrs);
    }
    const src = disk.source;
    if (src) {
      if (disk.type === 'network') {
        o.block('source', [['protocol', src.protocol], ['name', src.name]], () => {
          for (const h of src.hosts ?? []) o.empty('host', [['name', h.name], ['port', h.port]]);
          if (src.auth) {
            const a = src.auth;
            o.block('auth', [['username', a.username]], () => o.empty('secret', [['type', a.secretType], ['usage', a.usage], ['uuid', a.uuid]]));
          }
        });
      } else if (src.path !== undefined) {
        const key = disk.type === 'block' ? 'dev' : disk.type === 'dir' ? 'dir' : 'file';
        o.empty('source', [[key, src.path]]);
      }
    }
    if (disk.backingStore) o.empty('backingStore', []);
    o.empty('target', [['dev', disk.target.dev], ['bus', disk.target.bus], ['tray', disk.target.tray]]);
    if (disk.readonly) o.empty('readonly', []);
    if (disk.shareable) o.empty('shareable', []);
    if (disk.transient) o.empty('transient', []);
    if (disk.serial !== undefined) o.text('serial', [], disk.serial);
    formatAddress(o, disk.address);
  });
}

function formatController(o: Out, c: ControllerDevice): void {
  o.block('controller', [['type', c.type], ['index', c.index], ['model', c.model], ['ports', c.ports],
    ['maxGrantFrames', c.maxGrantFrames], ['maxEventChannels', c.maxEventChannels]], () => formatAddress(o, c.address));
}

function formatInterface(o: Out, nic: InterfaceDevice, opts: FormatOptions): void {
  o.block('interface', [['type', nic.type]], () => {
    if (nic.mac) o.empty('mac', [['address', nic.mac]]);
    if (nic.source) {
      const s = nic.source;
      o.empty('source', [['bridge', s.bridge], ['network', s.network], ['portgroup', s.portgroup], ['dev', s.dev], ['mode', s.mode]]);
    }
    if (nic.vlan) {
      const v = nic.vlan;
      o.block('vlan', [['trunk', v.trunk ? 'yes' : undefined]], () => {
        for (const t of v.tags) o.empty('tag', [['id', t.id], ['nativeMode', t.nativeMode]]);
      });
    }
    if (nic.virtualport) {
      const vp = nic.virtualport;
      o.block('virtualport', [['type', vp.type]], () => {
        if (vp.interfaceid || vp.profileid) o.empty('parameters', [['interfaceid', vp.interfaceid], ['profileid', vp.profileid]]);
      });
    }
    if (nic.bandwidth) {
      const bw = nic.bandwidth;
      o.block('bandwidth', [], () => {
        if (bw.inbound) o.empty('inbound', [['average', bw.inbound.average], ['peak', bw.inbound.peak], ['floor', bw.inbound.floor], ['burst', bw.inbound.burst]]);
        if (bw.outbound) o.empty('outbound', [['average', bw.outbound.average], ['peak', bw.outbound.peak], ['burst', bw.outbound.burst]]);
      });
    }
    for (const ip of nic.ips) o.empty('ip', [['address', ip.address], ['family', ip.family], ['prefix', ip.prefix]]);
    if (nic.script !== undefined) o.empty('script', [['path', nic.script]]);
    if (nic.backendDomain !== undefined) o.empty('backenddomain', [['name', nic.backendDomain]]);
    if (nic.target !== undefined && !(opts.inactive && nic.target.startsWith(GENERATED_IFNAME_PREFIX))) {
      o.empty('target', [['dev', nic.target]]);
    }
    if (nic.model !== undefined) o.empty('model', [['type', nic.model]]);
    if (nic.linkState) o.empty('link', [['state', nic.linkState]]);
    formatAddress(o, nic.address);
  });
}

function formatCharSource(o: Out, s: CharDevice['source']): void {
  switch (s.type) {
    case 'pty': case 'dev': case 'file': case 'pipe':
      if (s.path !== undefined) o.empty('source', [['path', s.path], ['append', s.append]]);
      break;
    case 'unix':
      o.empty('source', [['mode', s.mode], ['path', s.path]]);
      break;
    case 'tcp':
      o.empty('source', [['mode', s.mode], ['host', s.host], ['service', s.service]]);
      o.empty('protocol', [['type', s.protocol ?? 'raw']]);
      break;
    case 'udp':
      if (s.bindHost !== undefined || s.bindService !== undefined) {
        o.empty('source', [['mode', 'bind'], ['host', s.bindHost], ['service', s.bindService]]);
      }
      o.empty('source', [['mode', 'connect'], ['host', s.host], ['service', s.service]]);
      break;
  }
}

function formatChar(o: Out, name: string, c: CharDevice): void {
  const attrs: Attr[] = [['type', c.source.type]];
  if (name === 'console' && c.source.tty !== undefined && c.source.type === 'pty') attrs.push(['tty', c.source.tty]);
  o.block(name, attrs, () => {
    formatCharSource(o, c.source);
    o.empty('target', [['type', c.target.type], ['name', c.target.name], ['port', c.target.port]]);
  });
}

function formatGraphics(o: Out, g: GraphicsDevice, opts: FormatOptions): void {
  const attrs: Attr[] = [['type', g.type]];
  const firstAddress = g.listens[0]?.type === 'address' ? g.listens[0].address : undefined;
  const passwd = opts.secure ? g.passwd : undefined;
  switch (g.type) {
    case 'vnc': case 'spice': {
      const auto = g.autoport === 'yes';
      if (g.port !== undefined && g.port > 0 && !(auto && opts.inactive)) attrs.push(['port', g.port]);
      else if (auto) attrs.push(['port', -1]);
      if (g.type === 'spice') {
        if (g.tlsPort !== undefined && g.tlsPort > 0 && !(auto && opts.inactive)) attrs.push(['tlsPort', g.tlsPort]);
        else if (auto && g.tlsPort !== undefined) attrs.push(['tlsPort', -1]);
      }
      attrs.push(['autoport', g.autoport], ['listen', firstAddress ?? g.listenAttr], ['keymap', g.keymap], ['passwd', passwd]);
      break;
    }
    case 'sdl':
      attrs.push(['display', g.display], ['xauth', g.xauth], ['fullscreen', g.fullscreen]);
      break;
    default:
      break;
  }
  o.block('graphics', attrs, () => {
    for (const l of g.listens) o.empty('listen', [['type', l.type], ['address', l.address], ['network', l.network], ['socket', l.socket]]);
    if (g.image) o.empty('image', [['compression', g.image]]);
    if (g.streaming) o.empty('streaming', [['mode', g.streaming]]);
    if (g.mouseMode) o.empty('mouse', [['mode', g.mouseMode]]);
    if (g.clipboardCopypaste) o.empty('clipboard', [['copypaste', g.clipboardCopypaste]]);
  });
}

function formatHostdev(o: Out, h: HostdevDevice): void {
  o.block('hostdev', [['mode', h.mode], ['type', h.type], ['managed', h.managed]], () => {
    if (h.driverName !== undefined) o.empty('driver', [['name', h.driverName]]);
    o.block('source', [['writeFiltering', h.writeFiltering]], () => {
      if (h.pci) {
        const p = h.pci;
        o.empty('address', [['domain', hex(p.domain, 4)], ['bus', hex(p.bus, 2)], ['slot', hex(p.slot, 2)], ['function', hex(p.function, 1)]]);
      }
      if (h.usb) {
        const u = h.usb;
        if (u.vendor) o.empty('vendor', [['id', u.vendor]]);
        if (u.product) o.empty('product', [['id', u.product]]);
        if (u.bus !== undefined) o.empty('address', [['bus', u.bus], ['device', u.device]]);
      }
    });
    formatAddress(o, h.address);
  });
}
