/** `list`: virsh's domain table, its filters and its --name/--uuid/--id forms. */
import type { ArgValues, Command } from '../command.js';
import { DomainState, ListFlags, type Connection, type DomainRef } from '../../driver/connection.js';
import { parseXml } from '../../domain/xml.js';
import { connect, exclusive, flag, formatTable, printJson, stateName } from './util.js';

const FILTERS: Array<[string, number, string]> = [
  ['persistent', ListFlags.PERSISTENT, 'list persistent domains'],
  ['transient', ListFlags.TRANSIENT, 'list transient domains'],
  ['with-managed-save', ListFlags.MANAGEDSAVE, 'list domains with managed save state'],
  ['without-managed-save', ListFlags.NO_MANAGEDSAVE, 'list domains without managed save'],
  ['autostart', ListFlags.AUTOSTART, 'list domains with autostart enabled'],
  ['no-autostart', ListFlags.NO_AUTOSTART, 'list domains with autostart disabled'],
  ['with-snapshot', ListFlags.HAS_SNAPSHOT, 'list domains with existing snapshot'],
  ['without-snapshot', ListFlags.NO_SNAPSHOT, 'list domains without a snapshot'],
  ['state-running', ListFlags.RUNNING, 'list domains in running state'],
  ['state-paused', ListFlags.PAUSED, 'list domains in paused state'],
  ['state-shutoff', ListFlags.SHUTOFF, 'list domains in shutoff state'],
  ['state-other', ListFlags.OTHER, 'list domains in other states'],
];

/** The virConnectListAllDomains flags virsh's cmdList builds from its options. */
export function listFlags(args: ArgValues): number {
  let flags: number = ListFlags.ACTIVE;
  if (flag(args, 'inactive') || flag(args, 'state-shutoff')) flags = ListFlags.INACTIVE;
  if (flag(args, 'all')) flags = ListFlags.ACTIVE | ListFlags.INACTIVE;
  for (const [name, bit] of FILTERS) if (flag(args, name)) flags |= bit;
  return flags;
}

/** virshDomainSorter: running domains by id, then inactive ones by name, case-insensitively. */
export function sortDomains(doms: DomainRef[]): DomainRef[] {
  return [...doms].sort((a, b) => {
    if (a.id >= 0 && b.id >= 0) return a.id - b.id;
    if (a.id >= 0) return -1;
    if (b.id >= 0) return 1;
    const x = a.name.toLowerCase();
    const y = b.name.toLowerCase();
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

async function domainTitle(conn: Connection, dom: DomainRef): Promise<string> {
  const xml = await conn.getXmlDesc(dom, 0);
  return parseXml(xml).children.find((c) => c.name === 'title')?.text ?? '';
}

export const list: Command = {
  name: 'list',
  group: 'Domain Monitoring',
  summary: 'list domains',
  options: [
    { name: 'inactive', type: 'bool', help: 'list inactive domains' },
    { name: 'all', type: 'bool', help: 'list inactive & active domains' },
    ...FILTERS.map(([name, , help]) => ({ name, type: 'bool' as const, help })),
    { name: 'uuid', type: 'bool', help: "list uuid's only" },
    { name: 'name', type: 'bool', help: 'list domain names only' },
    { name: 'id', type: 'bool', help: 'list domain IDs only' },
    { name: 'table', type: 'bool', help: 'list table (default)' },
    { name: 'managed-save', type: 'bool', help: 'mark inactive domains with managed save state' },
    { name: 'title', type: 'bool', help: 'show domain title' },
  ],
  async run(args, io) {
    exclusive(args, 'table', 'name');
    exclusive(args, 'table', 'id');
    exclusive(args, 'table', 'uuid');
    const optUuid = flag(args, 'uuid');
    const optName = flag(args, 'name');
    const optId = flag(args, 'id');
    // --uuid, --name and --id print bare lists; the table (and its Title column) is the rest.
    const optTable = !optUuid && !optName && !optId;
    const optTitle = optTable && flag(args, 'title');

    const conn = await connect(io);
    const doms = sortDomains(await conn.listAllDomains(listFlags(args)).catch((e: Error) => {
      io.stderr.write('error: Failed to list domains\n');
      throw e;
    }));

    if (io.json) {
      const out = [];
      for (const d of doms) {
        const st = await conn.getState(d).catch(() => undefined);
        if (!st) continue;
        out.push({
          id: d.id >= 0 ? d.id : null,
          name: d.name,
          uuid: d.uuid,
          state: stateName(st.state),
          ...(flag(args, 'managed-save') ? { managedSave: await conn.hasManagedSaveImage(d) } : {}),
          ...(optTitle ? { title: await domainTitle(conn, d) } : {}),
        });
      }
      printJson(io, out);
      return;
    }

    if (!optTable) {
      let out = '';
      for (const d of doms) {
        const id = d.id >= 0 ? String(d.id) : '-';
        const parts: string[] = [];
        if (optUuid) parts.push(d.uuid);
        // --id alone prints running domains only.
        if (optId) {
          if (d.id < 0 && !optUuid && !optName) continue;
          parts.push(id);
        }
        if (optName) parts.push(d.name);
        out += parts.join(' ') + '\n';
      }
      io.stdout.write(out);
      return;
    }

    const headers = ['Id', 'Name', 'State'];
    if (optTitle) headers.push('Title');
    const rows: string[][] = [];
    for (const d of doms) {
      // A domain that vanished since the listing is skipped, as virsh does.
      const st = await conn.getState(d).catch(() => undefined);
      if (!st) continue;
      const managed = flag(args, 'managed-save') && st.state === DomainState.SHUTOFF && await conn.hasManagedSaveImage(d).catch(() => false);
      const row = [d.id >= 0 ? String(d.id) : '-', d.name, managed ? 'saved' : stateName(st.state)];
      if (optTitle) row.push(await domainTitle(conn, d));
      rows.push(row);
    }
    io.stdout.write(formatTable(headers, rows, !io.quiet));
  },
};
