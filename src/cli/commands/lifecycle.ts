/**
 * Domain lifecycle: define, undefine, create, start, shutdown, reboot, destroy, suspend, resume,
 * save, restore, dump, managedsave, autostart. Messages and flag mapping follow virsh 9.0.
 */
import type { ArgValues, Command, CommandIo } from '../command.js';
import { VirtError } from '../../errors.js';
import { UndefineFlags } from '../../driver/connection.js';
import { readInput } from '../io.js';
import {
  BY_NAME, BY_UUID, connect, domainAction, domainArg, domainOption, flag, printExtra, withContext, withProgress,
} from './util.js';

const GROUP = 'Domain Management';

/** virDomainCreateFlags */
const StartFlags = { PAUSED: 1, AUTODESTROY: 2, BYPASS_CACHE: 4, FORCE_BOOT: 8, VALIDATE: 16 } as const;
/** virDomainSaveRestoreFlags */
const SaveFlags = { BYPASS_CACHE: 1, RUNNING: 2, PAUSED: 4 } as const;
/** virDomainCoreDumpFlags */
const DumpFlags = { CRASH: 1, LIVE: 2, BYPASS_CACHE: 4, RESET: 8, MEMORY_ONLY: 16 } as const;
/** virDomainShutdownFlagValues / virDomainRebootFlagValues share these bits. */
const SHUTDOWN_MODES: Record<string, number> = { acpi: 1, agent: 2, initctl: 4, signal: 8, paravirt: 16 };
const DEFINE_VALIDATE = 1;
const DESTROY_GRACEFUL = 1;

const fileOption = (help: string) => ({ name: 'file', type: 'string', positional: true, required: true, help }) as const;

export const define: Command = {
  name: 'define',
  group: GROUP,
  summary: "define (but don't start) a domain from an XML file",
  options: [
    fileOption('file containing an XML domain description'),
    { name: 'validate', type: 'bool', help: 'validate the XML against the schema' },
  ],
  async run(args, io) {
    const file = String(args.file);
    const xml = await readInput(file, io.stdin);
    const conn = await connect(io);
    const dom = await withContext(io, `Failed to define domain from ${file}`,
      () => conn.defineXml(xml, flag(args, 'validate') ? DEFINE_VALIDATE : 0));
    printExtra(io, `Domain '${dom.name}' defined from ${file}\n`);
  },
};

export const undefine: Command = {
  name: 'undefine',
  group: GROUP,
  summary: 'undefine a domain',
  options: [
    domainOption(),
    { name: 'managed-save', type: 'bool', help: 'remove domain managed state file' },
    { name: 'snapshots-metadata', type: 'bool', help: 'remove all domain snapshot metadata (vm must be inactive)' },
    { name: 'nvram', type: 'bool', help: 'remove nvram file' },
    { name: 'keep-nvram', type: 'bool', help: 'keep nvram file' },
  ],
  async run(args, io) {
    if (flag(args, 'nvram') && flag(args, 'keep-nvram')) {
      throw new VirtError('INVALID_ARG', 'Options --nvram and --keep-nvram are mutually exclusive');
    }
    let flags = 0;
    if (flag(args, 'managed-save')) flags |= UndefineFlags.MANAGED_SAVE;
    if (flag(args, 'nvram')) flags |= UndefineFlags.NVRAM;
    if (flag(args, 'keep-nvram')) flags |= UndefineFlags.KEEP_NVRAM;
    const { conn, dom } = await domainArg(io, args);
    // As virsh does, ask only for what exists so older servers never see needless flags:
    // a running domain has no managed save image, and xenvirt keeps no snapshots.
    const running = await conn.isActive(dom);
    const hasManagedSave = running ? false : await conn.hasManagedSaveImage(dom).catch(() => false);
    if (!hasManagedSave) flags &= ~UndefineFlags.MANAGED_SAVE;
    await withContext(io, `Failed to undefine domain '${dom.name}'`, () => conn.undefine(dom, flags));
    printExtra(io, `Domain '${dom.name}' has been undefined\n`);
  },
};

function startFlags(args: ArgValues): number {
  let flags = 0;
  if (flag(args, 'paused')) flags |= StartFlags.PAUSED;
  if (flag(args, 'autodestroy')) flags |= StartFlags.AUTODESTROY;
  if (flag(args, 'bypass-cache')) flags |= StartFlags.BYPASS_CACHE;
  if (flag(args, 'force-boot')) flags |= StartFlags.FORCE_BOOT;
  if (flag(args, 'validate')) flags |= StartFlags.VALIDATE;
  return flags;
}

export const create: Command = {
  name: 'create',
  group: GROUP,
  summary: 'create a domain from an XML file',
  options: [
    fileOption('file containing an XML domain description'),
    { name: 'paused', type: 'bool', help: 'leave the guest paused after creation' },
    { name: 'autodestroy', type: 'bool', help: 'automatically destroy the guest when virsh disconnects' },
    { name: 'validate', type: 'bool', help: 'validate the XML against the schema' },
  ],
  async run(args, io) {
    const file = String(args.file);
    const xml = await readInput(file, io.stdin);
    const conn = await connect(io);
    const dom = await withContext(io, `Failed to create domain from ${file}`, () => conn.createXml(xml, startFlags(args)));
    printExtra(io, `Domain '${dom.name}' created from ${file}\n`);
  },
};

export const start: Command = {
  name: 'start',
  group: GROUP,
  summary: 'start a (previously defined) inactive domain',
  options: [
    domainOption('name of the inactive domain'),
    { name: 'paused', type: 'bool', help: 'leave the guest paused after creation' },
    { name: 'autodestroy', type: 'bool', help: 'automatically destroy the guest when virsh disconnects' },
    { name: 'bypass-cache', type: 'bool', help: 'avoid file system cache when loading' },
    { name: 'force-boot', type: 'bool', help: 'force fresh boot by discarding any managed save' },
  ],
  async run(args, io) {
    const { conn, dom } = await domainArg(io, args, BY_NAME | BY_UUID);
    // virsh decides from the handle alone, without asking the driver.
    if (dom.id !== -1) throw new VirtError('OPERATION_INVALID', 'Domain is already active');
    const flags = startFlags(args);
    try {
      await conn.create(dom, flags);
    } catch (e) {
      // A driver without FORCE_BOOT gets it emulated: drop the managed save, then boot.
      const code = (e as VirtError).codeName;
      if (!(flags & StartFlags.FORCE_BOOT) || (code !== 'NO_SUPPORT' && code !== 'INVALID_ARG')) {
        io.stderr.write(`error: Failed to start domain '${dom.name}'\n`);
        throw e;
      }
      if (await conn.hasManagedSaveImage(dom).catch(() => false)) await conn.managedSaveRemove(dom);
      await withContext(io, `Failed to start domain '${dom.name}'`, () => conn.create(dom, flags & ~StartFlags.FORCE_BOOT));
    }
    printExtra(io, `Domain '${dom.name}' started\n`);
  },
};

function modeFlags(mode: unknown, listed: string): number {
  if (mode === undefined) return 0;
  let flags = 0;
  for (const m of String(mode).split(',')) {
    const bit = SHUTDOWN_MODES[m];
    if (bit === undefined) throw new VirtError('INVALID_ARG', `Unknown mode ${m} value, expecting ${listed}`);
    flags |= bit;
  }
  return flags;
}

const modeOption = { name: 'mode', type: 'string', help: 'shutdown mode: acpi|agent|initctl|signal|paravirt' } as const;

export const shutdown: Command = {
  name: 'shutdown',
  group: GROUP,
  summary: 'gracefully shutdown a domain',
  options: [domainOption(), modeOption],
  async run(args, io) {
    const flags = modeFlags(args.mode, "'acpi', 'agent', 'initctl', 'signal', or 'paravirt'");
    await domainAction(io, args, (n) => `Failed to shutdown domain '${n}'`,
      (conn, dom) => conn.shutdown(dom, flags),
      (n) => `Domain '${n}' is being shutdown\n`);
  },
};

export const reboot: Command = {
  name: 'reboot',
  group: GROUP,
  summary: 'reboot a domain',
  options: [domainOption(), modeOption],
  async run(args, io) {
    const flags = modeFlags(args.mode, "'acpi', 'agent', 'initctl', 'signal' or 'paravirt'");
    await domainAction(io, args, (n) => `Failed to reboot domain '${n}'`,
      (conn, dom) => conn.reboot(dom, flags),
      (n) => `Domain '${n}' is being rebooted\n`);
  },
};

export const destroy: Command = {
  name: 'destroy',
  group: GROUP,
  summary: 'destroy (stop) a domain',
  options: [domainOption(), { name: 'graceful', type: 'bool', help: 'terminate gracefully' }],
  async run(args, io) {
    await domainAction(io, args, (n) => `Failed to destroy domain '${n}'`,
      (conn, dom) => conn.destroy(dom, flag(args, 'graceful') ? DESTROY_GRACEFUL : 0),
      (n) => `Domain '${n}' destroyed\n`);
  },
};

export const suspend: Command = {
  name: 'suspend',
  group: GROUP,
  summary: 'suspend a domain',
  options: [domainOption()],
  async run(args, io) {
    await domainAction(io, args, (n) => `Failed to suspend domain '${n}'`,
      (conn, dom) => conn.suspend(dom),
      (n) => `Domain '${n}' suspended\n`);
  },
};

export const resume: Command = {
  name: 'resume',
  group: GROUP,
  summary: 'resume a domain',
  options: [domainOption()],
  async run(args, io) {
    await domainAction(io, args, (n) => `Failed to resume domain '${n}'`,
      (conn, dom) => conn.resume(dom),
      (n) => `Domain '${n}' resumed\n`);
  },
};

function saveFlags(args: ArgValues): number {
  let flags = 0;
  if (flag(args, 'bypass-cache')) flags |= SaveFlags.BYPASS_CACHE;
  if (flag(args, 'running')) flags |= SaveFlags.RUNNING;
  if (flag(args, 'paused')) flags |= SaveFlags.PAUSED;
  return flags;
}

/** Progress shows on a terminal, or anywhere with --verbose. */
const showProgress = (io: CommandIo, args: ArgValues) => io.tty || flag(args, 'verbose');

export const save: Command = {
  name: 'save',
  group: GROUP,
  summary: 'save a domain state to a file',
  options: [
    domainOption(),
    { name: 'file', type: 'string', positional: true, required: true, help: 'where to save the data' },
    { name: 'bypass-cache', type: 'bool', help: 'avoid file system cache when saving' },
    { name: 'xml', type: 'string', help: 'filename containing updated XML for the target' },
    { name: 'running', type: 'bool', help: 'set domain to be running on restore' },
    { name: 'paused', type: 'bool', help: 'set domain to be paused on restore' },
    { name: 'verbose', type: 'bool', help: 'display the progress of save' },
  ],
  async run(args, io) {
    const to = String(args.file);
    const { conn, dom } = await domainArg(io, args);
    const xml = args.xml !== undefined ? await readInput(String(args.xml), io.stdin) : undefined;
    await withContext(io, `Failed to save domain '${dom.name}' to ${to}`,
      () => withProgress(io, 'Save', showProgress(io, args), conn, 'save', () => conn.save(dom, to, xml, saveFlags(args))));
    printExtra(io, `\nDomain '${dom.name}' saved to ${to}\n`);
  },
};

export const restore: Command = {
  name: 'restore',
  group: GROUP,
  summary: 'restore a domain from a saved state in a file',
  options: [
    { name: 'file', type: 'string', positional: true, required: true, help: 'the state to restore' },
    { name: 'bypass-cache', type: 'bool', help: 'avoid file system cache when restoring' },
    { name: 'xml', type: 'string', help: 'filename containing updated XML for the target' },
    { name: 'running', type: 'bool', help: 'restore domain into running state' },
    { name: 'paused', type: 'bool', help: 'restore domain into paused state' },
    { name: 'verbose', type: 'bool', help: 'display the progress of restore' },
  ],
  async run(args, io) {
    const from = String(args.file);
    const xml = args.xml !== undefined ? await readInput(String(args.xml), io.stdin) : undefined;
    const conn = await connect(io);
    await withContext(io, `Failed to restore domain from ${from}`,
      () => withProgress(io, 'Restore', showProgress(io, args), conn, 'restore', () => conn.restore(from, xml, saveFlags(args))));
    // virsh ends the progress line itself only where it drew one.
    printExtra(io, `${showProgress(io, args) ? '\n' : ''}Domain restored from ${from}\n`);
  },
};

export const dump: Command = {
  name: 'dump',
  group: GROUP,
  summary: 'dump the core of a domain to a file for analysis',
  options: [
    domainOption(),
    { name: 'file', type: 'string', positional: true, required: true, help: 'where to dump the core' },
    { name: 'live', type: 'bool', help: 'perform a live core dump if supported' },
    { name: 'crash', type: 'bool', help: 'crash the domain after core dump' },
    { name: 'bypass-cache', type: 'bool', help: 'avoid file system cache when dumping' },
    { name: 'reset', type: 'bool', help: 'reset the domain after core dump' },
    { name: 'verbose', type: 'bool', help: 'display the progress of dump' },
    { name: 'memory-only', type: 'bool', help: "dump domain's memory only" },
  ],
  async run(args, io) {
    const to = String(args.file);
    let flags = 0;
    if (flag(args, 'live')) flags |= DumpFlags.LIVE;
    if (flag(args, 'crash')) flags |= DumpFlags.CRASH;
    if (flag(args, 'bypass-cache')) flags |= DumpFlags.BYPASS_CACHE;
    if (flag(args, 'reset')) flags |= DumpFlags.RESET;
    if (flag(args, 'memory-only')) flags |= DumpFlags.MEMORY_ONLY;
    await domainAction(io, args, (n) => `Failed to core dump domain '${n}' to ${to}`,
      (conn, dom) => withProgress(io, 'Dump', showProgress(io, args), conn, 'dump', () => conn.coreDump(dom, to, flags)),
      (n) => `\nDomain '${n}' dumped to ${to}\n`);
  },
};

export const managedsave: Command = {
  name: 'managedsave',
  group: GROUP,
  summary: 'managed save of a domain state',
  options: [
    domainOption(),
    { name: 'bypass-cache', type: 'bool', help: 'avoid file system cache when saving' },
    { name: 'running', type: 'bool', help: 'set domain to be running on next start' },
    { name: 'paused', type: 'bool', help: 'set domain to be paused on next start' },
    { name: 'verbose', type: 'bool', help: 'display the progress of save' },
  ],
  async run(args, io) {
    await domainAction(io, args, (n) => `Failed to save domain '${n}' state`,
      (conn, dom) => withProgress(io, 'Managedsave', showProgress(io, args), conn, 'managedsave', () => conn.managedSave(dom, saveFlags(args))),
      (n) => `\nDomain '${n}' state saved by libvirt\n`);
  },
};

export const autostart: Command = {
  name: 'autostart',
  group: GROUP,
  summary: 'autostart a domain',
  options: [domainOption(), { name: 'disable', type: 'bool', help: 'disable autostarting' }],
  async run(args, io) {
    const on = !flag(args, 'disable');
    await domainAction(io, args, (n) => `Failed to ${on ? 'mark' : 'unmark'} domain '${n}' as autostarted`,
      (conn, dom) => conn.setAutostart(dom, on),
      (n) => `Domain '${n}' ${on ? 'marked' : 'unmarked'} as autostarted\n`);
  },
};
