/**
 * Configuration handling shared by the xen-xm and xen-xl formats: the keys libvirt's
 * xen_common.c treats alike for both (general metadata, memory, vcpus, lifecycle events,
 * clock, HVM features and timers, PCI passthrough, vifs, emulator, graphics, sound and
 * the HVM serial/parallel ports).
 *
 * The per-format converters (xm.ts, xl.ts) call parseConfigCommon() first and then read
 * their own keys (OS/boot, disks, ...); in the other direction they call
 * formatConfigCommon() first and append their own keys after it.
 *
 * What this module produces is what libvirt's native parser puts in its domain definition;
 * the driver's post-parse defaults (machine, loader type, consoles for HVM serials, implicit
 * inputs, video, controllers, disk format raw, ...) are added later by postParse().
 */
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import {
  type ConfFile,
  type ConfValue,
  confGet,
  confGetBool,
  confGetString,
  confGetStringList,
  confList,
  confNumber,
  confSet,
  confString,
} from './conf.js';
import { VirtError, ErrorDomain, internal, unsupported } from '../errors.js';
import {
  type CharDevice,
  type CharSource,
  type CharSourceType,
  type ClockTimer,
  type DiskDevice,
  type Domain,
  type GraphicsDevice,
  type HostdevDevice,
  type InterfaceDevice,
  type LifecycleAction,
  type SoundDevice,
  emptyDevices,
} from '../domain/types.js';
import { isCanonicalMac, isCanonicalUuid } from '../domain/parse.js';

export type XenFormat = 'xen-xm' | 'xen-xl';

/** Options for formatConfigCommon(). */
export interface XenFormatOptions {
  /**
   * Resolves <interface type='network'> to the bridge of that (active) network, as libvirt
   * asks its network driver. Without it, such interfaces are refused.
   */
  networkBridge?: (network: string) => string | undefined;
}

// ---------------------------------------------------------------------------------------
// Reading typed values (libvirt's xenConfigGet* helpers)
// ---------------------------------------------------------------------------------------

const malformed = (key: string) => internal(`config value ${key} was malformed`);

/**
 * An unsigned integer key (xenConfigGetULong): a non-negative number, or a string of
 * decimal digits. `allowNegative` is for keys xl.cfg(5) documents as signed.
 */
export function getULong(conf: ConfFile, key: string, def: number, allowNegative = false): number {
  const v = confGet(conf, key);
  if (v === undefined) return def;
  if (v.type === 'number') {
    if (v.value < 0 && !allowNegative) throw malformed(key);
    return v.value;
  }
  if (v.type === 'string') {
    if (!allowNegative) {
      const n = parseUnsigned(v.value);
      if (n === undefined) throw malformed(key);
      return n;
    }
    const m = /^\s*([+-]?\d+)$/.exec(v.value);
    if (!m) throw malformed(key);
    const n = Number(m[1]);
    if (!Number.isSafeInteger(n)) throw malformed(key);
    return n;
  }
  throw malformed(key);
}

/** A boolean key (xenConfigGetBool): numbers are true when non-zero, strings only when "1". */
export function getBool(conf: ConfFile, key: string, def: boolean): boolean {
  return confGetBool(conf, key) ?? def;
}

/** An optional string key; a non-string value is an error naming the key. */
export function getString(conf: ConfFile, key: string): string | undefined {
  return confGetString(conf, key);
}

/**
 * A string list, where any non-list value counts as absent: libvirt ignores `pci = "..."`,
 * `vfb = "..."` or `serial = "..."`-as-list this way. List items must still be strings.
 */
export function getOptionalStringList(conf: ConfFile, key: string): string[] | undefined {
  const v = confGet(conf, key);
  if (v === undefined || v.type !== 'list') return undefined;
  return confGetStringList(conf, key);
}

// ---------------------------------------------------------------------------------------
// CPU sets (libvirt's virBitmapParse / virBitmapFormat)
// ---------------------------------------------------------------------------------------

const MAX_CPUSET_BITS = 4096;

/** White space as String.prototype.trim and the regular expression \s see it. */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || (c > 127 && /\s/.test(String.fromCharCode(c)));
}

const isDigitCode = (c: number) => c >= 0x30 && c <= 0x39;

/** A whole-string unsigned decimal (virStrToLong_ui/ull): leading blanks and '+', no '-', no hex. */
export function parseUnsigned(s: string): number | undefined {
  let i = 0;
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  if (s.charCodeAt(i) === 0x2b) i++; // '+'
  const from = i;
  while (isDigitCode(s.charCodeAt(i))) i++;
  if (i === from || i !== s.length) return undefined;
  const n = Number(s.slice(from));
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Parses a cpuset such as "0-3,^2,8" into the sorted set of CPUs. Throws INVALID_ARG
 * naming the string when it is malformed or out of range. Items apply in order (a later
 * "^N" removes N, a later "N" puts it back); white space may surround an item and its '-'.
 * Written as a scanner: guests list cpusets in vcpu pinning and every vNUMA node, and the
 * common ascending list needs no set at all.
 */
export function parseCpuset(s: string, what = 'cpuset'): number[] {
  const bad = () => new VirtError('INVALID_ARG', `Failed to parse ${what} '${s}'`);
  const n = s.length;
  let i = 0;
  /** The next decimal at i, or -1 when there is none; values past the limit stay past it. */
  const number = (): number => {
    const from = i;
    let v = 0;
    for (let c = s.charCodeAt(i); isDigitCode(c); c = s.charCodeAt(++i)) {
      if (v < MAX_CPUSET_BITS) v = v * 10 + (c - 0x30);
    }
    return i === from ? -1 : v;
  };
  const skipSpace = () => { while (i < n && isSpace(s.charCodeAt(i))) i++; };
  const items: number[] = []; // first, last, negated (0/1) for each item
  let ordered = true; // only additions, each past the previous one
  for (;;) {
    skipSpace();
    const negated = s.charCodeAt(i) === 94; // '^'
    if (negated) i++;
    const first = number();
    if (first < 0) throw bad();
    let last = first;
    skipSpace();
    if (s.charCodeAt(i) === 45) { // '-'
      if (negated) throw bad();
      i++;
      skipSpace();
      last = number();
      if (last < 0) throw bad();
      skipSpace();
    }
    if (first >= MAX_CPUSET_BITS || last >= MAX_CPUSET_BITS || last < first) throw bad();
    if (negated || (items.length > 0 && first <= items[items.length - 2]!)) ordered = false;
    items.push(first, last, negated ? 1 : 0);
    if (i === n) break;
    if (s.charCodeAt(i) !== 44) throw bad(); // ','
    i++;
  }
  const cpus: number[] = [];
  if (ordered) {
    for (let k = 0; k < items.length; k += 3) for (let c = items[k]!; c <= items[k + 1]!; c++) cpus.push(c);
    return cpus;
  }
  const bits = new Uint8Array(MAX_CPUSET_BITS);
  for (let k = 0; k < items.length; k += 3) bits.fill(items[k + 2] ? 0 : 1, items[k]!, items[k + 1]! + 1);
  for (let c = 0; c < MAX_CPUSET_BITS; c++) if (bits[c]) cpus.push(c);
  return cpus;
}

/** Formats CPUs as libvirt does: ascending, consecutive runs as "a-b", joined by ",". */
export function formatCpuset(cpus: readonly number[]): string {
  let sorted = cpus;
  for (let k = 1; k < cpus.length; k++) {
    if (cpus[k]! <= cpus[k - 1]!) {
      sorted = [...new Set(cpus)].sort((a, b) => a - b);
      break;
    }
  }
  let out = '';
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    if (out) out += ',';
    out += i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`;
    i = j + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/**
 * The starting point of a native parse: name, uuid and the guest type (xenParseGeneralMeta).
 * xl's `type` key wins over the older `builder` key. arch/machine are left to postParse.
 */
export function newXenDomain(conf: ConfFile): Domain {
  const name = getString(conf, 'name');
  if (name === undefined) throw internal('config value name was missing');
  const dom: Domain = {
    type: 'xen',
    name,
    memory: 0,
    vcpu: { count: 1 },
    os: { type: parseGuestType(conf), boot: [] },
    clock: { offset: 'utc', timers: [] },
    devices: emptyDevices(),
  };
  dom.uuid = parseUuidKey(conf);
  return dom;
}

function parseGuestType(conf: ConfFile): Domain['os']['type'] {
  const type = confGet(conf, 'type');
  // libvirt only looks at `type` when it is a string; anything else falls back to `builder`.
  if (type?.type === 'string') {
    switch (type.value) {
      case 'pv': return 'xen';
      case 'pvh': return 'xenpvh';
      case 'hvm': return 'hvm';
      default: throw unsupported(`type ${type.value} is not supported`);
    }
  }
  return getString(conf, 'builder') === 'hvm' ? 'hvm' : 'xen';
}

/** Canonical lower-case form of a UUID written with or without dashes (virUUIDParse). */
function parseUuidKey(conf: ConfFile): string {
  const s = getString(conf, 'uuid');
  if (s === undefined) return randomUUID();
  if (isCanonicalUuid(s)) return s;
  // Dashes and blanks may separate any two hex digit pairs.
  const t = s.trim();
  const hex = t.replace(/[- ]/g, '');
  if (!/^(?:[- ]*[0-9a-fA-F]{2}){16}$/.test(t)) {
    throw new VirtError('CONF_SYNTAX', `${s} not parseable`, ErrorDomain.XEN);
  }
  const h = hex.toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** `memory` when absent: twice the 64 MiB minimum guest size libvirt assumes for Xen. */
const DEFAULT_MEMORY_MIB = 128;

function checkMiB(key: string, mib: number): void {
  if (!Number.isSafeInteger(mib * 1024)) throw internal(`config value ${key} is too large: ${mib} MiB`);
}

function parseMemory(conf: ConfFile, dom: Domain): void {
  const memory = getULong(conf, 'memory', DEFAULT_MEMORY_MIB);
  const maxmem = getULong(conf, 'maxmem', memory);
  // Sizes are MiB; KiB must stay exact.
  checkMiB('memory', memory);
  checkMiB('maxmem', maxmem);
  dom.currentMemory = memory * 1024;
  dom.memory = maxmem * 1024;
}

const LIFECYCLE_ACTIONS: readonly LifecycleAction[] = [
  'destroy', 'restart', 'rename-restart', 'preserve', 'coredump-destroy', 'coredump-restart',
];

function parseEvents(conf: ConfFile, dom: Domain): void {
  const read = (key: string, def: LifecycleAction): LifecycleAction => {
    const v = getString(conf, key) ?? def;
    if (!(LIFECYCLE_ACTIONS as readonly string[]).includes(v)) throw internal(`unexpected value ${v} for ${key}`);
    return v as LifecycleAction;
  };
  dom.onPoweroff = read('on_poweroff', 'destroy');
  dom.onReboot = read('on_reboot', 'restart');
  dom.onCrash = read('on_crash', 'restart');
}

function parseCpu(conf: ConfFile, dom: Domain): void {
  const vcpus = getULong(conf, 'vcpus', 1);
  let max = vcpus;
  if (confGet(conf, 'maxvcpus') !== undefined) max = getULong(conf, 'maxvcpus', 0);
  if (max < 1) throw new VirtError('XML_ERROR', 'Domain requires at least 1 vCPU', ErrorDomain.XEN);
  dom.vcpu = { count: max };
  // Lowering the maximum below `vcpus` lowers the current count with it.
  const current = Math.min(vcpus, max);
  if (current < max) dom.vcpu.current = current;

  const cpus = getString(conf, 'cpus');
  // xl.cfg(5) allows "all", which is no restriction at all.
  if (cpus !== undefined && cpus.trim() !== 'all') {
    const set = parseCpuset(cpus, 'cpus');
    if (set.length) dom.vcpu.cpuset = formatCpuset(set);
  }
}

function addTimer(dom: Domain, timer: ClockTimer): void {
  dom.clock.timers.push(timer);
}

function parseHypervisorFeatures(conf: ConfFile, dom: Domain): void {
  const tsc = getString(conf, 'tsc_mode');
  if (tsc !== undefined) {
    const modes: Record<string, ClockTimer['mode']> = {
      always_emulate: 'emulate', native: 'native', native_paravirt: 'paravirt',
    };
    addTimer(dom, { name: 'tsc', present: 'yes', mode: modes[tsc] ?? 'auto' });
  }

  const features: NonNullable<Domain['features']> = {};
  const passthrough = getString(conf, 'passthrough');
  if (passthrough !== undefined) {
    // libvirt reports an unknown mode but goes on without passthrough; we do the same.
    if (passthrough === 'disabled') features.xen = { passthrough: { state: 'off' } };
    else if (passthrough === 'enabled') features.xen = { passthrough: { state: 'on' } };
    else if (passthrough === 'sync_pt' || passthrough === 'share_pt') {
      features.xen = { passthrough: { state: 'on', mode: passthrough } };
    }
  }

  if (dom.os.type === 'hvm') {
    if (getBool(conf, 'pae', true)) features.pae = true;
    if (getBool(conf, 'acpi', true)) features.acpi = true;
    if (getBool(conf, 'apic', true)) features.apic = true;
    if (!getBool(conf, 'hap', true)) features.hap = 'off';
    if (parseViridian(conf)) features.viridian = true;
    const hpet = confGetBool(conf, 'hpet');
    if (hpet !== undefined) addTimer(dom, { name: 'hpet', present: hpet ? 'yes' : 'no' });
  } else if (getBool(conf, 'e820_host', false)) {
    features.xen = { ...features.xen, e820_host: 'on' };
  }

  if (Object.keys(features).length) dom.features = dom.features ? { ...dom.features, ...features } : features;
}

/**
 * viridian is a boolean for libvirt; xl.cfg(5) also allows a list of enlightenment groups,
 * which means "on" unless it is empty or only removes groups.
 */
function parseViridian(conf: ConfFile): boolean {
  const v = confGet(conf, 'viridian');
  if (v?.type === 'list') {
    return v.value.some((item) => item.type === 'string' && item.value !== '' && !item.value.startsWith('!'));
  }
  return getBool(conf, 'viridian', false);
}

function parseTimeOffset(conf: ConfFile, dom: Domain): void {
  const localtime = getBool(conf, 'localtime', false);
  if (dom.os.type === 'hvm') {
    // xl.cfg(5) documents rtc_timeoffset as signed seconds; libvirt only reads non-negative ones.
    const offset = getULong(conf, 'rtc_timeoffset', 0, true);
    // Set in place: rebuilding the clock with an object spread costs more than the whole
    // rest of this function.
    dom.clock.offset = 'variable';
    dom.clock.adjustment = offset;
    dom.clock.basis = localtime ? 'localtime' : 'utc';
  } else {
    // PV guests have no emulated RTC: their offset is fixed at boot.
    dom.clock.offset = localtime ? 'localtime' : 'utc';
    dom.clock.adjustment = 'reset';
  }
}

// ---- vif -------------------------------------------------------------------------------

function parseMac(mac: string): string {
  if (isCanonicalMac(mac)) return mac;
  const parts = mac.split(':');
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw internal(`malformed mac address '${mac}'`);
  }
  return parts.map((p) => p.toLowerCase().padStart(2, '0')).join(':');
}

/** bridge=NAME, NAME.VLAN (one tag) or NAME:T1:T2 (trunk) — the last two mean Open vSwitch. */
function parseVifBridge(net: InterfaceDevice, bridge: string, entry: string): void {
  const tagOf = (s: string): number => {
    if (!/^\d+$/.test(s) || Number(s) > 0xffffffff) throw internal(`malformed vlan tag '${s}' in vif '${entry}'`);
    return Number(s);
  };
  const dot = bridge.indexOf('.');
  if (dot !== -1) {
    net.source = { bridge: bridge.slice(0, dot) };
    net.vlan = { tags: [{ id: tagOf(bridge.slice(dot + 1)) }] };
    net.virtualport = { type: 'openvswitch' };
  } else if (bridge.includes(':')) {
    const [name, ...trunks] = bridge.split(':');
    net.source = { bridge: name! };
    net.vlan = { trunk: true, tags: trunks.map((t) => ({ id: tagOf(t) })) };
    net.virtualport = { type: 'openvswitch' };
  } else {
    net.source = { bridge };
  }
}

/**
 * vif rate=NUM[GMK]{B,b}/s[@interval] (xenParseSxprVifRate) to KB/s. As in libvirt, 'K'
 * does not scale, and a lower-case 'b' divides by 8. Read in place: a regex with captures
 * cost more than the rest of the vif entry.
 */
function parseVifRate(rate: string): number {
  const at = rate.indexOf('@');
  const end = at === -1 ? rate.length : at;
  let p = 0;
  while (p < end && isDigitCode(rate.charCodeAt(p))) p++;
  const digits = p;
  const unit = rate[p];
  if (unit === 'G' || unit === 'M' || unit === 'K') p++;
  const per = rate[p];
  if (digits === 0 || (per !== 'B' && per !== 'b') || rate.slice(p + 1, end) !== '/s') {
    throw internal(`Invalid rate '${rate}' specified`);
  }
  let n = Number(rate.slice(0, digits));
  if (unit === 'G') n *= 1024 * 1024;
  else if (unit === 'M') n *= 1024;
  return per === 'b' ? Math.floor(n / 8) : n;
}

/**
 * libvirt 9.0's NIC model names; matched case-insensitively, printed in this spelling
 * ('scm91c111' is libvirt's own spelling).
 */
const NET_MODELS = [
  'netfront', 'rtl8139', 'virtio', 'e1000', 'e1000e', 'virtio-transitional',
  'virtio-non-transitional', 'usb-net', 'spapr-vlan', 'lan9118', 'scm91c111', 'vlance',
  'vmxnet', 'vmxnet2', 'vmxnet3', 'Am79C970A', 'Am79C973', '82540EM', '82545EM', '82543GC',
];

function netModel(model: string): string | undefined {
  if (model.toLowerCase() === 'unknown') return undefined;
  const known = NET_MODELS.find((m) => m.toLowerCase() === model.toLowerCase());
  if (known) return known;
  if (!/^[A-Za-z0-9_-]*$/.test(model)) throw new VirtError('INVALID_ARG', `Model name contains invalid characters: '${model}'`);
  return model;
}

/** C's isspace(): what libvirt skips before a vif key. */
const isCSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);

function parseVif(entry: string, netfrontType: string): InterfaceDevice {
  let mac, bridge, script, model, type, vifname, ip, rate: string | undefined;
  // Comma-separated key=value items, walked in place (no split): a repeated key's last
  // value wins, as in libvirt; unknown keys are ignored. An empty entry (xl's `vif = [ '' ]`,
  // as in Xen's own xlexample files) has no items: a vif with every default.
  for (let start = 0; entry !== '';) {
    const comma = entry.indexOf(',', start);
    const end = comma === -1 ? entry.length : comma;
    const eq = entry.indexOf('=', start);
    if (eq === -1 || eq > end) {
      throw internal(`malformed vif entry '${entry}': '${entry.slice(start, end)}' is not key=value`);
    }
    let keyStart = start;
    while (keyStart < eq && isCSpace(entry.charCodeAt(keyStart))) keyStart++;
    const value = entry.slice(eq + 1, end);
    switch (entry.slice(keyStart, eq)) {
      case 'mac': mac = value; break;
      case 'bridge': bridge = value; break;
      case 'script': script = value; break;
      case 'model': model = value; break;
      case 'type': type = value; break;
      case 'vifname': vifname = value; break;
      case 'ip': ip = value; break;
      case 'rate': rate = value; break;
    }
    if (comma === -1) break;
    start = comma + 1;
  }

  const isBridge = bridge !== undefined || script === 'vif-bridge' || script === 'vif-vnic';
  const net: InterfaceDevice = { type: isBridge ? 'bridge' : 'ethernet', ips: [] };
  if (mac !== undefined) net.mac = parseMac(mac);
  if (isBridge && bridge !== undefined) parseVifBridge(net, bridge, entry);
  if (ip !== undefined) {
    for (const addr of ip.split(' ').filter((a) => a !== '')) {
      const family = isIP(addr);
      if (!family) throw internal(`Failed to parse IP address '${addr}' in vif '${entry}'`);
      net.ips.push({ address: addr, family: family === 6 ? 'ipv6' : 'ipv4' });
    }
  }
  if (script) net.script = script;
  if (model !== undefined) {
    const m = model === '' ? undefined : netModel(model);
    if (m) net.model = m;
  } else if (type === netfrontType) {
    net.model = 'netfront';
  }
  if (vifname) net.target = vifname;
  if (rate !== undefined) net.bandwidth = { outbound: { average: parseVifRate(rate) } };
  return net;
}

function parseVifList(conf: ConfFile, dom: Domain, format: XenFormat): void {
  const list = confGet(conf, 'vif');
  // libvirt ignores a vif that is not a list, and list items that are not strings.
  if (list?.type !== 'list') return;
  const netfrontType = format === 'xen-xl' ? 'vif' : 'netfront';
  for (const item of list.value) {
    if (item.type !== 'string') continue;
    dom.devices.interfaces.push(parseVif(item.value, netfrontType));
  }
}

// ---- pci -------------------------------------------------------------------------------

function parseHex(s: string, entry: string, max: number): number {
  const m = /^\s*(?:0[xX])?([0-9a-fA-F]+)$/.exec(s);
  const n = m ? parseInt(m[1]!, 16) : NaN;
  if (!Number.isFinite(n) || n > max) throw internal(`Malformed PCI address ${entry}`);
  return n;
}

/** [DDDD:]BB:SS.F[,opt=val...] (xl-pci-configuration(5)); permissive=N sets write filtering. */
export function parsePciEntry(entry: string): HostdevDevice {
  const colon = entry.split(':');
  const tokens = colon.length > 3 ? [...colon.slice(0, 2), colon.slice(2).join(':')] : colon;
  if (tokens.length < 2) throw internal(`Malformed PCI address ${entry}`);
  let i = 0;
  const domain = tokens.length === 3 ? parseHex(tokens[i++]!, entry, 0xffff) : 0;
  const bus = parseHex(tokens[i++]!, entry, 0xff);
  const rest = tokens[i]!;
  const dot = rest.indexOf('.');
  if (dot === -1) throw internal(`Malformed PCI address ${rest}`);
  const slot = parseHex(rest.slice(0, dot), entry, 0x1f);
  const afterDot = rest.slice(dot + 1);
  const comma = afterDot.indexOf(',');
  const func = parseHex(comma === -1 ? afterDot : afterDot.slice(0, comma), entry, 7);
  const hostdev: HostdevDevice = {
    mode: 'subsystem', type: 'pci', managed: 'no', pci: { domain, bus, slot, function: func },
  };
  if (comma !== -1) {
    const options = afterDot.slice(comma + 1);
    for (const opt of options.split(',')) {
      const eq = opt.indexOf('=');
      if (eq === -1) throw internal(`Malformed PCI options ${options}`);
      if (opt.slice(0, eq) === 'permissive') {
        const val = opt.slice(eq + 1);
        if (!/^\s*[+-]?\d+$/.test(val)) throw internal(`Malformed PCI options ${options}`);
        // permissive means the guest may write any config space: no filtering.
        hostdev.writeFiltering = Number(val) !== 0 ? 'no' : 'yes';
      }
    }
  }
  return hostdev;
}

function parsePciList(conf: ConfFile, dom: Domain): void {
  for (const entry of getOptionalStringList(conf, 'pci') ?? []) {
    dom.devices.hostdevs.push(parsePciEntry(entry));
  }
}

// ---- sound, graphics ---------------------------------------------------------------------

const SOUND_MODELS = ['sb16', 'es1370', 'pcspk', 'ac97', 'ich6', 'ich9', 'usb', 'ich7'];

function parseSound(conf: ConfFile, dom: Domain): void {
  if (dom.os.type !== 'hvm') return;
  const str = getString(conf, 'soundhw');
  if (str === undefined) return;
  // "all" historically meant the two cards Xen's qemu always had.
  const models = str === 'all' ? ['sb16', 'es1370'] : str === '' ? [] : str.split(',');
  // A trailing comma ends the list, as in libvirt.
  if (models.length > 1 && models[models.length - 1] === '') models.pop();
  for (const model of models) {
    if (!SOUND_MODELS.includes(model)) throw internal(`unknown sound model '${model}' in soundhw`);
    dom.devices.sounds.push({ model } satisfies SoundDevice);
  }
}

function vncGraphics(opts: { autoport: boolean; display?: number; listen?: string; passwd?: string; keymap?: string }): GraphicsDevice {
  const g: GraphicsDevice = { type: 'vnc', listens: [{ type: 'address' }] };
  if (opts.autoport) {
    g.port = -1;
    g.autoport = 'yes';
  } else {
    if (opts.display !== undefined) g.port = opts.display;
    g.autoport = 'no';
  }
  if (opts.listen !== undefined) g.listens[0]!.address = opts.listen;
  if (opts.passwd !== undefined) g.passwd = opts.passwd;
  if (opts.keymap !== undefined) g.keymap = opts.keymap;
  return g;
}

function sdlGraphics(display?: string, xauth?: string): GraphicsDevice {
  const g: GraphicsDevice = { type: 'sdl', listens: [] };
  if (display !== undefined) g.display = display;
  if (xauth !== undefined) g.xauth = xauth;
  return g;
}

function parseHvmGraphics(conf: ConfFile, dom: Domain): void {
  if (getBool(conf, 'vnc', false)) {
    const autoport = getBool(conf, 'vncunused', true);
    const display = autoport ? undefined : getULong(conf, 'vncdisplay', 0) + 5900;
    dom.devices.graphics.push(vncGraphics({
      autoport,
      display,
      listen: getString(conf, 'vnclisten'),
      passwd: getString(conf, 'vncpasswd'),
      keymap: getString(conf, 'keymap'),
    }));
  } else if (getBool(conf, 'sdl', false)) {
    dom.devices.graphics.push(sdlGraphics(getString(conf, 'display'), getString(conf, 'xauthority')));
  }
}

/** The first entry of a PV guest's `vfb` list ("type=vnc,vncunused=1,..."). */
export function parseVfbEntry(vfb: string): GraphicsDevice {
  const isSdl = vfb.includes('type=sdl');
  let autoport = false;
  let display: number | undefined;
  let listen: string | undefined;
  let passwd: string | undefined;
  let keymap: string | undefined;
  let sdlDisplay: string | undefined;
  let xauth: string | undefined;
  // Keys are separated by commas (blanks after a comma are skipped); parsing stops at the
  // first item without '='.
  for (const raw of vfb.split(',')) {
    const key = raw.replace(/^[ \t]+/, '');
    if (key === '') continue;
    if (!key.includes('=')) break;
    const val = key.slice(key.indexOf('=') + 1);
    if (!isSdl) {
      if (key.startsWith('vncunused=')) autoport = val === '1' ? true : autoport;
      else if (key.startsWith('vnclisten=')) listen = val;
      else if (key.startsWith('vncpasswd=')) passwd = val;
      else if (key.startsWith('keymap=')) keymap = val;
      else if (key.startsWith('vncdisplay=')) {
        if (!/^\s*[+-]?\d+$/.test(val) || Math.abs(Number(val)) > 0x7fffffff) {
          throw internal(`invalid vncdisplay value '${val}'`);
        }
        display = Number(val) + 5900;
      }
    } else if (key.startsWith('display=')) sdlDisplay = val;
    else if (key.startsWith('xauthority=')) xauth = val;
  }
  if (isSdl) return sdlGraphics(sdlDisplay, xauth);
  return vncGraphics({ autoport, display, listen, passwd, keymap });
}

function parseGraphics(conf: ConfFile, dom: Domain): void {
  if (dom.os.type === 'hvm') {
    parseHvmGraphics(conf, dom);
    return;
  }
  // PV guests only know the vfb list: HVM-style vnc=1 keys are ignored for them.
  const vfbs = getOptionalStringList(conf, 'vfb');
  if (vfbs && vfbs.length) dom.devices.graphics.push(parseVfbEntry(vfbs[0]!));
}

// ---- character devices -------------------------------------------------------------------

/**
 * The character device types a xend string may name. libvirt also takes spiceport, nmdm,
 * qemu-vdagent and dbus here, but produces devices without their required data; they are
 * refused as unknown instead.
 */
const CHR_TYPES: readonly CharSourceType[] = [
  'null', 'vc', 'pty', 'dev', 'file', 'pipe', 'stdio', 'udp', 'tcp', 'unix', 'spicevmc',
];

const malformedChr = (value: string) => internal(`malformed char device string '${value}'`);

/**
 * A character device in xend's notation (xenParseSxprChar): "/dev/ttyS0", "pty", "null",
 * "file:/path", "tcp:host:port[,server]", "telnet:host:port[,server]",
 * "udp:rhost:rport[@lhost:lport]", "unix:/path[,server]".
 */
export function parseCharSource(value: string): CharSource {
  if (value.startsWith('/')) return { type: 'dev', path: value };
  const colon = value.indexOf(':');
  const prefix = colon === -1 ? value : value.slice(0, colon);
  const rest = colon === -1 ? value : value.slice(colon + 1);
  let type: string;
  let telnet = false;
  if (prefix.startsWith('telnet')) {
    type = 'tcp';
    telnet = true;
  } else if ((CHR_TYPES as readonly string[]).includes(prefix)) {
    type = prefix;
  } else {
    throw internal(`unknown chr device type '${prefix}'`);
  }
  const src: CharSource = { type: type as CharSourceType };
  switch (type) {
    case 'file':
    case 'pipe':
      src.path = rest;
      break;
    case 'tcp': {
      const c = rest.indexOf(':');
      if (c === -1) throw malformedChr(value);
      if (c > 0) src.host = rest.slice(0, c);
      const after = rest.slice(c + 1);
      const comma = after.indexOf(',');
      src.service = comma === -1 ? after : after.slice(0, comma);
      src.mode = comma !== -1 && after.slice(comma).includes(',server') ? 'bind' : 'connect';
      src.protocol = telnet ? 'telnet' : 'raw';
      break;
    }
    case 'udp': {
      const c = rest.indexOf(':');
      if (c === -1) throw malformedChr(value);
      if (c > 0) src.host = rest.slice(0, c);
      const after = rest.slice(c + 1);
      const at = after.indexOf('@');
      if (at === -1) {
        src.service = after;
      } else {
        src.service = after.slice(0, at);
        const bind = after.slice(at + 1);
        const c3 = bind.indexOf(':');
        if (c3 === -1) throw malformedChr(value);
        if (c3 > 0) src.bindHost = bind.slice(0, c3);
        src.bindService = bind.slice(c3 + 1);
      }
      break;
    }
    case 'unix': {
      const comma = rest.indexOf(',');
      src.path = comma === -1 ? rest : rest.slice(0, comma);
      src.mode = comma !== -1 && rest.slice(comma).includes(',server') ? 'bind' : 'connect';
      break;
    }
    default:
      break;
  }
  return src;
}

function parseCharDevices(conf: ConfFile, dom: Domain, format: XenFormat): void {
  if (dom.os.type !== 'hvm') {
    // Every PV guest has its xen console.
    dom.devices.consoles.push({ source: { type: 'pty' }, target: { type: 'xen', port: 0 } });
    return;
  }
  const parallel = getString(conf, 'parallel');
  if (parallel !== undefined && parallel !== 'none') {
    dom.devices.parallels.push({ source: parseCharSource(parallel), target: { port: 0 } });
  }

  const serials = getOptionalStringList(conf, 'serial');
  if (serials) {
    if (format === 'xen-xm') throw unsupported('Multiple serial devices are not supported by xen-xm');
    serials.forEach((s, port) => {
      if (s !== 'none') dom.devices.serials.push({ source: parseCharSource(s), target: { port } });
    });
    return;
  }
  const serial = getString(conf, 'serial');
  if (serial !== undefined && serial !== 'none') {
    dom.devices.serials.push({ source: parseCharSource(serial), target: { port: 0 } });
  }
}

/**
 * Fill `dom` from the keys both formats share, in libvirt's order (xenParseConfigCommon):
 * memory/maxmem, on_poweroff/on_reboot/on_crash, vcpus/maxvcpus/cpus, tsc_mode,
 * passthrough, (HVM) pae/acpi/apic/hap/viridian/hpet or (PV) e820_host,
 * localtime/rtc_timeoffset, device_model_override, vif, pci, (HVM) soundhw,
 * graphics ((HVM) vnc/sdl keys, (PV) vfb), (HVM) parallel/serial or (PV) the xen console.
 *
 * `dom` must come from newXenDomain(conf), which reads name, uuid and type/builder.
 * Throws VirtError naming the key or value on malformed input; libvirt's refusals
 * (e.g. a serial list in xen-xm) use libvirt's messages.
 */
export function parseConfigCommon(conf: ConfFile, dom: Domain, format: XenFormat): void {
  parseMemory(conf, dom);
  parseEvents(conf, dom);
  parseCpu(conf, dom);
  parseHypervisorFeatures(conf, dom);
  parseTimeOffset(conf, dom);
  const emulator = getString(conf, 'device_model_override');
  if (emulator !== undefined) dom.devices.emulator = emulator;
  parseVifList(conf, dom, format);
  parsePciList(conf, dom);
  parseSound(conf, dom);
  parseGraphics(conf, dom);
  parseCharDevices(conf, dom, format);
}

// ---------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------

const setInt = (out: ConfFile, key: string, n: number) => confSet(out, key, confNumber(n));
const setStr = (out: ConfFile, key: string, s: string) => confSet(out, key, confString(s));
const divUp = (n: number, d: number) => Math.ceil(n / d);

function formatMemory(dom: Domain, out: ConfFile): void {
  setInt(out, 'maxmem', divUp(dom.memory, 1024));
  setInt(out, 'memory', divUp(dom.currentMemory ?? dom.memory, 1024));
}

function formatCpu(dom: Domain, out: ConfFile): void {
  const max = dom.vcpu.count;
  const current = dom.vcpu.current ?? max;
  if (current < max) setInt(out, 'maxvcpus', max);
  setInt(out, 'vcpus', current);
  if (dom.vcpu.cpuset !== undefined) {
    const cpus = formatCpuset(parseCpuset(dom.vcpu.cpuset));
    if (cpus !== '') setStr(out, 'cpus', cpus);
  }
}

const unsupportedTimer = (name: string) => unsupported(`unsupported timer type (name) '${name}'`);

function formatHypervisorFeatures(dom: Domain, out: ConfFile): void {
  const f = dom.features ?? {};
  const hvm = dom.os.type === 'hvm';
  if (hvm) {
    setInt(out, 'pae', f.pae ? 1 : 0);
    setInt(out, 'acpi', f.acpi ? 1 : 0);
    setInt(out, 'apic', f.apic ? 1 : 0);
    if (f.hap === 'off') setInt(out, 'hap', 0);
    setInt(out, 'viridian', f.viridian ? 1 : 0);
  } else if (f.xen?.e820_host === 'on') {
    setInt(out, 'e820_host', 1);
  }
  const pt = f.xen?.passthrough;
  if (pt?.state === 'on') setStr(out, 'passthrough', pt.mode ?? 'enabled');

  for (const timer of dom.clock.timers) {
    switch (timer.name) {
      case 'tsc': {
        const modes: Partial<Record<NonNullable<ClockTimer['mode']>, string>> = {
          native: 'native', paravirt: 'native_paravirt', emulate: 'always_emulate',
        };
        setStr(out, 'tsc_mode', (timer.mode && modes[timer.mode]) ?? 'default');
        break;
      }
      case 'hpet':
        if (!hvm) throw unsupportedTimer(timer.name);
        setInt(out, 'hpet', timer.present === 'no' ? 0 : 1);
        break;
      default:
        throw unsupportedTimer(timer.name);
    }
  }
}

function formatTimeOffset(dom: Domain, out: ConfFile): void {
  const clock = dom.clock;
  let localtime: number;
  if (dom.os.type === 'hvm') {
    let offset: number;
    switch (clock.offset) {
      case 'variable':
        localtime = clock.basis === 'localtime' ? 1 : 0;
        offset = typeof clock.adjustment === 'number' ? clock.adjustment : 0;
        break;
      case 'utc':
      case 'localtime':
        // An HVM guest's RTC keeps its offset; "reset at boot" has no xm/xl spelling.
        if (clock.adjustment === 'reset') throw unsupported("unsupported clock adjustment='reset'");
        localtime = clock.offset === 'localtime' ? 1 : 0;
        // A numeric adjustment on utc/localtime is libvirt's shorthand for offset='variable'.
        offset = clock.adjustment ?? 0;
        break;
      default:
        throw unsupported(`unsupported clock offset='${clock.offset}'`);
    }
    setInt(out, 'rtc_timeoffset', offset);
  } else {
    if (clock.offset !== 'utc' && clock.offset !== 'localtime') {
      throw unsupported(`unsupported clock offset='${clock.offset}'`);
    }
    localtime = clock.offset === 'localtime' ? 1 : 0;
  }
  setInt(out, 'localtime', localtime);
}

function formatEvents(dom: Domain, out: ConfFile): void {
  // The XML defaults, for a Domain built without going through the XML parser.
  setStr(out, 'on_poweroff', dom.onPoweroff ?? 'destroy');
  setStr(out, 'on_reboot', dom.onReboot ?? 'restart');
  setStr(out, 'on_crash', dom.onCrash ?? 'destroy');
}

/** libvirt's reading of <graphics type='vnc'>: no port, or port -1, means autoport. */
function vncAutoport(g: GraphicsDevice): boolean {
  if (g.autoport !== undefined) return g.autoport === 'yes';
  return g.port === undefined || g.port === -1;
}

function vncListenAddress(g: GraphicsDevice): string | undefined {
  const first = g.listens[0];
  return first ? first.address : g.listenAttr;
}

function formatGraphics(dom: Domain, out: ConfFile): void {
  const gs = dom.devices.graphics;
  if (gs.length !== 1 || gs[0]!.type === 'spice') return;
  const g = gs[0]!;
  if (g.type !== 'vnc' && g.type !== 'sdl') throw unsupported(`unsupported graphics type '${g.type}'`);
  const autoport = vncAutoport(g);
  const display = (g.port ?? 0) - 5900;
  const listen = vncListenAddress(g);
  if (dom.os.type === 'hvm') {
    if (g.type === 'sdl') {
      setInt(out, 'sdl', 1);
      setInt(out, 'vnc', 0);
      if (g.display !== undefined) setStr(out, 'display', g.display);
      if (g.xauth !== undefined) setStr(out, 'xauthority', g.xauth);
    } else {
      setInt(out, 'sdl', 0);
      setInt(out, 'vnc', 1);
      setInt(out, 'vncunused', autoport ? 1 : 0);
      if (!autoport) setInt(out, 'vncdisplay', display);
      if (listen !== undefined) setStr(out, 'vnclisten', listen);
      if (g.passwd !== undefined) setStr(out, 'vncpasswd', g.passwd);
      if (g.keymap !== undefined) setStr(out, 'keymap', g.keymap);
    }
    return;
  }
  let vfb: string;
  if (g.type === 'sdl') {
    vfb = 'type=sdl';
    if (g.display !== undefined) vfb += `,display=${g.display}`;
    if (g.xauth !== undefined) vfb += `,xauthority=${g.xauth}`;
  } else {
    vfb = `type=vnc,vncunused=${autoport ? 1 : 0}`;
    if (!autoport) vfb += `,vncdisplay=${display}`;
    if (listen !== undefined) vfb += `,vnclisten=${listen}`;
    if (g.passwd !== undefined) vfb += `,vncpasswd=${g.passwd}`;
    if (g.keymap !== undefined) vfb += `,keymap=${g.keymap}`;
  }
  confSet(out, 'vfb', confList([confString(vfb)]));
}

const DEFAULT_VIF_SCRIPT = 'vif-bridge';

function formatVif(net: InterfaceDevice, hvm: boolean, netfrontType: string, opts: XenFormatOptions): string {
  let s = net.mac !== undefined ? `mac=${net.mac}` : '';
  const add = (part: string) => { s += s === '' ? part.slice(1) : part; };
  const ips = net.ips.length ? `,ip=${net.ips.map((i) => i.address).join(' ')}` : '';
  switch (net.type) {
    case 'bridge': {
      let script = net.script;
      add(`,bridge=${net.source?.bridge ?? ''}`);
      if (net.virtualport?.type === 'openvswitch') {
        script ??= 'vif-openvswitch';
        // libxl's BRIDGE[.VLAN][:TRUNK:TRUNK] bridge syntax.
        const tags = net.vlan?.tags ?? [];
        if (tags.length) s += net.vlan?.trunk ? tags.map((t) => `:${t.id}`).join('') : `.${tags[0]!.id}`;
      }
      if (ips) add(ips);
      add(`,script=${script ?? DEFAULT_VIF_SCRIPT}`);
      break;
    }
    case 'ethernet':
      if (net.script !== undefined) add(`,script=${net.script}`);
      if (ips) add(ips);
      break;
    case 'network': {
      const name = net.source?.network ?? '';
      const bridge = opts.networkBridge?.(name);
      if (bridge === undefined) throw internal(`network ${name} is not active`);
      add(`,bridge=${bridge}`);
      add(`,script=${DEFAULT_VIF_SCRIPT}`);
      break;
    }
    default:
      throw unsupported(`Unsupported net type '${net.type}'`);
  }
  if (net.model !== undefined) {
    // HVM guests name the PV NIC by type; a model there means an emulated one.
    if (hvm && net.model === 'netfront') add(`,type=${netfrontType}`);
    else add(`,model=${net.model}`);
  }
  if (net.target !== undefined) add(`,vifname=${net.target}`);
  const average = net.bandwidth?.outbound?.average;
  if (average) add(`,rate=${average}KB/s`);
  return s;
}

function formatVifs(dom: Domain, out: ConfFile, format: XenFormat, opts: XenFormatOptions): void {
  const hvm = dom.os.type === 'hvm';
  const netfrontType = format === 'xen-xl' ? 'vif' : 'netfront';
  const vifs = dom.devices.interfaces.map((n) => confString(formatVif(n, hvm, netfrontType, opts)));
  if (vifs.length) confSet(out, 'vif', confList(vifs));
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

/** One `pci` entry: DDDD:BB:SS.F plus permissive= when write filtering is explicit. */
export function formatPciEntry(h: HostdevDevice): string {
  const a = h.pci ?? { domain: 0, bus: 0, slot: 0, function: 0 };
  const permissive = h.writeFiltering === 'yes' ? ',permissive=0' : h.writeFiltering === 'no' ? ',permissive=1' : '';
  return `${hex(a.domain, 4)}:${hex(a.bus, 2)}:${hex(a.slot, 2)}.${a.function.toString(16)}${permissive}`;
}

function formatPci(dom: Domain, out: ConfFile): void {
  const pcis = dom.devices.hostdevs
    .filter((h) => h.mode === 'subsystem' && h.type === 'pci')
    .map((h) => confString(formatPciEntry(h)));
  if (pcis.length) confSet(out, 'pci', confList(pcis));
}

/** xend escaped backslashes and single quotes in paths (virBufferEscapeSexpr). */
const escapeSexpr = (s: string) => s.replace(/[\\']/g, (c) => `\\${c}`);

/** The xend notation of a character device (xenFormatSxprChr); see parseCharSource(). */
export function formatCharSource(src: CharSource): string {
  switch (src.type) {
    case 'null':
    case 'stdio':
    case 'vc':
    case 'pty':
      return src.type;
    case 'file':
    case 'pipe':
      return `${src.type}:${escapeSexpr(src.path ?? '')}`;
    case 'dev':
      return escapeSexpr(src.path ?? '');
    case 'tcp':
      return `${src.protocol === undefined || src.protocol === 'raw' ? 'tcp' : 'telnet'}:${src.host ?? ''}:${src.service ?? ''}${src.mode === 'bind' ? ',server,nowait' : ''}`;
    case 'udp':
      return `udp:${src.host ?? ''}:${src.service ?? ''}@${src.bindHost ?? ''}:${src.bindService ?? ''}`;
    case 'unix':
      return `unix:${escapeSexpr(src.path ?? '')}${src.mode === 'bind' ? ',server,nowait' : ''}`;
    default:
      throw unsupported(`unsupported chr device type '${src.type}'`);
  }
}

function formatCharDevices(dom: Domain, out: ConfFile, format: XenFormat): void {
  if (dom.os.type !== 'hvm') return;
  const { parallels, serials } = dom.devices;
  setStr(out, 'parallel', parallels.length ? formatCharSource(parallels[0]!.source) : 'none');

  if (serials.length === 0) {
    setStr(out, 'serial', 'none');
  } else if (serials.length === 1 && (serials[0]!.target.port ?? 0) === 0) {
    setStr(out, 'serial', formatCharSource(serials[0]!.source));
  } else {
    if (format === 'xen-xm') throw unsupported('Multiple serial devices are not supported by xen-xm');
    // xl lists serial ports by index; gaps are "none".
    const portOf = (c: CharDevice) => c.target.port ?? 0;
    const maxPort = Math.max(...serials.map(portOf));
    const list: ConfValue[] = [];
    for (let port = 0; port <= maxPort; port++) {
      const chr = serials.find((c) => portOf(c) === port);
      list.push(confString(chr ? formatCharSource(chr.source) : 'none'));
    }
    confSet(out, 'serial', confList(list));
  }
}

function formatSound(dom: Domain, out: ConfFile): void {
  if (dom.os.type !== 'hvm' || dom.devices.sounds.length === 0) return;
  setStr(out, 'soundhw', dom.devices.sounds.map((s) => escapeSexpr(s.model)).join(','));
}

/**
 * Append the shared keys of `dom` to `out`, in libvirt's exact order (xenFormatConfigCommon):
 *   name, uuid, maxmem, memory, [maxvcpus], vcpus, [cpus],
 *   (HVM) pae, acpi, apic, [hap], viridian | (PV) [e820_host], [passthrough],
 *   [tsc_mode], [hpet]  (timers in document order),
 *   (HVM) rtc_timeoffset, localtime, on_poweroff, on_reboot, on_crash,
 *   [device_model_override],
 *   (HVM) sdl, vnc, [vncunused, vncdisplay, vnclisten, vncpasswd, keymap | display, xauthority]
 *     | (PV) [vfb],
 *   [vif], [pci], (HVM) parallel, serial, [soundhw].
 * A key already in `out` keeps its place and gets the new value (virConfSetValue), so the
 * caller appends its own keys (OS, disks, inputs) afterwards.
 * Throws VirtError (CONFIG_UNSUPPORTED) where libvirt refuses the domain, with libvirt's message.
 */
export function formatConfigCommon(dom: Domain, out: ConfFile, format: XenFormat, opts: XenFormatOptions = {}): void {
  setStr(out, 'name', dom.name);
  setStr(out, 'uuid', dom.uuid ?? randomUUID());
  formatMemory(dom, out);
  formatCpu(dom, out);
  formatHypervisorFeatures(dom, out);
  formatTimeOffset(dom, out);
  formatEvents(dom, out);
  if (dom.devices.emulator !== undefined) setStr(out, 'device_model_override', dom.devices.emulator);
  formatGraphics(dom, out);
  formatVifs(dom, out, format, opts);
  formatPci(dom, out);
  formatCharDevices(dom, out, format);
  formatSound(dom, out);
}

// ---------------------------------------------------------------------------------------
// Floppies
// ---------------------------------------------------------------------------------------

/**
 * The floppy drives an HVM guest's device model has (xm's `fda`/`fdb` keys, qemu's
 * `-fda`/`-fdb`). libvirt's xm/xl writers drop floppies; we carry them where the format
 * has a spelling for them, and refuse where it has none rather than lose the disk.
 */
export const FLOPPY_DRIVES = ['fda', 'fdb'] as const;
export type FloppyDrive = (typeof FLOPPY_DRIVES)[number];

export const isFloppyDrive = (s: string): s is FloppyDrive => (FLOPPY_DRIVES as readonly string[]).includes(s);

/** A floppy read from native config: an image file on the floppy controller. */
export function floppyDisk(drive: FloppyDrive, path: string, driverName: string): DiskDevice {
  return { type: 'file', device: 'floppy', driver: { name: driverName }, source: { path }, target: { dev: drive, bus: 'fdc' } };
}

/**
 * The floppies of `dom` as drive + image path, in document order, for a format that gives
 * them to the HVM device model. Throws CONFIG_UNSUPPORTED naming the disk for what no xm/xl
 * spelling can carry: a floppy on a guest without that device model (PV or PVH), a drive
 * other than fda/fdb or given twice, an empty, non-path, read-only or transient drive.
 */
export function hvmFloppies(dom: Domain, format: XenFormat): Array<{ drive: FloppyDrive; path: string }> {
  const out: Array<{ drive: FloppyDrive; path: string }> = [];
  for (const disk of dom.devices.disks) {
    if (disk.device !== 'floppy') continue;
    const dev = disk.target.dev;
    const path = disk.type === 'file' || disk.type === 'block' ? disk.source?.path : undefined;
    const what = `floppy disk '${dev}'${path !== undefined ? ` (${path})` : ''}`;
    const refuse = (why: string) => unsupported(`${what}: ${why}`);
    if (dom.os.type !== 'hvm') {
      throw refuse(`${format} can only give HVM guests a floppy drive (a ${dom.os.type} guest has no floppy controller)`);
    }
    if (!isFloppyDrive(dev)) throw refuse(`${format} supports the floppy drives fda and fdb only`);
    if (out.some((f) => f.drive === dev)) throw refuse('the drive is given more than once');
    if (path === undefined || path === '') {
      throw refuse(`${format} cannot express ${disk.type === 'file' || disk.type === 'block' ? 'an empty floppy drive' : `a '${disk.type}' floppy source`}`);
    }
    if (disk.readonly) throw refuse(`${format} cannot express a read-only floppy`);
    if (disk.transient) throw refuse('transient disks not supported yet');
    out.push({ drive: dev, path });
  }
  return out;
}
