/**
 * Host descriptions in libvirt's formats: the capabilities document (virCapabilitiesFormatXML,
 * as the libxl driver fills it) and the SMBIOS sysinfo document (virSysinfoFormat).
 */
import { escapeXml } from '../domain/xml.js';
import type { HostCapabilities, SysinfoData } from '../hypervisor/backend.js';

export function formatCapabilities(c: HostCapabilities): string {
  const L: string[] = ['<capabilities>', '', '  <host>'];
  L.push(`    <uuid>${c.uuid}</uuid>`);
  L.push('    <cpu>', `      <arch>${escapeXml(c.arch)}</arch>`);
  const t = c.topology;
  L.push(`      <topology sockets='${t.sockets}' dies='${t.dies}' cores='${t.cores}' threads='${t.threads}'/>`);
  for (const f of c.cpuFeatures) L.push(`      <feature name='${escapeXml(f)}'/>`);
  L.push('    </cpu>');
  L.push('    <power_management/>');
  L.push("    <iommu support='no'/>");
  L.push('    <migration_features>', '      <live/>');
  if (c.migrationTransports.length) {
    L.push('      <uri_transports>');
    for (const tr of c.migrationTransports) L.push(`        <uri_transport>${escapeXml(tr)}</uri_transport>`);
    L.push('      </uri_transports>');
  }
  L.push('    </migration_features>');
  L.push('    <netprefix>vif</netprefix>');
  L.push('    <topology>', `      <cells num='${c.cells.length}'>`);
  for (const cell of c.cells) {
    L.push(`        <cell id='${cell.id}'>`);
    L.push(`          <memory unit='KiB'>${cell.memory}</memory>`);
    L.push(`          <cpus num='${cell.cpus.length}'>`);
    for (const cpu of cell.cpus) {
      L.push(`            <cpu id='${cpu.id}' socket_id='${cpu.socket}' die_id='${cpu.die}' core_id='${cpu.core}' siblings='${cpu.siblings}'/>`);
    }
    L.push('          </cpus>', '        </cell>');
  }
  L.push('      </cells>', '    </topology>');
  L.push('  </host>', '');
  for (const g of c.guests) {
    L.push('  <guest>', `    <os_type>${g.osType}</os_type>`, `    <arch name='${g.arch}'>`);
    L.push(`      <wordsize>${g.wordsize}</wordsize>`);
    L.push(`      <emulator>${escapeXml(g.emulator)}</emulator>`);
    if (g.loader) L.push(`      <loader>${escapeXml(g.loader)}</loader>`);
    for (const m of g.machines) L.push(`      <machine>${escapeXml(m)}</machine>`);
    L.push("      <domain type='xen'/>", '    </arch>');
    if (g.features.length) {
      L.push('    <features>');
      for (const f of g.features) {
        if (f.default === undefined && f.toggle === undefined) L.push(`      <${f.name}/>`);
        else L.push(`      <${f.name} default='${f.default ?? 'on'}' toggle='${f.toggle ?? 'no'}'/>`);
      }
      L.push('    </features>');
    }
    L.push('  </guest>', '');
  }
  L.push('</capabilities>');
  return L.join('\n') + '\n';
}

function section(L: string[], name: string, entries: Record<string, string>): void {
  const keys = Object.keys(entries);
  if (!keys.length) return;
  L.push(`  <${name}>`);
  for (const k of keys) L.push(`    <entry name='${escapeXml(k)}'>${escapeXml(entries[k]!)}</entry>`);
  L.push(`  </${name}>`);
}

export function formatSysinfo(s: SysinfoData): string {
  const L: string[] = ["<sysinfo type='smbios'>"];
  section(L, 'bios', s.bios);
  section(L, 'system', s.system);
  section(L, 'baseBoard', s.baseBoard);
  for (const p of s.processors) section(L, 'processor', p);
  for (const m of s.memoryDevices) section(L, 'memory_device', m);
  L.push('</sysinfo>');
  return L.join('\n') + '\n';
}
