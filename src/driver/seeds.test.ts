/**
 * The seed's four example domains, made unique (the examples share names, a UUID and MACs),
 * go through a whole life on both simulated hosts: define, start, list, schema-valid dumpxml,
 * shutdown seen as a lifecycle event, undefine.
 */
process.env['XENVIRT_SIM_SHUTDOWN_DELAY_MS'] = '20';

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { SEED_DIR, requireTool, xmllintValidate } from '../../test/support.js';
import { DomainState, EventDetail, EventType, ListFlags, RunningReason, ShutoffReason, XmlFlags } from './connection.js';
import { recordEvents, testHosts, waitFor } from './testing.js';

const hosts = testHosts();
after(() => { for (const h of hosts) h.cleanup(); });
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-seed-dumps-'));
after(() => fs.rmSync(out, { recursive: true, force: true }));

const SEEDS = [
  ['hvm-bios.xml', 'fv0-bios'],
  ['hvm-direct-kernel.xml', 'fv0-kernel'],
  ['pv-bootloader.xml', 'fc8-bootloader'],
  ['pv-direct-kernel.xml', 'fc8-kernel'],
] as const;

function seedXml(file: string, name: string, n: number): { xml: string; uuid: string } {
  let xml = fs.readFileSync(path.join(SEED_DIR, file), 'utf8');
  const uuid = randomUUID();
  xml = xml.replace(/<name>[^<]*<\/name>/, `<name>${name}</name>`);
  if (/<uuid>/.test(xml)) xml = xml.replace(/<uuid>[^<]*<\/uuid>/, `<uuid>${uuid}</uuid>`);
  else xml = xml.replace(/(<name>[^<]*<\/name>)/, `$1\n  <uuid>${uuid}</uuid>`);
  xml = xml.replace(/<mac address='[^']*'\/>/, `<mac address='00:16:3e:5e:ed:0${n}'/>`);
  return { xml, uuid };
}

for (const host of hosts) {
  test(`${host.label}: the seed's four domains live a whole life`, async (t) => {
    const c = await host.open();
    try {
      const ev = await recordEvents(c);
      const seeds = SEEDS.map(([file, name], i) => ({ name, file, ...seedXml(file, name, i) }));
      for (const s of seeds) {
        const d = await c.defineXml(s.xml);
        assert.deepEqual(d, { name: s.name, uuid: s.uuid, id: -1 });
      }
      for (const s of seeds) await c.create(await c.lookupByName(s.name));
      const running = (await c.listAllDomains(ListFlags.ACTIVE)).map((d) => d.name);
      for (const s of seeds) assert.ok(running.includes(s.name), `${s.name} listed running`);
      const ids = await Promise.all(seeds.map(async (s) => (await c.lookupByName(s.name)).id));
      assert.equal(new Set(ids).size, 4);
      for (const s of seeds) {
        assert.deepEqual(await c.getState(await c.lookupByName(s.name)), { state: DomainState.RUNNING, reason: RunningReason.BOOTED });
      }

      await t.test('dumpxml is valid against domain.rng, live and inactive', async (st) => {
        const files: string[] = [];
        for (const s of seeds) {
          const d = await c.lookupByName(s.name);
          for (const [kind, flags] of [['live', XmlFlags.SECURE], ['inactive', XmlFlags.INACTIVE]] as const) {
            const f = path.join(out, `${host.dir ? 'dir' : 'default'}-${s.name}-${kind}.xml`);
            fs.writeFileSync(f, await c.getXmlDesc(d, flags));
            files.push(f);
          }
        }
        if (!requireTool(st, 'xmllint')) return;
        assert.deepEqual(xmllintValidate(files), []);
      });

      for (const s of seeds) await c.shutdown(await c.lookupByName(s.name));
      await waitFor(() => seeds.every((s) => ev.list(s.name).some(([, e, dt]) => e === EventType.STOPPED && dt === EventDetail.STOPPED.SHUTDOWN)), 'shutdown events');
      for (const s of seeds) {
        const d = await c.lookupByName(s.name);
        // the HVM examples say on_poweroff destroy; the PV ones take the default, destroy
        assert.deepEqual(await c.getState(d), { state: DomainState.SHUTOFF, reason: ShutoffReason.SHUTDOWN });
        await c.undefine(d);
        await assert.rejects(c.lookupByName(s.name), new RegExp(`Domain not found: no domain with matching name '${s.name}'`));
      }
      await waitFor(() => seeds.every((s) => ev.list(s.name).length === 4), 'undefine events');
      for (const s of seeds) {
        assert.deepEqual(ev.list(s.name), [
          [s.name, EventType.DEFINED, EventDetail.DEFINED.ADDED],
          [s.name, EventType.STARTED, EventDetail.STARTED.BOOTED],
          [s.name, EventType.STOPPED, EventDetail.STOPPED.SHUTDOWN],
          [s.name, EventType.UNDEFINED, EventDetail.UNDEFINED.REMOVED],
        ]);
      }
      await ev.stop();
    } finally {
      await c.close();
    }
  });
}
