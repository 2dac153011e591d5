/** vCPU placement and the CPU scheduler: vcpuinfo, vcpupin, schedinfo (virsh 9.0's output). */
import type { Command } from '../command.js';
import { VirtError } from '../../errors.js';
import { DomainState, ModFlags, VcpuState } from '../../driver/connection.js';
import { allCpus } from '../../driver/tuning.js';
import { formatCpuset, parseCpuset } from '../../formats/xen-common.js';
import { domainArg, domainOption, flag, formatTable, impactFlags, impactOptions, labelled, printJson } from './util.js';

const GROUP = 'Domain Management';

const VCPU_STATES: Record<number, string> = { [VcpuState.OFFLINE]: 'offline', [VcpuState.RUNNING]: 'running', [VcpuState.BLOCKED]: 'blocked' };

/** virsh's affinity column: one 'y' or '-' per host CPU, or with --pretty the CPU list. */
function affinityText(cpus: number[], hostCpus: number, pretty: boolean): string {
  if (pretty) return `${formatCpuset(cpus)} (out of ${hostCpus})`;
  const set = new Set(cpus);
  let s = '';
  for (let i = 0; i < hostCpus; i++) s += set.has(i) ? 'y' : '-';
  return s;
}

export const vcpuinfo: Command = {
  name: 'vcpuinfo',
  group: GROUP,
  summary: 'detailed domain vcpu information',
  options: [domainOption(), { name: 'pretty', type: 'bool', help: 'return human readable output' }],
  async run(args, io) {
    const { conn, dom } = await domainArg(io, args);
    const info = await conn.getInfo(dom);
    const hostCpus = (await conn.nodeGetInfo()).cpus;
    // a shut-off domain has no vcpus to ask about: virsh shows its configured pinning instead
    const live = info.state === DomainState.SHUTOFF ? undefined : await conn.getVcpus(dom);
    const pins = live ? live.map((v) => v.affinity) : await conn.getVcpuPinInfo(dom, ModFlags.CONFIG);
    const count = live ? live.length : Math.min(pins.length, info.nrVirtCpu);
    if (io.json) {
      printJson(io, Array.from({ length: count }, (_, i) => {
        const v = live?.[i];
        return {
          vcpu: v?.number ?? i,
          cpu: v ? v.cpu : null,
          state: v ? VCPU_STATES[v.state] ?? 'unknown' : null,
          cpuTime: v ? Number(v.cpuTime) / 1e9 : null,
          affinity: formatCpuset(pins[i] ?? []),
        };
      }));
      return;
    }
    let out = '';
    for (let i = 0; i < count; i++) {
      if (i) out += '\n';
      const v = live?.[i];
      out += labelled('VCPU:', v?.number ?? i);
      if (v) {
        out += labelled('CPU:', v.cpu);
        out += labelled('State:', VCPU_STATES[v.state] ?? 'unknown');
        if (v.cpuTime !== 0n) out += labelled('CPU time:', `${(Number(v.cpuTime) / 1e9).toFixed(1)}s`);
      } else {
        out += labelled('CPU:', 'N/A');
        out += labelled('State:', 'N/A');
        out += labelled('CPU time', 'N/A');
      }
      out += labelled('CPU Affinity:', affinityText(pins[i] ?? [], hostCpus, flag(args, 'pretty')));
    }
    io.stdout.write(out);
  },
};

/** virsh's cpulist: "r" resets to every host CPU; otherwise a cpuset ("0-2,^1,5"). */
function parseCpuList(text: string, hostCpus: number): number[] {
  if (text === 'r') return allCpus(hostCpus);
  let cpus: number[];
  try {
    cpus = parseCpuset(text);
  } catch {
    throw new VirtError('INVALID_ARG', `cpulist: Invalid format '${text}'`);
  }
  const over = cpus.find((c) => c >= hostCpus);
  if (over !== undefined) throw new VirtError('INVALID_ARG', `Physical CPU ${over} doesn't exist.`);
  if (!cpus.length) throw new VirtError('INVALID_ARG', `cpulist: Invalid format '${text}': it selects no CPU`);
  return cpus;
}

export const vcpupin: Command = {
  name: 'vcpupin',
  group: GROUP,
  summary: 'control or query domain vcpu affinity',
  options: [
    domainOption(),
    { name: 'vcpu', type: 'number', positional: true, help: 'vCPU number' },
    { name: 'cpulist', type: 'string', positional: true, help: "host cpu number(s) to set, or omit option to query ('r' resets to all host CPUs)" },
    ...impactOptions,
  ],
  async run(args, io) {
    const flags = impactFlags(args);
    const vcpu = args.vcpu === undefined ? undefined : Number(args.vcpu);
    if (vcpu !== undefined && (!Number.isSafeInteger(vcpu) || vcpu < 0)) throw new VirtError('INVALID_ARG', `Numeric value '${args.vcpu}' for <vcpu> option is malformed or out of range`);
    const { conn, dom } = await domainArg(io, args);
    const hostCpus = (await conn.nodeGetInfo()).cpus;
    if (args.cpulist === undefined) {
      const pins = await conn.getVcpuPinInfo(dom, flags);
      if (vcpu !== undefined && vcpu >= pins.length) throw new VirtError('INVALID_ARG', `vcpu must be less than ${pins.length}`);
      const rows = pins.map((cpus, i) => [String(i), formatCpuset(cpus)]).filter((_, i) => vcpu === undefined || i === vcpu);
      if (io.json) printJson(io, rows.map(([v, a]) => ({ vcpu: Number(v), affinity: a })));
      else io.stdout.write(formatTable(['VCPU', 'CPU Affinity'], rows, !io.quiet));
      return;
    }
    if (vcpu === undefined) throw new VirtError('INVALID_ARG', 'vcpupin: Missing vCPU number in pin mode.');
    const cpus = parseCpuList(String(args.cpulist), hostCpus);
    // without --config/--live/--current virsh calls virDomainPinVcpu, the live-only form
    const given = flag(args, 'config') || flag(args, 'live') || flag(args, 'current');
    await conn.pinVcpu(dom, vcpu, cpus, given ? flags : ModFlags.LIVE);
  },
};

/** --set field=value, and the --weight/--cap shortcuts virsh keeps for Xen's credit scheduler. */
function schedUpdates(args: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  const put = (field: string, text: string) => {
    if (!/^\d+$/.test(text.trim())) throw new VirtError('INVALID_ARG', `invalid value '${text}' for scheduler parameter '${field}': an unsigned integer is expected`);
    out[field] = Number(text);
  };
  if (args.set !== undefined) {
    const text = String(args.set);
    const eq = text.indexOf('=');
    if (eq <= 0) throw new VirtError('INVALID_ARG', `Invalid syntax for --set, expecting name=value: '${text}'`);
    put(text.slice(0, eq), text.slice(eq + 1));
  }
  for (const f of ['weight', 'cap']) if (args[f] !== undefined) put(f, String(args[f]));
  return out;
}

export const schedinfo: Command = {
  name: 'schedinfo',
  group: GROUP,
  summary: 'show/set scheduler parameters',
  options: [
    domainOption(),
    { name: 'weight', type: 'string', help: 'weight for XEN_CREDIT' },
    { name: 'cap', type: 'string', help: 'cap for XEN_CREDIT' },
    ...impactOptions,
    { name: 'set', type: 'string', help: 'parameter=value' },
  ],
  async run(args, io) {
    const flags = impactFlags(args);
    const updates = schedUpdates(args);
    if (!Object.keys(updates).length && flag(args, 'live') && flag(args, 'config')) {
      throw new VirtError('INVALID_ARG', 'cannot query both live and config at once');
    }
    const { conn, dom } = await domainArg(io, args);
    const { type, nparams } = await conn.getSchedulerType(dom);
    if (Object.keys(updates).length) await conn.setSchedulerParameters(dom, updates, flags);
    const params = nparams ? await conn.getSchedulerParameters(dom, flags & ModFlags.CONFIG ? ModFlags.CONFIG : flags) : {};
    if (io.json) {
      printJson(io, { scheduler: type, ...params });
      return;
    }
    let out = `${'Scheduler'.padEnd(15)}: ${type}\n`;
    for (const [field, value] of Object.entries(params)) out += `${field.padEnd(15)}: ${value}\n`;
    io.stdout.write(out);
  },
};
