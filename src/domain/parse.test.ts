import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import fc from 'fast-check';
import { parseDomainXml } from './parse.js';
import { formatDomainXml } from './format.js';
import { VirtError } from '../errors.js';
import { SEED_DIR, requireTool, xmllintValidate } from '../../test/support.js';

const SEEDS = ['pv-bootloader', 'pv-direct-kernel', 'hvm-bios', 'hvm-direct-kernel'];
const minimal = (body: string, os = '<os><type>hvm</type></os>') =>
  `<domain type='xen'><name>g</name><uuid>c7a5fdb2-cdaf-9455-926a-d65c16db1809</uuid><memory>1024</memory>${os}${body}</domain>`;

function rejects(xml: string, pattern: RegExp): void {
  assert.throws(() => parseDomainXml(xml), (e: unknown) => {
    assert.ok(e instanceof VirtError, `expected a VirtError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test("the seed's legacy <clock sync='localtime'/> reads as offset='localtime'", () => {
  const d = parseDomainXml(readFileSync(join(SEED_DIR, 'hvm-bios.xml'), 'utf8'));
  assert.equal(d.clock.offset, 'localtime');
  assert.match(formatDomainXml(d), /<clock offset='localtime'\/>/);
});

test('the four seed domains parse and their canonical XML validates against domain.rng', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xenvirt-seed-'));
  try {
    const files = SEEDS.map((s) => {
      const d = parseDomainXml(readFileSync(join(SEED_DIR, `${s}.xml`), 'utf8'), { fileName: s });
      const out = join(dir, `${s}.xml`);
      writeFileSync(out, formatDomainXml(d, { inactive: true }));
      // Canonical output parses back to the same model.
      delete d.id; // live-only, not in inactive XML
      assert.deepEqual(parseDomainXml(readFileSync(out, 'utf8')), d);
      return out;
    });
    if (!requireTool(t, 'xmllint')) return;
    assert.deepEqual(xmllintValidate(files), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('memory units scale to KiB and round up', () => {
  const d = parseDomainXml(minimal('').replace('<memory>1024</memory>', "<memory unit='MiB'>2</memory><currentMemory unit='b'>1025</currentMemory>"));
  assert.equal(d.memory, 2048);
  assert.equal(d.currentMemory, 2);
});

test('implicit devices follow libvirt: HVM gets PS/2 inputs, xenbus, memballoon, pae, IDE controller and drive address', () => {
  const d = parseDomainXml(minimal("<devices><disk type='file'><source file='/x'/><target dev='hdc'/></disk></devices>"));
  assert.deepEqual(d.devices.inputs, [{ type: 'mouse', bus: 'ps2' }, { type: 'keyboard', bus: 'ps2' }]);
  assert.deepEqual(d.devices.controllers.map((c) => c.type), ['xenbus', 'ide']);
  assert.deepEqual(d.devices.disks[0]!.address, { type: 'drive', controller: 0, bus: 1, target: 0, unit: 0 });
  assert.equal(d.features?.pae, true);
  assert.equal(d.devices.memballoon?.model, 'xen');
});

test('a PV guest gets a xen console and xen-bus inputs', () => {
  const d = parseDomainXml(minimal('', '<os><type>xen</type></os>'));
  assert.deepEqual(d.devices.consoles, [{ source: { type: 'pty' }, target: { type: 'xen', port: 0 } }]);
  assert.deepEqual(d.devices.inputs.map((i) => i.bus), ['xen', 'xen']);
  assert.equal(d.os.machine, 'xenpv');
});

test('partial vNUMA distance tables are completed symmetrically', () => {
  const d = parseDomainXml(minimal(`<cpu><numa>
    <cell id='0' cpus='0' memory='1024'><distances><sibling id='0' value='10'/><sibling id='1' value='21'/></distances></cell>
    <cell id='1' cpus='1' memory='1024'/></numa></cpu>`));
  assert.deepEqual(d.cpu?.numa?.[0]?.distances, [{ id: 0, value: 10 }, { id: 1, value: 21 }]);
  assert.deepEqual(d.cpu?.numa?.[1]?.distances, [{ id: 0, value: 21 }]);
});

test('bad documents are refused with messages naming the problem', () => {
  rejects("<domain type='xen'><memory>1</memory><os><type>hvm</type></os></domain>", /missing <name>/);
  rejects('<!DOCTYPE domain [<!ENTITY x "boom">]><domain/>', /DOCTYPE/);
  rejects("<domain type='xen'><name>&x;</name></domain>", /entity '&x;' is not allowed/);
  rejects("<domain type='xen'><name>&#0;</name></domain>", /not a valid XML character/);
  rejects(minimal('').replace('<memory>1024</memory>', '<memory>lots</memory>'), /'lots' is not an integer/);
  rejects(minimal('').replace('<memory>1024</memory>', "<memory unit='parsecs'>1</memory>"), /unknown unit 'parsecs'/);
  rejects(minimal("<devices><disk type='file'><source file='/x'/></disk></devices>"), /missing <target>/);
  rejects(minimal("<devices><floppy/></devices>"), /:1: <floppy>: unsupported device/);
  rejects(minimal("<on_crash>explode</on_crash>"), /invalid action 'explode'/);
  rejects(minimal("<devices><interface type='bridge'><mac address='zz'/></interface></devices>"), /invalid MAC address 'zz'/);
  rejects(minimal('').replace('<uuid>c7a5fdb2-cdaf-9455-926a-d65c16db1809</uuid>', '<uuid>nope</uuid>'), /'nope' is not a valid UUID/);
  rejects("<domain type='xen'>\n<name>g</name>\n<bogus/></domain>", /:3: <bogus>: unsupported element/);
  rejects("<domain type='xen'><name>g</name>", /not closed/);
  rejects("<domain type='xen' type='kvm'/>", /duplicate attribute 'type'/);
  rejects('', /document is empty/);
  rejects(minimal('').replace("type='xen'", "type='xen' id='3'").replace('<os><type>hvm</type></os>', "<os><type arch='i686'>hvm</type></os>"),
    /could not find capabilities for arch=i686 domaintype=xen/);
});

test('syntax errors carry line and column', () => {
  assert.throws(() => parseDomainXml("<domain type='xen'>\n  <name>g</nam>\n</domain>", { fileName: 'g.xml' }),
    (e: unknown) => e instanceof VirtError && /^g\.xml:2:/.test(e.message) && /does not match <name>/.test(e.message));
});

test('10 MB of garbage fails fast with a typed error', () => {
  const garbage = Buffer.alloc(10 * 1024 * 1024, 'a<&>"').toString();
  const t0 = process.hrtime.bigint();
  assert.throws(() => parseDomainXml(garbage), VirtError);
  assert.throws(() => parseDomainXml('<' + garbage), VirtError);
  assert.throws(() => parseDomainXml('<a>' + '<b>'.repeat(100000)), VirtError);
  // Not a timing assertion: a guard against accidental quadratic behaviour hanging CI.
  assert.ok(process.hrtime.bigint() - t0 < 30_000_000_000n);
});

test('fuzz: 10,000 generated documents only ever raise typed errors', () => {
  const seed = readFileSync(join(SEED_DIR, 'hvm-bios.xml'), 'utf8');
  const mutated = fc.tuple(fc.nat(seed.length), fc.nat(40), fc.string({ maxLength: 20 }))
    .map(([at, del, ins]) => seed.slice(0, at) + ins + seed.slice(at + del));
  const tags = fc.array(fc.constantFrom('<domain', '>', '</domain>', "type='xen'", '<name>', 'x', '</name>', '<os>', '<type>', 'hvm',
    '</type>', '</os>', '<devices>', '<disk', '/>', '&amp;', '&#65;', '<!--', '-->', '<![CDATA[', ']]>', "'", '"', ' '), { maxLength: 40 })
    .map((p) => p.join(''));
  fc.assert(fc.property(fc.oneof(mutated, tags, fc.string({ maxLength: 200 })), (input) => {
    try {
      const d = parseDomainXml(input);
      // What parses must format and re-parse.
      parseDomainXml(formatDomainXml(d));
    } catch (e) {
      if (!(e instanceof VirtError)) throw e;
    }
  }), { numRuns: 10_000 });
});
