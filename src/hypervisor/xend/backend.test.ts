/**
 * The XenD backend against the emulated XenD: every operation of the facts table
 * (../shared/design/xend-http-facts.md), the recorded XenD answers, events by polling, and
 * failures that say what to do.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VirtError } from '../../errors.js';
import { parseDomainXml } from '../../domain/parse.js';
import type { Domain } from '../../domain/types.js';
import { joinBackslashNewlines, parseSexpr, type SExpr } from '../../formats/sexpr.js';
import { sxprToDomain } from '../../formats/sxpr.js';
import type { BackendEvent } from '../backend.js';
import { XendBackend, guestInfoFromSxpr, secondsToNs } from './backend.js';
import { XendEmulator } from './emulator.js';
import { XendClient } from './http.js';
import { CONFORMANCE_DIR } from '../../../test/support.js';

const CORPUS = path.join(CONFORMANCE_DIR, 'sexpr', 'from-native');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-xend-backend-'));
let emu: XendEmulator;
let b: XendBackend;
let seeds: Map<string, string>;
const events: BackendEvent[] = [];

before(async () => {
  emu = await XendEmulator.start({
    socketPath: path.join(dir, 'xend-socket'),
    tcp: true,
    shutdownDelayMs: 20,
    brokenDiskPaths: ['/missing/disk.img'],
  });
  seeds = emu.loadCorpus(CORPUS);
  b = await XendBackend.open({ address: emu.unixAddress!, pollIntervalMs: 20, imageDir: path.join(dir, 'images') });
  b.onEvent((e) => { events.push(e); });
  await b.ready();
});
after(async () => {
  await b.close();
  await emu.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function eventually<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, ms = 3000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function virtError(code: string, message: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof VirtError, `not a VirtError: ${String(e)}`);
    assert.equal(e.codeName, code, e.message);
    assert.match(e.message, message);
    return true;
  };
}

function pv(name: string, extra = ''): Domain {
  return parseDomainXml(`<domain type='xen'>
  <name>${name}</name>
  <memory>262144</memory>
  <currentMemory>131072</currentMemory>
  <vcpu current='2'>4</vcpu>
  <os><type>linux</type><kernel>/boot/vmlinuz-xen</kernel><initrd>/boot/initrd-xen</initrd><cmdline>root=/dev/xvda1 ro</cmdline></os>
  ${extra}
  <devices>
    <disk type='file' device='disk'><source file='/var/lib/xen/images/${name}.img'/><target dev='xvda' bus='xen'/></disk>
    <interface type='bridge'><mac address='00:16:3e:10:00:01'/><source bridge='xenbr0'/></interface>
  </devices>
</domain>`);
}

function hvm(name: string): Domain {
  return parseDomainXml(`<domain type='xen'>
  <name>${name}</name>
  <memory>262144</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type><loader>/usr/lib/xen/boot/hvmloader</loader><boot dev='cdrom'/></os>
  <features><acpi/><apic/><pae/></features>
  <devices>
    <disk type='file' device='disk'><source file='/var/lib/xen/images/${name}.img'/><target dev='hda' bus='ide'/></disk>
    <disk type='file' device='cdrom'><source file='/isos/install-1.iso'/><target dev='hdc' bus='ide'/><readonly/></disk>
  </devices>
</domain>`);
}

function disk(dev: string, file: string): Domain['devices']['disks'][number] {
  return { type: 'file', device: 'disk', source: { path: file }, target: { dev, bus: 'xen' } };
}

test('recorded XenD answers are the initial domains, served as recorded', async () => {
  assert.equal(seeds.size, fs.readdirSync(CORPUS).filter((f) => f.endsWith('.sexpr')).length);
  const listed = await b.list();
  assert.equal(listed[0]!.domid, 0);
  assert.equal(listed[0]!.name, 'Domain-0');
  const byName = new Map(listed.map((g) => [g.name, g]));
  const client = new XendClient(emu.unixAddress!);
  for (const [file, name] of seeds) {
    const g = byName.get(name);
    assert.ok(g, `${file}: ${name} is listed`);
    const text = fs.readFileSync(path.join(CORPUS, file), 'utf8');
    const recorded = parseSexpr(joinBackslashNewlines(text), { lenient: true }) as SExpr[];
    const served = await client.getSexpr(`/xend/domain/${encodeURIComponent(name)}?detail=1`);
    // XenD's fields are as recorded; only the live ones may differ
    for (const item of recorded.slice(1)) {
      if (!Array.isArray(item) || ['domid', 'name', 'uuid', 'state', 'cpu_time', 'up_time', 'status', 'online_vcpus', 'start_time'].includes(item[0] as string)) continue;
      assert.ok((served as SExpr[]).some((s) => JSON.stringify(s) === JSON.stringify(item)), `${file}: ${JSON.stringify(item).slice(0, 80)} served as recorded`);
    }
    // and the backend's description is what our xen-sxpr reader makes of the recording
    let expected: Domain | Error;
    try {
      // as recorded, under the name, uuid and domid the emulator gave it
      const e = recorded.map((item) => {
        if (!Array.isArray(item)) return item;
        if (item[0] === 'domid') return ['domid', String(g.domid)];
        if (item[0] === 'name') return ['name', name];
        if (item[0] === 'uuid') return ['uuid', g.uuid];
        return item;
      });
      expected = sxprToDomain(e, { live: true, secrets: true });
    } catch (err) {
      expected = err as Error;
    }
    if (expected instanceof Error) {
      await assert.rejects(b.describe(g.domid), { message: expected.message }, file);
    } else {
      assert.deepEqual(await b.describe(g.domid), expected, file);
    }
  }
  // recorded spellings survive: curmem's weight is '1.0'
  const curmem = await client.getSexpr(`/xend/domain/${seeds.get('curmem.sexpr')}?detail=1`);
  assert.ok((curmem as SExpr[]).some((s) => Array.isArray(s) && s[0] === 'cpu_weight' && s[1] === '1.0'));
});

test('GuestInfo from ?detail=1: states, memory in KiB, online vcpus, exact cpu time', () => {
  const g = guestInfoFromSxpr(parseSexpr(`(domain (domid 7)(name g)(uuid 596a5d2171f48fb2e068e2386a5c413e)(memory 256)(maxmem 512)
    (vcpus 4)(vcpu_avail 3)(cpu_time 12.000000001)(state ---s--)(shutdown_reason reboot))`))!;
  assert.deepEqual(g, {
    domid: 7, name: 'g', uuid: '596a5d21-71f4-8fb2-e068-e2386a5c413e', state: 'shutdown', shutdownReason: 'reboot',
    memory: 262144, maxMemory: 524288, vcpus: 2, maxVcpus: 4, cpuTime: 12_000_000_001n,
  });
  assert.equal(guestInfoFromSxpr(parseSexpr('(domain (domid 1)(name c)(uuid 596a5d2171f48fb2e068e2386a5c413e)(memory 1)(state ----c-))'))!.shutdownReason, 'crash');
  assert.equal(guestInfoFromSxpr(parseSexpr('(domain (domid 1)(name p)(memory 1)(state --p---))'))!.state, 'paused');
  assert.equal(guestInfoFromSxpr(parseSexpr('(domain (domid 1)(name p)(memory 1)(state ------))'))!.state, 'blocked');
  assert.equal(guestInfoFromSxpr(parseSexpr('(domain (name inactive)(memory 1))')), undefined);
  assert.equal(secondsToNs('907.159661051'), 907_159_661_051n);
  assert.equal(secondsToNs('1.5'), 1_500_000_000n);
});

test('host: /xend/node/ gives node info, capabilities, version and name', async () => {
  const h = await b.hostInfo();
  assert.deepEqual({ ...h, freeMemory: 0 }, {
    model: 'x86_64', memory: 65536 * 1024, freeMemory: 0, cpus: 4, mhz: 2400, nodes: 1, sockets: 1, cores: 2, threads: 2, scheduler: 'credit',
  });
  assert.ok(h.freeMemory > 0 && h.freeMemory < h.memory);
  assert.equal(await b.version(), 3_004_002);
  assert.equal(await b.hostname(), 'xend-emu');
  assert.equal(await b.sysinfo(), undefined);
  assert.equal(await b.maxGuestVcpus(), 32);
  assert.match(await b.bootId(), /^(boot|xend):/);
  const caps = await b.capabilities();
  assert.deepEqual(caps.guests.map((g) => `${g.osType}/${g.arch}/${g.features.map((f) => f.name).join(',')}`), [
    'xen/x86_64/', 'xen/i686/pae', 'hvm/i686/pae,nonpae,acpi,apic,hap', 'hvm/x86_64/acpi,apic,hap',
  ]);
  assert.deepEqual(caps.cells.map((c) => c.cpus.map((x) => `${x.id}:${x.socket}/${x.core}/${x.siblings}`)), [['0:0/0/0-1', '1:0/0/0-1', '2:0/1/2-3', '3:0/1/2-3']]);
  assert.equal(caps.topology.cores, 2);
  assert.deepEqual(caps.migrationTransports, ['xenmigr']);
});

test('start: create with our sxpr, wait_for_devices, unpause; then every live operation', async () => {
  const def = pv('life', '<cputune><shares>512</shares></cputune>');
  def.cputune!.cap = 50;
  const domid = await b.start(def);
  let x = emu.domain('life')!;
  assert.equal(x.domid, domid);
  assert.equal(x.state, 'running');
  assert.deepEqual([x.memory, x.maxmem, x.vcpus, x.online, x.weight, x.cap], [128, 256, 4, 2, 512, 50]);
  assert.deepEqual(x.devices.map((d) => `${d.cls}:${d.devid}`), ['vbd:51712', 'vif:0']);
  const last = emu.requests.filter((r) => r.method === 'POST').slice(-4).map((r) => r.form['op']);
  assert.deepEqual(last, ['create', 'wait_for_devices', 'domain_sched_credit_set', 'unpause']);
  const create = emu.requests.find((r) => r.form['op'] === 'create' && r.form['config']?.includes('(name life)'))!;
  // the driver, not XenD, acts on a stopped guest
  assert.match(create.form['config']!, /\(on_poweroff preserve\)\(on_reboot preserve\)\(on_crash preserve\)/);

  let g = (await b.info(domid))!;
  assert.deepEqual([g.name, g.uuid, g.state, g.memory, g.maxMemory, g.vcpus, g.maxVcpus], ['life', def.uuid, 'running', 131072, 262144, 2, 4]);
  assert.ok((await b.list()).some((i) => i.domid === domid));

  await b.pause(domid);
  assert.equal(emu.domain('life')!.state, 'paused');
  assert.equal((await b.info(domid))!.state, 'paused');
  await b.unpause(domid);
  assert.equal(emu.domain('life')!.state, 'running');

  await b.setMemory(domid, 200 * 1024);
  await b.setMaxMemory(domid, 300 * 1024);
  await b.setVcpus(domid, 3);
  x = emu.domain('life')!;
  assert.deepEqual([x.memory, x.maxmem, x.online], [200, 300, 3]);
  g = (await b.info(domid))!;
  assert.deepEqual([g.memory, g.maxMemory, g.vcpus], [200 * 1024, 300 * 1024, 3]);
  await assert.rejects(b.setMaxMemory(domid, 100 * 1024), virtError('POST_FAILED', /maxmem_set domain 'life'.*it has 200 MiB now; lower its memory target first/));
  await assert.rejects(b.setMemory(domid, 400 * 1024), virtError('POST_FAILED', /above the maximum 300 MiB/));
  await assert.rejects(b.setVcpus(domid, 5), virtError('POST_FAILED', /Cannot set vcpus greater than max vcpus/));

  await b.pinVcpu(domid, 1, [3, 2]);
  assert.deepEqual(emu.domain('life')!.cpumaps[1], [2, 3]);
  assert.equal(emu.requests.at(-1)!.form['cpumap'], '2,3');
  const vcpus = await b.vcpuInfo(domid);
  assert.equal(vcpus.length, 4);
  assert.deepEqual(vcpus.map((v) => v.state), ['running', 'running', 'running', 'offline']);
  assert.deepEqual(vcpus[1]!.cpumap, [2, 3]);
  assert.deepEqual(vcpus[0]!.cpumap, [0, 1, 2, 3]);
  assert.equal(vcpus[3]!.cpu, -1);
  await assert.rejects(b.pinVcpu(domid, 9, [0]), virtError('POST_FAILED', /pincpu vcpu: 9 is outside 0\.\.3/));

  assert.deepEqual(await b.schedulerParams(domid), { scheduler: 'credit', weight: 512, cap: 50 });
  await b.setSchedulerParams(domid, { weight: 1024 });
  assert.deepEqual(await b.schedulerParams(domid), { scheduler: 'credit', weight: 1024, cap: 50 });
  await assert.rejects(b.setSchedulerParams(domid, { weight: 70000 }), virtError('POST_FAILED', /weight: 70000 is outside 1\.\.65535/));

  // devices
  await b.attachDisk(domid, disk('xvdb', '/var/lib/xen/images/extra.img'));
  await b.attachInterface(domid, { type: 'bridge', mac: '00:16:3e:10:00:02', source: { bridge: 'xenbr1' }, ips: [] });
  assert.deepEqual(emu.domain('life')!.devices.map((d) => `${d.cls}:${d.devid}`), ['vbd:51712', 'vif:0', 'vbd:51728', 'vif:1']);
  await assert.rejects(b.attachDisk(domid, disk('xvdb', '/other.img')), virtError('POST_FAILED', /Device xvdb \(51728, vbd\) is already connected/));
  await b.detachInterface(domid, { type: 'bridge', mac: '00:16:3e:10:00:01', ips: [] });
  await b.detachDisk(domid, disk('xvdb', '/var/lib/xen/images/extra.img'));
  assert.deepEqual(emu.domain('life')!.devices.map((d) => `${d.cls}:${d.devid}`), ['vbd:51712', 'vif:1']);
  const destroyOps = emu.requests.filter((r) => r.form['op'] === 'device_destroy').slice(-2).map((r) => r.form);
  assert.deepEqual(destroyOps, [
    { op: 'device_destroy', type: 'vif', dev: '0', force: '0', rm_cfg: '1' },
    { op: 'device_destroy', type: 'vbd', dev: 'xvdb', force: '0', rm_cfg: '1' },
  ]);
  // a later vif gets the next id, never a reused one
  await b.attachInterface(domid, { type: 'bridge', mac: '00:16:3e:10:00:03', source: { bridge: 'xenbr0' }, ips: [] });
  assert.deepEqual(emu.domain('life')!.devices.filter((d) => d.cls === 'vif').map((d) => d.devid), [1, 2]);
  await b.detachInterface(domid, { type: 'bridge', mac: '00:16:3e:10:00:03', ips: [] });
  await assert.rejects(b.detachInterface(domid, { type: 'bridge', mac: '00:16:3e:99:99:99', ips: [] }), virtError('OPERATION_FAILED', /no network device with MAC '00:16:3e:99:99:99'/));

  // core dump: XenD writes the file
  const core = path.join(dir, 'life.core');
  const seen: number[] = [];
  await b.coreDump(domid, core, (done) => seen.push(done));
  assert.match(fs.readFileSync(core, 'utf8'), /^XENEMU-CORE 1\n.*"name":"life"/);
  assert.deepEqual(seen, [0, 200 * 1024 * 1024]);
  assert.equal(emu.domain('life')!.state, 'running');

  // save: the image passes through a temporary file into the driver's file descriptor
  const img = path.join(dir, 'life.save');
  const fd = fs.openSync(img, 'w');
  fs.writeSync(fd, 'DRIVER-HEADER\n');
  await b.save(domid, fd);
  fs.closeSync(fd);
  assert.equal(emu.domain('life'), undefined);
  assert.equal(await b.info(domid), undefined);
  const data = fs.readFileSync(img);
  assert.equal(data.subarray(0, 14).toString(), 'DRIVER-HEADER\n');
  assert.equal(data.subarray(14, 30).toString(), 'LinuxGuestRecord');
  assert.deepEqual(fs.readdirSync(path.join(dir, 'images')), []);

  // restore: from the descriptor's position on
  const rfd = fs.openSync(img, 'r');
  fs.readSync(rfd, Buffer.alloc(14), 0, 14, null);
  const newId = await b.restore(def, rfd);
  fs.closeSync(rfd);
  assert.ok(newId > domid);
  x = emu.domain('life')!;
  assert.deepEqual([x.domid, x.state, x.memory, x.maxmem, x.online, x.weight, x.cpumaps[1]], [newId, 'running', 200, 300, 3, 1024, [2, 3]]);
  assert.deepEqual(x.devices.map((d) => `${d.cls}:${d.devid}`), ['vbd:51712', 'vif:1']);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'images')), []);

  // migration is refused, clearly, and changes nothing
  await assert.rejects(b.migrate(newId, 'xenmigr://other-host:8002'),
    virtError('POST_FAILED', /XenD failed to migrate domain 'life'.*'other-host:8002' refused: .*nothing was changed/));
  assert.equal(emu.domain('life')!.state, 'running');
  assert.deepEqual(emu.requests.at(-1)!.form, {
    op: 'migrate', destination: 'other-host', live: '0', port: '8002', node: '-1', ssl: '0', change_home_server: '0', resource: '0',
  });
  await assert.rejects(b.migrate(newId, 'not a host!'), virtError('INVALID_ARG', /is not HOST, HOST:PORT or xenmigr/));

  const before = events.length;
  await b.destroy(newId);
  assert.equal(emu.domain('life'), undefined);
  await b.poll();
  await b.poll();
  assert.equal(events.length, before, 'our own destroy raises no event');
});

test('start paused stays paused; an HVM CD-ROM changes media with device_configure', async () => {
  const domid = await b.start(hvm('hvm1'), { paused: true });
  assert.equal(emu.domain('hvm1')!.state, 'paused');
  assert.equal((await b.info(domid))!.state, 'paused');
  await b.changeMedia(domid, { type: 'file', device: 'cdrom', source: { path: '/isos/install-2.iso' }, target: { dev: 'hdc', bus: 'ide' }, readonly: true });
  const cd = emu.domain('hvm1')!.devices.find((d) => JSON.stringify(d.config).includes('hdc'))!;
  assert.ok(JSON.stringify(cd.config).includes('file:/isos/install-2.iso'));
  assert.equal(emu.requests.at(-1)!.form['dev'], 'hdc');
  const described = (await b.describe(domid))!;
  assert.equal(described.os.type, 'hvm');
  assert.equal(described.devices.disks.find((d) => d.target.dev === 'hdc')!.source!.path, '/isos/install-2.iso');
  await b.destroy(domid);
});

test('a failed start leaves nothing behind, and says why', async () => {
  const broken = pv('broken');
  broken.devices.disks[0]!.source!.path = '/missing/disk.img';
  await assert.rejects(b.start(broken), virtError('OPERATION_FAILED', /'\/missing\/disk\.img' does not exist on the Xen host; create it or fix the disk's source/));
  assert.equal(emu.domain('broken'), undefined);

  const huge = pv('huge');
  huge.memory = 200 * 1024 * 1024;
  huge.currentMemory = 200 * 1024 * 1024;
  await assert.rejects(b.start(huge), virtError('OPERATION_FAILED', /^not enough free memory: the guest needs 204800 MiB, the host has \d+ MiB free; shut down or shrink other guests/));
  assert.equal(emu.domain('huge'), undefined);

  const wide = pv('wide');
  wide.vcpu = { count: 64 };
  await assert.rejects(b.start(wide), virtError('CONFIG_UNSUPPORTED', /64 vcpus, more than the 32 XenD allows/));

  const id = await b.start(pv('twice'));
  await assert.rejects(b.start(pv('twice')), virtError('OPERATION_FAILED', /XenD already runs a domain named 'twice' \(id \d+\): stop it first/));
  await b.destroy(id);
  // Domain-0 is refused before asking XenD
  await assert.rejects(b.save(0, 1), virtError('OPERATION_INVALID', /Domain-0 cannot be saved/));
  await assert.rejects(b.destroy(0), virtError('OPERATION_INVALID', /Domain-0 cannot be destroyed/));
  await assert.rejects(b.pause(12345), virtError('NO_DOMAIN', /XenD has no domain with id 12345/));
});

test('events by polling: guest poweroff, reboot request, crash, death behind our back', async () => {
  const a = await b.start(pv('ev-a'));
  const c = await b.start(pv('ev-c'));
  const d = await b.start(pv('ev-d'));
  const r = await b.start(pv('ev-r'));
  const uuidOf = (n: string) => emu.domain(n)!.uuid;
  const ua = uuidOf('ev-a');
  const uc = uuidOf('ev-c');
  const ud = uuidOf('ev-d');
  const ur = uuidOf('ev-r');

  emu.guestShutdown('ev-a', 'poweroff');
  const ea = await eventually('ev-a shutdown', () => events.find((e) => e.domid === a));
  assert.deepEqual(ea, { type: 'shutdown', domid: a, uuid: ua, reason: 'poweroff' });
  assert.equal(emu.domain('ev-a')!.state, 'shutdown', 'preserved until the driver acts');

  emu.crash('ev-c');
  assert.deepEqual(await eventually('ev-c crash', () => events.find((e) => e.domid === c)), { type: 'shutdown', domid: c, uuid: uc, reason: 'crash' });

  await b.shutdown(r, 'reboot');
  assert.deepEqual(await eventually('ev-r reboot', () => events.find((e) => e.domid === r)), { type: 'shutdown', domid: r, uuid: ur, reason: 'reboot' });

  // destroyed by someone else (xm destroy)
  await new XendClient(emu.unixAddress!).post('/xend/domain/ev-d', { op: 'destroy' });
  assert.deepEqual(await eventually('ev-d death', () => events.find((e) => e.domid === d)), { type: 'death', domid: d, uuid: ud });

  // each is reported once
  await b.poll();
  await b.poll();
  for (const id of [a, c, r, d]) assert.equal(events.filter((e) => e.domid === id).length, 1);
  for (const id of [a, c, r]) await b.destroy(id);
  await b.poll();
  for (const id of [a, c, r]) assert.equal(events.filter((e) => e.domid === id).length, 1);
});

test('a new backend reports guests that stopped while nobody watched', async () => {
  const id = await b.start(pv('while-away'));
  const other = await XendBackend.open({ address: emu.httpAddress!, pollIntervalMs: 20 });
  const got: BackendEvent[] = [];
  try {
    emu.guestShutdown('while-away');
    // XenD reports it stopped; a backend that starts now still hears about it
    other.onEvent((e) => { got.push(e); });
    await other.ready();
    assert.deepEqual(got.filter((e) => e.domid === id).map((e) => e.type), ['shutdown']);
  } finally {
    await other.close();
  }
  await b.destroy(id);
});

test('XenD-managed definitions: new, ?state=halted, start, delete', async () => {
  const def = pv('managed');
  await b.defineManaged(def, { autostart: true });
  assert.deepEqual(await b.listManaged(), ['managed']);
  assert.equal(await b.managedAutostart('managed'), true);
  const got = (await b.managedDefinition('managed'))!;
  assert.equal(got.uuid, def.uuid);
  assert.equal(got.os.kernel, '/boot/vmlinuz-xen');
  await b.defineManaged(def, { autostart: false });
  assert.equal(await b.managedAutostart('managed'), false);

  const domid = await b.startManaged('managed');
  assert.equal(emu.domain('managed')!.state, 'running');
  assert.deepEqual(await b.listManaged(), []);
  await assert.rejects(b.deleteManaged('managed'), virtError('POST_FAILED', /Domain is not halted/));
  await b.destroy(domid);
  // a managed domain goes back to its definition
  assert.equal(emu.domain('managed')!.state, 'halted');
  assert.deepEqual(await b.listManaged(), ['managed']);
  await b.deleteManaged('managed');
  assert.equal(emu.domain('managed'), undefined);
  await assert.rejects(b.startManaged('managed'), virtError('NO_DOMAIN', /XenD has no domain 'managed'/));
});

test('XenD before 3.0.4: the old pincpu syntax, and no managed domains', async () => {
  const old = await XendEmulator.start({ socketPath: path.join(dir, 'old-socket'), host: { configFormat: 2, xenMinor: 0, xenExtra: '.3' } });
  const ob = await XendBackend.open({ address: `unix:${path.join(dir, 'old-socket')}` });
  try {
    assert.equal(ob.configFormat, 2);
    assert.equal(await ob.version(), 3_000_003);
    const id = await ob.start(pv('old1'));
    await ob.pinVcpu(id, 0, [1, 0]);
    assert.equal(old.requests.at(-1)!.form['cpumap'], '[0,1]');
    assert.deepEqual(old.domain('old1')!.cpumaps[0], [0, 1]);
    await assert.rejects(ob.listManaged(), virtError('NO_SUPPORT', /before Xen 3\.0\.4 keeps no inactive domains/));
    await ob.destroy(id);
  } finally {
    await ob.close();
    await old.stop();
  }
});

test('over TCP the same operations work', async () => {
  const tb = await XendBackend.open({ address: emu.httpAddress! });
  try {
    const id = await tb.start(pv('over-tcp'));
    assert.equal((await tb.info(id))!.state, 'running');
    await tb.pause(id);
    assert.equal(emu.domain('over-tcp')!.state, 'paused');
    await tb.destroy(id);
    assert.equal(emu.domain('over-tcp'), undefined);
  } finally {
    await tb.close();
  }
});

test('every operation of the facts table was exercised', () => {
  const ok = (r: { status: number }) => r.status >= 200 && r.status <= 202;
  const posted = new Set(emu.requests.filter(ok).map((r) => r.form['op']).filter(Boolean));
  for (const op of ['create', 'new', 'start', 'delete', 'pause', 'unpause', 'shutdown', 'destroy', 'save', 'restore', 'dump',
    'maxmem_set', 'mem_target_set', 'set_vcpus', 'pincpu', 'device_create', 'device_configure', 'device_destroy',
    'domain_sched_credit_set', 'wait_for_devices']) {
    assert.ok(posted.has(op), `op=${op} succeeded at least once`);
  }
  assert.ok(emu.requests.some((r) => r.form['op'] === 'migrate' && r.status === 500), 'migrate was refused');
  const reasons = new Set(emu.requests.filter((r) => r.form['op'] === 'shutdown').map((r) => r.form['reason']));
  assert.ok(reasons.has('reboot'));
  const gets = emu.requests.filter((r) => r.method === 'GET' && ok(r));
  assert.ok(gets.some((r) => r.path === '/xend/domain' && Object.keys(r.query).length === 0), 'GET /xend/domain');
  assert.ok(gets.some((r) => r.path === '/xend/domain' && r.query['state'] === 'halted'), 'GET /xend/domain?state=halted');
  assert.ok(gets.some((r) => r.path.startsWith('/xend/domain/') && r.query['detail'] === '1'), 'GET ?detail=1');
  assert.ok(gets.some((r) => r.query['op'] === 'vcpuinfo'), 'GET ?op=vcpuinfo');
  assert.ok(gets.some((r) => r.path === '/xend/node/'), 'GET /xend/node/');
});
