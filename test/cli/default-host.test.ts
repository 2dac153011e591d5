/**
 * Every command against `test:///default`, the per-process simulated host. The bulk runs
 * in-process through runCommand on one session (one connection, as in the shell); a
 * representative subset goes through the real binary, including the error paths.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session, eventually, fails, ok, parseListTable, smallDomainXml, xenvirt } from './harness.js';

const URI = 'test:///default';
const A_UUID = 'c0ffee00-0000-4000-8000-00000000000a';
const B_UUID = 'c0ffee00-0000-4000-8000-00000000000b';


/** `Label:          value` lines of dominfo/nodeinfo as a map. */
function fields(text: string, width: number): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n').filter((l) => l)) {
    const label = line.slice(0, width).trimEnd();
    assert.equal(line[width], ' ', `label column is ${width} wide: '${line}'`);
    m.set(label, line.slice(width + 1));
  }
  return m;
}

test('test:///default through the CLI, in-process', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'xenvirt-cli-default-'));
  const s = new Session(URI);
  const run = (...argv: string[]) => s.run(argv);
  const state = async (dom: string) => ok(await run('domstate', '--reason', dom), 'domstate').trim();
  t.after(async () => { await s.close(); rmSync(tmp, { recursive: true, force: true }); });

  const aFile = join(tmp, 'cli-a.xml');
  writeFileSync(aFile, smallDomainXml('cli-a', A_UUID, 262144, 262144, 2));

  await t.test('host and hypervisor commands', async () => {
    assert.match(ok(await run('version'), 'version'),
      /^Compiled against library: libvirt 9\.0\.0\nUsing library: libvirt 9\.0\.0\nUsing API: (\S+) 9\.0\.0\nRunning hypervisor: \1 \d+\.\d+\.\d+\n$/);
    assert.match(ok(await run('version', '--daemon'), 'version --daemon'), /\nRunning against daemon: \d+\.\d+\.\d+\n$/);
    assert.equal(ok(await run('uri'), 'uri'), 'test:///default\n');
    assert.match(ok(await run('hostname'), 'hostname'), /^\S+\n$/);
    const node = fields(ok(await run('nodeinfo'), 'nodeinfo'), 20);
    assert.deepEqual([...node.keys()].filter((k) => k !== 'CPU frequency:'),
      ['CPU model:', 'CPU(s):', 'CPU socket(s):', 'Core(s) per socket:', 'Thread(s) per core:', 'NUMA cell(s):', 'Memory size:']);
    assert.match(node.get('Memory size:')!, /^\d+ KiB$/);
    assert.equal(Number(node.get('CPU(s):')),
      Number(node.get('CPU socket(s):')) * Number(node.get('Core(s) per socket:')) * Number(node.get('Thread(s) per core:')) * Number(node.get('NUMA cell(s):')));
    const caps = ok(await run('capabilities'), 'capabilities');
    assert.match(caps, /^<capabilities>\n/);
    for (const want of [/<os_type>xen<\/os_type>/, /<os_type>hvm<\/os_type>/, /<machine>xenpv<\/machine>/, /<machine>xenfv<\/machine>/, /xenpvh/]) {
      assert.match(caps, want);
    }
    assert.match(ok(await run('sysinfo'), 'sysinfo'), /^<sysinfo type='smbios'>/);
  });

  await t.test('Domain-0 and the preloaded guests are listed', async () => {
    const rows = parseListTable(ok(await run('list', '--all'), 'list --all'));
    assert.deepEqual(rows[0], ['0', 'Domain-0', 'running']);
    assert.ok(rows.length >= 5, 'Domain-0 and four guests shaped like the seed examples');
    const names = rows.map((r) => r[1]!);
    assert.equal(new Set(names).size, names.length, 'names are unique');
    const uuids = ok(await run('list', '--all', '--uuid'), 'list --uuid').trim().split('\n');
    assert.equal(new Set(uuids).size, uuids.length, 'UUIDs are unique');
    fails(await run('start', 'Domain-0'), 'start Domain-0', 'error: Domain is already active');
  });

  await t.test('define, then read the domain by name, id and UUID', async () => {
    assert.equal(ok(await run('define', aFile), 'define'), `Domain 'cli-a' defined from ${aFile}\n`);
    assert.deepEqual(parseListTable(ok(await run('list', '--inactive'), 'list --inactive')).find((r) => r[1] === 'cli-a'), ['-', 'cli-a', 'shut off']);
    const info = fields(ok(await run('dominfo', 'cli-a'), 'dominfo'), 15);
    assert.deepEqual([...info.entries()].filter(([k]) => k !== 'OS Type:'), [
      ['Id:', '-'], ['Name:', 'cli-a'], ['UUID:', A_UUID], ['State:', 'shut off'], ['CPU(s):', '2'],
      ['Max memory:', '262144 KiB'], ['Used memory:', '262144 KiB'], ['Persistent:', 'yes'],
      ['Autostart:', 'disable'], ['Managed save:', 'no'],
    ]);
    assert.match(info.get('OS Type:')!, /^(linux|xen)$/);
    assert.match(await state('cli-a'), /^shut off \(\w+\)$/);
    assert.equal(ok(await run('domstate', 'cli-a'), 'domstate'), 'shut off\n');
    assert.equal(ok(await run('domid', 'cli-a'), 'domid'), '-\n');
    assert.equal(ok(await run('domuuid', 'cli-a'), 'domuuid'), `${A_UUID}\n`);
    assert.equal(ok(await run('domname', A_UUID), 'domname'), 'cli-a\n');
    assert.equal(ok(await run('domname', A_UUID.toUpperCase()), 'domname UUID'), 'cli-a\n');
    // domname takes an id or a UUID, never a name; domid takes no id.
    fails(await run('domname', 'cli-a'), 'domname by name', "error: failed to get domain 'cli-a'");
    const xml = ok(await run('dumpxml', 'cli-a'), 'dumpxml');
    assert.match(xml, /^<domain type='xen'>\n  <name>cli-a<\/name>\n  <uuid>c0ffee00-0000-4000-8000-00000000000a<\/uuid>\n/);
    assert.equal(ok(await run('dumpxml', '--inactive', 'cli-a'), 'dumpxml --inactive'), xml);
    assert.equal(ok(await run('dumpxml', A_UUID, '--security-info'), 'dumpxml --security-info'), xml);
  });

  await t.test('start, suspend, resume and the state filters of list', async () => {
    assert.equal(ok(await run('start', 'cli-a'), 'start'), "Domain 'cli-a' started\n");
    assert.equal(await state('cli-a'), 'running (booted)');
    fails(await run('start', 'cli-a'), 'start a running domain', 'error: Domain is already active');
    const id = ok(await run('domid', 'cli-a'), 'domid').trim();
    assert.match(id, /^[1-9]\d*$/);
    assert.equal(ok(await run('domname', id), 'domname by id'), 'cli-a\n');
    assert.equal(ok(await run('domuuid', id), 'domuuid by id'), `${A_UUID}\n`);
    assert.equal(fields(ok(await run('dominfo', id), 'dominfo by id'), 15).get('Id:'), id);
    assert.equal(fields(ok(await run('dominfo', A_UUID), 'dominfo by uuid'), 15).get('State:'), 'running');
    const rows = parseListTable(ok(await run('list'), 'list'));
    assert.deepEqual(rows.find((r) => r[1] === 'cli-a'), [id, 'cli-a', 'running']);
    assert.ok(rows.every((r) => r[0] !== '-'), 'plain list shows running domains only');
    const ids = rows.map((r) => Number(r[0]));
    assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'sorted by id');
    const names = async (...filters: string[]) => ok(await run('list', '--name', ...filters), `list ${filters}`).split('\n').filter((l) => l);
    assert.ok((await names('--state-running')).includes('cli-a'));
    assert.ok(!(await names('--state-shutoff')).includes('cli-a'));
    assert.ok(!(await names('--all', '--transient')).includes('cli-a'));
    assert.ok((await names('--all', '--persistent')).includes('cli-a'));
    assert.ok((await names('--all', '--no-autostart')).includes('cli-a'));

    assert.equal(ok(await run('suspend', 'cli-a'), 'suspend'), "Domain 'cli-a' suspended\n");
    assert.equal(await state('cli-a'), 'paused (user)');
    assert.ok((await names('--state-paused')).includes('cli-a'));
    assert.ok(!(await names('--state-running')).includes('cli-a'));
    assert.equal(ok(await run('resume', 'cli-a'), 'resume'), "Domain 'cli-a' resumed\n");
    assert.equal(await state('cli-a'), 'running (unpaused)');
    assert.deepEqual(await names('--state-other'), []);
  });

  await t.test('memory and vcpus: live and config, never above the maximum', async () => {
    assert.equal(ok(await run('setmem', 'cli-a', '131072'), 'setmem'), '');
    assert.equal(fields(ok(await run('dominfo', 'cli-a'), 'dominfo'), 15).get('Used memory:'), '131072 KiB');
    fails(await run('setmem', 'cli-a', '1G'), 'setmem above the maximum', /^error: invalid argument: .*max/);
    assert.equal(fields(ok(await run('dominfo', 'cli-a'), 'dominfo'), 15).get('Used memory:'), '131072 KiB', 'unchanged');
    fails(await run('setmem', 'cli-a', '12Q'), 'setmem bad size', "error: Numeric value '12Q' for <size> option is malformed or out of range");
    // The next boot's maximum changes alone with --config.
    assert.equal(ok(await run('setmaxmem', 'cli-a', '384M', '--config'), 'setmaxmem --config'), '');
    assert.match(ok(await run('dumpxml', '--inactive', 'cli-a'), 'dumpxml'), /<memory unit='KiB'>393216<\/memory>/);
    assert.equal(fields(ok(await run('dominfo', 'cli-a'), 'dominfo'), 15).get('Max memory:'), '262144 KiB', 'live maximum unchanged');
    // The live maximum of an inactive domain does not exist.
    fails(await run('setmaxmem', 'hvm-bios', '393216', '--live'), 'setmaxmem --live of an inactive domain',
      'error: Unable to change MaxMemorySize', 'error: Requested operation is not valid: domain is not running');

    assert.equal(ok(await run('vcpucount', 'cli-a'), 'vcpucount'),
      'maximum      config         2\nmaximum      live           2\ncurrent      config         2\ncurrent      live           2\n');
    assert.equal(ok(await run('setvcpus', 'cli-a', '1'), 'setvcpus'), '');
    assert.equal(ok(await run('vcpucount', 'cli-a', '--live', '--active'), 'vcpucount --live'), '1\n');
    fails(await run('setvcpus', 'cli-a', '3'), 'setvcpus above the maximum', /^error: /);
    fails(await run('setvcpus', 'cli-a', '0'), 'setvcpus 0', "error: Can't set 0 processors for a VM");
  });

  await t.test('setvcpus --maximum --config raises the maximum only, as virDomainDefSetVcpusMax does', async () => {
    // libvirt adds the new vcpus offline: virsh against libvirt prints current config 2 here.
    assert.equal(ok(await run('setvcpus', 'cli-a', '4', '--maximum', '--config'), 'setvcpus --maximum --config'), '');
    assert.equal(ok(await run('vcpucount', 'cli-a', '--maximum', '--config'), 'vcpucount --maximum --config'), '4\n');
    assert.equal(ok(await run('vcpucount', 'cli-a'), 'vcpucount'),
      'maximum      config         4\nmaximum      live           2\ncurrent      config         2\ncurrent      live           1\n');
  });

  await t.test('autostart and devices, live and config', async () => {
    assert.equal(ok(await run('autostart', 'cli-a'), 'autostart'), "Domain 'cli-a' marked as autostarted\n");
    assert.equal(fields(ok(await run('dominfo', 'cli-a'), 'dominfo'), 15).get('Autostart:'), 'enable');
    assert.ok(ok(await run('list', '--all', '--autostart', '--name'), 'list --autostart').split('\n').includes('cli-a'));
    assert.equal(ok(await run('autostart', '--disable', 'cli-a'), 'autostart --disable'), "Domain 'cli-a' unmarked as autostarted\n");
    assert.ok(!ok(await run('list', '--all', '--autostart', '--name'), 'list --autostart').split('\n').includes('cli-a'));

    assert.equal(ok(await run('attach-disk', 'cli-a', '/var/lib/xen/images/extra.img', 'xvdb', '--config'), 'attach-disk --config'), 'Disk attached successfully\n');
    assert.match(ok(await run('dumpxml', '--inactive', 'cli-a'), 'dumpxml'), /<target dev='xvdb' bus='xen'\/>/);
    assert.doesNotMatch(ok(await run('dumpxml', 'cli-a'), 'dumpxml'), /xvdb/, 'config only');
    assert.equal(ok(await run('attach-disk', 'cli-a', '/var/lib/xen/images/hot.img', 'xvdc'), 'attach-disk live'), 'Disk attached successfully\n');
    assert.match(ok(await run('dumpxml', 'cli-a'), 'dumpxml'), /<target dev='xvdc' bus='xen'\/>/);
    assert.doesNotMatch(ok(await run('dumpxml', '--inactive', 'cli-a'), 'dumpxml --inactive'), /xvdc/, 'live only');

    const mac = '00:16:3e:11:22:33';
    assert.equal(ok(await run('attach-interface', 'cli-a', 'bridge', 'xenbr0', '--mac', mac, '--persistent'), 'attach-interface'), 'Interface attached successfully\n');
    assert.match(ok(await run('dumpxml', 'cli-a'), 'dumpxml'), new RegExp(`<mac address='${mac}'/>`));
    assert.match(ok(await run('dumpxml', '--inactive', 'cli-a'), 'dumpxml --inactive'), new RegExp(`<mac address='${mac}'/>`));
    const nic = join(tmp, 'nic.xml');
    writeFileSync(nic, `<interface type='bridge'>\n  <mac address='${mac}'/>\n  <source bridge='xenbr0'/>\n</interface>\n`);
    assert.equal(ok(await run('detach-device', 'cli-a', nic, '--config'), 'detach-device --config'), 'Device detached successfully\n');
    assert.doesNotMatch(ok(await run('dumpxml', '--inactive', 'cli-a'), 'dumpxml --inactive'), new RegExp(mac));
    assert.match(ok(await run('dumpxml', 'cli-a'), 'dumpxml'), new RegExp(mac), 'still attached live');
    assert.equal(ok(await run('detach-device', 'cli-a', nic, '--live'), 'detach-device --live'), 'Device detached successfully\n');
    assert.doesNotMatch(ok(await run('dumpxml', 'cli-a'), 'dumpxml'), new RegExp(mac));
    const disk = join(tmp, 'disk.xml');
    writeFileSync(disk, "<disk type='file' device='disk'>\n  <source file='/var/lib/xen/images/extra2.img'/>\n  <target dev='xvdd' bus='xen'/>\n</disk>\n");
    assert.equal(ok(await run('attach-device', 'cli-a', disk, '--config'), 'attach-device'), 'Device attached successfully\n');
    assert.match(ok(await run('dumpxml', '--inactive', 'cli-a'), 'dumpxml --inactive'), /xvdd/);
    fails(await run('attach-device', 'cli-a', join(tmp, 'none.xml')), 'attach-device missing file',
      `error: Failed to open file '${join(tmp, 'none.xml')}': No such file or directory`);
  });

  await t.test('save, restore, dump and managed save', async () => {
    const image = join(tmp, 'cli-a.save');
    const save = await s.run(['save', 'cli-a', image, '--verbose']);
    assert.equal(save.code, 0, save.stderr);
    assert.equal(save.stdout, `\nDomain 'cli-a' saved to ${image}\n`);
    assert.match(save.stderr, /^(\rSave: \[[ \d]{2}\d %\])*\rSave: \[100 %\]$/);
    assert.ok(statSync(image).size > 0, 'a real file');
    assert.equal(await state('cli-a'), 'shut off (saved)');
    // On a terminal the progress shows without --verbose.
    const restore = await s.run(['restore', image], { tty: true });
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(restore.stdout, `\nDomain restored from ${image}\n`);
    assert.match(restore.stderr, /^(\rRestore: \[[ \d]{2}\d %\])*\rRestore: \[100 %\]$/);
    assert.equal(await state('cli-a'), 'running (restored)');
    assert.match(ok(await run('dumpxml', 'cli-a'), 'dumpxml'), /xvdc/, 'the live XML travelled with the image');

    const core = join(tmp, 'cli-a.core');
    assert.equal(ok(await run('dump', 'cli-a', core), 'dump'), `\nDomain 'cli-a' dumped to ${core}\n`);
    assert.ok(statSync(core).size > 0, 'a real core file');
    // libxl pauses the guest for a core dump without --live, then resumes it.
    assert.equal(await state('cli-a'), 'running (unpaused)', 'dump leaves the domain running');

    assert.equal(ok(await run('managedsave', 'cli-a'), 'managedsave'), "\nDomain 'cli-a' state saved by libvirt\n");
    assert.equal(await state('cli-a'), 'shut off (saved)');
    assert.equal(fields(ok(await run('dominfo', 'cli-a'), 'dominfo'), 15).get('Managed save:'), 'yes');
    assert.deepEqual(parseListTable(ok(await run('list', '--all', '--managed-save'), 'list --managed-save')).find((r) => r[1] === 'cli-a'), ['-', 'cli-a', 'saved']);
    assert.ok(ok(await run('list', '--all', '--with-managed-save', '--name'), 'list').split('\n').includes('cli-a'));
    assert.equal(ok(await run('start', 'cli-a'), 'start'), "Domain 'cli-a' started\n");
    assert.equal(await state('cli-a'), 'running (restored)');
    assert.equal(fields(ok(await run('dominfo', 'cli-a'), 'dominfo'), 15).get('Managed save:'), 'no');
    fails(await run('save', 'cli-a', join(tmp, 'no', 'such', 'dir', 'x.save')), 'save into a missing directory',
      `error: Failed to save domain 'cli-a' to ${join(tmp, 'no', 'such', 'dir', 'x.save')}`, /^error: /);
    assert.match(await state('cli-a'), /^running /, 'a failed save leaves the domain running');
    fails(await run('restore', join(tmp, 'nothing.save')), 'restore a missing image',
      `error: Failed to restore domain from ${join(tmp, 'nothing.save')}`, /^error: /);
  });

  await t.test('reboot, shutdown and destroy', async () => {
    assert.equal(ok(await run('reboot', 'cli-a'), 'reboot'), "Domain 'cli-a' is being rebooted\n");
    await eventually(async () => assert.equal(await state('cli-a'), 'running (booted)'));
    assert.equal(ok(await run('shutdown', 'cli-a'), 'shutdown'), "Domain 'cli-a' is being shutdown\n");
    await eventually(async () => assert.equal(await state('cli-a'), 'shut off (shutdown)'));
    fails(await run('destroy', 'cli-a'), 'destroy an inactive domain',
      "error: Failed to destroy domain 'cli-a'", 'error: Requested operation is not valid: domain is not running');
    fails(await run('suspend', 'cli-a'), 'suspend an inactive domain', "error: Failed to suspend domain 'cli-a'", /^error: Requested operation is not valid: /);
    ok(await run('start', 'cli-a'), 'start');
    assert.equal(ok(await run('destroy', 'cli-a'), 'destroy'), "Domain 'cli-a' destroyed\n");
    assert.equal(await state('cli-a'), 'shut off (destroyed)');
  });

  await t.test('create and undefine: transient domains, managed save guard', async () => {
    const bFile = join(tmp, 'cli-b.xml');
    writeFileSync(bFile, smallDomainXml('cli-b', B_UUID, 131072));
    assert.equal(ok(await run('create', bFile), 'create'), `Domain 'cli-b' created from ${bFile}\n`);
    assert.equal(await state('cli-b'), 'running (booted)');
    assert.ok(ok(await run('list', '--transient', '--name'), 'list --transient').split('\n').includes('cli-b'));
    assert.equal(fields(ok(await run('dominfo', 'cli-b'), 'dominfo'), 15).get('Persistent:'), 'no');
    assert.equal(ok(await run('vcpucount', 'cli-b'), 'vcpucount of a transient domain'),
      'maximum      live           2\ncurrent      live           2\n');
    ok(await run('destroy', 'cli-b'), 'destroy');
    fails(await run('domstate', 'cli-b'), 'a destroyed transient domain is gone', "error: failed to get domain 'cli-b'");

    // Undefining a running domain leaves it running, transient.
    ok(await run('start', 'cli-a'), 'start');
    assert.equal(ok(await run('undefine', 'cli-a'), 'undefine'), "Domain 'cli-a' has been undefined\n");
    assert.equal(fields(ok(await run('dominfo', 'cli-a'), 'dominfo'), 15).get('Persistent:'), 'no');
    ok(await run('define', aFile), 'define again');
    assert.equal(fields(ok(await run('dominfo', 'cli-a'), 'dominfo'), 15).get('Persistent:'), 'yes');

    ok(await run('managedsave', 'cli-a'), 'managedsave');
    fails(await run('undefine', 'cli-a'), 'undefine with a managed save image', "error: Failed to undefine domain 'cli-a'", /^error: .*managed save/);
    assert.equal(ok(await run('undefine', 'cli-a', '--managed-save'), 'undefine --managed-save'), "Domain 'cli-a' has been undefined\n");
    fails(await run('dominfo', 'cli-a'), 'gone', "error: failed to get domain 'cli-a'");
    fails(await run('undefine', 'nosuch'), 'undefine an unknown domain', "error: failed to get domain 'nosuch'");
  });

  await t.test('define errors leave the host unchanged', async () => {
    ok(await run('define', aFile), 'define');
    const before = ok(await run('list', '--all'), 'list');
    const xmlBefore = ok(await run('dumpxml', '--inactive', 'cli-a'), 'dumpxml');
    const bad = join(tmp, 'bad.xml');
    writeFileSync(bad, "<domain type='xen'><name>broken</name>");
    fails(await run('define', bad), 'define invalid XML', `error: Failed to define domain from ${bad}`, /^error: /);
    const dup = join(tmp, 'dup.xml');
    writeFileSync(dup, smallDomainXml('cli-a', B_UUID, 65536));
    fails(await run('define', dup), 'define a duplicate name with another UUID', `error: Failed to define domain from ${dup}`, /^error: .*cli-a.*already exists/);
    fails(await run('define', join(tmp, 'missing.xml')), 'define a missing file', `error: Failed to open file '${join(tmp, 'missing.xml')}': No such file or directory`);
    assert.equal(ok(await run('list', '--all'), 'list'), before);
    assert.equal(ok(await run('dumpxml', '--inactive', 'cli-a'), 'dumpxml'), xmlBefore);
    // Redefining the same name and UUID updates the definition.
    writeFileSync(aFile, smallDomainXml('cli-a', A_UUID, 196608, 262144, 2));
    ok(await run('define', aFile), 'redefine');
    assert.match(ok(await run('dumpxml', '--inactive', 'cli-a'), 'dumpxml'), /<currentMemory unit='KiB'>196608<\/currentMemory>/);
  });

  await t.test('--json on the read commands', async () => {
    const json = async (...argv: string[]) => JSON.parse(ok(await s.run(argv, { json: true }), argv.join(' '))) as Record<string, unknown>;
    const list = await json('list', '--all') as unknown as Array<Record<string, unknown>>;
    assert.deepEqual(list[0], { id: 0, name: 'Domain-0', uuid: list[0]!.uuid, state: 'running' });
    assert.deepEqual(list.find((d) => d.name === 'cli-a'), { id: null, name: 'cli-a', uuid: A_UUID, state: 'shut off' });
    const info = await json('dominfo', 'cli-a');
    assert.equal(info.name, 'cli-a');
    assert.equal(info.maxMemory, 262144);
    assert.equal(info.usedMemory, 196608);
    assert.equal(info.persistent, true);
    assert.deepEqual(await json('domstate', 'cli-a'), { state: 'shut off', reason: (await json('domstate', 'cli-a')).reason });
    assert.deepEqual(await json('domid', 'cli-a'), { id: null });
    assert.deepEqual(await json('domuuid', 'cli-a'), { uuid: A_UUID });
    assert.deepEqual(await json('domname', A_UUID), { name: 'cli-a' });
    assert.deepEqual(await json('vcpucount', 'cli-a'), { maximum: { config: 2, live: null }, current: { config: 2, live: null } });
    assert.match(String((await json('dumpxml', 'cli-a')).xml), /^<domain type='xen'>/);
    const node = await json('nodeinfo');
    assert.equal(typeof node.memory, 'number');
    assert.equal(typeof node.cpus, 'number');
    assert.deepEqual(Object.keys(await json('version')), ['compiledAgainst', 'library', 'api', 'hypervisor']);
    assert.deepEqual(await json('uri'), { uri: URI });
    assert.match(String((await json('capabilities')).capabilities), /^<capabilities>/);
  });

  await t.test('-q keeps only the data', async () => {
    const q = (...argv: string[]) => s.run(argv, { quiet: true });
    assert.equal(ok(await q('start', 'cli-a'), 'start -q'), '');
    const rows = ok(await q('list'), 'list -q');
    assert.doesNotMatch(rows, /Name|---/);
    assert.match(rows, /^ 0 +Domain-0 +running\n/);
    assert.equal(ok(await q('destroy', 'cli-a'), 'destroy -q'), '');
  });

  await t.test('event: one-shot, --timeout, and nothing received', async () => {
    const r = await run('event', '--all', '--timeout', '1');
    assert.equal(r.code, 1, 'virsh fails when no event arrived');
    assert.equal(r.stdout, 'event loop timed out\nevents received: 0\n');
    assert.equal(r.stderr, '');
  });
});

test('test:///default through the real binary: layout, errors and the shell', async () => {
  const [list, dom0, start, undef, bogusUri, json, shell] = await Promise.all([
    xenvirt(['-c', URI, 'list', '--all']),
    xenvirt(['-c', URI, 'dominfo', '0']),
    xenvirt(['-c', URI, 'start', 'Domain-0']),
    xenvirt(['-c', URI, 'undefine', 'nosuch']),
    xenvirt(['-c', 'bogus+what://x/', 'list']),
    xenvirt(['-c', URI, '--json', 'list', '--all']),
    // No command: the interactive shell reads commands from stdin; state lives for the session.
    xenvirt(['-c', URI], { input: `define ${join(tmpdir(), 'xenvirt-cli-shell-none.xml')}\nlist --all --name\ndomstate Domain-0\n` }),
  ]);
  const text = ok(list, 'list --all');
  const lines = text.split('\n');
  assert.match(lines[0]!, /^ Id   Name +State$/);
  const rows = parseListTable(text);
  const w = (c: number) => Math.max(['Id', 'Name', 'State'][c]!.length, ...rows.map((r) => r[c]!.length));
  assert.equal(lines[1], '-'.repeat(w(0) + w(1) + w(2) + 9));
  assert.equal(lines[2], ` ${'0'.padEnd(w(0) + 2)} ${'Domain-0'.padEnd(w(1) + 2)} running`);
  assert.equal(text.endsWith('\n'), true);
  assert.match(ok(dom0, 'dominfo 0'), /^Id:             0\nName:           Domain-0\nUUID:           00000000-0000-0000-0000-000000000000\n/);
  fails(start, 'start Domain-0', 'error: Domain is already active');
  assert.equal(start.stdout, '');
  fails(undef, 'undefine nosuch', "error: failed to get domain 'nosuch'");
  assert.equal(bogusUri.code, 1);
  assert.match(bogusUri.stderr, /^error: failed to connect to the hypervisor\nerror: \S/);
  assert.deepEqual((JSON.parse(ok(json, 'json')) as Array<{ name: string }>)[0]!.name, 'Domain-0');
  assert.equal(shell.code, 0, shell.stderr);
  // virsh reports an unreadable file by itself, without its "Failed to define" line.
  assert.equal(shell.stderr, `error: Failed to open file '${join(tmpdir(), 'xenvirt-cli-shell-none.xml')}': No such file or directory\n`);
  assert.match(shell.stdout, /^Domain-0\n(.+\n)+running\n$/);
  assert.ok(!existsSync(join(tmpdir(), 'xenvirt-cli-shell-none.xml')));
});
