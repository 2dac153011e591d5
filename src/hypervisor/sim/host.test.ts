import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { VirtError } from '../../errors.js';
import { emptyDevices, type Domain } from '../../domain/types.js';
import { DirStore, MemoryStore } from '../../driver/store.js';
import type { BackendEvent } from '../backend.js';
import { SimHost } from './host.js';

const roots: string[] = [];
after(() => { for (const r of roots) fs.rmSync(r, { recursive: true, force: true }); });
const tmpDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-sim-'));
  roots.push(d);
  return d;
};

function guest(name: string, memory = 262144, vcpus = 2, hvm = false): Domain {
  return {
    type: 'xen', name, uuid: randomUUID(), memory, vcpu: { count: vcpus },
    os: { type: hvm ? 'hvm' : 'xen', boot: [] }, clock: { offset: 'utc', timers: [] },
    devices: { ...emptyDevices(), disks: [{ type: 'file', device: 'disk', source: { path: `/img/${name}` }, target: { dev: 'xvda', bus: 'xen' } }] },
  };
}

async function host(config = {}) {
  const store = new MemoryStore();
  const sim = await SimHost.open(store, { shutdownDelayMs: 30, ...config });
  const events: BackendEvent[] = [];
  sim.onEvent((e) => { events.push(e); });
  await sim.ready();
  return { store, sim, events };
}

test('domain ids increase from 1; Domain-0 is domain 0', async () => {
  const { sim } = await host();
  const a = await sim.start(guest('a'));
  const b = await sim.start(guest('b'));
  await sim.destroy(a);
  const c = await sim.start(guest('c'));
  assert.deepEqual([a, b, c], [1, 2, 3], 'ids are not reused');
  const list = await sim.list();
  assert.deepEqual(list.map((d) => [d.domid, d.name]), [[0, 'Domain-0'], [2, 'b'], [3, 'c']]);
  await sim.close();
});

test('host memory is accounted and a start that does not fit fails clearly', async () => {
  const { sim } = await host({ memory: 4 * 1024 * 1024, dom0Memory: 1024 * 1024 });
  assert.equal((await sim.hostInfo()).freeMemory, 3 * 1024 * 1024);
  await sim.start(guest('a', 2 * 1024 * 1024));
  assert.equal((await sim.hostInfo()).freeMemory, 1024 * 1024);
  await assert.rejects(sim.start(guest('big', 2 * 1024 * 1024)), (e: unknown) => {
    assert.ok(e instanceof VirtError);
    assert.equal(e.message, "operation failed: libxenlight failed to get free memory for domain 'big': it needs 2097152 KiB, the host has 1048576 KiB free");
    return true;
  });
  assert.equal((await sim.list()).length, 2, 'nothing was created');
  // HVM video RAM counts too
  const hvm = guest('hvm', 1024 * 1024 - 8192, 1, true);
  hvm.devices.videos.push({ model: { type: 'cirrus', vram: 16384 } });
  await assert.rejects(sim.start(hvm), /needs 1056768 KiB/);
  await sim.close();
});

test('vcpu limits: 128 for HVM, 512 for PV', async () => {
  const { sim } = await host();
  await assert.rejects(sim.start(guest('h', 262144, 129, true)), /has 129 vcpus, more than the 128 a hvm guest can have/);
  assert.ok(await sim.start(guest('p', 262144, 129)));
  await sim.close();
});

test('shutdown and reboot complete later, as events with Xen\'s reason', async () => {
  const { sim, events } = await host();
  const a = await sim.start(guest('a'));
  const b = await sim.start(guest('b'));
  await sim.shutdown(a, 'poweroff');
  await sim.shutdown(b, 'reboot');
  assert.equal((await sim.info(a))!.state, 'running', 'not yet');
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual(events.map((e) => [e.type, e.domid, e.type === 'shutdown' ? e.reason : '']), [['shutdown', a, 'poweroff'], ['shutdown', b, 'reboot']]);
  assert.equal((await sim.info(a))!.state, 'shutdown');
  assert.equal((await sim.info(a))!.shutdownReason, 'poweroff');
  await assert.rejects(sim.shutdown(a, 'poweroff'), /already shut down/);
  // a paused guest acts on the request only once it runs again
  const c = await sim.start(guest('c'));
  await sim.pause(c);
  await sim.shutdown(c, 'poweroff');
  await new Promise((r) => setTimeout(r, 60));
  assert.equal((await sim.info(c))!.state, 'paused');
  await sim.unpause(c);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal((await sim.info(c))!.state, 'shutdown');
  await sim.close();
});

test('the crash trigger reports a crash', async () => {
  const { sim, events } = await host();
  const a = await sim.start(guest('a'));
  await sim.crash(a);
  assert.deepEqual(events.at(-1), { type: 'shutdown', domid: a, uuid: (await sim.info(a))!.uuid, reason: 'crash' });
  assert.equal((await sim.info(a))!.state, 'crashed');
  await sim.close();
});

test('pause stops the CPU clock; resources follow Xen\'s rules', async () => {
  const { sim } = await host();
  const a = await sim.start(guest('a', 524288, 4));
  await new Promise((r) => setTimeout(r, 20));
  await sim.pause(a);
  const t = (await sim.info(a))!.cpuTime;
  assert.ok(t > 0n);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal((await sim.info(a))!.cpuTime, t);
  await sim.unpause(a);
  await sim.setMemory(a, 131072);
  assert.equal((await sim.info(a))!.memory, 131072);
  await assert.rejects(sim.setMemory(a, 600000), /above its maximum 524288 KiB/);
  await assert.rejects(sim.setMaxMemory(a, 100000), /below its current allocation/);
  await sim.setMaxMemory(a, 200000);
  assert.equal((await sim.info(a))!.maxMemory, 200000);
  await sim.setVcpus(a, 1);
  assert.equal((await sim.info(a))!.vcpus, 1);
  await assert.rejects(sim.setVcpus(a, 5), /outside 1\.\.4/);
  const disk = { type: 'file' as const, device: 'disk' as const, source: { path: '/x' }, target: { dev: 'xvdb', bus: 'xen' as const } };
  await sim.attachDisk(a, disk);
  await assert.rejects(sim.attachDisk(a, disk), /target is in use/);
  await sim.detachDisk(a, disk);
  await assert.rejects(sim.detachDisk(a, disk), /no such disk/);
  await assert.rejects(sim.pause(0), /Domain-0 does not support/);
  await sim.close();
});

test('save writes an image the domain can be restored from; it never reads guest files', async () => {
  const { sim } = await host({ transferMiBps: 1024 });
  const def = guest('a', 65536);
  const a = await sim.start(def);
  await sim.setVcpus(a, 1);
  const file = path.join(tmpDir(), 'a.img');
  const fd = fs.openSync(file, 'w');
  const progress: number[] = [];
  await sim.save(a, fd, (p) => progress.push(p));
  fs.closeSync(fd);
  assert.equal(await sim.info(a), undefined, 'saved domains are gone');
  assert.equal(progress.at(-1), 65536 * 1024);
  const rfd = fs.openSync(file, 'r');
  const b = await sim.restore(def, rfd, { paused: true });
  fs.closeSync(rfd);
  const info = (await sim.info(b))!;
  assert.equal(info.state, 'paused');
  assert.equal(info.vcpus, 1, 'state travelled with the image');
  const junk = path.join(tmpDir(), 'junk');
  fs.writeFileSync(junk, 'nope');
  const jfd = fs.openSync(junk, 'r');
  await assert.rejects(sim.restore(guest('j'), jfd), /image magic is incorrect/);
  fs.closeSync(jfd);
  await sim.close();
});

test('a core dump is a real file', async () => {
  const { sim } = await host();
  const a = await sim.start(guest('a', 65536));
  const file = path.join(tmpDir(), 'a.core');
  await sim.coreDump(a, file);
  assert.match(fs.readFileSync(file, 'utf8'), /^XENVIRT-SIM-CORE 1\n.*"name":"a"/);
  assert.equal((await sim.info(a))!.state, 'running', 'back as it was');
  await sim.close();
});

test('a host in a directory: a pending shutdown completes in whichever process is around', async () => {
  const dir = tmpDir();
  const s1 = await DirStore.open(dir, { prefixes: ['sim'] });
  const h1 = await SimHost.open(s1, { shutdownDelayMs: 30 });
  await h1.ready();
  const a = await h1.start(guest('a'));
  await h1.shutdown(a, 'poweroff');
  await h1.close(); // the asker goes away before the guest acts
  await s1.close();
  await new Promise((r) => setTimeout(r, 50));
  const s2 = await DirStore.open(dir, { prefixes: ['sim'] });
  const h2 = await SimHost.open(s2);
  const events: BackendEvent[] = [];
  h2.onEvent((e) => { events.push(e); });
  await h2.ready();
  assert.deepEqual(events.map((e) => e.type === 'shutdown' && e.reason), ['poweroff']);
  assert.equal((await h2.info(a))!.state, 'shutdown');
  // a host reboot: everything gone, ids from 1 again, a new boot id
  const boot = await h2.bootId();
  await h2.rebootHost();
  assert.notEqual(await h2.bootId(), boot);
  assert.deepEqual((await h2.list()).map((d) => d.domid), [0]);
  assert.equal(await h2.start(guest('b')), 1);
  await h2.close();
  await s2.close();
});

test('a save interrupted by a dead process does not leave the guest stuck', async () => {
  const { store, sim } = await host();
  const a = await sim.start(guest('a'));
  const raw = JSON.parse(store.get(`sim/dom/${a}.json`)!);
  raw.busy = { pid: 999999999, kind: 'save', prev: 'running' };
  raw.state = 'paused';
  await store.transaction((tx) => tx.put(`sim/dom/${a}.json`, JSON.stringify(raw)));
  await sim.pause(a); // works: the dead saver's claim is dropped
  assert.equal((await sim.info(a))!.state, 'paused');
  await sim.close();
});
