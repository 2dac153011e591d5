import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDomainXml } from '../../domain/parse.js';
import type { BackendEvent } from '../backend.js';
import { LocalExec } from './exec.js';
import { XlBackend, type XlBackendOptions } from './backend.js';
import { FakeXenHost } from './testing.js';
import { VirtError } from '../../errors.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Rig { fake: FakeXenHost; b: XlBackend; tmp: string; kernel: string; events: BackendEvent[] }

async function rig(t: test.TestContext, opts: { socket?: boolean; backend?: Partial<XlBackendOptions>; totalMiB?: number } = {}): Promise<Rig> {
  const fake = await FakeXenHost.create({ socket: opts.socket ?? true, totalMiB: opts.totalMiB ?? 2047 });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-xl-test-'));
  const kernel = path.join(tmp, 'vmlinuz');
  fs.writeFileSync(kernel, 'kernel');
  fs.writeFileSync(path.join(tmp, 'initrd'), 'initrd');
  fs.writeFileSync(path.join(tmp, 'boot_id'), 'boot-1\n');
  const b = await XlBackend.open({
    exec: new LocalExec({ prependPath: [fake.binDir], env: { FAKE_XEN_DIR: fake.dir } }),
    ...(fake.socketPath ? { xenstoredSocket: fake.socketPath } : { xenstoredSocket: path.join(tmp, 'no-such-socket') }),
    runDir: path.join(tmp, 'run'),
    hostChecks: false,
    bootIdFile: path.join(tmp, 'boot_id'),
    dmiDir: path.join(tmp, 'no-dmi'),
    ...opts.backend,
  });
  const events: BackendEvent[] = [];
  b.onEvent((e) => { events.push(e); });
  t.after(async () => {
    await b.close();
    await fake.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  return { fake, b, tmp, kernel, events };
}

function pvXml(r: Rig, name = 'pv1', extra = '', memMiB = 128): string {
  return `<domain type='xen'>
  <name>${name}</name>
  <uuid>${name === 'pv1' ? '4a0b6b7e-6b1e-4c7e-9d55-3f0a6c1b2d11' : '4a0b6b7e-6b1e-4c7e-9d55-3f0a6c1b2d' + String(name.length).padStart(2, '0')}</uuid>
  <memory unit='MiB'>${memMiB}</memory>
  <vcpu current='1'>2</vcpu>
  <os><type>linux</type><kernel>${r.kernel}</kernel><initrd>${path.join(r.tmp, 'initrd')}</initrd><cmdline>console=hvc0</cmdline></os>
  <devices><console type='pty'/>${extra}</devices>
</domain>`;
}

async function until(fn: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const xlCalls = (f: FakeXenHost) => f.calls().filter((c) => !c[0]!.startsWith('xenstore')).map((c) => c.join(' '));

test('host facts come from xl info', async (t) => {
  const { b } = await rig(t);
  const h = await b.hostInfo();
  assert.deepEqual(h, { model: 'x86_64', memory: 2047 * 1024, freeMemory: (2047 - 1024) * 1024, cpus: 2, mhz: 2445, nodes: 1, sockets: 1, cores: 2, threads: 1, scheduler: 'credit2' });
  assert.equal(await b.version(), 4_017_007);
  assert.equal(await b.maxGuestVcpus('xen'), 2);
  assert.equal(await b.bootId(), 'boot-1');
  assert.equal(await b.sysinfo(), undefined);
  const caps = await b.capabilities();
  assert.deepEqual(caps.guests.map((g) => `${g.osType}/${g.arch}`), ['xen/x86_64', 'hvm/i686', 'hvm/x86_64', 'xenpvh/x86_64']);
  assert.deepEqual(caps.guests[1]!.features.slice(0, 2).map((f) => f.name).sort(), ['nonpae', 'pae']);
});

test('list and info: Domain-0 and guests, with limits from XenStore', async (t) => {
  const { fake, b } = await rig(t);
  const d = fake.addDomain({ name: 'outside', memKiB: 262144, maxMemKiB: 524288, vcpus: 1, maxVcpus: 4 });
  const all = await b.list();
  assert.deepEqual(all.map((g) => [g.domid, g.name, g.state]), [[0, 'Domain-0', 'running'], [d.domid, 'outside', 'blocked']]);
  const g = (await b.info(d.domid))!;
  assert.deepEqual({ ...g, cpuTime: String(g.cpuTime) }, {
    domid: d.domid, name: 'outside', uuid: d.uuid, state: 'blocked', memory: 262144, maxMemory: 524288, vcpus: 1, maxVcpus: 4, cpuTime: '1500000000',
  });
  assert.equal((await b.info(0))!.uuid, '00000000-0000-0000-0000-000000000000');
  assert.equal(await b.info(99), undefined);
  // reads within the snapshot's lifetime share one xl list
  fake.clearCalls();
  await Promise.all([b.info(0), b.info(d.domid), b.list()]);
  assert.equal(xlCalls(fake).filter((c) => c.startsWith('xl list')).length, 0);
});

test('start, paused mode: our xl config, xl create -e -p, then unpause by domid', async (t) => {
  const r = await rig(t, { backend: { createMode: 'paused' } });
  const def = parseDomainXml(pvXml(r));
  const domid = await r.b.start(def);
  const dom = r.fake.domain(domid)!;
  assert.equal(dom.name, 'pv1');
  assert.equal(dom.uuid, '4a0b6b7e-6b1e-4c7e-9d55-3f0a6c1b2d11');
  assert.equal(dom.paused, false);
  assert.match(dom.config, /^kernel = ".*vmlinuz"$/m);
  assert.match(dom.config, /^vcpus = 1$/m);
  const calls = xlCalls(r.fake);
  const create = calls.findIndex((c) => /^xl create -e -p \S+\.cfg$/.test(c));
  assert.ok(create >= 0, calls.join('\n'));
  assert.equal(calls[calls.length - 1], `xl unpause ${domid}`);
  // the rendered config does not outlive the call
  assert.deepEqual(fs.readdirSync(path.join(r.tmp, 'run')), []);
  const info = (await r.b.info(domid))!;
  assert.equal(info.memory, 128 * 1024);
  assert.equal(info.vcpus, 1);
  assert.equal(info.maxVcpus, 2);

  const paused = await r.b.start(parseDomainXml(pvXml(r, 'pv2')), { paused: true });
  assert.equal(r.fake.domain(paused)!.paused, true);
  assert.equal((await r.b.info(paused))!.state, 'paused');
});

test('start, direct mode (the default): one xl create; -p only for a paused start', async (t) => {
  const r = await rig(t);
  const domid = await r.b.start(parseDomainXml(pvXml(r)));
  assert.equal(r.fake.domain(domid)!.paused, false);
  const paused = await r.b.start(parseDomainXml(pvXml(r, 'pv2')), { paused: true });
  assert.equal(r.fake.domain(paused)!.paused, true);
  assert.deepEqual(xlCalls(r.fake).filter((c) => /create|unpause/.test(c)).map((c) => c.replace(/\S+\.cfg$/, 'CFG')), ['xl create -e CFG', 'xl create -e -p CFG']);
  assert.equal(r.b.lastStart?.phases['xl create'] !== undefined, true);
});

test('start: <cputune> pins and weight go into the config xl creates from', async (t) => {
  const r = await rig(t);
  const tune = `<cputune><shares>512</shares><vcpupin vcpu='1' cpuset='1'/></cputune>`;
  const def = parseDomainXml(pvXml(r).replace('<os>', `${tune}<os>`));
  const cfg = r.fake.domain(await r.b.start(def))!.config;
  assert.match(cfg, /^cpus = \[ "all", "1" \]$/m);
  assert.match(cfg, /^cpu_weight = 512$/m);
  assert.doesNotMatch(cfg, /^cap = /m);
  // without <cputune> the config is exactly what domxml-to-native prints
  const plain = parseDomainXml(pvXml(r, 'pv2'));
  assert.equal(r.b.renderConfig(plain).includes('cpu_weight'), false);
});

test('start failures: clear messages, nothing left behind', async (t) => {
  const r = await rig(t, { backend: { createMode: 'paused' } });
  await assert.rejects(r.b.start(parseDomainXml(pvXml(r, 'big', '', 4000))), (e: VirtError) => {
    assert.equal(e.codeName, 'OPERATION_FAILED');
    assert.match(e.message, /not enough free memory: domain 'big' needs 4000 MiB, the host has 1023 MiB free/);
    return true;
  });
  // a failure after xl made the domain: it is destroyed
  r.fake.failNext('create', 'libxl: error: libxl_create.c:1:f: Domain 1:unable to add disk devices\n', 3, true);
  await assert.rejects(r.b.start(parseDomainXml(pvXml(r, 'half'))), /unable to add disk devices/);
  assert.deepEqual(r.fake.state().domains, []);
  assert.ok(xlCalls(r.fake).some((c) => /^xl destroy \d+$/.test(c)));
  // unpause fails: destroyed too
  r.fake.failNext('unpause', 'libxl: error: libxl_domain.c:688:domain_unpause_done: Unpausing domain: Invalid argument\n', 0);
  await assert.rejects(r.b.start(parseDomainXml(pvXml(r, 'stuck'))), /cannot start \(unpause\) domain 'stuck'.*Unpausing domain: Invalid argument/);
  assert.deepEqual(r.fake.state().domains, []);
  // what we can see before asking xl
  const missing = parseDomainXml(pvXml(r, 'nokern').replace(r.kernel, '/no/such/kernel'));
  await assert.rejects(r.b.start(missing), /its kernel '\/no\/such\/kernel' does not exist in dom0/);
  // a name clash with a domain started outside xenvirt
  r.fake.addDomain({ name: 'taken' });
  await assert.rejects(r.b.start(parseDomainXml(pvXml(r, 'taken'))), /a domain named 'taken' is already running on this host/);
  assert.equal(r.fake.state().domains.length, 1);
});

test('lifecycle calls and their errors', async (t) => {
  const r = await rig(t);
  const domid = await r.b.start(parseDomainXml(pvXml(r)));
  await r.b.pause(domid);
  assert.equal((await r.b.info(domid))!.state, 'paused');
  await r.b.unpause(domid);
  assert.equal((await r.b.info(domid))!.state, 'blocked');
  // xl pause exits 0 when the domain is missing; we still fail
  await assert.rejects(r.b.pause(77), (e: VirtError) => e.codeName === 'NO_DOMAIN');
  await assert.rejects(r.b.destroy(0), /Domain-0 does not support/);
  await r.b.setMemory(domid, 100 * 1024);
  assert.equal((await r.b.info(domid))!.memory, 100 * 1024);
  await assert.rejects(r.b.setMaxMemory(domid, 50 * 1024), /below its current allocation: set the memory \(setmem\) lower first/);
  await r.b.setMaxMemory(domid, 200 * 1024);
  assert.equal((await r.b.info(domid))!.maxMemory, 200 * 1024);
  await r.b.setVcpus(domid, 2);
  assert.equal((await r.b.info(domid))!.vcpus, 2);
  await assert.rejects(r.b.setVcpus(domid, 3), /at most 2 vcpus/);
  await r.b.pinVcpu(domid, 1, [1]);
  const v = await r.b.vcpuInfo(domid);
  assert.deepEqual(v.map((x) => [x.number, x.state, x.cpumap]), [[0, 'blocked', [0, 1]], [1, 'blocked', [1]]]);
  await r.b.setSchedulerParams(domid, { weight: 512, cap: 50 });
  assert.deepEqual(await r.b.schedulerParams(domid), { scheduler: 'credit2', weight: 512, cap: 50 });
  await assert.rejects(r.b.setSchedulerParams(domid, { weight: 0 }), /weight 0 must be between 1 and 65535/);
  const img = path.join(r.tmp, 'disk.img');
  fs.writeFileSync(img, '');
  await r.b.attachDisk(domid, { type: 'file', device: 'disk', source: { path: img }, target: { dev: 'xvdb', bus: 'xen' } });
  assert.deepEqual(r.fake.domain(domid)!.disks, ['xvdb']);
  assert.ok(xlCalls(r.fake).includes(`xl block-attach ${domid} format=raw,vdev=xvdb,access=rw,target=${img}`));
  await r.b.detachDisk(domid, { type: 'file', device: 'disk', source: { path: img }, target: { dev: 'xvdb', bus: 'xen' } });
  assert.deepEqual(r.fake.domain(domid)!.disks, []);
  await r.b.attachInterface(domid, { type: 'bridge', mac: '00:16:3e:11:22:33', source: { bridge: 'xenbr0' }, ips: [] });
  assert.ok(xlCalls(r.fake).includes(`xl network-attach ${domid} mac=00:16:3e:11:22:33 bridge=xenbr0 script=vif-bridge`), xlCalls(r.fake).join('\n'));
  await r.b.detachInterface(domid, { type: 'bridge', mac: '00:16:3e:11:22:33', source: { bridge: 'xenbr0' }, ips: [] });
  await assert.rejects(r.b.detachInterface(domid, { type: 'bridge', mac: '00:16:3e:99:99:99', ips: [] }), /Unknown device 00:16:3e:99:99:99/);
  const core = path.join(r.tmp, 'core');
  await r.b.coreDump(domid, core);
  assert.equal(fs.readFileSync(core, 'utf8'), 'FAKE-CORE pv1\n');
  await r.b.destroy(domid);
  assert.equal(await r.b.info(domid), undefined);
  // destroying what is already gone is what the caller wanted
  await r.b.destroy(domid);
});

test('save and restore stream through pipes, after the caller\'s header', async (t) => {
  const r = await rig(t);
  const def = parseDomainXml(pvXml(r));
  const domid = await r.b.start(def);
  const file = path.join(r.tmp, 'pv1.save');
  const fd = fs.openSync(file, 'w+');
  fs.writeSync(fd, 'DRIVER-HEADER\n');
  const progress: Array<[number, number]> = [];
  await r.b.save(domid, fd, (a, b) => progress.push([a, b]));
  fs.closeSync(fd);
  assert.equal(r.fake.domain(domid), undefined);
  assert.ok(progress.length >= 3 && progress[progress.length - 1]![0] === progress[progress.length - 1]![1]);
  const data = fs.readFileSync(file, 'latin1');
  assert.ok(data.startsWith('DRIVER-HEADER\nFAKE-XL-IMAGE\n'));
  // restore reads from where the caller left the offset
  const rfd = fs.openSync(file, 'r');
  fs.readSync(rfd, Buffer.alloc(14), 0, 14, null);
  const back = await r.b.restore(def, rfd);
  fs.closeSync(rfd);
  assert.notEqual(back, domid);
  assert.equal(r.fake.domain(back)!.name, 'pv1');
  assert.equal(r.fake.domain(back)!.paused, false);
  assert.ok(xlCalls(r.fake).some((c) => /^xl restore -e \S+\.cfg \/proc\/self\/fd\/0$/.test(c)));
  // no events for what we removed ourselves
  await sleep(150);
  assert.deepEqual(r.events, []);
  // a bad image: a clear failure and no domain left
  const bad = path.join(r.tmp, 'bad.save');
  fs.writeFileSync(bad, 'garbage');
  await r.b.destroy(back);
  const bfd = fs.openSync(bad, 'r');
  await assert.rejects(r.b.restore(def, bfd), /wrong magic number/);
  fs.closeSync(bfd);
  assert.deepEqual(r.fake.state().domains, []);
});

for (const socket of [true, false]) {
  test(`events from XenStore watches (${socket ? 'xenstored socket' : 'xenstore-watch tool'})`, async (t) => {
    const r = await rig(t, { socket });
    assert.equal(r.b.xenstore.kind, socket ? 'socket' : 'cli');
    // a guest that stopped while nobody watched is reported at ready()
    const early = r.fake.addDomain({ name: 'early' });
    r.fake.guestShutdown(early.domid, 'poweroff');
    const a = await r.b.start(parseDomainXml(pvXml(r, 'pv1')));
    const c = await r.b.start(parseDomainXml(pvXml(r, 'crashy')));
    const gone = r.fake.addDomain({ name: 'gone' });
    await r.b.ready();
    assert.deepEqual(r.events, [{ type: 'shutdown', domid: early.domid, uuid: early.uuid, reason: 'poweroff' }]);
    r.events.length = 0;
    // guest-initiated poweroff, a crash, a destroy behind our back
    r.fake.guestShutdown(a, 'poweroff');
    await until(() => r.events.length >= 1, 'poweroff event');
    r.fake.guestShutdown(c, 'crash');
    await until(() => r.events.length >= 2, 'crash event');
    r.fake.vanish(gone.domid);
    await until(() => r.events.length >= 3, 'death event');
    assert.deepEqual(r.events.map((e) => [e.type, e.domid, e.type === 'shutdown' ? e.reason : '-']), [
      ['shutdown', a, 'poweroff'], ['shutdown', c, 'crash'], ['death', gone.domid, '-'],
    ]);
    assert.equal((await r.b.info(c))!.state, 'crashed');
    // our own destroy is no news; a shutdown is reported once
    await r.b.destroy(a);
    r.fake.addDomain({ name: 'newcomer' });
    await sleep(200);
    assert.equal(r.events.length, 3);
    // shutdown asks the guest; the fake guest obeys at once
    const d = await r.b.start(parseDomainXml(pvXml(r, 'polite')));
    await r.b.shutdown(d, 'reboot', { wait: true });
    await until(() => r.events.length >= 4, 'reboot event');
    assert.deepEqual(r.events[3], { type: 'shutdown', domid: d, uuid: r.fake.domain(d)!.uuid, reason: 'reboot' });
    assert.ok(xlCalls(r.fake).includes(`xl reboot -F -w ${d}`));
  });
}

test('close releases the watches', async (t) => {
  const r = await rig(t);
  await r.b.ready();
  assert.equal(r.fake.watchCount(), 2);
  await r.b.close();
  await until(() => r.fake.watchCount() === 0, 'watches released');
});
