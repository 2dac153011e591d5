/** Read-only per-domain commands: dominfo, domstate, domid, domname, domuuid, dumpxml, vcpucount. */
import type { Command } from '../command.js';
import { VcpuFlags, XmlFlags, type Connection, type DomainRef } from '../../driver/connection.js';
import {
  BY_ID, BY_NAME, BY_UUID, domainArg, domainOption, exclusive, flag, labelled, printJson, reasonName, stateName,
} from './util.js';

const GROUP = 'Domain Monitoring';

export const dominfo: Command = {
  name: 'dominfo',
  group: GROUP,
  summary: 'domain information',
  options: [domainOption()],
  async run(args, io) {
    const { conn, dom } = await domainArg(io, args);
    const osType = await conn.getOsType(dom).catch(() => undefined);
    const info = await conn.getInfo(dom);
    const persistent = await conn.isPersistent(dom).catch(() => undefined);
    const autostart = await conn.getAutostart(dom).catch(() => undefined);
    const managedSave = await conn.hasManagedSaveImage(dom).catch(() => undefined);
    const cpuSeconds = Number(info.cpuTime) / 1e9;
    // virDomainInfo.maxMem is an unsigned long; UINT_MAX there means "no limit".
    const unlimited = info.maxMem === 0xffffffff;

    if (io.json) {
      printJson(io, {
        id: dom.id >= 0 ? dom.id : null,
        name: dom.name,
        uuid: dom.uuid,
        osType: osType ?? null,
        state: stateName(info.state),
        cpus: info.nrVirtCpu,
        cpuTime: cpuSeconds,
        maxMemory: unlimited ? null : info.maxMem,
        usedMemory: info.memory,
        persistent: persistent ?? null,
        autostart: autostart ?? null,
        managedSave: managedSave ?? null,
      });
      return;
    }
    let out = labelled('Id:', dom.id >= 0 ? dom.id : '-');
    out += labelled('Name:', dom.name);
    out += labelled('UUID:', dom.uuid);
    if (osType !== undefined) out += labelled('OS Type:', osType);
    out += labelled('State:', stateName(info.state));
    out += labelled('CPU(s):', info.nrVirtCpu);
    if (Number(info.cpuTime) !== 0) out += labelled('CPU time:', `${cpuSeconds.toFixed(1)}s`);
    out += labelled('Max memory:', unlimited ? 'no limit' : `${info.maxMem} KiB`);
    out += labelled('Used memory:', `${info.memory} KiB`);
    out += labelled('Persistent:', persistent === undefined ? 'unknown' : persistent ? 'yes' : 'no');
    if (autostart !== undefined) out += labelled('Autostart:', autostart ? 'enable' : 'disable');
    out += labelled('Managed save:', managedSave === undefined ? 'unknown' : managedSave ? 'yes' : 'no');
    io.stdout.write(out);
  },
};

export const domstate: Command = {
  name: 'domstate',
  group: GROUP,
  summary: 'domain state',
  options: [domainOption(), { name: 'reason', type: 'bool', help: 'also print reason for the state' }],
  async run(args, io) {
    const { conn, dom } = await domainArg(io, args);
    const { state, reason } = await conn.getState(dom);
    if (io.json) printJson(io, { state: stateName(state), reason: reasonName(state, reason) });
    else if (flag(args, 'reason')) io.stdout.write(`${stateName(state)} (${reasonName(state, reason)})\n`);
    else io.stdout.write(`${stateName(state)}\n`);
  },
};

export const domid: Command = {
  name: 'domid',
  group: 'Domain Management',
  summary: 'convert a domain name or UUID to domain id',
  options: [domainOption('domain name or uuid')],
  async run(args, io) {
    const { dom } = await domainArg(io, args, BY_NAME | BY_UUID);
    if (io.json) printJson(io, { id: dom.id >= 0 ? dom.id : null });
    else io.stdout.write(`${dom.id >= 0 ? dom.id : '-'}\n`);
  },
};

export const domname: Command = {
  name: 'domname',
  group: 'Domain Management',
  summary: 'convert a domain id or UUID to domain name',
  options: [domainOption('domain id or uuid')],
  async run(args, io) {
    const { dom } = await domainArg(io, args, BY_ID | BY_UUID);
    if (io.json) printJson(io, { name: dom.name });
    else io.stdout.write(`${dom.name}\n`);
  },
};

export const domuuid: Command = {
  name: 'domuuid',
  group: 'Domain Management',
  summary: 'convert a domain name or id to domain UUID',
  options: [domainOption('domain id or name')],
  async run(args, io) {
    const { dom } = await domainArg(io, args, BY_NAME | BY_ID);
    if (io.json) printJson(io, { uuid: dom.uuid });
    else io.stdout.write(`${dom.uuid}\n`);
  },
};

export const dumpxml: Command = {
  name: 'dumpxml',
  group: 'Domain Management',
  summary: 'domain information in XML',
  options: [
    domainOption(),
    { name: 'inactive', type: 'bool', help: 'show inactive defined XML' },
    { name: 'security-info', type: 'bool', help: 'include security sensitive information in XML dump' },
    { name: 'update-cpu', type: 'bool', help: 'update guest CPU according to host CPU' },
    { name: 'migratable', type: 'bool', help: 'provide XML suitable for migrations' },
  ],
  async run(args, io) {
    let flags = 0;
    if (flag(args, 'inactive')) flags |= XmlFlags.INACTIVE;
    if (flag(args, 'security-info')) flags |= XmlFlags.SECURE;
    if (flag(args, 'update-cpu')) flags |= XmlFlags.UPDATE_CPU;
    if (flag(args, 'migratable')) flags |= XmlFlags.MIGRATABLE;
    const { conn, dom } = await domainArg(io, args);
    const xml = await conn.getXmlDesc(dom, flags);
    if (io.json) printJson(io, { xml });
    else io.stdout.write(xml);
  },
};

/**
 * virshCPUCountCollect with its state check: a live count of an inactive domain, or a config
 * count of a transient one, does not exist (undefined) rather than failing.
 */
async function collectCount(conn: Connection, dom: DomainRef, flags: number, checkState: boolean): Promise<number | undefined> {
  if (checkState) {
    if (flags & VcpuFlags.LIVE && !(await conn.isActive(dom))) return undefined;
    if (flags & VcpuFlags.CONFIG && !(await conn.isPersistent(dom))) return undefined;
  }
  return conn.getVcpusFlags(dom, flags);
}

export const vcpucount: Command = {
  name: 'vcpucount',
  group: 'Domain Management',
  summary: 'domain vcpu counts',
  options: [
    domainOption(),
    { name: 'maximum', type: 'bool', help: 'get maximum count of vcpus' },
    { name: 'active', type: 'bool', help: 'get number of currently active vcpus' },
    { name: 'live', type: 'bool', help: 'get value from running domain' },
    { name: 'config', type: 'bool', help: 'get value to be used on next boot' },
    { name: 'current', type: 'bool', help: 'get value according to current domain state' },
    { name: 'guest', type: 'bool', help: 'retrieve vcpu count from the guest instead of the hypervisor' },
  ],
  async run(args, io) {
    const maximum = flag(args, 'maximum');
    const active = flag(args, 'active');
    const all = !['maximum', 'active', 'current', 'config', 'live', 'guest'].some((o) => flag(args, o));
    // Before libvirt 0.9.4 --current meant "not --maximum"; virsh still reads it so when alone.
    const checked = { ...args };
    if (!maximum && !active && flag(args, 'current')) delete checked.current;
    exclusive(checked, 'live', 'config');
    exclusive(checked, 'current', 'live');
    exclusive(checked, 'current', 'config');
    exclusive(checked, 'active', 'maximum');
    exclusive(checked, 'guest', 'config');
    let flags = 0;
    if (flag(args, 'live')) flags |= VcpuFlags.LIVE;
    if (flag(args, 'config')) flags |= VcpuFlags.CONFIG;
    if (maximum) flags |= VcpuFlags.MAXIMUM;
    if (flag(args, 'guest')) flags |= VcpuFlags.GUEST;

    const { conn, dom } = await domainArg(io, args);
    if (!all) {
      const count = (await collectCount(conn, dom, flags, false))!;
      if (io.json) printJson(io, { count });
      else io.stdout.write(`${count}\n`);
      return;
    }
    const confMax = await collectCount(conn, dom, VcpuFlags.CONFIG | VcpuFlags.MAXIMUM, true);
    const confCur = await collectCount(conn, dom, VcpuFlags.CONFIG, true);
    const liveMax = await collectCount(conn, dom, VcpuFlags.LIVE | VcpuFlags.MAXIMUM, true);
    const liveCur = await collectCount(conn, dom, VcpuFlags.LIVE, true);
    if (io.json) {
      printJson(io, {
        maximum: { config: confMax ?? null, live: liveMax ?? null },
        current: { config: confCur ?? null, live: liveCur ?? null },
      });
      return;
    }
    const row = (count: number | undefined, which: string, state: string) =>
      count !== undefined && count > 0 ? `${which.padEnd(12)} ${state.padEnd(12)} ${String(count).padStart(3)}\n` : '';
    io.stdout.write(
      row(confMax, 'maximum', 'config') + row(liveMax, 'maximum', 'live') +
      row(confCur, 'current', 'config') + row(liveCur, 'current', 'live'),
    );
  },
};
