/**
 * Domain XML -> typed model, strictly: unknown top-level and device elements, malformed
 * numbers and out-of-range enumerations are errors that name the element and its line.
 * The result has libvirt 9.0's post-parse defaults applied (see defaults.ts).
 */
import { randomUUID } from 'node:crypto';
import { VirtError, ErrorDomain } from '../errors.js';
import { parseXml, type XmlElement } from './xml.js';
import { postParse, type PostParseOptions } from './defaults.js';
import {
  emptyDevices,
  type CharDevice, type CharSource, type ClockTimer, type ControllerDevice, type DeviceAddress, type DiskDevice,
  type Domain, type DomainClock, type DomainCpu, type DomainFeatures, type DomainOs, type GraphicsDevice,
  type HostdevDevice, type InputDevice, type InterfaceDevice, type LifecycleAction, type NumaCell, type VideoDevice,
} from './types.js';
import { GENERATED_IFNAME_PREFIX, XEN_NAMESPACE } from './types.js';


/** A fixed set of element names, each with its slot in Node.indexChildren()'s index. */
type Vocabulary = ReadonlyMap<string, number>;

const vocabulary = (names: readonly string[]): Vocabulary => new Map(names.map((n, i) => [n, i]));

class Node {
  // Fields are `declare`d and set in the constructor rather than given initialisers: V8 (as
  // in Node 20) does not inline `new` for a class with field initialisers, and a Node is
  // made per element looked up.
  declare readonly el: XmlElement;
  declare readonly file: string;
  /** Once indexChildren() has run: the names it knows, and the first child of each by slot. */
  private declare vocabulary: Vocabulary | undefined;
  private declare firstBySlot: Array<XmlElement | undefined> | undefined;

  constructor(el: XmlElement, file: string) {
    this.el = el;
    this.file = file;
    this.vocabulary = undefined;
    this.firstBySlot = undefined;
  }

  /**
   * Index the children, whose names must all be in `names`, for an element whose children
   * are looked up many times (the root: some 25 lookups, most of them for elements that
   * are absent, over a score of children). One map lookup per child both checks and
   * indexes it. Returns the first child with a name not in `names`, if any.
   */
  indexChildren(names: Vocabulary): XmlElement | undefined {
    const first: Array<XmlElement | undefined> = [];
    for (const c of this.el.children) {
      const slot = names.get(c.name);
      if (slot === undefined) return c;
      first[slot] ??= c;
    }
    this.vocabulary = names;
    this.firstBySlot = first;
    return undefined;
  }

  fail(msg: string): never {
    throw new VirtError('XML_ERROR', `${this.file}:${this.el.line}: <${this.el.name}>: ${msg}`, ErrorDomain.XML);
  }
  attr(name: string): string | undefined { return this.el.attrs.get(name); }
  need(name: string): string {
    const v = this.attr(name);
    if (v === undefined) this.fail(`missing attribute '${name}'`);
    return v;
  }
  oneOf<T extends string>(name: string, allowed: readonly T[]): T | undefined {
    const v = this.attr(name);
    if (v === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(v)) this.fail(`invalid value '${v}' for attribute '${name}' (expected ${allowed.join(', ')})`);
    return v as T;
  }
  int(name: string, limits?: Limits): number | undefined {
    const v = this.attr(name);
    if (v === undefined) return undefined;
    return this.integer(v, limits, name, undefined);
  }
  number(v: string, what: string, limits?: Limits): number {
    return this.integer(v, limits, undefined, what);
  }
  /**
   * An integer (decimal or 0x hex) within the limits. It names the value as `attribute
   * 'NAME'` or as `what`; the name is only put together for an error, as this runs for
   * nearly every attribute of a domain.
   */
  private integer(v: string, limits: Limits | undefined, attrName: string | undefined, what: string | undefined): number {
    const n = parseInteger(v.trim());
    if (n === undefined) this.fail(`${attrName !== undefined ? `attribute '${attrName}'` : what}: '${v}' is not an integer`);
    if (!Number.isSafeInteger(n) || n < (limits?.min ?? -Infinity) || n > (limits?.max ?? Infinity)) {
      this.fail(`${attrName !== undefined ? `attribute '${attrName}'` : what}: ${v} is out of range`);
    }
    return n;
  }
  yesNo(name: string): 'yes' | 'no' | undefined { return this.oneOf(name, ['yes', 'no'] as const); }
  onOff(name: string): 'on' | 'off' | undefined { return this.oneOf(name, ['on', 'off'] as const); }
  get text(): string { return this.el.text; }
  children(name?: string): Node[] {
    const out: Node[] = [];
    for (const c of this.el.children) if (name === undefined || c.name === name) out.push(new Node(c, this.file));
    return out;
  }
  child(name: string): Node | undefined {
    const c = this.firstChild(name);
    return c && new Node(c, this.file);
  }
  childText(name: string): string | undefined { return this.firstChild(name)?.text; }
  private firstChild(name: string): XmlElement | undefined {
    if (this.vocabulary) {
      const slot = this.vocabulary.get(name);
      return slot === undefined ? undefined : this.firstBySlot![slot];
    }
    for (const c of this.el.children) if (c.name === name) return c;
    return undefined;
  }
}

interface Limits { min?: number; max?: number }

/**
 * The value of /^[+-]?\d+$/ (read without a regex: this runs for nearly every attribute of a
 * domain) or /^0x[0-9a-f]+$/i; undefined for anything else. Digits are accumulated exactly
 * while the value is a safe integer; past that it only has to stay unsafe, which it does.
 */
function parseInteger(t: string): number | undefined {
  const sign = t.charCodeAt(0) === 43 || t.charCodeAt(0) === 45 ? 1 : 0;
  if (sign >= t.length) return undefined;
  let n = 0;
  for (let i = sign; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c < 48 || c > 57) return /^0x[0-9a-f]+$/i.test(t) ? parseInt(t, 16) : undefined;
    n = n * 10 + (c - 48);
  }
  return t.charCodeAt(0) === 45 ? -n : n;
}

const UNITS: Record<string, number> = {
  b: 1, bytes: 1,
  k: 1024, kib: 1024, kb: 1000,
  m: 1024 ** 2, mib: 1024 ** 2, mb: 1000 ** 2,
  g: 1024 ** 3, gib: 1024 ** 3, gb: 1000 ** 3,
  t: 1024 ** 4, tib: 1024 ** 4, tb: 1000 ** 4,
  p: 1024 ** 5, pib: 1024 ** 5, pb: 1000 ** 5,
  e: 1024 ** 6, eib: 1024 ** 6, eb: 1000 ** 6,
};

/** A memory amount in KiB, rounded up as libvirt does (virDomainParseScaledValue + VIR_DIV_UP). */
function scaledKiB(n: Node, value: string, unit: string | undefined, what: string): number {
  // KiB, the unit libvirt writes, needs no table lookup.
  const factor = unit === undefined || unit === 'KiB' ? 1024 : UNITS[unit.toLowerCase()];
  if (factor === undefined) n.fail(`unknown unit '${unit}' for ${what}`);
  const v = n.number(value, what, { min: 0 });
  const bytes = v * factor;
  if (!Number.isSafeInteger(bytes)) n.fail(`${what}: ${value} ${unit ?? 'KiB'} is too large`);
  return Math.ceil(bytes / 1024);
}

function memoryOf(n: Node): number {
  return scaledKiB(n, n.text, n.attr('unit'), `<${n.el.name}>`);
}

// UUIDs and MACs nearly always come in the canonical form, which is its own normal form, so
// no string needs building. The checks are regexes: the values are usually slices of the
// input text, which the regex engine reads directly and charCodeAt() only through the slice.
const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CANONICAL_MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
const BARE_UUID = /^[0-9a-f]{32}$/;

/** A UUID as libvirt prints it (lower-case, dashed): the form nearly every input uses. */
export const isCanonicalUuid = (s: string): boolean => CANONICAL_UUID.test(s);
/** A MAC address as libvirt prints it (six lower-case two-digit groups). */
export const isCanonicalMac = (s: string): boolean => CANONICAL_MAC.test(s);

export function parseUuid(s: string): string | undefined {
  const t = s.trim();
  if (isCanonicalUuid(t)) return t;
  // XenD writes them as 32 bare lower-case digits: no cleaning up needed.
  const bare = BARE_UUID.test(t);
  const hex = bare ? t : t.replace(/-/g, '').toLowerCase();
  if (!bare && !BARE_UUID.test(hex)) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const TOP_LEVEL = vocabulary([
  'name', 'uuid', 'title', 'description', 'maxMemory', 'memory', 'currentMemory', 'vcpu', 'cputune',
  'bootloader', 'bootloader_args', 'os', 'features', 'cpu', 'clock', 'on_poweroff', 'on_reboot', 'on_crash',
  'devices', 'xen:commandline', 'metadata', 'resource', 'seclabel', 'pm', 'genid',
]);
const IGNORED_TOP_LEVEL = new Set(['metadata', 'resource', 'seclabel', 'pm', 'genid']);

export interface ParseOptions extends PostParseOptions {
  fileName?: string;
  /** The document describes a running guest: keep runtime-only data (Xen's generated vif names). */
  live?: boolean;
}

export function parseDomainXml(text: string, opts: ParseOptions | string = {}): Domain {
  const o = typeof opts === 'string' ? { fileName: opts } : opts;
  const file = o.fileName ?? '<domain XML>';
  const root = new Node(parseXml(text, file), file);
  const d = domainFromElement(root);
  if (!o.live) {
    for (const nic of d.devices.interfaces) if (nic.target?.startsWith(GENERATED_IFNAME_PREFIX)) delete nic.target;
  }
  return postParse(d, o);
}

function domainFromElement(root: Node): Domain {
  if (root.el.name !== 'domain') root.fail("the root element must be <domain>");
  const unknown = root.indexChildren(TOP_LEVEL);
  if (unknown) new Node(unknown, root.file).fail('unsupported element in <domain>');
  void IGNORED_TOP_LEVEL;
  const type = root.attr('type');
  if (!type) root.fail("missing attribute 'type' (the hypervisor, e.g. type='xen')");
  const nameText = root.childText('name');
  if (nameText === undefined || nameText.trim() === '') root.fail('missing <name>: every domain needs a name');
  const name = nameText.trim();
  if (name.includes('/')) root.fail(`name '${name}' cannot contain '/'`);

  let uuid: string | undefined;
  const uuidText = root.childText('uuid');
  if (uuidText !== undefined) {
    uuid = parseUuid(uuidText);
    if (!uuid) root.child('uuid')!.fail(`'${uuidText}' is not a valid UUID`);
  } else uuid = randomUUID();

  const memNode = root.child('memory');
  const curNode = root.child('currentMemory');
  const maxMemNode = root.child('maxMemory');
  const d: Domain = {
    type,
    name,
    uuid,
    memory: memNode ? memoryOf(memNode) : 0,
    vcpu: { count: 1 },
    os: { type: 'xen', boot: [] },
    clock: { offset: 'utc', timers: [] },
    devices: emptyDevices(),
  };
  const id = root.int('id', { min: -1 });
  if (id !== undefined && id >= 0) d.id = id;
  const title = root.childText('title');
  if (title !== undefined) {
    if (title.includes('\n')) root.child('title')!.fail('title must not contain newlines');
    d.title = title;
  }
  const description = root.childText('description');
  if (description !== undefined) d.description = description;
  if (curNode) d.currentMemory = memoryOf(curNode);
  if (maxMemNode) {
    d.maxMemory = { kib: memoryOf(maxMemNode), slots: maxMemNode.int('slots', { min: 0 }) ?? 0 };
  }
  const vcpu = root.child('vcpu');
  if (vcpu) {
    d.vcpu.count = vcpu.number(vcpu.text, '<vcpu> count', { min: 1, max: 4096 });
    const placement = vcpu.oneOf('placement', ['static', 'auto'] as const);
    if (placement) d.vcpu.placement = placement;
    const cpuset = vcpu.attr('cpuset');
    if (cpuset !== undefined) d.vcpu.cpuset = checkCpuset(vcpu, cpuset);
    const current = vcpu.int('current', { min: 1 });
    if (current !== undefined) {
      if (current > d.vcpu.count) vcpu.fail(`current vcpus ${current} exceed the maximum ${d.vcpu.count}`);
      d.vcpu.current = current;
    }
  }
  const cputune = root.child('cputune');
  if (cputune) {
    d.cputune = { vcpupins: [] };
    const shares = cputune.childText('shares');
    if (shares !== undefined) d.cputune.weight = cputune.number(shares, '<shares>', { min: 0 });
    for (const pin of cputune.children('vcpupin')) {
      d.cputune.vcpupins.push({ vcpu: pin.int('vcpu', { min: 0 }) ?? pin.fail("missing attribute 'vcpu'"), cpuset: checkCpuset(pin, pin.need('cpuset')) });
    }
  }
  const bootloader = root.childText('bootloader');
  if (bootloader !== undefined) d.bootloader = bootloader;
  const bootloaderArgs = root.childText('bootloader_args');
  if (bootloaderArgs !== undefined) d.bootloaderArgs = bootloaderArgs;
  const os = root.child('os');
  if (!os) root.fail('missing <os> element');
  d.os = parseOs(os);
  const features = root.child('features');
  if (features) d.features = parseFeatures(features);
  const cpu = root.child('cpu');
  if (cpu) d.cpu = parseCpu(cpu);
  const clock = root.child('clock');
  if (clock) d.clock = parseClock(clock);
  // Each property is set by name: a store under a computed key takes the engine's slow path.
  const onPoweroff = lifecycleAction(root, 'on_poweroff');
  if (onPoweroff) d.onPoweroff = onPoweroff;
  const onReboot = lifecycleAction(root, 'on_reboot');
  if (onReboot) d.onReboot = onReboot;
  const onCrash = lifecycleAction(root, 'on_crash');
  if (onCrash) d.onCrash = onCrash;
  // libvirt's defaults for absent lifecycle actions, which it then always prints.
  d.onPoweroff ??= 'destroy';
  d.onReboot ??= 'restart';
  d.onCrash ??= 'destroy';
  const devices = root.child('devices');
  if (devices) parseDevices(devices, d);
  const cmd = root.child('xen:commandline');
  if (cmd) {
    if (root.attr('xmlns:xen') !== XEN_NAMESPACE) cmd.fail(`the 'xen' prefix must be bound to ${XEN_NAMESPACE}`);
    d.xenCommandline = cmd.children('xen:arg').map((a) => a.need('value'));
  }
  return d;
}

const LIFECYCLE_ACTIONS: readonly LifecycleAction[] = [
  'destroy', 'restart', 'rename-restart', 'preserve', 'coredump-destroy', 'coredump-restart',
];

/** The action in <on_poweroff>, <on_reboot> or <on_crash>; undefined when the element is absent. */
function lifecycleAction(root: Node, el: 'on_poweroff' | 'on_reboot' | 'on_crash'): LifecycleAction | undefined {
  const n = root.child(el);
  if (!n) return undefined;
  const v = n.text.trim();
  if (!(LIFECYCLE_ACTIONS as readonly string[]).includes(v)) n.fail(`invalid action '${v}'`);
  if (el !== 'on_crash' && v.startsWith('coredump')) n.fail(`action '${v}' is only valid in <on_crash>`);
  return v as LifecycleAction;
}

function checkCpuset(n: Node, s: string): string {
  if (!/^\^?\d+(-\d+)?(,\^?\d+(-\d+)?)*$/.test(s.replace(/\s/g, ''))) n.fail(`invalid cpuset '${s}'`);
  return s;
}

function parseOs(os: Node): DomainOs {
  const typeNode = os.child('type');
  if (!typeNode) os.fail('missing <type> element');
  const t = typeNode.text.trim();
  const types = ['xen', 'linux', 'hvm', 'xenpvh', 'exe'] as const;
  if (!(types as readonly string[]).includes(t)) typeNode.fail(`unknown OS type '${t}'`);
  // 'linux' is the pre-0.9 name of a Xen PV guest; the model knows one name for it.
  const out: DomainOs = { type: t === 'linux' ? 'xen' : t as DomainOs['type'], boot: [] };
  const arch = typeNode.attr('arch');
  if (arch !== undefined) out.arch = arch;
  const machine = typeNode.attr('machine');
  if (machine !== undefined) out.machine = machine;
  const loader = os.child('loader');
  if (loader) {
    out.loader = {};
    const path = loader.text.trim();
    if (path) out.loader.path = path;
    const ro = loader.yesNo('readonly');
    if (ro) out.loader.readonly = ro;
    const lt = loader.oneOf('type', ['rom', 'pflash'] as const);
    if (lt) out.loader.type = lt;
    const secure = loader.yesNo('secure');
    if (secure) out.loader.secure = secure;
  }
  const nvram = os.child('nvram');
  if (nvram) {
    out.nvram = {};
    if (nvram.text.trim()) out.nvram.path = nvram.text.trim();
    const tpl = nvram.attr('template');
    if (tpl) out.nvram.template = tpl;
  }
  // Set by name, as in domainFromElement.
  const kernel = os.childText('kernel');
  if (kernel !== undefined) out.kernel = kernel;
  const initrd = os.childText('initrd');
  if (initrd !== undefined) out.initrd = initrd;
  const cmdline = os.childText('cmdline');
  if (cmdline !== undefined) out.cmdline = cmdline;
  const osRoot = os.childText('root');
  if (osRoot !== undefined) out.root = osRoot;
  for (const b of os.children('boot')) {
    const dev = b.oneOf('dev', ['fd', 'hd', 'cdrom', 'network'] as const) ?? b.fail("missing attribute 'dev'");
    out.boot.push(dev);
  }
  const acpi = os.child('acpi');
  if (acpi) {
    out.acpiTables = acpi.children('table').map((t) => ({
      type: t.oneOf('type', ['slic', 'rsdt', 'msdm'] as const) ?? t.fail("missing attribute 'type'"),
      path: t.text.trim(),
    }));
  }
  const bootmenu = os.child('bootmenu');
  if (bootmenu) {
    out.bootmenu = { enable: bootmenu.yesNo('enable') ?? bootmenu.fail("missing attribute 'enable'") };
    const timeout = bootmenu.int('timeout', { min: 0, max: 65535 });
    if (timeout !== undefined) out.bootmenu.timeout = timeout;
  }
  return out;
}

function parseFeatures(n: Node): DomainFeatures {
  const f: DomainFeatures = {};
  for (const c of n.children()) {
    switch (c.el.name) {
      // Each property is set by name: a store under a computed key read from the document
      // takes the engine's slow path.
      case 'pae': f.pae = true; break;
      case 'acpi': f.acpi = true; break;
      case 'apic': f.apic = true; break;
      case 'viridian': f.viridian = true; break;
      case 'hap': f.hap = c.onOff('state') ?? 'on'; break;
      case 'pvspinlock': f.pvspinlock = c.onOff('state') ?? 'on'; break;
      case 'vmcoreinfo': f.vmcoreinfo = c.onOff('state') ?? 'on'; break;
      case 'hyperv': {
        const mode = c.oneOf('mode', ['custom', 'passthrough'] as const);
        f.hyperv = { features: [] };
        if (mode) f.hyperv.mode = mode;
        for (const h of c.children()) {
          const feat: { name: string; state: 'on' | 'off'; value?: string } = { name: h.el.name, state: h.onOff('state') ?? h.fail("missing attribute 'state'") };
          const value = h.attr('value');
          if (value !== undefined) feat.value = value;
          f.hyperv.features.push(feat);
        }
        break;
      }
      case 'xen': {
        f.xen = {};
        const e820 = c.child('e820_host');
        if (e820) f.xen.e820_host = e820.onOff('state') ?? e820.fail("missing attribute 'state'");
        const pt = c.child('passthrough');
        if (pt) {
          f.xen.passthrough = { state: pt.onOff('state') ?? pt.fail("missing attribute 'state'") };
          const mode = pt.oneOf('mode', ['sync_pt', 'share_pt'] as const);
          if (mode) f.xen.passthrough.mode = mode;
        }
        break;
      }
      default:
        c.fail('unsupported feature for a Xen guest');
    }
  }
  return f;
}

function parseCpu(n: Node): DomainCpu {
  const cpu: DomainCpu = { features: [] };
  const mode = n.oneOf('mode', ['custom', 'host-model', 'host-passthrough', 'maximum'] as const);
  if (mode) cpu.mode = mode;
  const match = n.oneOf('match', ['minimum', 'exact', 'strict'] as const);
  if (match) cpu.match = match;
  const check = n.oneOf('check', ['none', 'partial', 'full'] as const);
  if (check) cpu.check = check;
  const model = n.child('model');
  if (model) {
    cpu.model = { name: model.text.trim() };
    const fb = model.oneOf('fallback', ['allow', 'forbid'] as const);
    if (fb) cpu.model.fallback = fb;
  }
  const vendor = n.childText('vendor');
  if (vendor !== undefined) cpu.vendor = vendor.trim();
  const topo = n.child('topology');
  if (topo) {
    cpu.topology = {
      sockets: topo.int('sockets', { min: 1 }) ?? topo.fail("missing attribute 'sockets'"),
      cores: topo.int('cores', { min: 1 }) ?? topo.fail("missing attribute 'cores'"),
      threads: topo.int('threads', { min: 1 }) ?? topo.fail("missing attribute 'threads'"),
    };
    const dies = topo.int('dies', { min: 1 });
    if (dies !== undefined) cpu.topology.dies = dies;
  }
  for (const f of n.children('feature')) {
    cpu.features.push({
      policy: f.oneOf('policy', ['force', 'require', 'optional', 'disable', 'forbid'] as const) ?? 'require',
      name: f.need('name'),
    });
  }
  const numa = n.child('numa');
  if (numa) cpu.numa = parseNuma(numa);
  return cpu;
}

function parseNuma(n: Node): NumaCell[] {
  const cells = n.children('cell').map((c, i): NumaCell => {
    const id = c.int('id', { min: 0 }) ?? i;
    if (id !== i) c.fail(`cell id ${id} must be ${i} (cells are numbered in order from 0)`);
    const cell: NumaCell = {
      id,
      cpus: checkCpuset(c, c.need('cpus')),
      memory: scaledKiB(c, c.need('memory'), c.attr('unit'), "attribute 'memory'"),
    };
    const ma = c.oneOf('memAccess', ['shared', 'private'] as const);
    if (ma) cell.memAccess = ma;
    const dist = c.child('distances');
    if (dist) {
      cell.distances = dist.children('sibling').map((s) => ({
        id: s.int('id', { min: 0 }) ?? s.fail("missing attribute 'id'"),
        value: s.int('value', { min: 10, max: 255 }) ?? s.fail("missing attribute 'value'"),
      }));
    }
    return cell;
  });
  completeDistances(cells);
  return cells;
}

/**
 * libvirt completes a partial distance table as it reads it: a sibling distance (i,j) also
 * fills an unset (j,i), and a cell that lists distances is 10 from itself. Unset entries stay
 * unset (the xl writer later fills them with Xen's remote default).
 */
function completeDistances(cells: NumaCell[]): void {
  if (!cells.some((c) => c.distances)) return;
  const n = cells.length;
  const m = new Uint8Array(n * n); // distances are 10..255; 0 = unset
  for (let i = 0; i < n; i++) {
    const given = cells[i]!.distances;
    if (!given) continue;
    if (!m[i * n + i]) m[i * n + i] = 10;
    for (const s of given) {
      if (s.id >= n) continue;
      m[i * n + s.id] = s.value;
      if (!m[s.id * n + i]) m[s.id * n + i] = s.value;
    }
  }
  for (let i = 0; i < n; i++) {
    const list: NonNullable<NumaCell['distances']> = [];
    for (let j = 0; j < n; j++) if (m[i * n + j]) list.push({ id: j, value: m[i * n + j]! });
    if (list.length) cells[i]!.distances = list;
  }
}

function parseClock(n: Node): DomainClock {
  // <clock sync='localtime'/> is the pre-0.6 spelling of offset='localtime'.
  const sync = n.oneOf('sync', ['utc', 'localtime'] as const);
  const offset = n.oneOf('offset', ['utc', 'localtime', 'timezone', 'variable', 'absolute'] as const) ?? sync ?? 'utc';
  const c: DomainClock = { offset, timers: [] };
  const adj = n.attr('adjustment');
  if (adj !== undefined) c.adjustment = adj === 'reset' ? 'reset' : n.number(adj, "attribute 'adjustment'");
  if (offset === 'variable') {
    c.basis = n.oneOf('basis', ['utc', 'localtime'] as const) ?? 'utc';
    if (c.adjustment === 'reset') n.fail("adjustment='reset' is not valid with offset='variable'");
    c.adjustment ??= 0;
  }
  if (offset === 'timezone') c.timezone = n.need('timezone');
  if (offset === 'absolute') c.start = n.int('start', { min: 0 }) ?? n.fail("missing attribute 'start'");
  for (const t of n.children('timer')) {
    const timer: ClockTimer = {
      name: t.oneOf('name', ['platform', 'pit', 'rtc', 'hpet', 'tsc', 'kvmclock', 'hypervclock', 'armvtimer'] as const) ?? t.fail("missing attribute 'name'"),
    };
    const present = t.yesNo('present');
    if (present) timer.present = present;
    const tp = t.oneOf('tickpolicy', ['delay', 'catchup', 'merge', 'discard'] as const);
    if (tp) timer.tickpolicy = tp;
    const track = t.oneOf('track', ['boot', 'guest', 'wall', 'realtime'] as const);
    if (track) timer.track = track;
    const mode = t.oneOf('mode', ['auto', 'native', 'emulate', 'paravirt', 'smpsafe'] as const);
    if (mode) timer.mode = mode;
    const freq = t.int('frequency', { min: 0 });
    if (freq !== undefined) timer.frequency = freq;
    c.timers.push(timer);
  }
  return c;
}

function parseAddress(n: Node | undefined): DeviceAddress | undefined {
  if (!n) return undefined;
  const type = n.need('type');
  const num = (a: string) => n.int(a, { min: 0 }) ?? 0;
  switch (type) {
    case 'drive': return { type: 'drive', controller: num('controller'), bus: num('bus'), target: num('target'), unit: num('unit') };
    case 'pci': {
      const a: DeviceAddress = { type: 'pci', domain: num('domain'), bus: num('bus'), slot: num('slot'), function: num('function') };
      const mf = n.onOff('multifunction');
      if (mf) a.multifunction = mf;
      return a;
    }
    case 'usb': return { type: 'usb', bus: num('bus'), port: n.need('port') };
    default: return n.fail(`unsupported address type '${type}'`);
  }
}

function parseDevices(n: Node, d: Domain): void {
  const dev = d.devices;
  for (const c of n.children()) {
    switch (c.el.name) {
      case 'emulator': dev.emulator = c.text.trim(); break;
      case 'disk': dev.disks.push(parseDisk(c)); break;
      case 'controller': dev.controllers.push(parseController(c)); break;
      case 'interface': dev.interfaces.push(parseInterface(c)); break;
      case 'serial': dev.serials.push(parseChar(c)); break;
      case 'parallel': dev.parallels.push(parseChar(c)); break;
      case 'console': dev.consoles.push(parseChar(c)); break;
      case 'channel': dev.channels.push(parseChar(c)); break;
      case 'input': dev.inputs.push(parseInput(c)); break;
      case 'graphics': dev.graphics.push(parseGraphics(c)); break;
      case 'sound': dev.sounds.push({ model: c.need('model') }); break;
      case 'video': dev.videos.push(parseVideo(c)); break;
      case 'hostdev': dev.hostdevs.push(parseHostdev(c)); break;
      case 'redirdev': {
        const type = c.oneOf('type', ['spicevmc', 'tcp'] as const) ?? c.fail("missing attribute 'type'");
        dev.redirdevs.push({ bus: 'usb', type, ...(type === 'tcp' ? { source: parseCharSource(c, 'tcp') } : {}) });
        break;
      }
      case 'hub': dev.hubs.push({ type: c.oneOf('type', ['usb'] as const) ?? c.fail("missing attribute 'type'") }); break;
      case 'memballoon': {
        dev.memballoon = { model: c.oneOf('model', ['xen', 'virtio', 'none'] as const) ?? c.fail("missing attribute 'model'") };
        const ad = c.onOff('autodeflate');
        if (ad) dev.memballoon.autodeflate = ad;
        break;
      }
      default:
        c.fail('unsupported device for a Xen guest');
    }
  }
}

function parseDisk(n: Node): DiskDevice {
  const type = n.oneOf('type', ['file', 'block', 'network', 'dir', 'volume'] as const) ?? 'file';
  const device = n.oneOf('device', ['disk', 'cdrom', 'floppy', 'lun'] as const) ?? 'disk';
  const targetNode = n.child('target') ?? n.fail('missing <target> (every disk needs a target dev)');
  const disk: DiskDevice = {
    type,
    device,
    target: { dev: targetNode.need('dev') },
  };
  const bus = targetNode.oneOf('bus', ['ide', 'scsi', 'virtio', 'xen', 'usb', 'sata', 'fdc', 'sd'] as const);
  if (bus) disk.target.bus = bus;
  const tray = targetNode.oneOf('tray', ['open', 'closed'] as const);
  if (tray) disk.target.tray = tray;
  const drv = n.child('driver');
  if (drv) {
    // Set by name, as in domainFromElement.
    const driver: NonNullable<DiskDevice['driver']> = {};
    const name = drv.attr('name');
    if (name !== undefined) driver.name = name;
    const type = drv.attr('type');
    if (type !== undefined) driver.type = type;
    const cache = drv.attr('cache');
    if (cache !== undefined) driver.cache = cache;
    const io = drv.attr('io');
    if (io !== undefined) driver.io = io;
    const discard = drv.attr('discard');
    if (discard !== undefined) driver.discard = discard;
    disk.driver = driver;
  }
  const src = n.child('source');
  if (src) {
    const s: NonNullable<DiskDevice['source']> = {};
    if (type === 'file') { const f = src.attr('file'); if (f !== undefined && f !== '') s.path = f; }
    else if (type === 'block') { const f = src.attr('dev'); if (f !== undefined && f !== '') s.path = f; }
    else if (type === 'dir') { const f = src.attr('dir'); if (f !== undefined) s.path = f; }
    else if (type === 'network') {
      s.protocol = src.need('protocol');
      const nm = src.attr('name');
      if (nm !== undefined) s.name = nm;
      s.hosts = src.children('host').map((h) => {
        const host: { name: string; port?: number } = { name: h.need('name') };
        const port = h.int('port', { min: 0, max: 65535 });
        if (port !== undefined) host.port = port;
        return host;
      });
      const auth = src.child('auth') ?? n.child('auth');
      if (auth) {
        const secret = auth.child('secret') ?? auth.fail('missing <secret>');
        s.auth = { username: auth.need('username'), secretType: secret.need('type') };
        const usage = secret.attr('usage');
        if (usage !== undefined) s.auth.usage = usage;
        const uuid = secret.attr('uuid');
        if (uuid !== undefined) s.auth.uuid = uuid;
      }
    }
    if (Object.keys(s).length) disk.source = s;
  }
  if (n.child('backingStore')) disk.backingStore = true;
  if (n.child('readonly')) disk.readonly = true;
  if (n.child('shareable')) disk.shareable = true;
  if (n.child('transient')) disk.transient = true;
  const serial = n.childText('serial');
  if (serial !== undefined) disk.serial = serial;
  const addr = parseAddress(n.child('address'));
  if (addr) disk.address = addr;
  return disk;
}

function parseController(n: Node): ControllerDevice {
  const type = n.oneOf('type', ['xenbus', 'ide', 'usb', 'scsi', 'fdc', 'pci', 'virtio-serial', 'sata', 'ccid'] as const) ?? n.fail("missing attribute 'type'");
  const c: ControllerDevice = { type, index: n.int('index', { min: 0 }) ?? 0 };
  const model = n.attr('model');
  if (model !== undefined) c.model = model;
  const ports = n.int('ports', { min: 0 });
  if (ports !== undefined) c.ports = ports;
  const mgf = n.int('maxGrantFrames', { min: 0 });
  if (mgf !== undefined) c.maxGrantFrames = mgf;
  const mec = n.int('maxEventChannels', { min: 0 });
  if (mec !== undefined) c.maxEventChannels = mec;
  const addr = parseAddress(n.child('address'));
  if (addr) c.address = addr;
  return c;
}

function parseMac(n: Node, s: string): string {
  const t = s.trim();
  if (isCanonicalMac(t)) return t;
  const m = t.toLowerCase();
  if (!/^[0-9a-f]{1,2}(:[0-9a-f]{1,2}){5}$/.test(m)) n.fail(`invalid MAC address '${s}'`);
  return m.split(':').map((p) => p.padStart(2, '0')).join(':');
}

function parseInterface(n: Node): InterfaceDevice {
  const type = n.oneOf('type', ['bridge', 'ethernet', 'network', 'direct', 'user', 'vhostuser', 'hostdev'] as const) ?? n.fail("missing attribute 'type'");
  const nic: InterfaceDevice = { type, ips: [] };
  const mac = n.child('mac');
  if (mac) nic.mac = parseMac(mac, mac.need('address'));
  const src = n.child('source');
  if (src) {
    // Set by name, as in domainFromElement.
    const source: NonNullable<InterfaceDevice['source']> = {};
    const bridge = src.attr('bridge');
    if (bridge !== undefined) source.bridge = bridge;
    const network = src.attr('network');
    if (network !== undefined) source.network = network;
    const dev = src.attr('dev');
    if (dev !== undefined) source.dev = dev;
    const mode = src.attr('mode');
    if (mode !== undefined) source.mode = mode;
    const portgroup = src.attr('portgroup');
    if (portgroup !== undefined) source.portgroup = portgroup;
    nic.source = source;
  }
  const bw = n.child('bandwidth');
  if (bw) {
    nic.bandwidth = {};
    for (const dir of ['inbound', 'outbound'] as const) {
      const e = bw.child(dir);
      if (!e) continue;
      const rate: { average: number; peak?: number; burst?: number; floor?: number } = { average: e.int('average', { min: 0 }) ?? e.fail("missing attribute 'average'") };
      for (const k of ['peak', 'burst', 'floor'] as const) {
        const v = e.int(k, { min: 0 });
        if (v !== undefined) rate[k] = v;
      }
      nic.bandwidth[dir] = rate;
    }
  }
  const vlan = n.child('vlan');
  if (vlan) {
    nic.vlan = { tags: vlan.children('tag').map((t) => {
      const tag: { id: number; nativeMode?: 'tagged' | 'untagged' } = { id: t.int('id', { min: 0, max: 4095 }) ?? t.fail("missing attribute 'id'") };
      const nm = t.oneOf('nativeMode', ['tagged', 'untagged'] as const);
      if (nm) tag.nativeMode = nm;
      return tag;
    }) };
    if (vlan.yesNo('trunk') === 'yes') nic.vlan.trunk = true;
    if (nic.vlan.tags.length === 0) vlan.fail('missing <tag>');
  }
  const vp = n.child('virtualport');
  if (vp) {
    nic.virtualport = { type: vp.oneOf('type', ['openvswitch', '802.1Qbg', '802.1Qbh', 'midonet'] as const) ?? vp.fail("missing attribute 'type'") };
    const params = vp.child('parameters');
    const iid = params?.attr('interfaceid');
    if (iid) nic.virtualport.interfaceid = iid;
    const pid = params?.attr('profileid');
    if (pid) nic.virtualport.profileid = pid;
  }
  for (const ip of n.children('ip')) {
    const entry: InterfaceDevice['ips'][number] = { address: ip.need('address') };
    const fam = ip.oneOf('family', ['ipv4', 'ipv6'] as const);
    if (fam) entry.family = fam;
    const prefix = ip.int('prefix', { min: 0, max: 128 });
    if (prefix !== undefined) entry.prefix = prefix;
    nic.ips.push(entry);
  }
  const script = n.child('script');
  if (script) nic.script = script.need('path');
  const bd = n.child('backenddomain');
  if (bd) nic.backendDomain = bd.need('name');
  const target = n.child('target');
  if (target) nic.target = target.need('dev');
  const model = n.child('model');
  if (model) nic.model = model.need('type');
  const link = n.child('link');
  if (link) nic.linkState = link.oneOf('state', ['up', 'down'] as const) ?? link.fail("missing attribute 'state'");
  const addr = parseAddress(n.child('address'));
  if (addr) nic.address = addr;
  return nic;
}

const CHAR_TYPES = ['null', 'vc', 'pty', 'dev', 'file', 'pipe', 'stdio', 'udp', 'tcp', 'unix', 'spicevmc'] as const;

function parseCharSource(n: Node, type: CharSource['type']): CharSource {
  const s: CharSource = { type };
  const sources = n.children('source');
  const tty = n.attr('tty');
  if (tty !== undefined) s.tty = tty;
  switch (type) {
    case 'pty': case 'dev': case 'file': case 'pipe': case 'unix': {
      const src = sources[0];
      const path = src?.attr('path');
      if (path !== undefined) s.path = path;
      if (type === 'unix') s.mode = src?.oneOf('mode', ['bind', 'connect'] as const) ?? 'connect';
      if (type === 'file') { const a = src?.onOff('append'); if (a) s.append = a; }
      if ((type === 'dev' || type === 'file' || type === 'pipe') && s.path === undefined) n.fail(`missing source path for a ${type} character device`);
      break;
    }
    case 'tcp': {
      const src = sources[0] ?? n.fail('missing <source> for a tcp character device');
      s.mode = src.oneOf('mode', ['bind', 'connect'] as const) ?? 'connect';
      const host = src.attr('host');
      if (host !== undefined) s.host = host;
      s.service = src.need('service');
      const proto = n.child('protocol')?.oneOf('type', ['raw', 'telnet', 'telnets', 'tls'] as const);
      if (proto) s.protocol = proto;
      break;
    }
    case 'udp': {
      for (const src of sources) {
        const mode = src.oneOf('mode', ['bind', 'connect'] as const) ?? 'connect';
        const host = src.attr('host');
        const service = src.attr('service');
        if (mode === 'bind') {
          if (host !== undefined) s.bindHost = host;
          if (service !== undefined) s.bindService = service;
        } else {
          if (host !== undefined) s.host = host;
          if (service !== undefined) s.service = service;
        }
      }
      if (s.service === undefined) n.fail('missing connect service for a udp character device');
      break;
    }
  }
  return s;
}

function parseChar(n: Node): CharDevice {
  const type = n.oneOf('type', CHAR_TYPES) ?? 'pty';
  const dev: CharDevice = { source: parseCharSource(n, type), target: {} };
  const t = n.child('target');
  if (t) {
    const tt = t.attr('type');
    if (tt !== undefined) dev.target.type = tt;
    const port = t.int('port', { min: 0 });
    if (port !== undefined) dev.target.port = port;
    const name = t.attr('name');
    if (name !== undefined) dev.target.name = name;
  }
  return dev;
}

function parseInput(n: Node): InputDevice {
  const type = n.oneOf('type', ['mouse', 'tablet', 'keyboard', 'passthrough', 'evdev'] as const) ?? n.fail("missing attribute 'type'");
  const input: InputDevice = { type, bus: n.oneOf('bus', ['ps2', 'usb', 'xen', 'virtio', 'none'] as const) ?? 'ps2' };
  const addr = parseAddress(n.child('address'));
  if (addr) input.address = addr;
  return input;
}

function parseGraphics(n: Node): GraphicsDevice {
  const type = n.oneOf('type', ['vnc', 'sdl', 'spice', 'rdp', 'desktop', 'egl-headless'] as const) ?? n.fail("missing attribute 'type'");
  const g: GraphicsDevice = { type, listens: [] };
  const port = n.int('port', { min: -1, max: 65535 });
  if (port !== undefined) g.port = port;
  const tlsPort = n.int('tlsPort', { min: -1, max: 65535 });
  if (tlsPort !== undefined) g.tlsPort = tlsPort;
  const autoport = n.yesNo('autoport');
  if (autoport) g.autoport = autoport;
  const listen = n.attr('listen');
  if (listen !== undefined) g.listenAttr = listen;
  // Set by name, as in domainFromElement.
  const passwd = n.attr('passwd');
  if (passwd !== undefined) g.passwd = passwd;
  const keymap = n.attr('keymap');
  if (keymap !== undefined) g.keymap = keymap;
  const display = n.attr('display');
  if (display !== undefined) g.display = display;
  const xauth = n.attr('xauth');
  if (xauth !== undefined) g.xauth = xauth;
  const fs = n.yesNo('fullscreen');
  if (fs) g.fullscreen = fs;
  for (const l of n.children('listen')) {
    const lt = l.oneOf('type', ['address', 'network', 'socket', 'none'] as const) ?? l.fail("missing attribute 'type'");
    const entry: GraphicsDevice['listens'][number] = { type: lt };
    const address = l.attr('address');
    if (address !== undefined) entry.address = address;
    const network = l.attr('network');
    if (network !== undefined) entry.network = network;
    const socket = l.attr('socket');
    if (socket !== undefined) entry.socket = socket;
    g.listens.push(entry);
  }
  const mouse = n.child('mouse');
  if (mouse) g.mouseMode = mouse.oneOf('mode', ['server', 'client'] as const) ?? mouse.fail("missing attribute 'mode'");
  const clip = n.child('clipboard');
  if (clip) g.clipboardCopypaste = clip.yesNo('copypaste') ?? clip.fail("missing attribute 'copypaste'");
  return g;
}

function parseVideo(n: Node): VideoDevice {
  const m = n.child('model');
  if (!m) return { model: { type: 'cirrus' } };
  const type = m.oneOf('type', ['cirrus', 'vga', 'xen', 'qxl', 'virtio', 'none', 'bochs', 'ramfb'] as const) ?? m.fail("missing attribute 'type'");
  const model: VideoDevice['model'] = { type };
  const vram = m.int('vram', { min: 0 });
  if (vram !== undefined) model.vram = vram;
  const heads = m.int('heads', { min: 1 });
  if (heads !== undefined) model.heads = heads;
  if (m.yesNo('primary') === 'yes') model.primary = true;
  return { model };
}

function parseHostdev(n: Node): HostdevDevice {
  if ((n.attr('mode') ?? 'subsystem') !== 'subsystem') n.fail("only mode='subsystem' host devices are supported");
  const type = n.oneOf('type', ['pci', 'usb'] as const) ?? n.fail("missing attribute 'type'");
  const h: HostdevDevice = { mode: 'subsystem', type, managed: n.yesNo('managed') ?? 'no' };
  const drv = n.child('driver');
  if (drv) { const name = drv.attr('name'); if (name !== undefined) h.driverName = name; }
  const src = n.child('source') ?? n.fail('missing <source>');
  const wf = src.yesNo('writeFiltering');
  if (wf) h.writeFiltering = wf;
  if (type === 'pci') {
    const a = src.child('address') ?? src.fail('missing <address>');
    const num = (k: string, max: number) => a.int(k, { min: 0, max }) ?? a.fail(`missing attribute '${k}'`);
    h.pci = { domain: a.int('domain', { min: 0, max: 0xffff }) ?? 0, bus: num('bus', 0xff), slot: num('slot', 0x1f), function: num('function', 7) };
  } else {
    h.usb = {};
    const vendor = src.child('vendor')?.attr('id');
    if (vendor) h.usb.vendor = vendor;
    const product = src.child('product')?.attr('id');
    if (product) h.usb.product = product;
    const a = src.child('address');
    if (a) { h.usb.bus = a.int('bus', { min: 0 }) ?? 0; h.usb.device = a.int('device', { min: 0 }) ?? 0; }
  }
  const addr = parseAddress(n.child('address'));
  if (addr) h.address = addr;
  return h;
}
