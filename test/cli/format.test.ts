/**
 * virsh's output building blocks, checked against text captured from virsh 9.0 itself
 * (`virsh -c test:///default ...`), and the parts of the CLI that need no hypervisor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session, xenvirt } from './harness.js';
import {
  eventDetailName, eventName, formatTable, lookupDomain, parseScaled, progressPercent, reasonName, stateName, toKiB,
} from '../../src/cli/commands/util.js';
import { listFlags, sortDomains } from '../../src/cli/commands/list.js';
import { lifecycleLine } from '../../src/cli/commands/event.js';
import { versionString } from '../../src/cli/commands/host.js';
import { ListFlags, type Connection, type DomainRef } from '../../src/driver/connection.js';

test('tables are laid out as vshTable lays them out', () => {
  // virsh 9.0, `list` and `list --all` on test:///default with one more domain defined.
  assert.equal(formatTable(['Id', 'Name', 'State'], [['1', 'test', 'running']]),
    ' Id   Name   State\n----------------------\n 1    test   running\n');
  assert.equal(formatTable(['Id', 'Name', 'State'], [['1', 'test', 'running'], ['-', 't1', 'shut off']]),
    ' Id   Name   State\n-----------------------\n 1    test   running\n -    t1     shut off\n');
  assert.equal(formatTable(['Id', 'Name', 'State'], []), ' Id   Name   State\n--------------------\n');
  // `list --title` with no titles: the empty last cell still pads the column before it.
  assert.equal(formatTable(['Id', 'Name', 'State', 'Title'], [['1', 'test', 'running', '']]),
    ' Id   Name   State     Title\n------------------------------\n 1    test   running   \n');
  // -q drops the header and the rule.
  assert.equal(formatTable(['Id', 'Name', 'State'], [['1', 'test', 'running']], false), ' 1   test   running\n');
});

test('state, reason and event names are virsh\'s', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(stateName), ['running', 'idle', 'paused', 'in shutdown', 'shut off', 'crashed', 'pmsuspended']);
  assert.equal(stateName(0), 'no state');
  assert.equal(`${stateName(1)} (${reasonName(1, 1)})`, 'running (booted)');
  assert.equal(reasonName(1, 5), 'unpaused');
  assert.equal(reasonName(3, 1), 'user');
  assert.equal(reasonName(5, 5), 'saved');
  assert.equal(reasonName(5, 2), 'destroyed');
  assert.equal(reasonName(5, 99), 'unknown');
  assert.equal(`${eventName(5)} ${eventDetailName(5, 0)}`, 'Stopped Shutdown');
  assert.equal(`${eventName(6)} ${eventDetailName(6, 1)}`, 'Shutdown Finished after guest request');
  assert.equal(eventName(42), 'unknown');
  const dom = { name: 'fv0', uuid: '4dea22b3-1d52-d8f3-2516-782e98ab3fa0', id: 3 };
  assert.equal(lifecycleLine({ domain: dom, event: 2, detail: 0 }), "event 'lifecycle' for domain 'fv0': Started Booted\n");
  assert.equal(lifecycleLine({ domain: dom, event: 3, detail: 0 }), "event 'lifecycle' for domain 'fv0': Suspended Paused\n");
});

test('scaled sizes: KiB by default, binary and decimal suffixes, bad input named', () => {
  assert.equal(toKiB(parseScaled('size', '131072', 1024)), 131072);
  assert.equal(toKiB(parseScaled('size', '512M', 1024)), 524288);
  assert.equal(toKiB(parseScaled('size', '512MiB', 1024)), 524288);
  assert.equal(toKiB(parseScaled('size', '1G', 1024)), 1048576);
  assert.equal(toKiB(parseScaled('size', '1000KB', 1024)), 977);
  assert.equal(toKiB(parseScaled('size', '1500b', 1024)), 2);
  for (const bad of ['', '-5', '12Q', '1.5G', 'lots']) {
    assert.throws(() => parseScaled('size', bad, 1024), { message: `Numeric value '${bad}' for <size> option is malformed or out of range` });
  }
  assert.equal(versionString(9_000_000), '9.0.0');
  // virshPrintJobProgress: whole percent, 99 until the very end.
  assert.deepEqual([[0, 100], [50, 100], [999, 1000], [1000, 1000], [5, 0]].map(([p, t]) => progressPercent(p!, t!)), [0, 50, 99, 100, 0]);
  assert.equal(versionString(4_017_001), '4.17.1');
});

test("list's filter flags follow cmdList", () => {
  assert.equal(listFlags({}), ListFlags.ACTIVE);
  assert.equal(listFlags({ all: true }), ListFlags.ACTIVE | ListFlags.INACTIVE);
  assert.equal(listFlags({ inactive: true }), ListFlags.INACTIVE);
  assert.equal(listFlags({ 'state-shutoff': true }), ListFlags.INACTIVE | ListFlags.SHUTOFF);
  assert.equal(listFlags({ all: true, 'state-running': true, 'state-paused': true }),
    ListFlags.ACTIVE | ListFlags.INACTIVE | ListFlags.RUNNING | ListFlags.PAUSED);
  assert.equal(listFlags({ all: true, persistent: true, 'no-autostart': true }),
    ListFlags.ACTIVE | ListFlags.INACTIVE | ListFlags.PERSISTENT | ListFlags.NO_AUTOSTART);
  assert.equal(listFlags({ transient: true, autostart: true, 'state-other': true }),
    ListFlags.ACTIVE | ListFlags.TRANSIENT | ListFlags.AUTOSTART | ListFlags.OTHER);
  const d = (name: string, id: number): DomainRef => ({ name, id, uuid: '' });
  assert.deepEqual(sortDomains([d('b', -1), d('x', 7), d('A', -1), d('Domain-0', 0), d('c', 3)]).map((x) => x.name),
    ['Domain-0', 'c', 'x', 'A', 'b']);
});

test('a domain argument is tried as an id, a UUID, then a name, as virsh does', async () => {
  const calls: string[] = [];
  const doms = [{ name: '42', uuid: '11111111-2222-3333-4444-555555555555', id: -1 }, { name: 'web', uuid: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', id: 7 }];
  const fail = () => Promise.reject(new Error('no domain'));
  const conn = {
    lookupById: (id: number) => { calls.push(`id:${id}`); return doms.find((x) => x.id === id) ? Promise.resolve(doms.find((x) => x.id === id)!) : fail(); },
    lookupByUuid: (u: string) => { calls.push(`uuid:${u}`); return doms.find((x) => x.uuid === u) ? Promise.resolve(doms.find((x) => x.uuid === u)!) : fail(); },
    lookupByName: (n: string) => { calls.push(`name:${n}`); return doms.find((x) => x.name === n) ? Promise.resolve(doms.find((x) => x.name === n)!) : fail(); },
  } as unknown as Connection;
  assert.equal((await lookupDomain(conn, '7')).name, 'web');
  assert.equal((await lookupDomain(conn, 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE')).name, 'web');
  calls.length = 0;
  // An all-digit name is still found by name once no domain has that id.
  assert.equal((await lookupDomain(conn, '42')).uuid, doms[0]!.uuid);
  assert.deepEqual(calls, ['id:42', 'name:42']);
  calls.length = 0;
  await assert.rejects(lookupDomain(conn, 'nosuch'), { message: "failed to get domain 'nosuch'" });
  assert.deepEqual(calls, ['name:nosuch']);
  // domname accepts ids and UUIDs only.
  await assert.rejects(lookupDomain(conn, 'web', 1 | 2), { message: "failed to get domain 'web'" });
});

test('attach-disk and attach-interface --print-xml write what virsh writes', async () => {
  const s = new Session('test:///default');
  const run = async (argv: string[]) => {
    const r = await s.run(argv);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  // Each expected text was printed by virsh 9.0 for the same arguments.
  assert.equal(await run(['attach-disk', 'd', '/nonexistent/y.img', 'xvdb', '--print-xml']),
    "<disk type='file'>\n  <source file='/nonexistent/y.img'/>\n  <target dev='xvdb'/>\n</disk>\n");
  assert.equal(await run(['attach-disk', 'd', '/tmp/x.img', 'vdc', '--print-xml', '--driver', 'qemu', '--subdriver', 'raw', '--targetbus', 'virtio', '--mode', 'readonly']),
    "<disk type='file'>\n  <driver name='qemu' type='raw'/>\n  <source file='/tmp/x.img'/>\n  <target dev='vdc' bus='virtio'/>\n  <readonly/>\n</disk>\n");
  assert.equal(await run(['attach-disk', 'd', '/dev/null', 'hdb', '--print-xml', '--sourcetype', 'block', '--type', 'cdrom', '--cache', 'none']),
    "<disk type='block' device='cdrom'>\n  <driver cache='none'/>\n  <source dev='/dev/null'/>\n  <target dev='hdb'/>\n</disk>\n");
  assert.equal(await run(['attach-disk', 'd', '', 'hdc', '--print-xml', '--type', 'cdrom']),
    "<disk type='file' device='cdrom'>\n  <source file=''/>\n  <target dev='hdc'/>\n</disk>\n");
  assert.equal(await run(['attach-interface', 'd', 'bridge', 'br0', '--print-xml', '--mac', '00:16:3e:00:00:01', '--model', 'virtio', '--script', 'vif-bridge', '--target', 'vif1']),
    "<interface type='bridge'>\n  <source bridge='br0'/>\n  <target dev='vif1'/>\n  <mac address='00:16:3e:00:00:01'/>\n  <script path='vif-bridge'/>\n  <model type='virtio'/>\n</interface>\n");
  assert.equal(await run(['attach-interface', 'd', 'network', 'default', '--print-xml']),
    "<interface type='network'>\n  <source network='default'/>\n</interface>\n");
  assert.equal(await run(['attach-interface', 'd', 'direct', 'eth0', '--print-xml', '--managed']),
    "<interface type='direct' managed='yes'>\n  <source dev='eth0'/>\n</interface>\n");
  // Values are escaped: a source path cannot inject markup.
  assert.match(await run(['attach-disk', 'd', "/x'/><evil/>", 'xvdc', '--print-xml']), /<source file='\/x&apos;\/&gt;&lt;evil\/&gt;'\/>/);

  const errors: Array<[string[], string]> = [
    [['attach-interface', 'd', 'bogus', 'br0', '--print-xml'], "error: No support for bogus in command 'attach-interface'\n"],
    [['attach-interface', 'd', 'user', 'x', '--print-xml'], "error: No support for user in command 'attach-interface'\n"],
    [['attach-disk', 'd', '/x', 'xvdb', '--mode', 'rw', '--print-xml'], "error: No support for rw in command 'attach-disk'\n"],
    [['attach-disk', 'd', '/x', 'xvdb', '--sourcetype', 'nfs', '--print-xml'], "error: Unknown source type: 'nfs'\n"],
    [['attach-disk', 'd', '/x', 'xvdb', '--current', '--live'], 'error: Options --current and --live are mutually exclusive\n'],
    [['attach-disk', 'd', '/x', 'xvdb', '--persistent', '--current'], 'error: Options --persistent and --current are mutually exclusive\n'],
    [['attach-disk', 'd', '/x'], "error: command 'attach-disk' requires <target> option\n"],
  ];
  for (const [argv, stderr] of errors) {
    const r = await s.run(argv);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', stderr], argv.join(' '));
  }
  await s.close();
});

test('option errors need no hypervisor and use virsh wording (real binary)', async () => {
  const cases: Array<[string[], string]> = [
    [['start'], "error: command 'start' requires <domain> option\n"],
    [['start', 'x', '--bogus'], "error: command 'start' doesn't support option --bogus\n"],
    [['nosuchcommand'], "error: unknown command: 'nosuchcommand'\n"],
    [['setvcpus', 'x', 'many'], "error: Numeric value 'many' for <count> option is malformed or out of range\n"],
    [['event'], 'error: one of --list, --all, or --event <type> is required\n'],
    [['event', '--all', '--event', 'lifecycle'], 'error: Options --all and --event are mutually exclusive\n'],
    [['event', '--event', 'nosuch'], 'error: unknown event type nosuch\n'],
    [['event', '--all', '--timeout', '0'], "error: Numeric value '0' for <timeout> option is malformed or out of range\n"],
    [['setvcpus', 'x', '2', '--maximum'], 'error: Option --config is required by option --maximum\n'],
    [['shutdown', 'x', '--mode', 'hard'], "error: Unknown mode hard value, expecting 'acpi', 'agent', 'initctl', 'signal', or 'paravirt'\n"],
    [['vcpucount', 'x', '--live', '--config'], 'error: Options --live and --config are mutually exclusive\n'],
    [['list', '--table', '--name'], 'error: Options --table and --name are mutually exclusive\n'],
    [['list', '--table', '--uuid'], 'error: Options --table and --uuid are mutually exclusive\n'],
  ];
  const results = await Promise.all(cases.map(([argv]) => xenvirt(['-c', 'test:///default', ...argv])));
  results.forEach((r, i) => {
    const [argv, stderr] = cases[i]!;
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', stderr], argv.join(' '));
  });
  const list = await xenvirt(['event', '--list']);
  assert.equal(list.code, 0);
  assert.match(list.stdout, /^lifecycle\nreboot\nrtc-change\n/);
  assert.equal(list.stdout.split('\n').length - 1, 27);
});
