/**
 * The xen-xl format: Xen's xl domain configuration files (xl.cfg(5)), both directions.
 *
 * The keys xm and xl share (name, memory, vcpus, clock, HVM features, vif, pci, graphics,
 * serial/parallel ...) are handled by xen-common.ts; this module adds what libvirt keeps in
 * xen_xl.c: OS and firmware keys, cpuid, vNUMA, xenbus limits, xl's disk syntax, SPICE,
 * USB (inputs, host devices, controllers), channels and device_model_args, which also
 * carries HVM floppies to qemu ("-fda", PATH), as xl.cfg(5) has no floppy key.
 *
 * Reading produces what libvirt 9.0's xenParseXL puts in its definition (defaults and
 * implicit devices come later from postParse()); writing follows xenFormatXL key by key,
 * so that the output is byte-identical to libvirt's for every domain libvirt accepts.
 * Where xl.cfg(5) allows more than libvirt reads (cpuid's list form, whitespace in option
 * strings, hexadecimal numbers), the extra forms are accepted without changing the result
 * of anything libvirt already understands.
 */
import {
  type ConfFile,
  type ConfValue,
  confGet,
  confGetBool,
  confGetString,
  confList,
  confNumber,
  confSet,
  confString,
  formatConf,
  indexConf,
  parseConf,
} from './conf.js';
import {
  type FloppyDrive,
  type XenFormatOptions,
  floppyDisk,
  formatConfigCommon,
  formatCpuset,
  getBool,
  getULong,
  hvmFloppies,
  newXenDomain,
  parseConfigCommon,
  parseCpuset,
  parseUnsigned,
} from './xen-common.js';
import { ErrorDomain, type ErrorCodeName, VirtError } from '../errors.js';
import type {
  CharDevice,
  ControllerDevice,
  CpuFeature,
  DiskDevice,
  Domain,
  DomainCpu,
  GraphicsDevice,
  HostdevDevice,
  InputDevice,
  NumaCell,
} from '../domain/types.js';

const FORMAT = 'xen-xl';

/** Where Debian's libvirt 9.0 looks for Xen firmware (LIBXL_FIRMWARE_DIR). */
const OVMF_PATH = '/usr/lib/xen/boot/ovmf.bin';

const xlError = (code: ErrorCodeName, message: string) => new VirtError(code, message, ErrorDomain.XENXL);

// ---------------------------------------------------------------------------------------
// Small readers
// ---------------------------------------------------------------------------------------

/**
 * Splits an xl option string ("key=value,key=value") the way libvirt walks it: items end at
 * a comma, and commas, blanks and tabs after a comma are skipped. libvirt gives up on the
 * whole string (returns null here) when it reaches an item after which no '=' follows,
 * which includes a trailing comma.
 */
export function splitXlOptions(spec: string): Array<{ key: string; value: string }> | null {
  const items: Array<{ key: string; value: string }> = [];
  let pos = 0;
  for (;;) {
    const comma = spec.indexOf(',', pos);
    const item = comma === -1 ? spec.slice(pos) : spec.slice(pos, comma);
    const eq = item.indexOf('=');
    if (eq !== -1) items.push({ key: item.slice(0, eq), value: item.slice(eq + 1) });
    // An item without '=' is skipped, unless nothing after it has one either.
    else if (!spec.slice(pos).includes('=')) return null;
    if (comma === -1) return items;
    pos = comma + 1;
    while (pos < spec.length && (spec[pos] === ',' || spec[pos] === ' ' || spec[pos] === '\t')) pos++;
  }
}

/** A whole-string C integer (strtol with the given base, as virStrToLong_* uses it). */
function parseCInt(s: string, base: 10 | 16): number | undefined {
  const re = base === 16 ? /^\s*([+-]?)(?:0[xX])?([0-9a-fA-F]+)$/ : /^\s*([+-]?)([0-9]+)$/;
  const m = re.exec(s);
  if (!m) return undefined;
  const n = parseInt(m[2]!, base);
  if (!Number.isSafeInteger(n)) return undefined;
  return m[1] === '-' ? -n : n;
}

/**
 * A table lookup that never answers with an Object.prototype member ("constructor" ...).
 * The tables on every conversion's path are Maps instead: an object property looked up by a
 * string read from the input (not one of the program's own constants) takes the engine's
 * slow path.
 */
function lookup<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

/** A string key that may be absent (xenConfigGetString / CopyStringOpt); other types are errors. */
const getStr = confGetString;

// ---------------------------------------------------------------------------------------
// OS, boot and firmware (xenParseXLOS)
// ---------------------------------------------------------------------------------------

/** `cmdline` wins; otherwise `root` and `extra` are combined as xl does. */
function parseCmdline(conf: ConfFile): string | undefined {
  const cmdline = getStr(conf, 'cmdline');
  const root = getStr(conf, 'root');
  const extra = getStr(conf, 'extra');
  if (cmdline !== undefined) return cmdline;
  if (root !== undefined && extra !== undefined) return `root=${root} ${extra}`;
  if (root !== undefined) return `root=${root}`;
  return extra;
}

const BOOT_DEVICES: ReadonlyMap<string, Domain['os']['boot'][number]> = new Map([['a', 'fd'], ['d', 'cdrom'], ['n', 'network'], ['c', 'hd']]);
/** libvirt keeps at most this many boot devices (VIR_DOMAIN_BOOT_LAST). */
const MAX_BOOT_DEVICES = 4;

function setKernelKeys(conf: ConfFile, dom: Domain): void {
  const kernel = getStr(conf, 'kernel');
  if (kernel !== undefined) dom.os.kernel = kernel;
  const ramdisk = getStr(conf, 'ramdisk');
  if (ramdisk !== undefined) dom.os.initrd = ramdisk;
  const cmdline = parseCmdline(conf);
  if (cmdline !== undefined) dom.os.cmdline = cmdline;
}

function parseOs(conf: ConfFile, dom: Domain): void {
  if (dom.os.type !== 'hvm') {
    const bootloader = getStr(conf, 'bootloader');
    if (bootloader !== undefined) dom.bootloader = bootloader;
    const bootargs = getStr(conf, 'bootargs');
    if (bootargs !== undefined) dom.bootloaderArgs = bootargs;
    setKernelKeys(conf, dom);
    return;
  }

  // hvmloader (any other `bios`) is the capabilities' default loader, which postParse adds.
  if (getStr(conf, 'bios') === 'ovmf') {
    dom.os.loader = { readonly: 'yes', type: 'pflash', path: OVMF_PATH };
  }
  const slic = getStr(conf, 'acpi_firmware');
  if (slic !== undefined) dom.os.acpiTables = [{ type: 'slic', path: slic }];
  setKernelKeys(conf, dom);

  const boot = getStr(conf, 'boot') ?? 'c';
  dom.os.boot = [...boot.slice(0, MAX_BOOT_DEVICES)].map((c) => BOOT_DEVICES.get(c) ?? 'hd');

  const nested = confGetBool(conf, 'nestedhvm');
  if (nested !== undefined) {
    // Nested HVM is the guest seeing the host's virtualization extension (vmx on the
    // test host; libvirt would pick svm on an AMD host it can probe).
    const cpu = ensurePassthroughCpu(dom);
    if (!nested) addCpuFeature(cpu, 'vmx', 'disable');
  }
}

// ---------------------------------------------------------------------------------------
// CPU: cpuid and nested HVM
// ---------------------------------------------------------------------------------------

function ensurePassthroughCpu(dom: Domain): DomainCpu {
  dom.cpu ??= { mode: 'host-passthrough', features: [] };
  return dom.cpu;
}

function addCpuFeature(cpu: DomainCpu, name: string, policy: CpuFeature['policy']): void {
  if (cpu.features.some((f) => f.name === name)) {
    throw xlError('INTERNAL_ERROR', `CPU feature '${name}' specified more than once`);
  }
  cpu.features.push({ policy, name });
}

/** libvirt's feature names where libxl spells them differently (libvirt, libxl). */
const CPU_FEATURE_NAMES: ReadonlyArray<readonly [string, string]> = [
  ['cx16', 'cmpxchg16'], ['cid', 'cntxid'], ['ds_cpl', 'dscpl'], ['pclmuldq', 'pclmulqdq'],
  ['pni', 'sse3'], ['ht', 'htt'], ['pn', 'psn'], ['clflush', 'clfsh'], ['sep', 'sysenter'],
  ['cx8', 'cmpxchg8'], ['nodeid_msr', 'nodeid'], ['cr8legacy', 'altmovcr8'], ['lahf_lm', 'lahfsahf'],
  ['cmp_legacy', 'cmplegacy'], ['fxsr_opt', 'ffxsr'], ['pdpe1gb', 'page1gb'], ['spec-ctrl', 'ibrsb'],
];

const libxlToLibvirtFeature = (name: string) => CPU_FEATURE_NAMES.find(([, x]) => x === name)?.[0] ?? name;
const libvirtToLibxlFeature = (name: string) => CPU_FEATURE_NAMES.find(([v]) => v === name)?.[1] ?? name;

/** cpuid values of xl's libxl syntax. 'k' (keep) and 's' (keep across migration) read as optional. */
const CPUID_POLICIES: Record<string, CpuFeature['policy']> = {
  '1': 'force', '0': 'disable', x: 'optional', k: 'optional', s: 'optional',
};

/** `cpuid = "host,tm=0,sse3=1"` (the only form libvirt reads). */
function parseLibxlCpuid(cpu: DomainCpu, str: string): void {
  if (str === '') return;
  const pairs = str.split(',');
  if (pairs[0] !== 'host') {
    throw xlError('CONF_SYNTAX', `cpuid starting with ${pairs[0]} is not supported, only libxl format is`);
  }
  for (const pair of pairs.slice(1)) {
    const eq = pair.indexOf('=');
    if (pair === '' || eq === -1) throw xlError('CONF_SYNTAX', `Invalid libxl cpuid key=value element: ${pair}`);
    const policy = lookup(CPUID_POLICIES, pair.slice(eq + 1));
    if (!policy) throw xlError('CONF_SYNTAX', `Invalid libxl cpuid value: ${pair}`);
    addCpuFeature(cpu, libxlToLibvirtFeature(pair.slice(0, eq)), policy);
  }
}

type CpuidRegister = 'eax' | 'ebx' | 'ecx' | 'edx';

/**
 * The single-bit flags of the feature leaves, by libxl name (libxl_cpuid.c), so that the
 * xend list form can be read: key "LEAF[:SUBLEAF]/REG", bit numbers 0..31.
 */
const CPUID_FLAGS: Record<string, Record<number, string>> = {
  '1/ecx': {
    0: 'sse3', 1: 'pclmulqdq', 2: 'dtes64', 3: 'monitor', 4: 'dscpl', 5: 'vmx', 6: 'smx', 7: 'est',
    8: 'tm2', 9: 'ssse3', 10: 'cntxid', 12: 'fma', 13: 'cmpxchg16', 14: 'xtpr', 15: 'pdcm',
    17: 'pcid', 18: 'dca', 19: 'sse4_1', 20: 'sse4_2', 21: 'x2apic', 22: 'movbe', 23: 'popcnt',
    24: 'tsc-deadline', 25: 'aes', 26: 'xsave', 27: 'osxsave', 28: 'avx', 29: 'f16c',
    30: 'rdrand', 31: 'hypervisor',
  },
  '1/edx': {
    0: 'fpu', 1: 'vme', 2: 'de', 3: 'pse', 4: 'tsc', 5: 'msr', 6: 'pae', 7: 'mce', 8: 'cmpxchg8',
    9: 'apic', 11: 'sysenter', 12: 'mtrr', 13: 'pge', 14: 'mca', 15: 'cmov', 16: 'pat',
    17: 'pse36', 18: 'psn', 19: 'clfsh', 21: 'ds', 22: 'acpi', 23: 'mmx', 24: 'fxsr', 25: 'sse',
    26: 'sse2', 27: 'ss', 28: 'htt', 29: 'tm', 30: 'ia64', 31: 'pbe',
  },
  '6/eax': { 2: 'arat' },
  '7:0/ebx': {
    0: 'fsgsbase', 1: 'tsc_adjust', 3: 'bmi1', 4: 'hle', 5: 'avx2', 7: 'smep', 8: 'bmi2',
    9: 'erms', 10: 'invpcid', 11: 'rtm', 12: 'cmt', 14: 'mpx', 16: 'avx512f', 17: 'avx512dq',
    18: 'rdseed', 19: 'adx', 20: 'smap', 21: 'avx512-ifma', 23: 'clflushopt', 24: 'clwb',
    25: 'proc-trace', 26: 'avx512pf', 27: 'avx512er', 28: 'avx512cd', 29: 'sha',
    30: 'avx512bw', 31: 'avx512vl',
  },
  '7:0/ecx': {
    0: 'prefetchwt1', 1: 'avx512-vbmi', 2: 'umip', 3: 'pku', 4: 'ospke', 6: 'avx512-vbmi2',
    7: 'cet-ss', 8: 'gfni', 9: 'vaes', 10: 'vpclmulqdq', 11: 'avx512-vnni', 12: 'avx512-bitalg',
    14: 'avx512-vpopcntdq', 22: 'rdpid', 25: 'cldemote', 31: 'pks',
  },
  '7:0/edx': {
    2: 'avx512-4vnniw', 3: 'avx512-4fmaps', 4: 'fsrm', 8: 'avx512-vp2intersect', 9: 'srbds-ctrl',
    10: 'md-clear', 14: 'serialize', 16: 'tsxldtrk', 20: 'cet-ibt', 23: 'avx512-fp16',
    26: 'ibrsb', 27: 'stibp', 28: 'l1d-flush', 29: 'arch-caps', 30: 'core-caps', 31: 'ssbd',
  },
  '0x80000001/ecx': {
    0: 'lahfsahf', 1: 'cmplegacy', 2: 'svm', 3: 'extapic', 4: 'altmovcr8', 5: 'abm', 6: 'sse4a',
    7: 'misalignsse', 8: '3dnowprefetch', 9: 'osvw', 10: 'ibs', 11: 'xop', 12: 'skinit',
    13: 'wdt', 15: 'lwp', 16: 'fma4', 19: 'nodeid', 21: 'tbm', 22: 'topoext',
    23: 'perfctr_core', 24: 'perfctr_nb',
  },
  '0x80000001/edx': {
    11: 'syscall', 20: 'nx', 22: 'mmxext', 25: 'ffxsr', 26: 'page1gb', 27: 'rdtscp', 29: 'lm',
    30: '3dnowext', 31: '3dnow',
  },
  '0x80000007/edx': { 8: 'invtsc' },
  '0x80000008/ebx': {
    0: 'clzero', 2: 'rstr-fp-err-ptrs', 9: 'wbnoinvd', 12: 'ibpb', 14: 'ibrs', 15: 'amd-stibp',
    16: 'ibrs-always', 17: 'stibp-always', 18: 'ibrs-fast', 19: 'ibrs-same-mode', 20: 'no-lmsl',
    23: 'ppin', 24: 'amd-ssbd', 25: 'virt-ssbd', 26: 'ssb-no', 28: 'psfd', 29: 'btc-no',
    30: 'ibpb-ret',
  },
};

/** Leaf numbers as strtoul(,,0) reads them: decimal, 0x hex or 0 octal. */
function parseCpuidNumber(s: string): number | undefined {
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) return parseInt(s.slice(2), 16);
  if (/^0[0-7]*$/.test(s)) return parseInt(s, 8);
  if (/^[1-9][0-9]*$/.test(s)) return parseInt(s, 10);
  return undefined;
}

/**
 * One entry of xl's xend-style list form, "LEAF[,SUBLEAF]:REG=BITS[,REG=BITS...]" with
 * 32 policy characters per register, most significant bit first (xl.cfg(5)). libvirt only
 * reads the libxl string form; the named single-bit flags map onto the same features, bits
 * left at 'x' (default) say nothing, and a constrained bit without a name is refused.
 */
function parseXendCpuid(cpu: DomainCpu, entry: string): void {
  const bad = (why: string) => xlError('CONF_SYNTAX', `Invalid xend cpuid entry '${entry}': ${why}`);
  const m = /^([^,:]+)(?:,([^:]+))?:(.*)$/s.exec(entry);
  if (!m) throw bad("expected LEAF[,SUBLEAF]:REG=BITS");
  const leaf = parseCpuidNumber(m[1]!.trim());
  const subleaf = m[2] === undefined ? undefined : parseCpuidNumber(m[2].trim());
  if (leaf === undefined || (m[2] !== undefined && subleaf === undefined)) throw bad('invalid leaf number');
  const leafName = leaf >= 0x80000000 ? `0x${leaf.toString(16)}` : String(leaf);
  // Leaf 7 only has sub-leaves; xend wrote it without one for sub-leaf 0.
  const leafKey = leaf === 7 ? `7:${subleaf ?? 0}` : subleaf === undefined ? leafName : `${leafName}:${subleaf}`;
  for (const part of m[3]!.split(',')) {
    const rm = /^\s*(e[abcd]x)=([01xks]{32})$/.exec(part);
    if (!rm) throw bad(`'${part}' is not REG=<32 characters of 0, 1, x, k, s>`);
    const reg = rm[1] as CpuidRegister;
    const bits = rm[2]!;
    const names = CPUID_FLAGS[`${leafKey}/${reg}`] ?? {};
    for (let i = 0; i < 32; i++) {
      const c = bits[31 - i]!;
      if (c === 'x') continue;
      const name = names[i];
      if (name === undefined) {
        throw xlError('CONFIG_UNSUPPORTED', `cpuid entry '${entry}': bit ${i} of ${reg} has no feature name libvirt could express`);
      }
      addCpuFeature(cpu, libxlToLibvirtFeature(name), CPUID_POLICIES[c]!);
    }
  }
}

function parseCpuid(conf: ConfFile, dom: Domain): void {
  const v = confGet(conf, 'cpuid');
  if (v === undefined) return;
  if (v.type === 'string') {
    parseLibxlCpuid(ensurePassthroughCpu(dom), v.value);
    return;
  }
  if (v.type === 'list') {
    const cpu = ensurePassthroughCpu(dom);
    for (const item of v.value) {
      if (item.type !== 'string') throw xlError('CONF_SYNTAX', "cpuid list entries must be strings");
      parseXendCpuid(cpu, item.value);
    }
    return;
  }
  throw xlError('CONF_SYNTAX', "expected a string or a list of strings for 'cpuid' parameter");
}

// ---------------------------------------------------------------------------------------
// vNUMA (xenParseXLVnuma)
// ---------------------------------------------------------------------------------------

const LOCAL_DISTANCE = 10;
const REMOTE_DISTANCE = 20;
const MAX_DISTANCE = 255;

function checkDistance(node: number, sibling: number, value: number): void {
  if (value < LOCAL_DISTANCE || value > MAX_DISTANCE) {
    throw xlError('CONFIG_UNSUPPORTED', `Distance value of ${value} is not in valid range`);
  }
  if (value === LOCAL_DISTANCE && node !== sibling) {
    throw xlError('CONFIG_UNSUPPORTED', `'value' ${value} is invalid for non-local node ${sibling}`);
  }
  if (value !== LOCAL_DISTANCE && node === sibling) {
    throw xlError('CONFIG_UNSUPPORTED', `'value' ${value} is invalid for local node ${node}`);
  }
}

/** s.split(','), which V8 runs as a runtime call: the indexOf loop costs half as much. */
function splitCommas(s: string): string[] {
  const out: string[] = [];
  for (let from = 0; ;) {
    const comma = s.indexOf(',', from);
    if (comma === -1) {
      out.push(s.slice(from));
      return out;
    }
    out.push(s.slice(from, comma));
    from = comma + 1;
  }
}

function parseVnode(items: ConfValue[], index: number, nodeCount: number): { cell: NumaCell; vcpus: number } {
  let pnode = -1;
  let cpus: number[] | undefined;
  let kib = 0;
  let distances: NumaCell['distances'];
  for (const item of items) {
    // libvirt reads a vnode's strings up to the first item that is not one.
    if (item.type !== 'string') break;
    const str = item.value;
    const eq = str.lastIndexOf('=');
    if (eq === -1) throw xlError('INTERNAL_ERROR', `vnuma vnode invalid format '${str}'`);
    const data = str.slice(eq + 1);
    if (data === '') continue;
    if (str.startsWith('pnode')) {
      const id = parseUnsigned(data);
      if (id === undefined || id >= nodeCount) {
        throw xlError('CONFIG_UNSUPPORTED', `vnuma vnode ${index} contains invalid pnode value '${data}'`);
      }
      pnode = id;
    } else if (str.startsWith('size')) {
      const mib = parseUnsigned(data);
      if (mib === undefined) throw xlError('CONF_SYNTAX', `vnuma vnode ${index} has an invalid size '${data}'`);
      kib = mib * 1024;
    } else if (str.startsWith('vcpus')) {
      cpus = parseCpuset(data, 'vcpus');
    } else if (str.startsWith('vdistances')) {
      const values = splitCommas(data);
      if (values.length !== nodeCount) {
        throw xlError('CONFIG_UNSUPPORTED',
          `vnuma pnode ${pnode} configured '${str}' (count ${values.length}) doesn't fit the number of specified vnodes ${nodeCount}`);
      }
      distances = values.map((v, sibling) => {
        const value = parseUnsigned(v);
        if (value === undefined) throw xlError('CONF_SYNTAX', `vnuma vnode ${index} has an invalid distance '${v}'`);
        checkDistance(index, sibling, value);
        return { id: sibling, value };
      });
    } else {
      throw xlError('CONF_SYNTAX', `Invalid vnuma configuration for vnode ${index}`);
    }
  }
  if (pnode < 0 || cpus === undefined || kib === 0) {
    throw xlError('CONF_SYNTAX', `Incomplete vnuma configuration for vnode ${index}`);
  }
  const cell: NumaCell = { id: index, cpus: formatCpuset(cpus), memory: kib };
  if (distances) cell.distances = distances;
  return { cell, vcpus: cpus.length };
}

function parseVnuma(conf: ConfFile, dom: Domain): void {
  const list = confGet(conf, 'vnuma');
  if (list?.type !== 'list') return;
  // The node count is the number of leading sub-lists.
  let nodeCount = 0;
  while (nodeCount < list.value.length && list.value[nodeCount]!.type === 'list') nodeCount++;
  if (nodeCount === 0) throw xlError('INTERNAL_ERROR', 'Cannot set an empty mem_nodes set');

  let vcpus = 0;
  const cells = list.value.map((vnode, index) => {
    const parsed = parseVnode(vnode.type === 'list' ? vnode.value : [], index, nodeCount);
    vcpus += parsed.vcpus;
    return parsed.cell;
  });
  if (dom.vcpu.count < vcpus) {
    throw xlError('CONFIG_UNSUPPORTED',
      `vnuma configuration contains ${vcpus} vcpus, which is greater than ${dom.vcpu.count} maxvcpus`);
  }
  // libvirt gives the guest a fresh CPU definition carrying the NUMA cells, replacing a
  // nested-HVM one made from `nestedhvm` (cpuid, read later, adds to this one).
  dom.cpu = { features: [], numa: cells };
}

// ---------------------------------------------------------------------------------------
// Xenbus limits
// ---------------------------------------------------------------------------------------

/** xl always gets a xenbus controller here; max_event_channels / max_grant_frames tune it. */
function parseXenbusLimits(conf: ConfFile, dom: Domain): void {
  let xenbus = dom.devices.controllers.find((c) => c.type === 'xenbus');
  if (!xenbus) {
    xenbus = { type: 'xenbus', index: 0 };
    dom.devices.controllers.push(xenbus);
  }
  const events = getULong(conf, 'max_event_channels', 0);
  if (events > 0) xenbus.maxEventChannels = events;
  const frames = getULong(conf, 'max_grant_frames', 0);
  if (frames > 0) xenbus.maxGrantFrames = frames;
}

// ---------------------------------------------------------------------------------------
// Disks: xl-disk-configuration(5), as Xen's libxlutil reads it
// ---------------------------------------------------------------------------------------

type XlDiskFormat = 'raw' | 'qcow' | 'qcow2' | 'vhd' | 'empty' | 'qed';
type XlDiskBackend = 'phy' | 'tap' | 'qdisk' | 'standalone';

/** What xlu_disk_parse() fills in, as far as libvirt uses it. */
export interface XlDiskSpec {
  target?: string;
  format: XlDiskFormat;
  vdev: string;
  backend?: XlDiskBackend;
  readwrite: boolean;
  cdrom: boolean;
  script?: string;
}

const DISK_FORMATS: ReadonlyMap<string, XlDiskFormat> = new Map([
  ['', 'raw'], ['raw', 'raw'], ['qcow', 'qcow'], ['qcow2', 'qcow2'], ['vhd', 'vhd'], ['empty', 'empty'], ['qed', 'qed'],
]);
const DISK_BACKENDS: readonly XlDiskBackend[] = ['phy', 'tap', 'qdisk', 'standalone'];

/** Option keywords with a value that libvirt has no use for but xl accepts. */
const IGNORED_DISK_KEYS = ['backend', 'specification', 'colo-host', 'colo-port', 'colo-export', 'active-disk', 'hidden-disk'];
/** Bare flags xl accepts (and libvirt ignores). */
const IGNORED_DISK_FLAGS = ['direct-io-safe', 'discard', 'no-discard', 'colo', 'no-colo', 'trusted', 'untrusted'];

/** The deprecated prefixes xl still reads (libxlutil's lexer). */
const DISK_PREFIXES = [
  'raw', 'qcow2', 'qcow', 'vhd', 'iscsi', 'nbd', 'enbd', 'drbd', 'tapdisk', 'tap2', 'tap', 'aio', 'ioemu', 'file', 'phy',
];

const isDiskBlank = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a;
const isLowerAlnum = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);

/**
 * Where a prefix word starting at `pos` ends: the position of the ':' after a lower-case
 * letter and more lower-case letters or digits, or -1 when the item does not start so.
 */
function prefixWordEnd(spec: string, pos: number): number {
  const first = spec.charCodeAt(pos);
  if (!(first >= 0x61 && first <= 0x7a)) return -1;
  let end = pos + 1;
  while (end < spec.length && isLowerAlnum(spec.charCodeAt(end))) end++;
  return spec.charCodeAt(end) === 0x3a ? end : -1;
}

/**
 * The state of reading one xl disk specification (see parseXlDiskSpec): a class rather than
 * nine closures over shared locals, which were made anew for every disk of every conversion.
 */
class DiskSpecReader {
  // Fields are `declare`d and set in the constructor: V8 (as in Node 20) does not inline `new`
  // for a class with field initialisers.
  declare readonly spec: string;
  declare target: string | undefined;
  declare format: XlDiskFormat | undefined;
  declare vdev: string | undefined;
  declare backend: XlDiskBackend | undefined;
  declare readwrite: boolean;
  declare accessSet: boolean;
  declare cdrom: boolean;
  declare hadPrefix: boolean;
  declare script: string | undefined;

  constructor(spec: string) {
    this.spec = spec;
    this.target = undefined;
    this.format = undefined;
    this.vdev = undefined;
    this.backend = undefined;
    this.readwrite = true;
    this.accessSet = false;
    this.cdrom = false;
    this.hadPrefix = false;
    this.script = undefined;
  }

  fail(message: string, near?: string): never {
    const where = near === undefined ? '' : `: near \`${near}'`;
    throw xlError('CONF_SYNTAX', `config parsing error in disk specification: ${message}${where} in \`${this.spec}'`);
  }

  setFormat(s: string): void {
    const f = DISK_FORMATS.get(s);
    if (f === undefined) this.fail('unknown value for format', s);
    if (this.format !== undefined && this.format !== f) this.fail('format respecified', s);
    this.format = f;
  }

  setAccess(s: string): void {
    if (s === 'r' || s === 'ro') this.readwrite = false;
    else if (s === 'rw' || s === 'w' || s === '') this.readwrite = true;
    else this.fail('unknown value for access', s);
  }

  setBackend(s: string): void {
    if (!(DISK_BACKENDS as readonly string[]).includes(s)) this.fail('unknown value for backendtype', s);
    if (this.backend !== undefined && this.backend !== s) this.fail('backend respecified', s);
    this.backend = s as XlDiskBackend;
  }

  // A string may be given once; an empty one may be given again.
  saveTarget(s: string): void {
    if (this.target) this.fail('target respecified', s);
    this.target = s;
  }

  saveVdev(s: string): void {
    if (this.vdev) this.fail('vdev respecified', s);
    this.vdev = s;
  }

  /** "hdc:cdrom" / "hda:disk": a vdev carrying the device type (xend syntax). */
  vdevWithType(s: string): boolean {
    const colon = s.lastIndexOf(':');
    if (colon === -1) return false;
    this.saveVdev(s.slice(0, colon));
    const type = s.slice(colon + 1);
    if (type === 'cdrom') this.cdrom = true;
    else if (type === 'disk') this.cdrom = false;
    else this.fail('unknown deprecated type', type);
    return true;
  }

  positional(item: string): void {
    // target, format, vdev, access, in that order.
    if (this.target === undefined) {
      this.saveTarget(item);
    } else if (!this.hadPrefix && this.format === undefined) {
      if (this.target === '' && this.vdevWithType(item)) this.format = 'empty';
      else this.setFormat(item);
    } else if (this.vdev === undefined) {
      if (!this.vdevWithType(item)) this.saveVdev(item);
    } else if (!this.accessSet) {
      this.accessSet = true;
      this.setAccess(item);
    } else {
      this.fail('too many positional parameters', item);
    }
  }

  /** The item spec[start, end) is `key=value`; it is sliced whole only for an error message. */
  keyword(start: number, end: number, key: string, value: string): void {
    switch (key) {
      case 'format': this.setFormat(value); break;
      case 'vdev': this.saveVdev(value); break;
      case 'access': this.setAccess(value); break;
      case 'backendtype': this.setBackend(value); break;
      case 'script': this.script = value; break;
      case 'devtype':
        if (value === 'cdrom') this.cdrom = true;
        else if (value === 'disk') this.cdrom = false;
        else this.fail('unknown value for type', this.spec.slice(start, end));
        break;
      default:
        if (IGNORED_DISK_KEYS.includes(key) || (key === 'grant_usage' && (value === '0' || value === '1'))) break;
        // An unknown lower-case key is reported as such; anything else is not xl syntax.
        if (/^[a-z][-a-z0-9]*$/.test(key) && value !== '') this.fail('unknown parameter', this.spec.slice(start, end));
        this.fail('bad disk syntax', this.spec.slice(start, end));
    }
  }

  read(): XlDiskSpec {
    const spec = this.spec;
    let pos = 0;
    // The first ':' at or after pos (-1: none left): without one ahead there is no prefix to
    // look for, which spares the word scan for every item of the usual key=value specs.
    let nextColon = spec.indexOf(':');
    // The first '=' at or after the current item (-1: none left).
    let nextEq = spec.indexOf('=');
    while (pos < spec.length) {
      // Blanks before a parameter are ignored.
      while (pos < spec.length && isDiskBlank(spec.charCodeAt(pos))) pos++;
      if (pos >= spec.length) break;

      if (spec.startsWith('target=', pos)) {
        // target= takes the rest of the string, commas included (minus one trailing comma).
        this.saveTarget(spec.slice(pos + 'target='.length, spec.endsWith(',') ? spec.length - 1 : spec.length));
        break;
      }
      // A word of [a-z0-9] right before a ':' is one of xend's "FORMAT:", "SCRIPT:" and
      // "DRIVER:" prefixes in front of the target, or an unknown one.
      if (nextColon !== -1 && nextColon < pos) nextColon = spec.indexOf(':', pos);
      const word = nextColon === -1 ? -1 : prefixWordEnd(spec, pos);
      if (word !== -1) {
        const name = spec.slice(pos, word);
        if (DISK_PREFIXES.includes(name)) {
          this.hadPrefix = true;
          if (name === 'raw' || name === 'qcow' || name === 'qcow2' || name === 'vhd') this.setFormat(name);
          else if (name === 'iscsi' || name === 'nbd' || name === 'enbd' || name === 'drbd') this.script = `block-${name}`;
          pos = word + 1;
          continue;
        }
        // "name:x..." with an alphanumeric x is a plain item (a path or value with a colon).
        if (word + 1 >= spec.length || !isLowerAlnum(spec.charCodeAt(word + 1))) {
          this.fail('unknown deprecated disk prefix', spec.slice(pos));
        }
      }

      const start = pos;
      const comma = spec.indexOf(',', start);
      const end = comma === -1 ? spec.length : comma;
      pos = comma === -1 ? spec.length : comma + 1;
      // key=value items, nearly all of them, are sliced into key and value only. The next '='
      // is looked for again only once passed, so that items without one cannot each scan the
      // rest of the string.
      if (nextEq !== -1 && nextEq < start) nextEq = spec.indexOf('=', start);
      const eq = nextEq < end ? nextEq : -1;
      if (eq !== -1) {
        this.keyword(start, end, spec.slice(start, eq), spec.slice(eq + 1, end));
        continue;
      }
      const item = spec.slice(start, end);
      if (item === 'cdrom') this.cdrom = true;
      else if (!IGNORED_DISK_FLAGS.includes(item)) this.positional(item);
    }

    let format = this.format ?? 'raw';
    if (this.cdrom) {
      this.readwrite = false;
      if (!this.target) format = 'empty';
    }
    if (this.vdev === undefined) this.fail('no vdev specified');
    if (this.target === undefined && !this.cdrom) this.fail('no target specified (and device not removable)');

    const result: XlDiskSpec = { format, vdev: this.vdev, readwrite: this.readwrite, cdrom: this.cdrom };
    if (this.target !== undefined) result.target = this.target;
    if (this.backend !== undefined) result.backend = this.backend;
    if (this.script !== undefined) result.script = this.script;
    return result;
  }
}

/**
 * Parses one xl disk specification: comma-separated key=value pairs, flags and positional
 * parameters (target, format, vdev, access), plus xend's deprecated "phy:"/"tap:aio:"...
 * prefixes and "hdc:cdrom" vdevs. Errors use libxlutil's wording and quote the spec.
 */
export function parseXlDiskSpec(spec: string): XlDiskSpec {
  return new DiskSpecReader(spec).read();
}

/**
 * "rbd:POOL/IMAGE[@SNAP][:opt=val...]" (virStorageSourceParseRBDColonString): monitors come
 * from mon_host (separated by "\;", "\," or "\ ", ports after "\:"), the user from id=.
 */
function parseRbdSource(str: string): NonNullable<DiskDevice['source']> {
  // The conf file doubles the backslashes that escape rbd's separators.
  const s = str.replace(/\\\\/g, '\\').slice('rbd:'.length);
  const colon = s.indexOf(':');
  let name = colon === -1 ? s : s.slice(0, colon);
  const options = colon === -1 ? undefined : s.slice(colon + 1);
  const at = name.indexOf('@');
  if (at !== -1) name = name.slice(0, at);
  const source: NonNullable<DiskDevice['source']> = { protocol: 'rbd', name, hosts: [] };
  if (options === undefined) return source;

  // Options end at an unescaped ':'.
  const opts: string[] = [];
  let cur = '';
  for (let i = 0; i < options.length; i++) {
    const c = options[i]!;
    if (c === '\\' && i + 1 < options.length) {
      cur += c + options[++i]!;
    } else if (c === ':') {
      opts.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  opts.push(cur);

  for (const opt of opts) {
    if (opt.startsWith('id=')) {
      if (source.auth) throw xlError('INTERNAL_ERROR', `duplicate 'id' found in '${str}'`);
      source.auth = { username: opt.slice(3), secretType: 'ceph' };
    } else if (opt.startsWith('mon_host=')) {
      const hosts = opt.slice('mon_host='.length).split(/\\[,; ]/);
      for (const h of hosts) source.hosts!.push(parseRbdHost(h, str));
    }
  }
  return source;
}

function parseRbdHost(hostport: string, str: string): { name: string; port?: number } {
  let host = hostport;
  let port: string | undefined;
  const bracket = host.indexOf(']');
  if (bracket !== -1) {
    // [IPv6]\:port
    port = host.length > bracket + 3 ? host.slice(bracket + 3) : undefined;
    host = host.slice(1, bracket);
  } else {
    const sep = host.indexOf('\\:');
    if (sep !== -1) {
      port = host.slice(sep + 2);
      host = host.slice(0, sep);
    }
  }
  const result: { name: string; port?: number } = { name: host.split('\\:').join(':') };
  if (port !== undefined) {
    const n = parseUnsigned(port);
    if (n === undefined || n > 65535) throw xlError('INTERNAL_ERROR', `failed to parse port number '${port}' in '${str}'`);
    if (n !== 0) result.port = n;
  }
  return result;
}

const FORMAT_TYPES: Record<XlDiskFormat, string | undefined> = {
  raw: 'raw', qcow: 'qcow', qcow2: 'qcow2', vhd: 'vhd', qed: 'qed', empty: undefined,
};

/** The libvirt disk for one xl disk specification (xenParseXLDisk). */
function xlDiskToDomain(spec: XlDiskSpec, hvm: boolean): DiskDevice {
  const disk: DiskDevice = { type: 'file', device: 'disk', target: { dev: spec.vdev } };
  // rbd images stay network disks whatever backend drives them.
  const network = spec.target?.startsWith('rbd:') ?? false;
  if (network) {
    disk.type = 'network';
    disk.source = parseRbdSource(spec.target!);
  } else if (spec.target) {
    disk.source = { path: spec.target };
  }
  if (!spec.readwrite) disk.readonly = true;

  if (spec.cdrom) {
    if (!network) disk.type = 'file';
    disk.device = 'cdrom';
    disk.driver = spec.target ? { name: 'qemu', type: 'raw' } : { name: 'qemu' };
  } else {
    const type = FORMAT_TYPES[spec.format];
    switch (spec.backend) {
      case undefined:
      case 'qdisk':
        disk.driver = { name: 'qemu' };
        if (!network) disk.type = 'file';
        break;
      case 'tap':
        disk.driver = { name: 'tap' };
        if (!network) disk.type = 'file';
        break;
      case 'phy':
        disk.driver = { name: 'phy' };
        if (!network) disk.type = 'block';
        break;
      default:
        throw xlError('CONFIG_UNSUPPORTED', `disk backend not supported: ${spec.backend}`);
    }
    if (type !== undefined) disk.driver.type = type;
  }

  if (spec.vdev.startsWith('xvd') || !hvm) disk.target.bus = 'xen';
  else if (spec.vdev.startsWith('sd')) disk.target.bus = 'scsi';
  else disk.target.bus = 'ide';
  return disk;
}

function parseDisks(conf: ConfFile, dom: Domain): void {
  const list = confGet(conf, 'disk');
  // As in libvirt, a `disk` that is not a list, and items that are not strings, are ignored.
  if (list?.type !== 'list') return;
  for (const item of list.value) {
    if (item.type !== 'string') continue;
    dom.devices.disks.push(xlDiskToDomain(parseXlDiskSpec(item.value), dom.os.type === 'hvm'));
  }
}

// ---------------------------------------------------------------------------------------
// SPICE, USB, channels, device model arguments
// ---------------------------------------------------------------------------------------

function parseSpice(conf: ConfFile, dom: Domain): void {
  if (dom.os.type !== 'hvm' || !getBool(conf, 'spice', false)) return;
  const g: GraphicsDevice = { type: 'spice', listens: [{ type: 'address' }] };
  const host = getStr(conf, 'spicehost');
  if (host !== undefined) g.listens[0]!.address = host;
  const tlsPort = getULong(conf, 'spicetls_port', 0);
  const port = getULong(conf, 'spiceport', 0);
  if (tlsPort) g.tlsPort = tlsPort;
  if (port) g.port = port;
  g.autoport = !tlsPort && !port ? 'yes' : 'no';
  if (!getBool(conf, 'spicedisable_ticketing', false)) {
    const passwd = getStr(conf, 'spicepasswd');
    if (passwd === undefined) throw xlError('INTERNAL_ERROR', 'config value spicepasswd was missing');
    g.passwd = passwd;
  }
  g.mouseMode = getBool(conf, 'spiceagent_mouse', false) ? 'client' : 'server';
  g.clipboardCopypaste = getBool(conf, 'spice_clipboard_sharing', false) ? 'yes' : 'no';
  // SPICE is the guest's only display, whatever vnc/sdl said.
  dom.devices.graphics = [g];
}

const USB_INPUTS: Record<string, InputDevice['type']> = { tablet: 'tablet', mouse: 'mouse', keyboard: 'keyboard' };

/** usbdevice = "tablet" or a list of them (HVM only); other device names are ignored. */
function parseInputDevs(conf: ConfFile, dom: Domain): void {
  if (dom.os.type !== 'hvm') return;
  const v = confGet(conf, 'usbdevice');
  if (v === undefined) return;
  const items = v.type === 'list' ? v.value : [v];
  for (const item of items) {
    if (item.type !== 'string') throw xlError('INTERNAL_ERROR', 'config value usbdevice was malformed');
    const type = lookup(USB_INPUTS, item.value);
    if (type) dom.devices.inputs.push({ type, bus: 'usb' });
  }
}

/** usbdev = [ "hostbus=1,hostaddr=3" ]: host USB devices (numbers in hex, as libvirt reads them). */
function parseUsbDevs(conf: ConfFile, dom: Domain): void {
  const list = confGet(conf, 'usbdev');
  if (list?.type !== 'list') return;
  for (const item of list.value) {
    if (item.type !== 'string') continue;
    const opts = splitXlOptions(item.value);
    if (!opts) continue;
    let bus: number | undefined;
    let device: number | undefined;
    let skip = false;
    for (const { key, value } of opts) {
      if (key === 'hostbus') bus = parseCInt(value, 16);
      else if (key === 'hostaddr') device = parseCInt(value, 16);
      else continue;
      // A number libvirt cannot read drops the device, as in libvirt.
      if ((key === 'hostbus' ? bus : device) === undefined) skip = true;
    }
    if (skip) continue;
    if (bus === undefined || device === undefined) {
      throw xlError('CONF_SYNTAX', `usbdev '${item.value}' needs both hostbus= and hostaddr=`);
    }
    const hostdev: HostdevDevice = { mode: 'subsystem', type: 'usb', managed: 'no', usb: { bus, device } };
    dom.devices.hostdevs.push(hostdev);
  }
}

/** usbctrl = [ "type=qusb,version=2,ports=8" ]: only qemu's USB controllers have a libvirt model. */
function parseUsbControllers(conf: ConfFile, dom: Domain): void {
  const list = confGet(conf, 'usbctrl');
  if (list?.type !== 'list') return;
  for (const item of list.value) {
    if (item.type !== 'string') continue;
    const opts = splitXlOptions(item.value);
    if (!opts) continue;
    let version = 2;
    let ports = 8;
    let ok = true;
    for (const { key, value } of opts) {
      if (key === 'type') {
        if (!value.startsWith('qusb')) ok = false;
      } else if (key === 'version') {
        const n = parseCInt(value, 16);
        if (n === undefined) ok = false;
        else version = n;
      } else if (key === 'ports') {
        const n = parseCInt(value, 16);
        if (n === undefined) ok = false;
        else ports = n;
      }
    }
    if (!ok) continue;
    const index = dom.devices.controllers.filter((c) => c.type === 'usb').length;
    dom.devices.controllers.push({ type: 'usb', index, model: version === 1 ? 'qusb1' : 'qusb2', ports });
  }
}

/** channel = [ "connection=socket,path=/x,name=org.qemu.guest_agent.0" ] (pty or unix socket). */
function parseChannels(conf: ConfFile, dom: Domain): void {
  const list = confGet(conf, 'channel');
  if (list?.type !== 'list') return;
  for (const item of list.value) {
    if (item.type !== 'string') continue;
    const opts = splitXlOptions(item.value);
    if (!opts) continue;
    let connection: string | undefined;
    let name: string | undefined;
    let path: string | undefined;
    for (const { key, value } of opts) {
      // The last connection= counts, but the first name= and path=.
      if (key === 'connection') connection = value;
      else if (key === 'name') name ??= value;
      else if (key === 'path') path ??= value;
    }
    const channel: CharDevice = { source: { type: 'pty' }, target: { type: 'xen' } };
    if (connection?.startsWith('socket')) {
      channel.source = { type: 'unix', mode: 'bind' };
      if (path !== undefined) channel.source.path = path;
    } else if (!connection?.startsWith('pty')) {
      throw xlError('CONFIG_UNSUPPORTED',
        `channel '${item.value}': connection must be pty or socket, not '${connection ?? ''}'`);
    }
    if (name !== undefined) channel.target.name = name;
    dom.devices.channels.push(channel);
  }
}

/** qemu's floppy options, with the drive each one fills. */
const FLOPPY_OPTIONS: Readonly<Record<string, FloppyDrive>> = { '-fda': 'fda', '--fda': 'fda', '-fdb': 'fdb', '--fdb': 'fdb' };

/**
 * device_model_args = [ "-debugcon", ... ]: extra qemu arguments (libvirt's xen:commandline).
 * xl.cfg(5) has no floppy key, so HVM floppies travel here as "-fda", PATH (see
 * formatDeviceModelArgs); for HVM guests such a pair becomes a floppy disk again, after the
 * `disk` list, and everything else stays a qemu argument. A PV guest's qemu has no floppy
 * controller, so its arguments are all kept as given.
 */
function parseDeviceModelArgs(conf: ConfFile, dom: Domain): void {
  const list = confGet(conf, 'device_model_args');
  if (list?.type !== 'list') return;
  const args = list.value.flatMap((v) => (v.type === 'string' ? [v.value] : []));
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const drive = dom.os.type === 'hvm' ? lookup(FLOPPY_OPTIONS, args[i]!) : undefined;
    if (drive === undefined || i + 1 >= args.length) {
      rest.push(args[i]!);
      continue;
    }
    const path = args[++i]!;
    if (dom.devices.disks.some((d) => d.device === 'floppy' && d.target.dev === drive)) {
      throw xlError('CONF_SYNTAX', `device_model_args gives floppy drive ${drive} more than once ('${args[i - 1]}', '${path}')`);
    }
    dom.devices.disks.push(floppyDisk(drive, path, 'qemu'));
  }
  if (rest.length) dom.xenCommandline = rest;
}

// ---------------------------------------------------------------------------------------
// Parsing entry points
// ---------------------------------------------------------------------------------------

/** xl configuration -> domain model (before postParse), as libvirt's xenParseXL builds it. */
export function xlToDomain(file: ConfFile): Domain {
  const conf = indexConf(file);
  const dom = newXenDomain(conf);
  parseConfigCommon(conf, dom, FORMAT);
  parseOs(conf, dom);
  parseVnuma(conf, dom);
  parseXenbusLimits(conf, dom);
  parseCpuid(conf, dom);
  parseDisks(conf, dom);
  parseSpice(conf, dom);
  parseInputDevs(conf, dom);
  parseUsbDevs(conf, dom);
  parseUsbControllers(conf, dom);
  parseChannels(conf, dom);
  parseDeviceModelArgs(conf, dom);
  return dom;
}

/** xl configuration text -> domain model (before postParse). */
export function xlFromNative(text: string, fileName?: string): Domain {
  return xlToDomain(parseConf(text, fileName));
}

// ---------------------------------------------------------------------------------------
// Formatting (xenFormatXL)
// ---------------------------------------------------------------------------------------

const setInt = (out: ConfFile, key: string, n: number) => confSet(out, key, confNumber(n));
const setStr = (out: ConfFile, key: string, s: string) => confSet(out, key, confString(s));

const BOOT_LETTERS: ReadonlyMap<string, string> = new Map([['fd', 'a'], ['cdrom', 'd'], ['network', 'n'], ['hd', 'c']]);

function formatOs(dom: Domain, out: ConfFile): void {
  const os = dom.os;
  if (os.type === 'hvm') {
    setStr(out, 'builder', 'hvm');
    if (os.loader?.type === 'pflash') setStr(out, 'bios', 'ovmf');
    const slic = os.acpiTables?.find((t) => t.type === 'slic');
    if (slic) setStr(out, 'acpi_firmware', slic.path);
    if (os.kernel !== undefined) setStr(out, 'kernel', os.kernel);
    if (os.initrd !== undefined) setStr(out, 'ramdisk', os.initrd);
    if (os.cmdline !== undefined) setStr(out, 'cmdline', os.cmdline);
    const boot = os.boot.slice(0, MAX_BOOT_DEVICES).map((b) => BOOT_LETTERS.get(b) ?? 'c').join('');
    setStr(out, 'boot', boot === '' ? 'c' : boot);
    if (dom.cpu?.mode === 'host-passthrough') {
      const noHwVirt = dom.cpu.features.some((f) =>
        (f.policy === 'disable' || f.policy === 'forbid') && (f.name === 'vmx' || f.name === 'svm'));
      setInt(out, 'nestedhvm', noHwVirt ? 0 : 1);
    }
    return;
  }
  if (os.type === 'xenpvh') setStr(out, 'type', 'pvh');
  if (dom.bootloader !== undefined) setStr(out, 'bootloader', dom.bootloader);
  if (dom.bootloaderArgs !== undefined) setStr(out, 'bootargs', dom.bootloaderArgs);
  if (os.kernel !== undefined) setStr(out, 'kernel', os.kernel);
  if (os.initrd !== undefined) setStr(out, 'ramdisk', os.initrd);
  if (os.cmdline !== undefined) setStr(out, 'cmdline', os.cmdline);
}

const CPUID_LETTERS: Record<CpuFeature['policy'], string> = {
  force: '1', require: '1', optional: 'x', disable: '0', forbid: '0',
};

/** Only host-passthrough CPUs have an xl spelling; vmx/svm are nestedhvm's business. */
function formatCpuid(dom: Domain, out: ConfFile): void {
  const cpu = dom.cpu;
  if (!cpu || cpu.mode !== 'host-passthrough') return;
  const pairs = cpu.features
    .map((f) => ({ name: libvirtToLibxlFeature(f.name), policy: f.policy }))
    .filter((f) => f.name !== 'vmx' && f.name !== 'svm')
    .map((f) => `${f.name}=${lookup(CPUID_LETTERS, f.policy) ?? '1'}`);
  if (pairs.length) setStr(out, 'cpuid', ['host', ...pairs].join(','));
}

/** Distance between two cells: as given, else mirrored, else the platform defaults. */
function numaDistance(cells: readonly NumaCell[], from: number, to: number): number {
  const given = cells[from]?.distances?.find((d) => d.id === to)?.value;
  if (given) return given;
  const mirrored = cells[to]?.distances?.find((d) => d.id === from)?.value;
  if (mirrored) return mirrored;
  return from === to ? LOCAL_DISTANCE : REMOTE_DISTANCE;
}

function formatVnuma(dom: Domain, out: ConfFile): void {
  const cells = dom.cpu?.numa ?? [];
  if (!cells.length) return;
  const vnodes = cells.map((cell, i) => confList([
    confString(`pnode=${i}`),
    confString(`size=${Math.floor(cell.memory / 1024)}`),
    confString(`vcpus=${formatCpuset(parseCpuset(cell.cpus, 'cpus'))}`),
    confString(`vdistances=${cells.map((_, j) => numaDistance(cells, i, j)).join(',')}`),
  ]));
  confSet(out, 'vnuma', confList(vnodes));
}

function formatXenbusLimits(dom: Domain, out: ConfFile): void {
  for (const c of dom.devices.controllers) {
    if (c.type !== 'xenbus') continue;
    if (c.maxEventChannels) setInt(out, 'max_event_channels', c.maxEventChannels);
    if (c.maxGrantFrames) setInt(out, 'max_grant_frames', c.maxGrantFrames);
  }
}

const XL_FORMATS: ReadonlyMap<string, string> = new Map([['raw', 'raw'], ['vhd', 'xvhd'], ['qcow', 'qcow'], ['qcow2', 'qcow2'], ['qed', 'qed']]);
/** libvirt's driver names -> xl's backendtype. */
const XL_BACKENDS: ReadonlyMap<string, string> = new Map([['qemu', 'qdisk'], ['file', 'qdisk'], ['tap', 'tap'], ['phy', 'phy']]);

/** "rbd:POOL/IMAGE:auth_supported=none:mon_host=H\\:PORT\\;..." (xenFormatXLDiskSrcNet). */
function formatRbdSource(source: NonNullable<DiskDevice['source']>): string {
  const name = source.name ?? '';
  const slash = name.indexOf('/');
  const image = slash === -1 ? name : name.slice(slash + 1);
  if (image.includes(':')) {
    throw xlError('CONFIG_UNSUPPORTED', `':' not allowed in RBD source volume name '${image}'`);
  }
  let s = `rbd:${name}:auth_supported=none`;
  const hosts = source.hosts ?? [];
  if (hosts.length) {
    s += ':mon_host=' + hosts.map((h) => {
      // A name with ':' is an IPv6 address: bracketed, its colons escaped for rbd.
      const host = h.name.includes(':') ? `[${h.name.replace(/:/g, '\\:')}]` : h.name;
      return h.port ? `${host}\\\\:${h.port}` : host;
    }).join('\\\\;');
  }
  return s;
}

function formatDiskSource(disk: DiskDevice): string | undefined {
  switch (disk.type) {
    case 'block':
    case 'file':
    case 'dir':
      return disk.source?.path || undefined;
    case 'network': {
      const protocol = disk.source?.protocol;
      if (protocol !== 'rbd') {
        throw new VirtError('NO_SUPPORT', `Unsupported network block protocol '${protocol ?? 'none'}'`, ErrorDomain.XENXL);
      }
      return formatRbdSource(disk.source!);
    }
    default:
      throw xlError('INTERNAL_ERROR', 'unsupported storage type for this code path');
  }
}

/** One disk in xl's key=value form; target= must come last as it takes the rest of the string. */
export function formatXlDisk(disk: DiskDevice): string {
  let s = `format=${XL_FORMATS.get(disk.driver?.type ?? '') ?? 'raw'}`;
  s += `,vdev=${disk.target.dev}`;
  s += `,access=${disk.readonly ? 'ro' : disk.shareable ? '!' : 'rw'}`;
  if (disk.transient) throw xlError('CONFIG_UNSUPPORTED', 'transient disks not supported yet');
  const driver = disk.driver?.name;
  if (driver !== undefined) {
    s += `,backendtype=${XL_BACKENDS.get(driver) ?? ''}`;
  }
  if (disk.device === 'cdrom') s += ',devtype=cdrom';
  const target = formatDiskSource(disk);
  if (target !== undefined) s += `,target=${target}`;
  return s;
}

/** Floppies are not `disk` entries: they go to qemu in device_model_args. */
function formatDisks(dom: Domain, out: ConfFile): void {
  const disks = dom.devices.disks.filter((d) => d.device !== 'floppy').map((d) => confString(formatXlDisk(d)));
  if (disks.length) confSet(out, 'disk', confList(disks));
}

function formatSpice(dom: Domain, out: ConfFile): void {
  const g = dom.devices.graphics[0];
  if (dom.os.type !== 'hvm' || g?.type !== 'spice') return;
  setInt(out, 'sdl', 0);
  setInt(out, 'vnc', 0);
  setInt(out, 'spice', 1);
  const listen = g.listens[0] ?? (g.listenAttr !== undefined ? { type: 'address', address: g.listenAttr } : undefined);
  if (listen?.address !== undefined) setStr(out, 'spicehost', listen.address);
  // An inactive definition with autoport has no fixed ports.
  const fixed = (p: number | undefined) => (g.autoport === 'yes' || p === undefined || p < 0 ? 0 : p);
  setInt(out, 'spiceport', fixed(g.port));
  setInt(out, 'spicetls_port', fixed(g.tlsPort));
  if (g.passwd !== undefined) {
    setInt(out, 'spicedisable_ticketing', 0);
    setStr(out, 'spicepasswd', g.passwd);
  } else {
    setInt(out, 'spicedisable_ticketing', 1);
  }
  if (g.mouseMode === 'server') setInt(out, 'spiceagent_mouse', 0);
  else if (g.mouseMode === 'client') {
    setInt(out, 'spiceagent_mouse', 1);
    // The client mouse mode needs the SPICE agent.
    setInt(out, 'spicevdagent', 1);
  }
  if (g.clipboardCopypaste === 'yes') {
    setInt(out, 'spice_clipboard_sharing', 1);
    setInt(out, 'spicevdagent', 1);
  }
}

/** usb = 1 plus usbdevice: one device as a plain string (Xen <= 4.2 compatible), more as a list. */
function formatInputDevs(dom: Domain, out: ConfFile): void {
  if (dom.os.type !== 'hvm') return;
  const names: string[] = [];
  for (const input of dom.devices.inputs) {
    if (input.bus !== 'usb') continue;
    setInt(out, 'usb', 1);
    const name = input.type === 'keyboard' ? 'keyboard' : input.type === 'mouse' || input.type === 'tablet' ? input.type : undefined;
    if (name) names.push(name);
  }
  if (names.length === 1) setStr(out, 'usbdevice', names[0]!);
  else if (names.length > 1) confSet(out, 'usbdevice', confList(names.map(confString)));
}

function formatUsbDevs(dom: Domain, out: ConfFile): void {
  const devs = dom.devices.hostdevs
    .filter((h) => h.mode === 'subsystem' && h.type === 'usb')
    .map((h) => confString(`hostbus=${(h.usb?.bus ?? 0).toString(16)},hostaddr=${(h.usb?.device ?? 0).toString(16)}`));
  if (devs.length) confSet(out, 'usbdev', confList(devs));
}

function formatUsbController(c: ControllerDevice): string {
  let s = '';
  if (c.model !== undefined) {
    if (c.model === 'qusb1') s += 'type=qusb,version=1,';
    else if (c.model === 'qusb2') s += 'type=qusb,version=2,';
    else throw xlError('CONFIG_UNSUPPORTED', `unsupported USB controller model '${c.model}' for xen-xl`);
  }
  if (c.ports !== undefined && c.ports >= 0) s += `ports=${c.ports.toString(16)}`;
  return s;
}

function formatUsbControllers(dom: Domain, out: ConfFile): void {
  const ctrls = dom.devices.controllers.filter((c) => c.type === 'usb').map((c) => confString(formatUsbController(c)));
  if (ctrls.length) confSet(out, 'usbctrl', confList(ctrls));
}

function formatChannel(channel: CharDevice): string {
  let s = 'connection=';
  switch (channel.source.type) {
    case 'pty':
      s += 'pty,';
      break;
    case 'unix':
      s += 'socket,';
      if (channel.source.path !== undefined) s += `path=${channel.source.path},`;
      break;
    default:
      throw xlError('CONFIG_UNSUPPORTED', `unsupported xen channel source type '${channel.source.type}'`);
  }
  // libvirt prints a missing name through printf's "(null)"; kept for identical output.
  return `${s}name=${channel.target.name ?? '(null)'}`;
}

function formatChannels(dom: Domain, out: ConfFile): void {
  const channels = dom.devices.channels.filter((c) => c.target.type === 'xen').map((c) => confString(formatChannel(c)));
  if (channels.length) confSet(out, 'channel', confList(channels));
}

/**
 * device_model_args: the HVM floppies as qemu's "-fda", PATH / "-fdb", PATH (libvirt drops
 * floppies; xl has no other spelling for them), then the xen:commandline arguments. A
 * floppy the command line already gives qemu is refused rather than given twice.
 */
function formatDeviceModelArgs(dom: Domain, out: ConfFile): void {
  const commandline = dom.xenCommandline ?? [];
  const args: string[] = [];
  for (const { drive, path } of hvmFloppies(dom, FORMAT)) {
    const clash = commandline.find((a) => lookup(FLOPPY_OPTIONS, a) === drive);
    if (clash !== undefined) {
      throw xlError('CONFIG_UNSUPPORTED', `floppy disk '${drive}' (${path}): the qemu command line already has '${clash}'`);
    }
    args.push(`-${drive}`, path);
  }
  args.push(...commandline);
  if (args.length) confSet(out, 'device_model_args', confList(args.map(confString)));
}

/** Domain model -> xl configuration, key for key as libvirt's xenFormatXL writes it. */
export function domainToXl(dom: Domain, opts: XenFormatOptions = {}): ConfFile {
  const out: ConfFile = { entries: [] };
  formatConfigCommon(dom, out, FORMAT, opts);
  formatOs(dom, out);
  formatCpuid(dom, out);
  formatVnuma(dom, out);
  formatXenbusLimits(dom, out);
  formatDisks(dom, out);
  formatSpice(dom, out);
  formatInputDevs(dom, out);
  formatUsbDevs(dom, out);
  formatUsbControllers(dom, out);
  formatChannels(dom, out);
  formatDeviceModelArgs(dom, out);
  return out;
}

/** Domain model -> xl configuration text. */
export function xlToNative(dom: Domain, opts: XenFormatOptions = {}): string {
  return formatConf(domainToXl(dom, opts));
}
