/**
 * The driver through the library API, against test:///default and a persistent test:///DIR:
 * every call, libvirt's states, reasons, events and error texts, and stored state unchanged
 * by failures.
 */
process.env['XENVIRT_SIM_SHUTDOWN_DELAY_MS'] = '20';

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { VirtError } from '../errors.js';
import { parseXml } from '../domain/xml.js';
import {
  DomainState, EventDetail, EventType, ListFlags, MemFlags, ModFlags, PausedReason, RunningReason, ShutoffReason,
  UndefineFlags, VcpuFlags, XmlFlags, type Connection,
} from './connection.js';
import { openConnection, simulatorOf } from './open.js';
import { guestXml, observableState, recordEvents, snapshotDir, testHosts, waitFor, type TestHost } from './testing.js';

const hosts = testHosts();
after(() => { for (const h of hosts) h.cleanup(); });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-files-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let seq = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++seq}`;

/** Run fn with an open connection, closed afterwards. */
async function withConn<T>(host: TestHost, fn: (c: Connection) => Promise<T>): Promise<T> {
  const c = await host.open();
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

/** Assert `p` rejects with a VirtError of this code and exact message, and changes nothing stored. */
async function failsUnchanged(host: TestHost, c: Connection, p: () => Promise<unknown>, code: string, message: string | RegExp): Promise<void> {
  const before = host.dir ? snapshotDir(host.dir) : undefined;
  const seen = await observableState(c);
  await assert.rejects(p(), (e: unknown) => {
    assert.ok(e instanceof VirtError, `not a VirtError: ${e}`);
    assert.equal(e.codeName, code, e.message);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
  assert.equal(await observableState(c), seen, 'observable state unchanged');
  if (host.dir) assert.deepEqual(snapshotDir(host.dir), before, 'stored state unchanged');
}

for (const host of hosts) {
  const L = host.label;

  test(`${L}: host information`, () => withConn(host, async (c) => {
    assert.equal(await c.getUri(), host.uri);
    assert.equal(await c.getType(), 'Xen');
    assert.equal(await c.getVersion(), 4_017_000);
    assert.equal(await c.getLibVersion(), 9_000_000);
    assert.equal(await c.getHostname(), os.hostname());
    assert.equal(c.isReadOnly(), false);
    const caps = await c.getCapabilities();
    const root = parseXml(caps, 'capabilities');
    assert.equal(root.name, 'capabilities');
    const guests = root.children.filter((e) => e.name === 'guest');
    const kinds = guests.map((g) => {
      const ostype = g.children.find((e) => e.name === 'os_type')!.text;
      const arch = g.children.find((e) => e.name === 'arch')!;
      return `${ostype}/${arch.attrs.get('name')}/${arch.children.filter((e) => e.name === 'machine').map((m) => m.text).join(',')}`;
    });
    assert.deepEqual(kinds, ['xen/x86_64/xenpv', 'xen/i686/xenpv', 'hvm/i686/xenfv', 'hvm/x86_64/xenfv', 'xenpvh/x86_64/xenpvh']);
    assert.match(caps, /<uri_transport>xenmigr<\/uri_transport>/);
    assert.match(caps, /<loader>\/usr\/lib\/xen\/boot\/hvmloader<\/loader>/);
    const sys = await c.getSysinfo();
    assert.equal(parseXml(sys, 'sysinfo').attrs.get('type'), 'smbios');
    assert.match(sys, /<entry name='manufacturer'>Xen<\/entry>/);
    const n = await c.nodeGetInfo();
    assert.deepEqual(n, { model: 'x86_64', memory: 16777216, cpus: 8, mhz: 2400, nodes: 1, sockets: 1, cores: 4, threads: 2 });
    assert.ok((await c.nodeGetFreeMemory()) > 0n);
  }));

  test(`${L}: Domain-0 is listed running with id 0 and refuses lifecycle calls`, () => withConn(host, async (c) => {
    const d0 = await c.lookupById(0);
    assert.deepEqual(d0, { name: 'Domain-0', uuid: '00000000-0000-0000-0000-000000000000', id: 0 });
    assert.deepEqual(await c.lookupByName('Domain-0'), d0);
    assert.deepEqual((await c.listAllDomains())[0], d0);
    assert.deepEqual(await c.getState(d0), { state: DomainState.RUNNING, reason: RunningReason.BOOTED });
    assert.equal(await c.isPersistent(d0), true);
    assert.equal(await c.isActive(d0), true);
    assert.equal(await c.getOsType(d0), 'xen');
    const info = await c.getInfo(d0);
    assert.equal(info.memory, 2097152);
    assert.equal(info.nrVirtCpu, 8);
    assert.match(await c.getXmlDesc(d0), /^<domain type='xen' id='0'>\n {2}<name>Domain-0<\/name>/);
    const msg = 'Requested operation is not valid: Domain-0 does not support requested operation';
    for (const op of [() => c.shutdown(d0), () => c.reboot(d0), () => c.destroy(d0), () => c.suspend(d0), () => c.resume(d0),
      () => c.save(d0, path.join(tmp, 'd0')), () => c.managedSave(d0), () => c.coreDump(d0, path.join(tmp, 'd0.core')),
      () => c.undefine(d0), () => c.setVcpus(d0, 1)]) {
      await failsUnchanged(host, c, op, 'OPERATION_INVALID', msg);
    }
    await failsUnchanged(host, c, () => c.create(d0), 'OPERATION_INVALID', 'Requested operation is not valid: domain is already running');
    await failsUnchanged(host, c, () => c.defineXml(guestXml('Domain-0', { uuid: '00000000-0000-0000-0000-000000000000' })),
      'OPERATION_INVALID', msg);
    await failsUnchanged(host, c, () => c.defineXml(guestXml('Domain-0')), 'OPERATION_FAILED',
      "operation failed: domain 'Domain-0' already exists with uuid 00000000-0000-0000-0000-000000000000");
  }));

  test(`${L}: define, redefine, lookups, dumpxml and undefine, with events`, () => withConn(host, async (c) => {
    const ev = await recordEvents(c);
    const name = uniq('def');
    const uuid = randomUUID();
    const d = await c.defineXml(guestXml(name, { uuid }));
    assert.deepEqual(d, { name, uuid, id: -1 });
    assert.deepEqual(await c.lookupByName(name), d);
    assert.deepEqual(await c.lookupByUuid(uuid.toUpperCase()), d);
    assert.deepEqual(await c.lookupByUuid(uuid.replace(/-/g, '')), d);
    assert.deepEqual(await c.getState(d), { state: DomainState.SHUTOFF, reason: ShutoffReason.UNKNOWN });
    assert.equal(await c.isPersistent(d), true);
    assert.equal(await c.isActive(d), false);
    assert.match(await c.getOsType(d), /^(xen|linux)$/, 'a PV guest');
    assert.ok((await c.listAllDomains(ListFlags.INACTIVE)).some((x) => x.name === name));
    assert.ok(!(await c.listAllDomains(ListFlags.ACTIVE)).some((x) => x.name === name));
    const xml = await c.getXmlDesc(d);
    assert.match(xml, new RegExp(`^<domain type='xen'>\\n  <name>${name}</name>\\n  <uuid>${uuid}</uuid>`));
    assert.equal(await c.getXmlDesc(d, XmlFlags.INACTIVE), xml);
    // the canonical document defines to itself
    assert.deepEqual(await c.defineXml(xml), d);
    assert.equal(await c.getXmlDesc(d), xml);
    await c.defineXml(guestXml(name, { uuid, memory: 524288 }));
    assert.match(await c.getXmlDesc(d), /<memory unit='KiB'>524288<\/memory>/);
    await c.undefine(d);
    await failsUnchanged(host, c, () => c.lookupByName(name), 'NO_DOMAIN', `Domain not found: no domain with matching name '${name}'`);
    await failsUnchanged(host, c, () => c.lookupByUuid(uuid), 'NO_DOMAIN', `Domain not found: no domain with matching uuid '${uuid}'`);
    await failsUnchanged(host, c, () => c.getInfo(d), 'NO_DOMAIN', `Domain not found: no domain with matching uuid '${uuid}' (${name})`);
    await waitFor(() => ev.list(name).length === 4, 'events');
    assert.deepEqual(ev.list(name), [
      [name, EventType.DEFINED, EventDetail.DEFINED.ADDED],
      [name, EventType.DEFINED, EventDetail.DEFINED.UPDATED],
      [name, EventType.DEFINED, EventDetail.DEFINED.UPDATED],
      [name, EventType.UNDEFINED, EventDetail.UNDEFINED.REMOVED],
    ]);
    await ev.stop();
  }));

  test(`${L}: define error paths leave stored state unchanged`, () => withConn(host, async (c) => {
    const name = uniq('dup');
    const d = await c.defineXml(guestXml(name));
    await failsUnchanged(host, c, () => c.defineXml('<domain type='), 'XML_ERROR', /domain definition:1:/);
    await failsUnchanged(host, c, () => c.defineXml('<domain type="xen"><name>x</name></domain>'), 'XML_ERROR', /missing <os>/);
    await failsUnchanged(host, c, () => c.defineXml(''), 'INVALID_ARG', /empty/);
    await failsUnchanged(host, c, () => c.defineXml(guestXml(name)), 'OPERATION_FAILED',
      `operation failed: domain '${name}' already exists with uuid ${d.uuid}`);
    await failsUnchanged(host, c, () => c.defineXml(guestXml(uniq('other'), { uuid: d.uuid })), 'OPERATION_FAILED',
      `operation failed: domain '${name}' is already defined with uuid ${d.uuid}`);
    await failsUnchanged(host, c, () => c.defineXml(guestXml(name).replace("type='xen'", "type='kvm'")), 'INVALID_ARG',
      /^invalid argument: could not find capabilities for domaintype=kvm/);
    await failsUnchanged(host, c, () => c.undefine({ name: 'nosuch', uuid: randomUUID(), id: -1 }), 'NO_DOMAIN', /^Domain not found: no domain with matching uuid '.*' \(nosuch\)$/);
    await failsUnchanged(host, c, () => c.lookupByName('nosuch'), 'NO_DOMAIN', "Domain not found: no domain with matching name 'nosuch'");
    await failsUnchanged(host, c, () => c.lookupById(4242), 'NO_DOMAIN', 'Domain not found: no domain with matching id 4242');
    await failsUnchanged(host, c, () => c.lookupById(-1), 'INVALID_ARG', /greater than or equal to 0/);
    await failsUnchanged(host, c, () => c.lookupByUuid('nope'), 'INVALID_ARG', /not a valid UUID/);
    await failsUnchanged(host, c, () => c.defineXml(guestXml(name), 2), 'INVALID_ARG',
      'invalid argument: unsupported flags (0x2) in function libxlDomainDefineXMLFlags');
    await c.undefine(d);
  }));

  test(`${L}: start, suspend, resume, destroy with states, reasons and events`, () => withConn(host, async (c) => {
    const ev = await recordEvents(c);
    const name = uniq('life');
    let d = await c.defineXml(guestXml(name));
    await c.create(d);
    d = await c.lookupByName(name);
    assert.ok(d.id > 0);
    assert.deepEqual(await c.getState(d), { state: DomainState.RUNNING, reason: RunningReason.BOOTED });
    await failsUnchanged(host, c, () => c.create(d), 'OPERATION_INVALID', 'Requested operation is not valid: domain is already running');
    assert.deepEqual(await c.lookupById(d.id), d);
    await c.suspend(d);
    assert.deepEqual(await c.getState(d), { state: DomainState.PAUSED, reason: PausedReason.USER });
    assert.ok((await c.listAllDomains(ListFlags.PAUSED)).some((x) => x.name === name));
    await c.suspend(d); // already paused: nothing happens, as with libxl
    await c.resume(d);
    assert.deepEqual(await c.getState(d), { state: DomainState.RUNNING, reason: RunningReason.UNPAUSED });
    await c.destroy(d);
    assert.deepEqual(await c.getState(d), { state: DomainState.SHUTOFF, reason: ShutoffReason.DESTROYED });
    await failsUnchanged(host, c, () => c.destroy(d), 'OPERATION_INVALID', 'Requested operation is not valid: domain is not running');
    await failsUnchanged(host, c, () => c.suspend(d), 'OPERATION_INVALID', 'Requested operation is not valid: domain is not running');
    await failsUnchanged(host, c, () => c.shutdown(d), 'OPERATION_INVALID', 'Requested operation is not valid: domain is not running');
    await failsUnchanged(host, c, () => c.reboot(d), 'OPERATION_INVALID', 'Requested operation is not valid: domain is not running');
    // ids keep increasing
    await c.create(d);
    const d2 = await c.lookupByName(name);
    assert.ok(d2.id > d.id);
    await c.destroy(d2);
    await c.undefine(d2);
    await waitFor(() => ev.list(name).length >= 8, 'events');
    assert.deepEqual(ev.list(name), [
      [name, EventType.DEFINED, EventDetail.DEFINED.ADDED],
      [name, EventType.STARTED, EventDetail.STARTED.BOOTED],
      [name, EventType.SUSPENDED, EventDetail.SUSPENDED.PAUSED],
      [name, EventType.RESUMED, EventDetail.RESUMED.UNPAUSED],
      [name, EventType.STOPPED, EventDetail.STOPPED.DESTROYED],
      [name, EventType.STARTED, EventDetail.STARTED.BOOTED],
      [name, EventType.STOPPED, EventDetail.STOPPED.DESTROYED],
      [name, EventType.UNDEFINED, EventDetail.UNDEFINED.REMOVED],
    ]);
    assert.equal(ev.events.find((e) => e.event === EventType.STOPPED)!.domain.id, d.id, 'a stop event carries the old id');
    await ev.stop();
  }));

  test(`${L}: shutdown and reboot complete asynchronously with events`, () => withConn(host, async (c) => {
    const ev = await recordEvents(c);
    const name = uniq('shut');
    await c.defineXml(guestXml(name));
    await c.create(await c.lookupByName(name));
    const d = await c.lookupByName(name);
    await c.reboot(d);
    await waitFor(async () => (await c.lookupByName(name)).id !== d.id, 'the reboot');
    const d2 = await c.lookupByName(name);
    assert.deepEqual(await c.getState(d2), { state: DomainState.RUNNING, reason: RunningReason.BOOTED });
    await c.shutdown(d2);
    assert.equal((await c.getState(d2)).state, DomainState.RUNNING, 'the guest takes its time');
    await waitFor(() => ev.list(name).length === 5, 'the shutdown event');
    assert.deepEqual(await c.getState(d2), { state: DomainState.SHUTOFF, reason: ShutoffReason.SHUTDOWN });
    assert.deepEqual(ev.list(name), [
      [name, EventType.DEFINED, EventDetail.DEFINED.ADDED],
      [name, EventType.STARTED, EventDetail.STARTED.BOOTED],
      [name, EventType.STOPPED, EventDetail.STOPPED.SHUTDOWN],
      [name, EventType.STARTED, EventDetail.STARTED.BOOTED],
      [name, EventType.STOPPED, EventDetail.STOPPED.SHUTDOWN],
    ]);
    await c.undefine(d2);
    await ev.stop();
  }));

  test(`${L}: on_poweroff, on_reboot and on_crash are honoured`, () => withConn(host, async (c) => {
    const sim = simulatorOf(c)!;
    const name = uniq('act');
    await c.defineXml(guestXml(name, { onPoweroff: 'restart', onReboot: 'destroy', onCrash: 'preserve' }));
    await c.create(await c.lookupByName(name));
    let d = await c.lookupByName(name);
    await c.shutdown(d); // on_poweroff restart: it comes back
    await waitFor(async () => (await c.lookupByName(name)).id !== d.id, 'restart');
    d = await c.lookupByName(name);
    assert.deepEqual(await c.getState(d), { state: DomainState.RUNNING, reason: RunningReason.BOOTED });
    await c.reboot(d); // on_reboot destroy: it stays off
    await waitFor(async () => !(await c.isActive(d)), 'reboot to destroy');
    assert.deepEqual(await c.getState(d), { state: DomainState.SHUTOFF, reason: ShutoffReason.SHUTDOWN });
    await c.create(d);
    d = await c.lookupByName(name);
    await sim.crash(d.id); // on_crash preserve: the dead domain stays until destroyed
    assert.deepEqual(await c.getState(d), { state: DomainState.SHUTOFF, reason: ShutoffReason.CRASHED });
    assert.equal(await c.isActive(d), true);
    await c.destroy(d);
    assert.equal(await c.isActive(d), false);
    // on_crash restart and coredump-destroy
    const other = uniq('crash');
    await c.defineXml(guestXml(other, { onCrash: 'restart' }));
    await c.create(await c.lookupByName(other));
    const o1 = await c.lookupByName(other);
    await sim.crash(o1.id);
    const o2 = await c.lookupByName(other);
    assert.ok(o2.id > o1.id, 'restarted with a new id');
    await c.destroy(o2);
    const dumper = uniq('dumper');
    await c.defineXml(guestXml(dumper, { onCrash: 'coredump-destroy' }));
    await c.create(await c.lookupByName(dumper));
    await sim.crash((await c.lookupByName(dumper)).id);
    assert.deepEqual(await c.getState(await c.lookupByName(dumper)), { state: DomainState.SHUTOFF, reason: ShutoffReason.CRASHED });
    if (host.dir) assert.ok(fs.readdirSync(path.join(host.dir, 'dump')).some((f) => f.startsWith(`${dumper}-`)), 'automatic core dump');
    for (const n of [name, other, dumper]) await c.undefine(await c.lookupByName(n));
  }));

  test(`${L}: transient domains and undefining a running domain`, () => withConn(host, async (c) => {
    const ev = await recordEvents(c);
    const t = uniq('trans');
    const td = await c.createXml(guestXml(t));
    assert.ok(td.id > 0);
    assert.equal(await c.isPersistent(td), false);
    assert.ok((await c.listAllDomains(ListFlags.TRANSIENT)).some((x) => x.name === t));
    await failsUnchanged(host, c, () => c.undefine(td), 'OPERATION_INVALID', 'Requested operation is not valid: cannot undefine transient domain');
    await failsUnchanged(host, c, () => c.managedSave(td), 'OPERATION_INVALID', 'Requested operation is not valid: cannot do managed save for transient domain');
    await failsUnchanged(host, c, () => c.setAutostart(td, true), 'OPERATION_INVALID', 'Requested operation is not valid: cannot set autostart for transient domain');
    await failsUnchanged(host, c, () => c.setMemory(td, 1024, ModFlags.CONFIG), 'OPERATION_INVALID',
      'Requested operation is not valid: transient domains do not have any persistent config');
    await failsUnchanged(host, c, () => c.createXml(guestXml(t, { uuid: td.uuid })), 'OPERATION_INVALID',
      `Requested operation is not valid: domain '${t}' is already active`);
    await c.destroy(td);
    await assert.rejects(c.lookupByName(t), /no domain with matching name/);
    // a running persistent domain that is undefined carries on as a transient one
    const p = uniq('pers');
    await c.defineXml(guestXml(p));
    await c.create(await c.lookupByName(p));
    const pd = await c.lookupByName(p);
    await c.undefine(pd);
    assert.equal(await c.isPersistent(pd), false);
    assert.equal(await c.isActive(pd), true);
    await failsUnchanged(host, c, () => c.getXmlDesc(pd, 0x10), 'INVALID_ARG', /unsupported flags \(0x10\)/);
    // defining it again makes it persistent again
    await c.defineXml(await c.getXmlDesc(pd, XmlFlags.INACTIVE));
    assert.equal(await c.isPersistent(pd), true);
    await c.undefine(pd);
    await c.destroy(pd);
    await assert.rejects(c.lookupByName(p), /no domain with matching name/);
    await waitFor(() => ev.list(t).length === 2, 'events');
    assert.deepEqual(ev.list(t), [[t, EventType.STARTED, EventDetail.STARTED.BOOTED], [t, EventType.STOPPED, EventDetail.STOPPED.DESTROYED]]);
    await ev.stop();
  }));

  test(`${L}: save and restore through a real file`, () => withConn(host, async (c) => {
    const ev = await recordEvents(c);
    const name = uniq('save');
    await c.defineXml(guestXml(name, { graphics: true }));
    await c.create(await c.lookupByName(name));
    const d = await c.lookupByName(name);
    const live = await c.getXmlDesc(d);
    const file = path.join(tmp, `${name}.save`);
    await failsUnchanged(host, c, () => c.save(d, file, '<domain/>'), 'ARGUMENT_UNSUPPORTED', 'argument unsupported: xml modification unsupported');
    await c.suspend(d);
    await failsUnchanged(host, c, () => c.save(d, file), 'OPERATION_INVALID',
      `Requested operation is not valid: Domain '${d.id}' has to be running because libxenlight will suspend it`);
    await c.resume(d);
    await failsUnchanged(host, c, () => c.save(d, path.join(tmp, 'no', 'such', 'x.save')), 'OPERATION_FAILED',
      `Failed to create domain save file '${path.join(tmp, 'no', 'such', 'x.save')}': No such file or directory`);
    await c.save(d, file);
    const image = fs.readFileSync(file);
    assert.equal(image.subarray(0, 16).toString('latin1'), 'libvirt-xml\n \0 \r');
    assert.ok(image.includes(Buffer.from(`<name>${name}</name>`)), 'the XML is in the image');
    assert.deepEqual(await c.getState(d), { state: DomainState.SHUTOFF, reason: ShutoffReason.SAVED });
    await c.restore(file);
    const r = await c.lookupByName(name);
    assert.ok(r.id > d.id);
    assert.deepEqual(await c.getState(r), { state: DomainState.RUNNING, reason: RunningReason.RESTORED });
    assert.equal((await c.getXmlDesc(r)).replace(/ id='\d+'/, ''), live.replace(/ id='\d+'/, ''), 'same live definition');
    await failsUnchanged(host, c, () => c.restore(file), 'OPERATION_INVALID', `Requested operation is not valid: domain '${name}' is already active`);
    await failsUnchanged(host, c, () => c.restore(path.join(tmp, 'nothing.save')), 'OPERATION_FAILED',
      `Failed to open domain image file '${path.join(tmp, 'nothing.save')}': No such file or directory`);
    const junk = path.join(tmp, 'junk.save');
    fs.writeFileSync(junk, 'x'.repeat(200));
    await failsUnchanged(host, c, () => c.restore(junk), 'INVALID_ARG', 'invalid argument: image magic is incorrect');
    // restore paused (VIR_DOMAIN_SAVE_PAUSED)
    await c.save(r, file);
    await c.restore(file, undefined, 4);
    assert.deepEqual(await c.getState(await c.lookupByName(name)), { state: DomainState.PAUSED, reason: PausedReason.USER });
    await c.destroy(await c.lookupByName(name));
    await c.undefine(d);
    await waitFor(() => ev.list(name).length >= 6, 'events');
    assert.deepEqual(ev.list(name).slice(0, 4), [
      [name, EventType.DEFINED, EventDetail.DEFINED.ADDED],
      [name, EventType.STARTED, EventDetail.STARTED.BOOTED],
      [name, EventType.SUSPENDED, EventDetail.SUSPENDED.PAUSED],
      [name, EventType.RESUMED, EventDetail.RESUMED.UNPAUSED],
    ]);
    assert.deepEqual(ev.list(name).slice(4, 6), [
      [name, EventType.STOPPED, EventDetail.STOPPED.SAVED],
      [name, EventType.STARTED, EventDetail.STARTED.RESTORED],
    ]);
    await ev.stop();
  }));

  test(`${L}: core dumps`, () => withConn(host, async (c) => {
    const name = uniq('dump');
    await c.defineXml(guestXml(name));
    await c.create(await c.lookupByName(name));
    const d = await c.lookupByName(name);
    const core = path.join(tmp, `${name}.core`);
    await c.coreDump(d, core);
    assert.ok(fs.statSync(core).size > 0);
    assert.match(fs.readFileSync(core, 'utf8'), new RegExp(name));
    assert.deepEqual(await c.getState(d), { state: DomainState.RUNNING, reason: RunningReason.UNPAUSED }, 'paused for the dump, then resumed');
    await c.destroy(d);
    await c.create(d);
    const d2 = await c.lookupByName(name);
    await c.coreDump(d2, core, 2 /* LIVE */);
    assert.deepEqual(await c.getState(d2), { state: DomainState.RUNNING, reason: RunningReason.BOOTED }, 'a live dump does not pause');
    await c.coreDump(d2, core, 1 /* CRASH */);
    assert.deepEqual(await c.getState(d2), { state: DomainState.SHUTOFF, reason: ShutoffReason.CRASHED });
    await failsUnchanged(host, c, () => c.coreDump(d2, core), 'OPERATION_INVALID', 'Requested operation is not valid: domain is not running');
    await c.create(d2);
    const d3 = await c.lookupByName(name);
    await failsUnchanged(host, c, () => c.coreDump(d3, path.join(tmp, 'no', 'dir', 'x.core')), 'OPERATION_FAILED', /^Failed to create core dump file .*No such file or directory$/);
    assert.equal((await c.getState(d3)).state, DomainState.RUNNING);
    await c.destroy(d3);
    await c.undefine(d3);
  }));

  test(`${L}: managed save: start restores it, undefine guards it`, () => withConn(host, async (c) => {
    const name = uniq('msave');
    await c.defineXml(guestXml(name));
    await c.create(await c.lookupByName(name));
    const d = await c.lookupByName(name);
    assert.equal(await c.hasManagedSaveImage(d), false);
    await c.managedSave(d);
    assert.deepEqual(await c.getState(d), { state: DomainState.SHUTOFF, reason: ShutoffReason.SAVED });
    assert.equal(await c.hasManagedSaveImage(d), true);
    assert.ok((await c.listAllDomains(ListFlags.MANAGEDSAVE)).some((x) => x.name === name));
    assert.ok(!(await c.listAllDomains(ListFlags.NO_MANAGEDSAVE)).some((x) => x.name === name));
    if (host.dir) assert.ok(fs.existsSync(path.join(host.dir, 'save', `${name}.save`)), 'the image is a file in the host directory');
    await failsUnchanged(host, c, () => c.undefine(d), 'OPERATION_INVALID',
      'Requested operation is not valid: Refusing to undefine while domain managed save image exists');
    await c.create(d);
    const r = await c.lookupByName(name);
    assert.deepEqual(await c.getState(r), { state: DomainState.RUNNING, reason: RunningReason.RESTORED });
    assert.equal(await c.hasManagedSaveImage(r), false, 'the image is used up');
    await c.managedSave(r);
    await c.managedSaveRemove(r);
    assert.equal(await c.hasManagedSaveImage(r), false);
    await c.create(r);
    assert.deepEqual(await c.getState(await c.lookupByName(name)), { state: DomainState.RUNNING, reason: RunningReason.BOOTED });
    await c.managedSave(await c.lookupByName(name));
    await c.undefine(r, UndefineFlags.MANAGED_SAVE);
    await assert.rejects(c.lookupByName(name), /no domain/);
    if (host.dir) assert.ok(!fs.existsSync(path.join(host.dir, 'save', `${name}.save`)));
  }));

  test(`${L}: memory: live and config, never above the maximum`, () => withConn(host, async (c) => {
    const name = uniq('mem');
    await c.defineXml(guestXml(name, { memory: 524288, currentMemory: 262144 }));
    let d = await c.lookupByName(name);
    assert.equal(await c.getMaxMemory(d), 524288);
    await c.setMemory(d, 131072); // inactive: config
    assert.equal((await c.getInfo(d)).memory, 131072);
    await failsUnchanged(host, c, () => c.setMemory(d, 524289), 'INVALID_ARG', 'invalid argument: cannot set memory higher than max memory');
    await failsUnchanged(host, c, () => c.setMemory(d, 0), 'INVALID_ARG', /must not be zero/);
    await failsUnchanged(host, c, () => c.setMemory(d, 1024, ModFlags.LIVE), 'OPERATION_INVALID', 'Requested operation is not valid: domain is not running');
    await failsUnchanged(host, c, () => c.setMemory(d, 1024, 8), 'INVALID_ARG', 'invalid argument: unsupported flags (0x8) in function libxlDomainSetMemoryFlags');
    await c.create(d);
    d = await c.lookupByName(name);
    assert.equal((await c.getInfo(d)).memory, 131072);
    const free0 = await c.nodeGetFreeMemory();
    await c.setMemory(d, 262144, MemFlags.LIVE);
    assert.equal((await c.getInfo(d)).memory, 262144);
    assert.equal(await c.nodeGetFreeMemory(), free0 - 131072n * 1024n, 'the host gave the guest memory');
    assert.match(await c.getXmlDesc(d), /<currentMemory unit='KiB'>262144<\/currentMemory>/);
    assert.match(await c.getXmlDesc(d, XmlFlags.INACTIVE), /<currentMemory unit='KiB'>131072<\/currentMemory>/, 'config untouched');
    await failsUnchanged(host, c, () => c.setMemory(d, 600000), 'INVALID_ARG', 'invalid argument: cannot set memory higher than max memory');
    await c.setMemory(d, 200000, MemFlags.LIVE | MemFlags.CONFIG);
    assert.match(await c.getXmlDesc(d, XmlFlags.INACTIVE), /<currentMemory unit='KiB'>200000<\/currentMemory>/);
    // the maximum: config changes the next boot; live follows Xen (not below the current allocation)
    await c.setMemory(d, 393216, MemFlags.MAXIMUM | MemFlags.CONFIG);
    assert.match(await c.getXmlDesc(d, XmlFlags.INACTIVE), /<memory unit='KiB'>393216<\/memory>/);
    assert.equal((await c.getInfo(d)).maxMem, 524288, 'live maximum unchanged');
    await failsUnchanged(host, c, () => c.setMaxMemory(d, 100000), 'INTERNAL_ERROR', /below its current allocation/);
    await c.setMaxMemory(d, 300000);
    assert.equal((await c.getInfo(d)).maxMem, 300000);
    await c.destroy(d);
    await c.undefine(d);
  }));

  test(`${L}: vcpus: setvcpus and vcpucount with Xen's rules`, () => withConn(host, async (c) => {
    const name = uniq('cpu');
    await c.defineXml(guestXml(name, { vcpus: 4, vcpuCurrent: 2 }));
    let d = await c.lookupByName(name);
    assert.equal(await c.getVcpusFlags(d), 2);
    assert.equal(await c.getVcpusFlags(d, VcpuFlags.MAXIMUM), 4);
    await failsUnchanged(host, c, () => c.getMaxVcpus(d), 'OPERATION_INVALID', 'Requested operation is not valid: Domain is not running');
    await failsUnchanged(host, c, () => c.setVcpus(d, 5), 'INVALID_ARG',
      'invalid argument: requested vcpus is greater than max allowable vcpus for the domain: 5 > 4');
    await failsUnchanged(host, c, () => c.setVcpus(d, 0), 'INVALID_ARG', 'invalid argument: nvcpus is zero');
    await failsUnchanged(host, c, () => c.setVcpus(d, 1, VcpuFlags.LIVE), 'OPERATION_INVALID',
      'Requested operation is not valid: cannot set vcpus on an inactive domain');
    await failsUnchanged(host, c, () => c.setVcpus(d, 16, VcpuFlags.MAXIMUM | VcpuFlags.CONFIG), 'INVALID_ARG',
      'invalid argument: requested vcpus is greater than max allowable vcpus for the domain: 16 > 8');
    await c.setVcpus(d, 6, VcpuFlags.MAXIMUM | VcpuFlags.CONFIG);
    assert.equal(await c.getVcpusFlags(d, VcpuFlags.MAXIMUM | VcpuFlags.CONFIG), 6);
    assert.equal(await c.getVcpusFlags(d, VcpuFlags.CONFIG), 2, 'the new vcpus come offline');
    await c.setVcpus(d, 3, VcpuFlags.CONFIG);
    assert.equal(await c.getVcpusFlags(d, VcpuFlags.CONFIG), 3);
    await c.create(d);
    d = await c.lookupByName(name);
    assert.equal(await c.getMaxVcpus(d), 6);
    assert.equal((await c.getInfo(d)).nrVirtCpu, 3);
    await c.setVcpus(d, 5);
    assert.equal(await c.getVcpusFlags(d, VcpuFlags.LIVE), 5);
    assert.equal(await c.getVcpusFlags(d, VcpuFlags.CONFIG), 3, 'config untouched');
    assert.equal((await c.getInfo(d)).nrVirtCpu, 5);
    await failsUnchanged(host, c, () => c.setVcpus(d, 2, VcpuFlags.MAXIMUM | VcpuFlags.LIVE), 'INVALID_ARG', 'invalid argument: invalid flag combination: (0x5)');
    await failsUnchanged(host, c, () => c.getVcpusFlags(d, VcpuFlags.LIVE | VcpuFlags.CONFIG), 'INVALID_ARG', 'invalid argument: invalid flag combination: (0x3)');
    await c.setVcpus(d, 6, VcpuFlags.LIVE | VcpuFlags.CONFIG);
    assert.equal(await c.getVcpusFlags(d, VcpuFlags.CONFIG), 6);
    assert.doesNotMatch(await c.getXmlDesc(d), /current=/, 'all vcpus online');
    await c.destroy(d);
    await c.undefine(d);
  }));

  test(`${L}: autostart markers`, () => withConn(host, async (c) => {
    const name = uniq('auto');
    const d = await c.defineXml(guestXml(name));
    assert.equal(await c.getAutostart(d), false);
    await c.setAutostart(d, true);
    assert.equal(await c.getAutostart(d), true);
    assert.ok((await c.listAllDomains(ListFlags.AUTOSTART)).some((x) => x.name === name));
    if (host.dir) await waitFor(() => true, 'noop');
    await c.setAutostart(d, false);
    assert.ok((await c.listAllDomains(ListFlags.NO_AUTOSTART)).some((x) => x.name === name));
    await c.undefine(d);
  }));

  test(`${L}: attach and detach disks and interfaces, live and config`, () => withConn(host, async (c) => {
    const name = uniq('dev');
    await c.defineXml(guestXml(name));
    let d = await c.lookupByName(name);
    const disk = (dev: string, bus = 'xen') => `<disk type='file' device='disk'><source file='/var/lib/xen/images/${dev}.img'/><target dev='${dev}' bus='${bus}'/></disk>`;
    const nic = (mac?: string) => `<interface type='bridge'>${mac ? `<mac address='${mac}'/>` : ''}<source bridge='xenbr0'/></interface>`;
    await c.attachDevice(d, disk('xvdb')); // inactive: config
    assert.match(await c.getXmlDesc(d), /<target dev='xvdb' bus='xen'\/>/);
    await failsUnchanged(host, c, () => c.attachDevice(d, disk('xvdb')), 'OPERATION_INVALID', 'Requested operation is not valid: target xvdb already exists.');
    await failsUnchanged(host, c, () => c.attachDevice(d, disk('xvdz'), ModFlags.LIVE), 'OPERATION_INVALID', 'Requested operation is not valid: domain is not running');
    await failsUnchanged(host, c, () => c.attachDevice(d, "<sound model='ac97'/>"), 'CONFIG_UNSUPPORTED', "unsupported configuration: device type 'sound' cannot be attached");
    await failsUnchanged(host, c, () => c.attachDevice(d, '<disk'), 'XML_ERROR', /device XML/);
    await c.create(d);
    d = await c.lookupByName(name);
    await c.attachDevice(d, disk('xvdc'));
    assert.match(await c.getXmlDesc(d), /xvdc/);
    assert.doesNotMatch(await c.getXmlDesc(d, XmlFlags.INACTIVE), /xvdc/, 'live only');
    await failsUnchanged(host, c, () => c.attachDevice(d, disk('xvdc')), 'OPERATION_FAILED', 'operation failed: target xvdc already exists');
    await failsUnchanged(host, c, () => c.attachDevice(d, disk('sdb', 'scsi')), 'CONFIG_UNSUPPORTED', "unsupported configuration: disk bus 'scsi' cannot be hotplugged.");
    await c.attachDevice(d, nic('00:16:3e:aa:bb:cc'), ModFlags.LIVE | ModFlags.CONFIG);
    assert.match(await c.getXmlDesc(d), /00:16:3e:aa:bb:cc/);
    assert.match(await c.getXmlDesc(d, XmlFlags.INACTIVE), /00:16:3e:aa:bb:cc/);
    await failsUnchanged(host, c, () => c.attachDevice(d, nic('00:16:3e:aa:bb:cc')), 'INVALID_ARG',
      'invalid argument: network device with mac 00:16:3e:aa:bb:cc already exists');
    await c.attachDevice(d, nic(), ModFlags.LIVE | ModFlags.CONFIG);
    const macs = (xml: string) => [...xml.matchAll(/<mac address='([^']+)'\/>/g)].map((m) => m[1]);
    assert.equal(macs(await c.getXmlDesc(d)).length, 3);
    assert.deepEqual(macs(await c.getXmlDesc(d)), macs(await c.getXmlDesc(d, XmlFlags.INACTIVE)), 'one generated MAC for both');
    assert.match(macs(await c.getXmlDesc(d))[2]!, /^00:16:3e:/);
    await c.detachDevice(d, nic('00:16:3e:aa:bb:cc'), ModFlags.CONFIG);
    assert.doesNotMatch(await c.getXmlDesc(d, XmlFlags.INACTIVE), /00:16:3e:aa:bb:cc/);
    assert.match(await c.getXmlDesc(d), /00:16:3e:aa:bb:cc/, 'still there live');
    await c.detachDevice(d, nic('00:16:3e:aa:bb:cc'));
    assert.doesNotMatch(await c.getXmlDesc(d), /00:16:3e:aa:bb:cc/);
    await failsUnchanged(host, c, () => c.detachDevice(d, nic('00:16:3e:aa:bb:cc')), 'OPERATION_FAILED',
      'operation failed: no device matching MAC address 00:16:3e:aa:bb:cc found');
    await c.detachDevice(d, disk('xvdc'));
    assert.doesNotMatch(await c.getXmlDesc(d), /xvdc/);
    await failsUnchanged(host, c, () => c.detachDevice(d, disk('xvdq')), 'OPERATION_FAILED', 'operation failed: disk xvdq not found');
    await failsUnchanged(host, c, () => c.detachDevice(d, disk('xvdq'), ModFlags.CONFIG), 'INVALID_ARG', 'invalid argument: no target device xvdq');
    await c.detachDevice(d, disk('xvdb'), ModFlags.CONFIG);
    assert.doesNotMatch(await c.getXmlDesc(d, XmlFlags.INACTIVE), /xvdb/);
    await c.destroy(d);
    await c.undefine(d);
  }));

  test(`${L}: domain info and CPU time`, () => withConn(host, async (c) => {
    const name = uniq('info');
    await c.defineXml(guestXml(name, { memory: 262144, currentMemory: 200000, vcpus: 2 }));
    let d = await c.lookupByName(name);
    assert.deepEqual(await c.getInfo(d), { state: DomainState.SHUTOFF, maxMem: 262144, memory: 200000, nrVirtCpu: 2, cpuTime: 0n });
    await c.create(d);
    d = await c.lookupByName(name);
    const i1 = await c.getInfo(d);
    assert.equal(i1.state, DomainState.RUNNING);
    assert.equal(i1.memory, 200000);
    await new Promise((r) => setTimeout(r, 30));
    assert.ok((await c.getInfo(d)).cpuTime > i1.cpuTime, 'CPU time grows while running');
    await c.suspend(d);
    const p1 = (await c.getInfo(d)).cpuTime;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal((await c.getInfo(d)).cpuTime, p1, 'and stops while paused');
    await c.destroy(d);
    await c.undefine(d);
  }));

  test(`${L}: list filters`, () => withConn(host, async (c) => {
    const a = uniq('la');
    const b = uniq('lb');
    await c.defineXml(guestXml(a));
    await c.defineXml(guestXml(b));
    await c.create(await c.lookupByName(a));
    const names = async (f: number) => (await c.listAllDomains(f)).map((x) => x.name);
    assert.ok((await names(ListFlags.ACTIVE)).includes(a));
    assert.ok(!(await names(ListFlags.ACTIVE)).includes(b));
    assert.ok((await names(ListFlags.SHUTOFF)).includes(b));
    assert.ok((await names(ListFlags.RUNNING)).includes(a));
    assert.deepEqual(await names(ListFlags.OTHER), []);
    assert.deepEqual(await names(ListFlags.HAS_SNAPSHOT), []);
    assert.deepEqual(await names(ListFlags.NO_SNAPSHOT), await names(0));
    const all = await c.listAllDomains();
    const active = all.filter((x) => x.id >= 0);
    assert.deepEqual(active.map((x) => x.id), [...active.map((x) => x.id)].sort((x, y) => x - y), 'active by id first');
    const inactive = all.filter((x) => x.id < 0).map((x) => x.name);
    assert.deepEqual(inactive, [...inactive].sort(), 'then inactive by name');
    await failsUnchanged(host, c, () => c.listAllDomains(1 << 20), 'INVALID_ARG', /unsupported flags/);
    await c.destroy(await c.lookupByName(a));
    await c.undefine(await c.lookupByName(a));
    await c.undefine(await c.lookupByName(b));
  }));

  test(`${L}: host memory and vcpu limits`, () => withConn(host, async (c) => {
    const big = uniq('big');
    await c.defineXml(guestXml(big, { memory: 32 * 1024 * 1024 }));
    const d = await c.lookupByName(big);
    await failsUnchanged(host, c, () => c.create(d), 'OPERATION_FAILED',
      new RegExp(`^operation failed: libxenlight failed to get free memory for domain '${big}': it needs 33554432 KiB, the host has \\d+ KiB free$`));
    const many = uniq('many');
    await c.defineXml(guestXml(many, { hvm: true, vcpus: 200 }));
    const m = await c.lookupByName(many);
    await failsUnchanged(host, c, () => c.create(m), 'CONFIG_UNSUPPORTED', /has 200 vcpus, more than the 128 a hvm guest can have/);
    await c.undefine(d);
    await c.undefine(await c.lookupByName(many));
  }));

  test(`${L}: native formats`, () => withConn(host, async (c) => {
    const cfg = await c.domainXmlToNative('xen-xl', guestXml('native', { uuid: '8f07fe28-753f-2729-d76d-bdbd892f949a' }));
    assert.match(cfg, /^name = "native"$/m);
    const back = await c.domainXmlFromNative('xen-xl', cfg);
    assert.match(back, /<name>native<\/name>/);
    await assert.rejects(c.domainXmlFromNative('vmware', 'x'), /unsupported config type vmware/);
  }));

  test(`${L}: per-domain jobs: one domain's save does not hold up another domain`, () => withConn(host, async (c) => {
    const prev = process.env['XENVIRT_SIM_TRANSFER_MIBPS'];
    process.env['XENVIRT_SIM_TRANSFER_MIBPS'] = '1024'; // 256 MiB take 250 ms
    try {
      const a = uniq('ja');
      const b = uniq('jb');
      for (const n of [a, b]) {
        await c.defineXml(guestXml(n));
        await c.create(await c.lookupByName(n));
      }
      const da = await c.lookupByName(a);
      const db = await c.lookupByName(b);
      const progress: number[] = [];
      const off = c.onJobProgress!((p) => { if (p.domain.name === a) progress.push(p.processed); });
      const order: string[] = [];
      const saving = c.save(da, path.join(tmp, `${a}.save`)).then(() => order.push('save a'));
      await waitFor(async () => (await c.getJobInfo!(da)).type === 2, 'the save job');
      const suspendA = c.suspend(da).then(() => order.push('suspend a'), (e: Error) => order.push(`suspend a: ${e.message}`));
      await c.suspend(db);
      order.push('suspend b');
      await Promise.all([saving, suspendA]);
      off();
      assert.deepEqual(order, ['suspend b', 'save a', 'suspend a: Requested operation is not valid: domain is not running']);
      assert.ok(progress.length > 2 && progress.at(-1) === 262144 * 1024, `progress ${progress}`);
      assert.equal((await c.getJobInfo!(da)).type, 0, 'no job afterwards');
      await c.destroy(db);
      for (const n of [a, b]) await c.undefine(await c.lookupByName(n));
    } finally {
      if (prev === undefined) delete process.env['XENVIRT_SIM_TRANSFER_MIBPS'];
      else process.env['XENVIRT_SIM_TRANSFER_MIBPS'] = prev;
    }
  }));

  test(`${L}: a closed connection refuses calls`, async () => {
    const c = await host.open();
    await c.close();
    await assert.rejects(c.listAllDomains(), (e: unknown) => e instanceof VirtError && e.message === 'invalid connection pointer in virConnectListAllDomains');
    await c.close();
  });
}

test('test:///default: a fresh host per process with the seed-shaped guests, one autostarted', () => withConn(hosts[0]!, async (c) => {
  const all = await c.listAllDomains();
  assert.deepEqual(all.map((d) => [d.name, d.id]), [['Domain-0', 0], ['pv-bootloader', 1], ['hvm-bios', -1], ['hvm-kernel', -1], ['pv-kernel', -1]]);
  assert.equal(new Set(all.map((d) => d.uuid)).size, all.length, 'unique UUIDs');
  assert.equal(await c.getAutostart(all[1]!), true);
  const macs = new Set<string>();
  for (const d of all.slice(1)) for (const m of (await c.getXmlDesc(d)).matchAll(/<mac address='([^']+)'/g)) macs.add(m[1]!);
  assert.equal(macs.size, 4, 'unique MACs');
  // while a connection is open, others share the host
  const c2 = await openConnection('test:///default');
  await c2.defineXml(guestXml('shared'));
  assert.ok((await c.listAllDomains()).some((d) => d.name === 'shared'));
  await c2.close();
}));

test('test:///default: closing the last connection discards the host', async () => {
  const c = await openConnection('test:///default');
  await c.defineXml(guestXml('ephemeral'));
  await c.close();
  const c2 = await openConnection('test:///default');
  await assert.rejects(c2.lookupByName('ephemeral'), /no domain with matching name/);
  await c2.close();
});

test('test:///DIR: everything survives a restart of the driver, running guests included', async () => {
  const host = hosts[1]!;
  const name = uniq('survive');
  let c = await host.open();
  await c.defineXml(guestXml(name));
  await c.create(await c.lookupByName(name));
  await c.setAutostart(await c.lookupByName(name), true);
  const before = await c.lookupByName(name);
  const xml = await c.getXmlDesc(before);
  await c.close();
  c = await host.open();
  assert.deepEqual(await c.lookupByName(name), before, 'still running with the same id');
  assert.equal(await c.getXmlDesc(before), xml);
  assert.equal(await c.getAutostart(before), true);
  // a host reboot: the guest is gone until autostart brings it back at driver start
  const other = uniq('noauto');
  await c.defineXml(guestXml(other, { mac: '00:16:3e:00:00:02' }));
  await c.create(await c.lookupByName(other));
  await simulatorOf(c)!.rebootHost();
  await c.close();
  c = await host.open();
  const after = await c.lookupByName(name);
  assert.ok(after.id >= 1, 'autostarted');
  assert.deepEqual(await c.getState(after), { state: DomainState.RUNNING, reason: RunningReason.BOOTED });
  assert.deepEqual(await c.getState(await c.lookupByName(other)), { state: DomainState.SHUTOFF, reason: ShutoffReason.UNKNOWN });
  await c.destroy(after);
  await c.undefine(after);
  await c.undefine(await c.lookupByName(other));
  await c.close();
});

test('test:///DIR: another process sees the same host', async () => {
  const host = hosts[1]!;
  const name = uniq('xproc');
  const c = await host.open();
  await c.defineXml(guestXml(name));
  await c.create(await c.lookupByName(name));
  const { execFileSync } = await import('node:child_process');
  const script = `
    import { openConnection } from ${JSON.stringify(new URL('./open.js', import.meta.url).href)};
    const c = await openConnection(${JSON.stringify(host.uri)});
    const d = await c.lookupByName(${JSON.stringify(name)});
    console.log(JSON.stringify({ d, state: await c.getState(d) }));
    await c.suspend(d);
    await c.close();
  `;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
  assert.deepEqual(out.d, await c.lookupByName(name));
  assert.deepEqual(out.state, { state: DomainState.RUNNING, reason: RunningReason.BOOTED });
  assert.deepEqual(await c.getState(await c.lookupByName(name)), { state: DomainState.PAUSED, reason: PausedReason.USER }, 'its change is seen here');
  await c.destroy(await c.lookupByName(name));
  await c.undefine(await c.lookupByName(name));
  await c.close();
});
