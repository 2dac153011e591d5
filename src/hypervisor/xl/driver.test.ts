/**
 * The driver on the xl backend, against the fake Xen host: libvirt's semantics (states,
 * events, lifecycle actions) on top of what `xl` reports.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XenDriver } from '../../driver/driver.js';
import { DirStore, MemoryStore } from '../../driver/store.js';
import { DomainState, EventDetail, EventType, type LifecycleEvent } from '../../driver/connection.js';
import { LocalExec } from './exec.js';
import { XlBackend } from './backend.js';
import { FakeXenHost } from './testing.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(fn: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function setup(t: test.TestContext, dirStore = false) {
  const fake = await FakeXenHost.create();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-xl-drv-'));
  const kernel = path.join(tmp, 'vmlinuz');
  fs.writeFileSync(kernel, 'k');
  fs.writeFileSync(path.join(tmp, 'boot_id'), 'b1\n');
  const backend = () => XlBackend.open({
    exec: new LocalExec({ prependPath: [fake.binDir], env: { FAKE_XEN_DIR: fake.dir } }),
    xenstoredSocket: fake.socketPath!,
    runDir: path.join(tmp, 'run'),
    hostChecks: false,
    bootIdFile: path.join(tmp, 'boot_id'),
  });
  const store = dirStore ? await DirStore.open(path.join(tmp, 'state'), { prefixes: ['config', 'autostart', 'run', 'driver'] }) : new MemoryStore();
  const driver = await XenDriver.start({ uri: 'xen:///system', store, backend: await backend() });
  const events: LifecycleEvent[] = [];
  await driver.onLifecycle((e) => events.push(e));
  t.after(async () => {
    await driver.close().catch(() => {});
    await fake.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const xml = (name: string, uuid: string, extra = '') => `<domain type='xen'>
  <name>${name}</name>
  <uuid>${uuid}</uuid>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type>linux</type><kernel>${kernel}</kernel><cmdline>console=hvc0</cmdline></os>
  ${extra}
  <devices><console type='pty'/></devices>
</domain>`;
  return { fake, driver, events, xml, tmp, backend };
}

const evName = (e: LifecycleEvent) => `${e.domain.name}:${e.event}/${e.detail}`;

test('define, start, inspect, suspend, resume, setmem, save, restore, guest poweroff, undefine', async (t) => {
  const { fake, driver, events, xml, tmp } = await setup(t);
  const dom = await driver.defineXml(xml('pvtest', '11111111-2222-3333-4444-555555555555'));
  await driver.create(dom);
  const ref = driver.lookupByName('pvtest');
  const xen = fake.state().domains.find((d) => d.name === 'pvtest')!;
  assert.equal(ref.id, xen.domid);
  let info = await driver.getInfo(ref);
  assert.equal(info.state, DomainState.RUNNING);
  assert.equal(info.memory, xen.memKiB);
  assert.equal(info.nrVirtCpu, xen.vcpus);

  await driver.suspend(ref);
  assert.equal(fake.domain(ref.id)!.paused, true);
  assert.equal((await driver.getInfo(ref)).state, DomainState.PAUSED);
  await driver.resume(ref);
  assert.equal(fake.domain(ref.id)!.paused, false);

  await driver.setMemory(ref, 100 * 1024);
  assert.equal(fake.domain(ref.id)!.memKiB, 100 * 1024);
  info = await driver.getInfo(ref);
  assert.equal(info.memory, 100 * 1024);

  const file = path.join(tmp, 'pvtest.save');
  await driver.save(ref, file);
  assert.equal(fake.domain(ref.id), undefined);
  assert.equal((await driver.getState(ref)).state, DomainState.SHUTOFF);
  await driver.restore(file);
  const back = driver.lookupByName('pvtest');
  assert.notEqual(back.id, ref.id);
  assert.equal(fake.domain(back.id)!.paused, false);
  assert.equal((await driver.getState(back)).state, DomainState.RUNNING);

  // the guest powers itself off: libvirt's Shutdown Finished + Stopped Shutdown, Xen's domain gone
  events.length = 0;
  fake.guestShutdown(back.id, 'poweroff');
  await until(() => events.some((e) => e.event === EventType.STOPPED), 'stopped event');
  assert.deepEqual(events.map(evName), [`pvtest:${EventType.STOPPED}/${EventDetail.STOPPED.SHUTDOWN}`]);
  assert.equal(fake.domain(back.id), undefined);
  assert.equal((await driver.getState(back)).state, DomainState.SHUTOFF);

  await driver.undefine(back);
  assert.throws(() => driver.lookupByName('pvtest'), /Domain not found/);
});

test('on_reboot restart and on_crash destroy are applied by the driver', async (t) => {
  const { fake, driver, events, xml } = await setup(t);
  const dom = await driver.defineXml(xml('rb', '21111111-2222-3333-4444-555555555555', '<on_reboot>restart</on_reboot><on_crash>destroy</on_crash>'));
  await driver.create(dom);
  const first = driver.lookupByName('rb').id;
  events.length = 0;
  fake.guestShutdown(first, 'reboot');
  await until(() => events.some((e) => e.event === EventType.STARTED), 'restart');
  const second = driver.lookupByName('rb').id;
  assert.notEqual(second, first);
  assert.equal(fake.domain(first), undefined);
  assert.equal(fake.domain(second)!.paused, false);
  events.length = 0;
  fake.guestShutdown(second, 'crash');
  await until(() => events.some((e) => e.event === EventType.STOPPED), 'crash stop');
  assert.deepEqual(events.map(evName), [`rb:${EventType.STOPPED}/${EventDetail.STOPPED.CRASHED}`]);
  assert.equal(fake.domain(second), undefined);
});

test('a domain destroyed behind the driver\'s back is reported destroyed; a failed start leaves nothing', async (t) => {
  const { fake, driver, events, xml } = await setup(t);
  const dom = await driver.defineXml(xml('victim', '31111111-2222-3333-4444-555555555555'));
  await driver.create(dom);
  const id = driver.lookupByName('victim').id;
  events.length = 0;
  fake.vanish(id);
  await until(() => events.length > 0, 'destroyed event');
  assert.deepEqual(events.map(evName), [`victim:${EventType.STOPPED}/${EventDetail.STOPPED.DESTROYED}`]);
  const big = await driver.defineXml(xml('huge', '41111111-2222-3333-4444-555555555555').replace("<memory unit='MiB'>128", "<memory unit='MiB'>9000"));
  await assert.rejects(driver.create(big), /not enough free memory: domain 'huge' needs 9000 MiB, the host has \d+ MiB free/);
  assert.equal((await driver.getState(big)).state, DomainState.SHUTOFF);
  assert.equal(fake.state().domains.length, 0);
});

test('a driver that starts later picks up running guests and what happened meanwhile', async (t) => {
  const { fake, driver, xml, backend } = await setup(t, true);
  const dom = await driver.defineXml(xml('keep', '51111111-2222-3333-4444-555555555555'));
  await driver.create(dom);
  const id = driver.lookupByName('keep').id;
  const store = driver.store;
  const dir = store.dir!;
  await driver.close();
  fake.guestShutdown(id, 'poweroff');
  const again = await XenDriver.start({ uri: 'xen:///system', store: await DirStore.open(dir, { prefixes: ['config', 'autostart', 'run', 'driver'] }), backend: await backend() });
  t.after(() => again.close());
  // the poweroff that happened while no driver ran is applied at start (on_poweroff destroy)
  await until(() => fake.domain(id) === undefined, 'domain destroyed');
  assert.equal((await again.getState(again.lookupByName('keep'))).state, DomainState.SHUTOFF);
});

test('autostart: after the host reboots, the next driver start boots the marked domains through xl', async (t) => {
  const { fake, driver, xml, backend, tmp } = await setup(t, true);
  const auto = await driver.defineXml(xml('auto', '61111111-2222-3333-4444-555555555555'));
  await driver.defineXml(xml('manual', '71111111-2222-3333-4444-555555555555'));
  await driver.setAutostart(auto, true);
  const dir = driver.store.dir!;
  await driver.close();
  const open = async () => XenDriver.start({ uri: 'xen:///system', store: await DirStore.open(dir, { prefixes: ['config', 'autostart', 'run', 'driver'] }), backend: await backend() });
  // the same boot: a daemon restart starts nothing
  const same = await open();
  assert.equal(same.lookupByName('auto').id, -1);
  await same.close();
  fs.writeFileSync(path.join(tmp, 'boot_id'), 'b2\n');
  const booted = await open();
  t.after(() => booted.close());
  const id = booted.lookupByName('auto').id;
  assert.ok(id > 0, 'the autostart domain did not start');
  assert.equal(fake.domain(id)?.name, 'auto');
  assert.equal(booted.lookupByName('manual').id, -1);
  assert.deepEqual(booted.autostartErrors, []);
});
