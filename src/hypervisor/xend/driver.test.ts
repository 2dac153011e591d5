/**
 * The Xen driver on XenD, through the public API: openConnection('xen:///system?xend=...'),
 * a whole guest lifecycle against the emulated XenD, checked on both sides (what the
 * connection reports and what XenD holds).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VirtError } from '../../errors.js';
import { openConnection, driverOf } from '../../driver/open.js';
import { DomainState, EventDetail, EventType, ModFlags, type LifecycleEvent } from '../../driver/connection.js';
import { parseUri } from '../../uri/parse.js';
import { XendEmulator } from './emulator.js';
import { XendClient } from './http.js';
import { isXendHost, xendTarget } from './open.js';
import { CONFORMANCE_DIR } from '../../../test/support.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-xend-driver-'));
let emu: XendEmulator;

before(async () => {
  emu = await XendEmulator.start({ socketPath: path.join(dir, 'xend-socket'), tcp: true, shutdownDelayMs: 30 });
  emu.loadCorpus(path.join(CONFORMANCE_DIR, 'sexpr', 'from-native'));
});
after(async () => {
  await emu.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function eventually<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const GUEST = `<domain type='xen'>
  <name>pvguest</name>
  <uuid>6e2f4c1a-3b5d-4e8f-9a0b-1c2d3e4f5a6b</uuid>
  <memory unit='MiB'>256</memory>
  <currentMemory unit='MiB'>256</currentMemory>
  <vcpu>2</vcpu>
  <os><type>linux</type><kernel>/var/lib/xen/boot/vmlinuz</kernel><initrd>/var/lib/xen/boot/initrd.img</initrd><cmdline>console=hvc0 root=/dev/xvda1</cmdline></os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'><driver name='file'/><source file='/var/lib/xen/images/pvguest.img'/><target dev='xvda' bus='xen'/></disk>
    <interface type='bridge'><mac address='00:16:3e:2a:00:01'/><source bridge='xenbr0'/></interface>
  </devices>
</domain>`;

const DISK = `<disk type='file' device='disk'><source file='/var/lib/xen/images/data.img'/><target dev='xvdb' bus='xen'/></disk>`;

test('xen:///system?xend=...: which URIs select XenD', () => {
  const t = xendTarget(parseUri(`xen:///system?xend=unix:${path.join(dir, 'xend-socket')}&state=${path.join(dir, 'st')}&poll_ms=25`))!;
  assert.deepEqual(t.address, { kind: 'unix', path: path.join(dir, 'xend-socket') });
  assert.equal(t.stateDir, path.join(dir, 'st'));
  assert.equal(t.pollIntervalMs, 25);
  assert.deepEqual(xendTarget(parseUri('xen:///system?xend=http://127.0.0.1:8123'))!.address, { kind: 'tcp', host: '127.0.0.1', port: 8123 });
  assert.throws(() => xendTarget(parseUri('xen:///system?xend=/s&state=relative')), (e: unknown) => e instanceof VirtError && /must be an absolute path/.test(e.message));
  assert.throws(() => xendTarget(parseUri('xen:///system?xend=/s&poll_ms=1')), (e: unknown) => e instanceof VirtError && /poll_ms '1'/.test(e.message));
  // without xend=, only a host with XenD's socket and no xl uses XenD
  if (!isXendHost()) assert.equal(xendTarget(parseUri('xen:///system')), undefined);
  assert.equal(isXendHost(path.join(dir, 'nothing')), false);
});

test('no XenD at the address: opening fails with what to do', async () => {
  await assert.rejects(openConnection(`xen:///system?xend=unix:${path.join(dir, 'no-socket')}&state=${path.join(dir, 'st-none')}`), (e: unknown) => {
    assert.ok(e instanceof VirtError);
    assert.equal(e.codeName, 'NO_CONNECT');
    assert.match(e.message, /cannot connect to XenD at unix:.*no-socket: the socket does not exist; is xend running/);
    return true;
  });
});

test('a full lifecycle through openConnection on XenD (unix socket)', async () => {
  const state = path.join(dir, 'state');
  const uri = `xen:///system?xend=unix:${path.join(dir, 'xend-socket')}&state=${state}&poll_ms=20`;
  const conn = await openConnection(uri);
  const lifecycle: LifecycleEvent[] = [];
  try {
    assert.equal(await conn.getUri(), uri);
    assert.equal(driverOf(conn)!.backend.kind, 'xend');
    assert.equal(await conn.getVersion(), 3_004_002);
    assert.equal(await conn.getHostname(), 'xend-emu');
    const node = await conn.nodeGetInfo();
    assert.deepEqual([node.cpus, node.mhz, node.memory], [4, 2400, 65536 * 1024]);
    assert.match(await conn.getCapabilities(), /<os_type>hvm<\/os_type>/);
    await conn.onLifecycle((e) => { lifecycle.push(e); });

    // define
    const dom = await conn.defineXml(GUEST);
    assert.equal(dom.id, -1);
    assert.equal(emu.domain('pvguest'), undefined, 'a definition lives in the driver, not in XenD');

    // start
    await conn.create(dom);
    const running = await conn.lookupByName('pvguest');
    const x = emu.domain('pvguest')!;
    assert.equal(running.id, x.domid);
    assert.equal(x.state, 'running');
    assert.deepEqual((await conn.getState(running)).state, DomainState.RUNNING);

    // list: the running guest with XenD's domid; XenD's other domains are not the driver's
    const listed = await conn.listAllDomains();
    assert.deepEqual(listed.filter((d) => d.id >= 0).map((d) => [d.name, d.id]), [['Domain-0', 0], ['pvguest', x.domid]]);

    // dominfo: memory and vcpus as XenD reports them
    let info = await conn.getInfo(running);
    assert.deepEqual([info.state, info.maxMem, info.memory, info.nrVirtCpu], [DomainState.RUNNING, 262144, 262144, 2]);
    assert.ok(info.cpuTime >= 0n);

    // suspend / resume
    await conn.suspend(running);
    assert.equal(emu.domain('pvguest')!.state, 'paused');
    assert.equal((await conn.getInfo(running)).state, DomainState.PAUSED);
    await conn.resume(running);
    assert.equal(emu.domain('pvguest')!.state, 'running');

    // setmem / setvcpus (live)
    await conn.setMemory(running, 128 * 1024, ModFlags.LIVE);
    assert.equal(emu.domain('pvguest')!.memory, 128);
    info = await conn.getInfo(running);
    assert.equal(info.memory, 128 * 1024);
    await conn.setVcpus(running, 1, ModFlags.LIVE);
    assert.equal(emu.domain('pvguest')!.online, 1);
    assert.equal((await conn.getInfo(running)).nrVirtCpu, 1);

    // attach / detach a disk (live)
    await conn.attachDevice(running, DISK, ModFlags.LIVE);
    assert.deepEqual(emu.domain('pvguest')!.devices.filter((d) => d.cls === 'vbd').map((d) => d.devid), [51712, 51728]);
    assert.match(await conn.getXmlDesc(running), /<target dev='xvdb' bus='xen'\/>/);
    await conn.detachDevice(running, DISK, ModFlags.LIVE);
    assert.deepEqual(emu.domain('pvguest')!.devices.filter((d) => d.cls === 'vbd').map((d) => d.devid), [51712]);

    // save / restore
    const image = path.join(dir, 'pvguest.save');
    await conn.save(running, image);
    assert.equal(emu.domain('pvguest'), undefined);
    assert.equal((await conn.getState(dom)).state, DomainState.SHUTOFF);
    assert.ok(fs.readFileSync(image).includes(Buffer.from('LinuxGuestRecord')));
    await conn.restore(image);
    const restored = await conn.lookupByName('pvguest');
    const y = emu.domain('pvguest')!;
    assert.equal(restored.id, y.domid);
    assert.notEqual(restored.id, running.id);
    assert.deepEqual([y.state, y.memory, y.online], ['running', 128, 1]);
    assert.equal((await conn.getState(restored)).state, DomainState.RUNNING);

    // shutdown: the guest stops later; the event comes from polling XenD
    await conn.shutdown(restored);
    await eventually('the STOPPED event', () => lifecycle.find((e) => e.event === EventType.STOPPED && e.detail === EventDetail.STOPPED.SHUTDOWN));
    assert.equal((await conn.getState(dom)).state, DomainState.SHUTOFF);
    // on_poweroff=destroy: the driver had XenD destroy the stopped domain
    await eventually('XenD to drop the domain', () => emu.domain('pvguest') === undefined);

    // a guest that powers itself off
    await conn.create(dom);
    emu.guestShutdown('pvguest');
    await eventually('guest-initiated shutdown', () => lifecycle.filter((e) => e.event === EventType.STOPPED && e.detail === EventDetail.STOPPED.SHUTDOWN).length === 2);
    assert.equal((await conn.getState(dom)).state, DomainState.SHUTOFF);

    // a guest destroyed behind the driver's back (xm destroy)
    await conn.create(dom);
    const id = (await conn.lookupByName('pvguest')).id;
    await new XendClient(emu.unixAddress!).post('/xend/domain/pvguest', { op: 'destroy' });
    const died = await eventually('the DESTROYED event', () => lifecycle.find((e) => e.event === EventType.STOPPED && e.detail === EventDetail.STOPPED.DESTROYED));
    assert.equal(died.domain.id, id);
    assert.equal((await conn.getState(dom)).state, DomainState.SHUTOFF);

    // undefine
    await conn.undefine(dom);
    await assert.rejects(conn.lookupByName('pvguest'), (e: unknown) => e instanceof VirtError && e.codeName === 'NO_DOMAIN');
    assert.ok(lifecycle.some((e) => e.event === EventType.UNDEFINED));
    const starts = lifecycle.filter((e) => e.event === EventType.STARTED).map((e) => e.detail);
    assert.deepEqual(starts, [EventDetail.STARTED.BOOTED, EventDetail.STARTED.RESTORED, EventDetail.STARTED.BOOTED, EventDetail.STARTED.BOOTED]);
  } finally {
    await conn.close();
  }
});

test('over TCP: reboot restarts the guest, and a reopened driver keeps its domains', async () => {
  const state = path.join(dir, 'state-tcp');
  const uri = `xen:///system?xend=${emu.httpAddress!}&state=${state}&poll_ms=20`;
  let conn = await openConnection(uri);
  const guest = GUEST.replace(/pvguest/g, 'tcpguest').replace('6e2f4c1a-3b5d-4e8f-9a0b-1c2d3e4f5a6b', '6e2f4c1a-3b5d-4e8f-9a0b-1c2d3e4f5a6c');
  try {
    const dom = await conn.defineXml(guest);
    await conn.create(dom);
    const first = emu.domain('tcpguest')!.domid!;
    await conn.reboot(dom);
    // on_reboot=restart: the driver destroys the stopped domain and boots it again
    const second = await eventually('the restarted domain', async () => {
      const d = emu.domain('tcpguest');
      const ref = await conn.lookupByName('tcpguest');
      return d && d.domid !== first && d.state === 'running' && ref.id === d.domid ? d.domid : undefined;
    });
    assert.equal((await conn.getState(dom)).state, DomainState.RUNNING);
    assert.ok(second > first);
  } finally {
    await conn.close();
  }
  // the guest stops while no driver watches; the next driver sees it and applies on_poweroff
  emu.guestShutdown('tcpguest');
  conn = await openConnection(uri);
  try {
    const dom = await conn.lookupByName('tcpguest');
    await eventually('the driver to apply on_poweroff', async () => (await conn.getState(dom)).state === DomainState.SHUTOFF);
    await eventually('XenD to drop the domain', () => emu.domain('tcpguest') === undefined);
    await conn.undefine(dom);
  } finally {
    await conn.close();
  }
});

test('start failures reach the API as XenD\'s reasons with what to do', async () => {
  const uri = `xen:///system?xend=unix:${path.join(dir, 'xend-socket')}&state=${path.join(dir, 'state-fail')}&poll_ms=20`;
  const conn = await openConnection(uri);
  try {
    const huge = GUEST.replace(/pvguest/g, 'hugeguest').replace('6e2f4c1a-3b5d-4e8f-9a0b-1c2d3e4f5a6b', '6e2f4c1a-3b5d-4e8f-9a0b-1c2d3e4f5a6d')
      .replace(/<memory unit='MiB'>256/, "<memory unit='MiB'>200000").replace(/<currentMemory unit='MiB'>256/, "<currentMemory unit='MiB'>200000");
    await assert.rejects(conn.createXml(huge), (e: unknown) => {
      assert.ok(e instanceof VirtError);
      assert.match(e.message, /^not enough free memory: the guest needs 200000 MiB, the host has \d+ MiB free/);
      return true;
    });
    assert.equal(emu.domain('hugeguest'), undefined);
    await assert.rejects(conn.lookupByName('hugeguest'), (e: unknown) => e instanceof VirtError && e.codeName === 'NO_DOMAIN');
  } finally {
    await conn.close();
  }
});
