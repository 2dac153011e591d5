/** Memory and vcpu changes: setmem, setmaxmem, setvcpus. */
import type { Command } from '../command.js';
import { VirtError } from '../../errors.js';
import { MemFlags, VcpuFlags } from '../../driver/connection.js';
import {
  domainArg, domainOption, exclusive, flag, impactFlags, impactOptions, parseScaled, requires, toKiB, unsignedArg, withContext,
} from './util.js';

const GROUP = 'Domain Management';

/** Sizes are scaled integers ("512M", "2GiB"); a bare number is KiB. */
const sizeOption = (help: string) => ({ name: 'size', type: 'string', positional: true, required: true, help }) as const;

export const setmem: Command = {
  name: 'setmem',
  group: GROUP,
  summary: 'change memory allocation',
  options: [domainOption(), sizeOption('new memory size, as scaled integer (default KiB)'), ...impactOptions],
  async run(args, io) {
    const impact = impactFlags(args);
    // Without --config/--live/--current virsh asks for the running domain only.
    const given = flag(args, 'config') || flag(args, 'live') || flag(args, 'current');
    const flags = given ? impact : MemFlags.LIVE;
    const { conn, dom } = await domainArg(io, args);
    const kib = toKiB(parseScaled('size', String(args.size), 1024));
    await conn.setMemory(dom, kib, flags);
  },
};

export const setmaxmem: Command = {
  name: 'setmaxmem',
  group: GROUP,
  summary: 'change maximum memory limit',
  options: [domainOption(), sizeOption('new maximum memory size, as scaled integer (default KiB)'), ...impactOptions],
  async run(args, io) {
    const flags = impactFlags(args) | MemFlags.MAXIMUM;
    const { conn, dom } = await domainArg(io, args);
    const kib = toKiB(parseScaled('size', String(args.size), 1024));
    await withContext(io, 'Unable to change MaxMemorySize', () => conn.setMemory(dom, kib, flags));
  },
};

export const setvcpus: Command = {
  name: 'setvcpus',
  group: GROUP,
  summary: 'change number of virtual CPUs',
  options: [
    domainOption(),
    { name: 'count', type: 'number', positional: true, required: true, help: 'number of virtual CPUs' },
    { name: 'maximum', type: 'bool', help: 'set maximum limit on next boot' },
    ...impactOptions,
    { name: 'guest', type: 'bool', help: 'modify cpu state in the guest' },
    { name: 'hotpluggable', type: 'bool', help: 'make added vcpus hot(un)pluggable' },
  ],
  async run(args, io) {
    let flags = impactFlags(args);
    exclusive(args, 'guest', 'config');
    requires(args, 'maximum', 'config');
    if (flag(args, 'guest')) flags |= VcpuFlags.GUEST;
    if (flag(args, 'maximum')) flags |= VcpuFlags.MAXIMUM;
    if (flag(args, 'hotpluggable')) flags |= VcpuFlags.HOTPLUGGABLE;
    const { conn, dom } = await domainArg(io, args);
    const count = unsignedArg(args, 'count')!;
    if (count === 0) throw new VirtError('INVALID_ARG', "Can't set 0 processors for a VM");
    // With no option at all virsh uses virDomainSetVcpus, which changes the running domain.
    const plain = !flag(args, 'current') && flags === 0;
    await conn.setVcpus(dom, count, plain ? VcpuFlags.LIVE : flags);
  },
};
