/**
 * A persistent simulated host, `test:///TMPDIR`, driven by separate `bin/xenvirt` processes:
 * its state must carry from one invocation to the next. The seed's four example domains go
 * through their whole life (define, start, list, schema-valid dumpxml, shutdown seen by
 * `event --loop` in another process, undefine), and the error paths leave the stored state as
 * it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Session, eventually, fails, ok, parseListTable, seedDomains, smallDomainXml, tempHost, xenvirt, xenvirtBackground,
} from './harness.js';
import { requireTool, xmllintValidate } from '../support.js';


test("the seed's four domains live a whole life on a persistent host", async (t) => {
  const host = tempHost();
  const files = mkdtempSync(join(tmpdir(), 'xenvirt-cli-files-'));
  t.after(() => { host.cleanup(); rmSync(files, { recursive: true, force: true }); });
  const x = (...argv: string[]) => xenvirt(['-c', host.uri, ...argv]);
  const seeds = seedDomains(files);

  // Each define is its own process; the list afterwards is another.
  for (const d of seeds) assert.equal(ok(await x('define', d.file), 'define'), `Domain '${d.name}' defined from ${d.file}\n`);
  const [listAll, listUuid] = await Promise.all([x('list', '--all'), x('list', '--all', '--uuid')]);
  assert.equal(ok(listAll, 'list --all'), [
    ' Id   Name             State',
    '---------------------------------',
    ' 0    Domain-0         running',
    ' -    fc8-bootloader   shut off',
    ' -    fc8-kernel       shut off',
    ' -    fv0-bios         shut off',
    ' -    fv0-kernel       shut off',
    '',
  ].join('\n'));
  const uuids = ok(listUuid, 'list --uuid').split('\n');
  assert.deepEqual(uuids.slice(1), [...seeds.map((d) => d.uuid), ''], 'same order as the table');

  await t.test('dumpxml of each defined domain is valid against libvirt\'s domain.rng', async (st) => {
    if (!requireTool(st, 'xmllint')) return;
    const dumps = await Promise.all(seeds.map((d) => x('dumpxml', d.name)));
    const written = dumps.map((r, i) => {
      const f = join(files, `${seeds[i]!.name}.dump.xml`);
      writeFileSync(f, ok(r, 'dumpxml'));
      return f;
    });
    assert.deepEqual(xmllintValidate(written), []);
  });

  await t.test('start each in its own process; list shows increasing ids; the live XML is valid', async (st) => {
    for (const d of seeds) assert.equal(ok(await x('start', d.name), 'start'), `Domain '${d.name}' started\n`);
    const rows = parseListTable(ok(await x('list'), 'list'));
    assert.deepEqual(rows.map((r) => r[1]), ['Domain-0', ...seeds.map((d) => d.name)]);
    assert.ok(rows.every((r) => r[2] === 'running'));
    const ids = rows.map((r) => Number(r[0]));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.equal(new Set(ids).size, ids.length);
    fails(await x('start', seeds[0]!.name), 'start a running domain', 'error: Domain is already active');
    if (!requireTool(st, 'xmllint')) return;
    const live = await Promise.all(seeds.map((d) => x('dumpxml', d.name)));
    const written = live.map((r, i) => {
      const f = join(files, `${seeds[i]!.name}.live.xml`);
      writeFileSync(f, ok(r, 'dumpxml live'));
      assert.match(r.stdout, /^<domain type='xen' id='\d+'>/);
      return f;
    });
    assert.deepEqual(xmllintValidate(written), []);
  });

  await t.test('shutdown is seen by `event --loop` running in another process', async () => {
    const watcher = xenvirtBackground(['-c', host.uri, 'event', '--all', '--loop', '--timeout', '30']);
    try {
      // The watcher is ready once it reports an event; nudge one domain until it does.
      const probe = seeds[0]!.name;
      await eventually(async () => {
        ok(await x('suspend', probe), 'suspend');
        ok(await x('resume', probe), 'resume');
        await watcher.waitFor(new RegExp(`event 'lifecycle' for domain '${probe}': Resumed Unpaused\n`), 300);
      }, 10000, 0);
      for (const d of seeds) assert.equal(ok(await x('shutdown', d.name), 'shutdown'), `Domain '${d.name}' is being shutdown\n`);
      for (const d of seeds) {
        await watcher.waitFor(new RegExp(`event 'lifecycle' for domain '${d.name}': Stopped Shutdown\n`), 10000);
      }
      const states = await Promise.all(seeds.map((d) => x('domstate', '--reason', d.name)));
      for (const r of states) assert.equal(ok(r, 'domstate'), 'shut off (shutdown)\n');
    } finally {
      watcher.child.kill('SIGINT');
    }
    const end = await watcher.done;
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stdout, /event loop interrupted\nevents received: \d+\n$/);
    for (const line of end.stdout.split('\n').slice(0, -3)) {
      assert.match(line, /^event 'lifecycle' for domain '[\w-]+': [A-Z][a-z]+ [A-Z][\w ]+$/);
    }
  });

  await t.test('undefine each; only Domain-0 is left', async () => {
    for (const d of seeds) assert.equal(ok(await x('undefine', d.name), 'undefine'), `Domain '${d.name}' has been undefined\n`);
    assert.equal(ok(await x('list', '--all', '--name'), 'list --name'), 'Domain-0\n');
  });
});

test('a persistent host: state carries across invocations, errors change nothing', async (t) => {
  const host = tempHost();
  const files = mkdtempSync(join(tmpdir(), 'xenvirt-cli-files-'));
  t.after(() => { host.cleanup(); rmSync(files, { recursive: true, force: true }); });
  const x = (...argv: string[]) => xenvirt(['-c', host.uri, ...argv]);
  const uuid = '5eed0000-0000-4000-8000-000000000001';
  const keep = join(files, 'keep.xml');
  writeFileSync(keep, smallDomainXml('keep', uuid, 262144, 262144, 2));
  assert.equal(ok(await x('define', keep), 'define'), `Domain 'keep' defined from ${keep}\n`);
  ok(await x('start', 'keep'), 'start');
  const state = async () => ok(await x('domstate', '--reason', 'keep'), 'domstate').trim();

  await t.test('error paths: clear message, exit status 1, stored state unchanged', async () => {
    const snapshot = () => Promise.all([x('list', '--all'), x('dumpxml', '--inactive', 'keep'), x('dominfo', 'keep'), x('domuuid', 'keep')])
      .then((rs) => rs.map((r, i) => ok(r, `snapshot ${i}`).replace(/CPU time:.*\n/, '')));
    const before = await snapshot();
    const bad = join(files, 'bad.xml');
    writeFileSync(bad, "<domain type='xen'><name>x</name><memory>lots</memory></domain>");
    const dup = join(files, 'dup.xml');
    writeFileSync(dup, smallDomainXml('keep', '5eed0000-0000-4000-8000-0000000000ff', 131072));
    const [start, undef, setmem, invalid, duplicate] = await Promise.all([
      x('start', 'keep'),
      x('undefine', 'nosuch'),
      x('setmem', 'keep', '2G'),
      x('define', bad),
      x('define', dup),
    ]);
    fails(start, 'start a running domain', 'error: Domain is already active');
    fails(undef, 'undefine an unknown domain', "error: failed to get domain 'nosuch'");
    fails(setmem, 'setmem above the maximum', /^error: invalid argument: .*max/);
    fails(invalid, 'define invalid XML', `error: Failed to define domain from ${bad}`, /^error: .*memory/);
    fails(duplicate, 'define a duplicate name with another UUID', `error: Failed to define domain from ${dup}`, /^error: .*'keep' already exists/);
    assert.deepEqual(await snapshot(), before);
    assert.equal(before[3], `${uuid}\n`);
  });

  await t.test('config changes, autostart and devices persist', async () => {
    ok(await x('setmem', 'keep', '131072', '--config'), 'setmem --config');
    ok(await x('setvcpus', 'keep', '1', '--config'), 'setvcpus --config');
    ok(await x('autostart', 'keep'), 'autostart');
    ok(await x('attach-disk', 'keep', '/var/lib/xen/images/keep-data.img', 'xvdb', '--persistent'), 'attach-disk --persistent');
    const [inactiveR, liveR, autoR, vcpuR] = await Promise.all([
      x('dumpxml', '--inactive', 'keep'), x('dumpxml', 'keep'), x('list', '--all', '--autostart', '--name'), x('vcpucount', 'keep'),
    ]);
    const inactive = ok(inactiveR, 'dumpxml --inactive');
    assert.match(inactive, /<currentMemory unit='KiB'>131072<\/currentMemory>/);
    assert.match(inactive, /<vcpu placement='static' current='1'>2<\/vcpu>/);
    assert.match(inactive, /keep-data\.img/);
    assert.match(ok(liveR, 'dumpxml'), /keep-data\.img/, '--persistent reaches the running domain too');
    assert.equal(ok(autoR, 'list --autostart'), 'keep\n');
    assert.equal(ok(vcpuR, 'vcpucount'),
      'maximum      config         2\nmaximum      live           2\ncurrent      config         1\ncurrent      live           2\n');
    // An in-process connection to the same host agrees with what other processes wrote.
    const s = new Session(host.uri);
    try {
      assert.match(ok(await s.run(['dominfo', 'keep']), 'dominfo in-process'), /^Autostart:      enable$/m);
    } finally {
      await s.close();
    }
  });

  await t.test('save, restore, dump and managed save across invocations, with progress', async () => {
    const image = join(files, 'keep.save');
    const save = await x('save', 'keep', image, '--verbose');
    assert.equal(save.code, 0, save.stderr);
    assert.equal(save.stdout, `\nDomain 'keep' saved to ${image}\n`);
    assert.match(save.stderr, /^(\rSave: \[[ \d]{2}\d %\])*\rSave: \[100 %\]$/);
    assert.ok(statSync(image).size > 0);
    assert.equal(await state(), 'shut off (saved)');
    assert.equal(ok(await x('restore', image), 'restore'), `Domain restored from ${image}\n`);
    assert.equal(await state(), 'running (restored)');
    const core = join(files, 'keep.core');
    assert.equal(ok(await x('dump', 'keep', core), 'dump'), `\nDomain 'keep' dumped to ${core}\n`);
    assert.ok(statSync(core).size > 0);
    assert.equal(ok(await x('managedsave', 'keep'), 'managedsave'), "\nDomain 'keep' state saved by libvirt\n");
    assert.match(ok(await x('dominfo', 'keep'), 'dominfo'), /^Managed save:   yes$/m);
    ok(await x('start', 'keep'), 'start');
    assert.equal(await state(), 'running (restored)');
  });

  await t.test('host commands, a transient domain and device files, one process each', async () => {
    // Several commands in one process through the shell, reading the host another process set up.
    const shell = await xenvirt(['-c', host.uri], { input: 'version\nuri\nhostname\nnodeinfo\ncapabilities\nsysinfo\ndomid keep\n' });
    assert.equal(shell.code, 0, shell.stderr);
    assert.equal(shell.stderr, '');
    assert.match(shell.stdout, /^Compiled against library: libvirt 9\.0\.0\nUsing library: libvirt 9\.0\.0\nUsing API: Xen 9\.0\.0\nRunning hypervisor: Xen \d+\.\d+\.\d+\n/);
    assert.ok(shell.stdout.includes(`\n${host.uri}\n`), 'uri prints the connection URI');
    assert.match(shell.stdout, /\nCPU model: {11}\S+\nCPU\(s\): {14}\d+\n/);
    assert.match(shell.stdout, /\n<capabilities>\n[^]*<\/capabilities>\n\n<sysinfo type='smbios'>[^]*<\/sysinfo>\n[1-9]\d*\n$/);

    const tmp = join(files, 'tmp1.xml');
    writeFileSync(tmp, smallDomainXml('tmp1', '5eed0000-0000-4000-8000-000000000002', 131072));
    assert.equal(ok(await x('create', tmp), 'create'), `Domain 'tmp1' created from ${tmp}\n`);
    assert.equal(ok(await x('list', '--transient', '--name'), 'list --transient'), 'tmp1\n');
    const id = ok(await x('domid', 'tmp1'), 'domid').trim();
    assert.equal(ok(await x('domname', id), 'domname'), 'tmp1\n');
    assert.equal(ok(await x('reboot', 'tmp1'), 'reboot'), "Domain 'tmp1' is being rebooted\n");
    await eventually(async () => assert.equal(ok(await x('domstate', '--reason', 'tmp1'), 'domstate'), 'running (booted)\n'), 10000, 100);
    // Xen rebuilds a rebooted guest under a new domain id.
    const newId = ok(await x('domid', 'tmp1'), 'domid').trim();
    assert.notEqual(newId, id);
    assert.equal(ok(await x('destroy', newId), 'destroy by id'), "Domain 'tmp1' destroyed\n");
    fails(await x('domstate', 'tmp1'), 'a destroyed transient domain is gone', "error: failed to get domain 'tmp1'");

    const mac = '00:16:3e:5e:ed:01';
    assert.equal(ok(await x('attach-interface', 'keep', 'bridge', 'xenbr0', '--mac', mac, '--config'), 'attach-interface'), 'Interface attached successfully\n');
    assert.match(ok(await x('dumpxml', '--inactive', 'keep'), 'dumpxml'), new RegExp(`<mac address='${mac}'/>`));
    const nic = join(files, 'nic.xml');
    writeFileSync(nic, `<interface type='bridge'>\n  <mac address='${mac}'/>\n  <source bridge='xenbr0'/>\n</interface>\n`);
    assert.equal(ok(await x('detach-device', 'keep', nic, '--config'), 'detach-device'), 'Device detached successfully\n');
    assert.doesNotMatch(ok(await x('dumpxml', '--inactive', 'keep'), 'dumpxml'), new RegExp(mac));
    assert.equal(ok(await x('attach-device', 'keep', nic, '--persistent'), 'attach-device --persistent'), 'Device attached successfully\n');
    const [live, config] = await Promise.all([x('dumpxml', 'keep'), x('dumpxml', '--inactive', 'keep')]);
    assert.match(ok(live, 'dumpxml'), new RegExp(mac));
    assert.match(ok(config, 'dumpxml --inactive'), new RegExp(mac));
    assert.equal(ok(await x('setmaxmem', 'keep', '512M', '--config'), 'setmaxmem --config'), '');
    assert.match(ok(await x('dumpxml', '--inactive', 'keep'), 'dumpxml --inactive'), /<memory unit='KiB'>524288<\/memory>/);
  });

  await t.test('shutdown completes although the process that asked has exited', async () => {
    ok(await x('shutdown', 'keep'), 'shutdown');
    await eventually(async () => assert.equal(await state(), 'shut off (shutdown)'), 10000, 50);
    ok(await x('undefine', 'keep'), 'undefine');
    fails(await x('dominfo', 'keep'), 'gone', "error: failed to get domain 'keep'");
  });
});
