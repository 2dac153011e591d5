/** "Host and Hypervisor" commands: version, uri, hostname, nodeinfo, capabilities, sysinfo. */
import type { Command } from '../command.js';
import { connect, labelled, printJson, withContext } from './util.js';

const GROUP = 'Host and Hypervisor';

/** The libvirt release whose behaviour xenvirt follows; virsh prints it as its own library. */
const LIBVIRT_VERSION = 9_000_000;

/** major * 1e6 + minor * 1e3 + micro, as libvirt encodes versions. */
export function versionString(v: number): string {
  return `${Math.floor(v / 1_000_000)}.${Math.floor((v % 1_000_000) / 1000)}.${v % 1000}`;
}

export const version: Command = {
  name: 'version',
  group: GROUP,
  summary: 'show version',
  options: [{ name: 'daemon', type: 'bool', help: 'report daemon version too' }],
  async run(args, io) {
    const conn = await connect(io);
    const type = await withContext(io, 'failed to get hypervisor type', () => conn.getType());
    const hv = await withContext(io, 'failed to get the hypervisor version', () => conn.getVersion());
    let daemon: number | undefined;
    if (args.daemon) {
      // virsh reports this failure but still succeeds.
      daemon = await conn.getLibVersion().catch((e: Error) => {
        io.stderr.write(`error: failed to get the daemon version\nerror: ${e.message}\n`);
        return undefined;
      });
    }
    if (io.json) {
      printJson(io, {
        compiledAgainst: versionString(LIBVIRT_VERSION),
        library: versionString(LIBVIRT_VERSION),
        api: { type, version: versionString(LIBVIRT_VERSION) },
        hypervisor: hv === 0 ? null : { type, version: versionString(hv) },
        ...(args.daemon ? { daemon: daemon === undefined ? null : versionString(daemon) } : {}),
      });
      return;
    }
    let out = `Compiled against library: libvirt ${versionString(LIBVIRT_VERSION)}\n`;
    out += `Using library: libvirt ${versionString(LIBVIRT_VERSION)}\n`;
    out += `Using API: ${type} ${versionString(LIBVIRT_VERSION)}\n`;
    out += hv === 0 ? `Cannot extract running ${type} hypervisor version\n` : `Running hypervisor: ${type} ${versionString(hv)}\n`;
    if (daemon !== undefined) out += `Running against daemon: ${versionString(daemon)}\n`;
    io.stdout.write(out);
  },
};

export const uri: Command = {
  name: 'uri',
  group: GROUP,
  summary: 'print the hypervisor canonical URI',
  options: [],
  async run(_args, io) {
    const conn = await connect(io);
    const u = await withContext(io, 'failed to get URI', () => conn.getUri());
    if (io.json) printJson(io, { uri: u });
    else io.stdout.write(`${u}\n`);
  },
};

export const hostname: Command = {
  name: 'hostname',
  group: GROUP,
  summary: 'print the hypervisor hostname',
  options: [],
  async run(_args, io) {
    const conn = await connect(io);
    const h = await withContext(io, 'failed to get hostname', () => conn.getHostname());
    if (io.json) printJson(io, { hostname: h });
    else io.stdout.write(`${h}\n`);
  },
};

export const nodeinfo: Command = {
  name: 'nodeinfo',
  group: GROUP,
  summary: 'node information',
  options: [],
  async run(_args, io) {
    const conn = await connect(io);
    const info = await withContext(io, 'failed to get node information', () => conn.nodeGetInfo());
    if (io.json) {
      printJson(io, info);
      return;
    }
    const row = (label: string, value: string | number) => labelled(label, value, 20);
    let out = row('CPU model:', info.model);
    out += row('CPU(s):', info.cpus);
    if (info.mhz) out += row('CPU frequency:', `${info.mhz} MHz`);
    out += row('CPU socket(s):', info.sockets);
    out += row('Core(s) per socket:', info.cores);
    out += row('Thread(s) per core:', info.threads);
    out += row('NUMA cell(s):', info.nodes);
    out += row('Memory size:', `${info.memory} KiB`);
    io.stdout.write(out);
  },
};

export const capabilities: Command = {
  name: 'capabilities',
  group: GROUP,
  summary: 'capabilities',
  options: [],
  async run(_args, io) {
    const conn = await connect(io);
    const caps = await withContext(io, 'failed to get capabilities', () => conn.getCapabilities());
    if (io.json) printJson(io, { capabilities: caps });
    else io.stdout.write(`${caps}\n`);
  },
};

export const sysinfo: Command = {
  name: 'sysinfo',
  group: GROUP,
  summary: 'print the hypervisor sysinfo',
  options: [],
  async run(_args, io) {
    const conn = await connect(io);
    const info = await withContext(io, 'failed to get sysinfo', () => conn.getSysinfo());
    if (io.json) printJson(io, { sysinfo: info });
    else io.stdout.write(info);
  },
};
