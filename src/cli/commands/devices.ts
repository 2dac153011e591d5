/** Device hotplug: attach-device, detach-device, attach-disk, attach-interface. */
import { stat } from 'node:fs/promises';
import type { ArgValues, Command, CommandIo } from '../command.js';
import { VirtError } from '../../errors.js';
import { ModFlags } from '../../driver/connection.js';
import { escapeXml } from '../../domain/xml.js';
import { readInput } from '../io.js';
import { domainArg, domainOption, exclusive, flag, impactOptions, printExtra, withContext } from './util.js';

const GROUP = 'Domain Management';

const deviceImpactOptions = [
  { name: 'persistent', type: 'bool', help: 'make live change persistent' },
  ...impactOptions,
] as const;

/**
 * Device commands take --persistent (config, plus live when running) besides the usual trio.
 * `undefined` means no option at all: virsh then calls the flag-less API, which for Xen
 * changes the running domain only.
 */
function deviceFlags(args: ArgValues): { flags: number; plain: boolean } {
  exclusive(args, 'persistent', 'current');
  exclusive(args, 'current', 'live');
  exclusive(args, 'current', 'config');
  let flags = 0;
  if (flag(args, 'config') || flag(args, 'persistent')) flags |= ModFlags.CONFIG;
  if (flag(args, 'live')) flags |= ModFlags.LIVE;
  return { flags, plain: flags === 0 && !flag(args, 'current') };
}

/** Resolve the flags against the domain (--persistent reaches a running domain too) and apply. */
async function applyDevice(
  io: CommandIo, args: ArgValues, xml: string, context: string, attach: boolean,
): Promise<void> {
  const { flags, plain } = deviceFlags(args);
  const { conn, dom } = await domainArg(io, args);
  let f = plain ? ModFlags.LIVE : flags;
  if (flag(args, 'persistent') && await conn.isActive(dom)) f |= ModFlags.LIVE;
  await withContext(io, context, () => (attach ? conn.attachDevice(dom, xml, f) : conn.detachDevice(dom, xml, f)));
}

const fileOption = { name: 'file', type: 'string', positional: true, required: true, help: 'XML file' } as const;

export const attachDevice: Command = {
  name: 'attach-device',
  group: GROUP,
  summary: 'attach device from an XML file',
  options: [domainOption(), fileOption, ...deviceImpactOptions],
  async run(args, io) {
    deviceFlags(args);
    const file = String(args.file);
    const xml = await readInput(file, io.stdin);
    await applyDevice(io, args, xml, `Failed to attach device from ${file}`, true);
    printExtra(io, 'Device attached successfully\n');
  },
};

export const detachDevice: Command = {
  name: 'detach-device',
  group: GROUP,
  summary: 'detach device from an XML file',
  options: [domainOption(), fileOption, ...deviceImpactOptions],
  async run(args, io) {
    deviceFlags(args);
    const file = String(args.file);
    const xml = await readInput(file, io.stdin);
    await applyDevice(io, args, xml, `Failed to detach device from ${file}`, false);
    printExtra(io, 'Device detached successfully\n');
  },
};

/** An element with escaped attributes; absent (undefined) attributes are left out. */
function element(name: string, attrs: Array<[string, unknown]>): string {
  const a = attrs.filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k}='${escapeXml(String(v))}'`).join('');
  return `<${name}${a}/>`;
}

/** The <disk> virsh's attach-disk builds; exported for the tests. */
export async function diskXml(args: ArgValues): Promise<string> {
  const source = args.source === undefined ? undefined : String(args.source);
  const driver = args.driver === undefined ? undefined : String(args.driver);
  let type: string;
  if (args.sourcetype !== undefined) {
    type = String(args.sourcetype);
    if (type !== 'file' && type !== 'block') throw new VirtError('INVALID_ARG', `Unknown source type: '${type}'`);
  } else {
    // A block device is recognised by looking at the path; everything else is a file.
    const isBlock = driver !== 'file' && driver !== 'tap' && source !== undefined && source !== '' &&
      await stat(source).then((s) => s.isBlockDevice(), () => false);
    type = isBlock ? 'block' : 'file';
  }
  const mode = args.mode === undefined ? undefined : String(args.mode);
  if (mode !== undefined && mode !== 'readonly' && mode !== 'shareable') {
    throw new VirtError('INVALID_ARG', `No support for ${mode} in command 'attach-disk'`);
  }
  const lines: string[] = [];
  const driverAttrs: Array<[string, unknown]> = [['name', args.driver], ['type', args.subdriver], ['cache', args.cache], ['io', args.io]];
  if (driverAttrs.some(([, v]) => v !== undefined)) lines.push(element('driver', driverAttrs));
  // An empty source stays as `file=''` (an empty CD-ROM drive), as virsh writes it.
  if (source !== undefined) lines.push(element('source', [[type === 'block' ? 'dev' : 'file', source]]));
  lines.push(element('target', [['dev', args.target], ['bus', args.targetbus]]));
  if (mode) lines.push(`<${mode}/>`);
  if (args.serial !== undefined) lines.push(`<serial>${escapeXml(String(args.serial))}</serial>`);
  const open = `<disk type='${type}'${args.type !== undefined ? ` device='${escapeXml(String(args.type))}'` : ''}>`;
  return [open, ...lines.map((l) => '  ' + l), '</disk>'].join('\n') + '\n';
}

export const attachDisk: Command = {
  name: 'attach-disk',
  group: GROUP,
  summary: 'attach disk device',
  options: [
    domainOption(),
    { name: 'source', type: 'string', positional: true, required: true, help: 'source of disk device' },
    { name: 'target', type: 'string', positional: true, required: true, help: 'target of disk device' },
    { name: 'targetbus', type: 'string', help: 'target bus of disk device' },
    { name: 'driver', type: 'string', help: 'driver of disk device' },
    { name: 'subdriver', type: 'string', help: 'subdriver of disk device' },
    { name: 'cache', type: 'string', help: 'cache mode of disk device' },
    { name: 'io', type: 'string', help: 'io policy of disk device' },
    { name: 'type', type: 'string', help: 'target device type' },
    { name: 'mode', type: 'string', help: 'mode of device reading and writing' },
    { name: 'sourcetype', type: 'string', help: 'type of source (block|file)' },
    { name: 'serial', type: 'string', help: 'serial of disk device' },
    { name: 'print-xml', type: 'bool', help: 'print XML document rather than attach the disk' },
    ...deviceImpactOptions,
  ],
  async run(args, io) {
    deviceFlags(args);
    const xml = await diskXml(args);
    if (flag(args, 'print-xml')) {
      io.stdout.write(xml);
      return;
    }
    await applyDevice(io, args, xml, 'Failed to attach disk', true);
    printExtra(io, 'Disk attached successfully\n');
  },
};

/** The <interface> virsh's attach-interface builds; exported for the tests. */
export function interfaceXml(args: ArgValues): string {
  const type = String(args.type);
  const source = String(args.source);
  let sourceLine: string;
  if (type === 'network' || type === 'bridge') sourceLine = element('source', [[type, source]]);
  else if (type === 'direct') sourceLine = element('source', [['dev', source]]);
  // virsh writes a source only for these; every other type, known to libvirt or not, is refused.
  else throw new VirtError('INVALID_ARG', `No support for ${type} in command 'attach-interface'`);
  const lines = [sourceLine];
  if (args.target !== undefined) lines.push(element('target', [['dev', args.target]]));
  if (args.mac !== undefined) lines.push(element('mac', [['address', args.mac]]));
  if (args.script !== undefined) lines.push(element('script', [['path', args.script]]));
  if (args.model !== undefined) lines.push(element('model', [['type', args.model]]));
  const open = `<interface type='${escapeXml(type)}'${flag(args, 'managed') ? " managed='yes'" : ''}>`;
  return [open, ...lines.map((l) => '  ' + l), '</interface>'].join('\n') + '\n';
}

export const attachInterface: Command = {
  name: 'attach-interface',
  group: GROUP,
  summary: 'attach network interface',
  options: [
    domainOption(),
    { name: 'type', type: 'string', positional: true, required: true, help: 'network interface type' },
    { name: 'source', type: 'string', positional: true, required: true, help: 'source of network interface' },
    { name: 'target', type: 'string', help: 'target network name' },
    { name: 'mac', type: 'string', help: 'MAC address' },
    { name: 'script', type: 'string', help: 'script used to bridge network interface' },
    { name: 'model', type: 'string', help: 'model type' },
    ...deviceImpactOptions,
    { name: 'print-xml', type: 'bool', help: 'print XML document rather than attach the interface' },
    { name: 'managed', type: 'bool', help: 'libvirt will automatically detach/attach the device from/to host' },
  ],
  async run(args, io) {
    deviceFlags(args);
    const xml = interfaceXml(args);
    if (flag(args, 'print-xml')) {
      io.stdout.write(xml);
      return;
    }
    await applyDevice(io, args, xml, 'Failed to attach interface', true);
    printExtra(io, 'Interface attached successfully\n');
  },
};
