/**
 * From xl's failure output to a message a person can act on.
 *
 * xl reports through libxl's and libxc's loggers on stderr: `libxl: error: FILE:LINE:FUNC:
 * Domain N:TEXT`, `xc: error: panic: FILE:LINE: TEXT`, plus a few bare lines of its own. The
 * first error usually names the cause; the later ones narrate the cleanup ("Unable to destroy
 * guest", "Destruction of domain failed"). We recognise the causes users meet (memory, missing
 * files, name clashes, missing backends and firmware) and say what to do; anything else is
 * reported with xl's own words, never as "see the log".
 */
import { VirtError, type ErrorCodeName } from '../../errors.js';
import { ErrorDomain } from '../../errors.js';
import type { ExecResult } from './exec.js';

/** libvirt reports libxl failures in the LIBXL error domain. */
const D = ErrorDomain.LIBXL;

export interface XlFailureContext {
  /** What we were doing: 'start', 'shutdown', 'save' ... */
  op: string;
  /** The domain's name, when known. */
  name?: string;
  domid?: number;
  /** The command as run, for the message. */
  command: string;
  /** For start / restore: MiB the guest needs (its memory plus video RAM). */
  needMiB?: number;
  /** For start / restore: MiB the host has free, when the caller looked it up. */
  freeMiB?: number;
}

/** One meaningful line of xl's stderr. */
export interface XlErrorLine {
  source: 'libxl' | 'xc' | 'xl';
  /** the text after the FILE:LINE:FUNC: and Domain N: prefixes */
  text: string;
  raw: string;
}

/** Lines that only narrate libxl's cleanup after the real failure. */
const CLEANUP = [
  /Non-existant domain/i,
  /Unable to destroy guest/i,
  /Destruction of domain failed/i,
  /libxl__devices_destroy failed/i,
  /unable to remove device with path/i,
  /cannot \(re-\)build domain: -\d+/i,
  /^cannot make domain: -\d+/i,
];

/** The error lines of xl's stderr, prefixes stripped, cleanup noise last. */
export function errorLines(stderr: string): XlErrorLine[] {
  const out: XlErrorLine[] = [];
  for (const raw of stderr.split('\n').map((l) => l.trimEnd()).filter(Boolean)) {
    let m = /^libxl: error: (?:[\w.-]+:\d+:\w+: )?(?:Domain \d+:)?\s*(.*)$/.exec(raw);
    if (m) { out.push({ source: 'libxl', text: m[1]!.trim(), raw }); continue; }
    m = /^xc: error: (?:panic: )?(?:[\w.-]+:\d+: )?(.*?)(?:: Internal error)?$/.exec(raw);
    if (m) { out.push({ source: 'xc', text: m[1]!.trim(), raw }); continue; }
    // xl's own complaints (no logger prefix)
    if (/^(Error:|xl: |ERROR|Failed|failed|Unable|unable|cannot|Cannot|.*\bfailed\b|.* is an invalid domain identifier)/.test(raw)
      && !/^(Parsing config|Saving to|Loading new save file|Waiting for|Shutting down|Rebooting|xc: (info|progress|detail))/.test(raw)) {
      out.push({ source: 'xl', text: raw.replace(/^Error:\s*/, '').trim(), raw });
    }
  }
  const noisy = (l: XlErrorLine) => CLEANUP.some((re) => re.test(l.text));
  return [...out.filter((l) => !noisy(l)), ...out.filter(noisy)];
}

/**
 * True when xl failed. Some commands exit 0 after a libxl error (xl pause/unpause of a missing
 * domain), so by default an error line counts too; `create` and `restore` pass lenient=true,
 * since libxc reports non-fatal trouble there (a ramdisk it cannot gunzip is loaded as is).
 */
export function xlFailed(r: ExecResult, lenient = false): boolean {
  if (r.spawnError || r.timedOut) return true;
  if (r.code !== 0) return true;
  return !lenient && /^libxl: error/m.test(r.stderr);
}

const who = (c: XlFailureContext) => (c.name ? `domain '${c.name}'` : c.domid !== undefined ? `domain ${c.domid}` : 'the domain');

interface Rule {
  test: RegExp;
  code: ErrorCodeName;
  message: (m: RegExpExecArray, c: XlFailureContext) => string;
}

const RULES: Rule[] = [
  {
    test: /(can't allocate low memory|Out of memory|Cannot allocate memory|failed to get free memory|Not enough memory|xc_domain_claim_pages failed|claim.*fail)/i,
    code: 'OPERATION_FAILED',
    message: (_m, c) => {
      const need = c.needMiB !== undefined ? `${who(c)} needs ${c.needMiB} MiB` : `${who(c)} needs more memory than is free`;
      const free = c.freeMiB !== undefined ? `, the host has ${c.freeMiB} MiB free` : '';
      return `not enough free memory: ${need}${free}. Lower the guest's <memory>, stop other guests, ` +
        `or balloon Domain-0 down (xl mem-set 0 SIZE) to free memory`;
    },
  },
  {
    test: /Domain with name "([^"]+)" already exists/,
    code: 'OPERATION_FAILED',
    message: (m) => `a domain named '${m[1]}' is already running on this host (started outside xenvirt?): ` +
      `shut it down (xl shutdown ${m[1]}) or give this guest another name`,
  },
  {
    test: /failed to open file '([^']+)': No such file or directory/,
    code: 'OPERATION_FAILED',
    message: (m, c) => `cannot start ${who(c)}: '${m[1]}' does not exist in dom0 (check the <kernel>/<initrd> paths)`,
  },
  {
    test: /failed to read (BIOS|firmware|ROM) file/i,
    code: 'CONFIG_UNSUPPORTED',
    message: (_m, c) => `cannot start HVM ${who(c)}: Xen's HVM firmware (SeaBIOS/hvmloader ROMs) is not installed in dom0. ` +
      `Install the 'seabios' package (and 'qemu-system-xen' for the device model), or run the guest as PV/PVH`,
  },
  {
    test: /(device model|qemu-system-i386|qemu-dm)[^\n]*(No such file|not found|cannot execute|ENOENT)|spawn.*device model|failed to spawn qemu/i,
    code: 'CONFIG_UNSUPPORTED',
    message: (_m, c) => `cannot start ${who(c)}: it needs a device model (QEMU) and none is installed in dom0. ` +
      `Install 'qemu-system-xen', or run the guest as PV/PVH without emulated devices`,
  },
  {
    test: /(hvm|HVM).*(not supported|unavailable)|no HVM support|HVM guest support is unavailable/,
    code: 'CONFIG_UNSUPPORTED',
    message: (_m, c) => `cannot start HVM ${who(c)}: this Xen host has no HVM support (the CPU lacks VT-x/AMD-V, ` +
      `it is disabled in the firmware, or the host itself is a guest without nested virtualisation)`,
  },
  {
    test: /killing execution of (\S*\/scripts\/)?(block|vif-\w+|vif)\S* (add|remove|online|offline) because of timeout/,
    code: 'OPERATION_FAILED',
    message: (m, c) => `the '${m[2]}' hotplug script for ${who(c)} timed out in dom0: ` +
      (m[2] === 'block'
        ? 'check that the loop and xen-blkback modules are loaded (modprobe loop xen-blkback) and that /dev/stdin exists (the script locks through it)'
        : 'check that the xen-netback module is loaded (modprobe xen-netback) and that the bridge exists'),
  },
  {
    test: /unable to add device with path \S*\/backend\/(vbd|qdisk|vif)\//,
    code: 'OPERATION_FAILED',
    message: (m, c) => m[1] === 'vif'
      ? `cannot connect the network interface of ${who(c)}: the vif backend did not come up (is xen-netback loaded? does the bridge exist?)`
      : `cannot connect the disk of ${who(c)}: the block backend did not come up (are xen-blkback and loop loaded: modprobe xen-blkback loop?)`,
  },
  {
    test: /bootloader (failed|error)|Bootloader .*fail|pygrub.*(Error|error)|Unable to find partition containing kernel|Unable to find grub|Disk image does not exist/i,
    code: 'OPERATION_FAILED',
    message: (m, c) => `the bootloader could not boot ${who(c)}: ${m.input.trim()}. ` +
      `Check that the first disk holds a /boot/grub/grub.cfg (or extlinux.conf) naming a kernel that exists on it`,
  },
  {
    test: /Domain '([^']+)' does not exist|(\S+) is an invalid domain identifier|unable to get domain type for domid|No such process/,
    code: 'NO_DOMAIN',
    message: (_m, c) => `Domain not found: ${who(c)} is not running on this Xen host (it may have just shut down)`,
  },
  {
    test: /memory_static_max must be greater than or or equal to memory_dynamic_max/,
    code: 'INVALID_ARG',
    message: (_m, c) => `cannot lower the maximum memory of ${who(c)} below its current allocation: set the memory (setmem) lower first`,
  },
  {
    test: /Requested (\d+) VCPUs, however maxcpus is (\d+)/,
    code: 'INVALID_ARG',
    message: (m, c) => `${who(c)} can have at most ${m[2]} vcpus (it was started with that maximum); ${m[1]} requested`,
  },
  {
    test: /libxl_device_disk_safe_remove failed|Unable to remove vbd/i,
    code: 'OPERATION_FAILED',
    message: (_m, c) => `${who(c)} did not release the disk: the guest must close its block device first ` +
      `(unmount it inside the guest; a guest without a Xen block driver never does)`,
  },
  {
    test: /Getting domain sched credit: Invalid argument|sched_credit\w*_domain_set: .*Invalid argument/,
    code: 'OPERATION_INVALID',
    message: (_m, c) => `cannot set scheduler parameters of ${who(c)}: the domain does not run under that scheduler (see xl info: xen_scheduler)`,
  },
];

/** Build the VirtError for a failed xl call. */
export function xlError(r: ExecResult, c: XlFailureContext): VirtError {
  if (r.spawnError) {
    const what = r.spawnError.code === 'ENOENT'
      ? `'${c.command.split(' ')[0]}' is not installed (xl comes with the Xen tools: xen-utils / xen-tools)`
      : `cannot run '${c.command}': ${r.spawnError.message}`;
    return new VirtError('INTERNAL_ERROR', `internal error: cannot ${c.op} ${who(c)}: ${what}`, D);
  }
  if (r.timedOut) {
    return new VirtError('OPERATION_TIMEOUT',
      `Timed out during operation: cannot ${c.op} ${who(c)}: '${c.command}' did not finish in ${Math.round(r.ms / 1000)} s (the Xen toolstack may be stuck)`, D);
  }
  const lines = errorLines(r.stderr);
  const haystack = lines.map((l) => l.text).join('\n') + '\n' + r.stderr;
  for (const rule of RULES) {
    const m = rule.test.exec(haystack);
    if (m) return new VirtError(rule.code, prefix(rule.code) + rule.message(m, c), D);
  }
  const said = lines.slice(0, 3).map((l) => l.text).join('; ')
    || r.stderr.trim().split('\n').slice(-3).join('; ')
    || `exit status ${r.code ?? r.signal}`;
  return new VirtError('INTERNAL_ERROR', `internal error: cannot ${c.op} ${who(c)}: ${c.command} failed: ${said}`, D);
}

function prefix(code: ErrorCodeName): string {
  switch (code) {
    case 'OPERATION_FAILED': return 'operation failed: ';
    case 'CONFIG_UNSUPPORTED': return 'unsupported configuration: ';
    case 'INVALID_ARG': return 'invalid argument: ';
    case 'OPERATION_INVALID': return 'Requested operation is not valid: ';
    case 'NO_DOMAIN': return '';
    default: return 'internal error: ';
  }
}
