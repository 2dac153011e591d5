import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { ERA_ARTEFACTS, withoutArtefacts } from '../../test/corpus-artefacts.js';
import { VirtError } from '../errors.js';
import { postParse } from '../domain/defaults.js';
import { formatDomainXml } from '../domain/format.js';
import { parseDomainXml } from '../domain/parse.js';
import { emptyDevices, type Domain } from '../domain/types.js';
import { joinBackslashNewlines, parseSexpr } from './sexpr.js';
import { formatSexpr } from './sexpr.js';
import {
  diskToSxpr, domainToSxpr, interfaceToSxpr, parseCharSource, pciHostdevToSxpr, sxprFromNative, sxprToDomain, sxprToNative,
} from './sxpr.js';

// Tests run as dist/src/formats/*.test.js: four levels up is /work, where the shared files sit.
const SHARED = new URL('../../../../shared/', import.meta.url);
const SEXPR_DIR = new URL('conformance/sexpr/from-native/', SHARED);
const SEED_DIR = new URL('seed/', SHARED);

const read = (u: URL) => readFileSync(u, 'utf8');
const cases = () => readdirSync(SEXPR_DIR).filter((f) => f.endsWith('.sexpr')).map((f) => f.slice(0, -6)).sort();

/** The conformance pipeline for xen-sxpr. */
function fromNative(text: string): string {
  const d = sxprToDomain(parseSexpr(joinBackslashNewlines(text), { lenient: true }));
  return formatDomainXml(postParse(d, { capabilities: false }), { secure: true, inactive: true });
}

function sxpr(text: string): Domain {
  return sxprToDomain(parseSexpr(text));
}

function throwsVirt(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof VirtError && re.test(e.message), `expected a VirtError matching ${re}`);
}

test('the corpus has the 52 sexpr cases', () => {
  assert.equal(cases().length, 52);
});

test('from-native: every corpus case, byte for byte (era artefacts aside)', () => {
  const exact: string[] = [];
  for (const name of cases()) {
    const expected = read(new URL(`${name}.xml`, SEXPR_DIR));
    const actual = fromNative(read(new URL(`${name}.sexpr`, SEXPR_DIR)));
    const kinds = ERA_ARTEFACTS[name];
    if (!kinds) {
      assert.equal(actual.trimEnd(), expected.trimEnd(), `sexpr/from-native/${name}`);
      exact.push(name);
    } else {
      assert.notEqual(actual.trimEnd(), expected.trimEnd(), `${name} now matches exactly: drop it from ERA_ARTEFACTS`);
      assert.equal(withoutArtefacts(actual, kinds), withoutArtefacts(expected, kinds), `sexpr/from-native/${name} (artefacts removed)`);
    }
  }
  assert.equal(exact.length, 52 - Object.keys(ERA_ARTEFACTS).length);
});

test('pv and disk-file: identical inputs, so identical results', () => {
  const a = joinBackslashNewlines(read(new URL('pv.sexpr', SEXPR_DIR)));
  const b = joinBackslashNewlines(read(new URL('disk-file.sexpr', SEXPR_DIR)));
  assert.equal(a, b);
});

/** Controller lines in a fixed order: XenD has no controllers, so their order cannot survive. */
function sortControllers(xml: string): string {
  const lines = xml.split('\n');
  const ctrl = lines.filter((l) => l.trim().startsWith('<controller ')).sort();
  let k = 0;
  return lines.map((l) => (l.trim().startsWith('<controller ') ? ctrl[k++]! : l)).join('\n');
}

test('round trip: every sexpr expectation survives XML -> sxpr -> XML', () => {
  for (const name of cases()) {
    const x = read(new URL(`${name}.xml`, SEXPR_DIR));
    const text = sxprToNative(parseDomainXml(x, { capabilities: false }));
    assert.match(text, /^\(vm \(name /);
    const back = formatDomainXml(postParse(sxpr(text), { capabilities: false }), { secure: true, inactive: true });
    const kinds = ERA_ARTEFACTS[name];
    if (!kinds) {
      assert.equal(back, x, `round trip of ${name}`);
    } else {
      // <backingStore/> and the order of implicit controllers are not things XenD describes.
      const norm = (s: string) => sortControllers(withoutArtefacts(s, ['backingStore']));
      assert.equal(norm(back), norm(x), `round trip of ${name} (backingStore and controller order aside)`);
    }
  }
});

// ---- the seed domains -----------------------------------------------------------------------

/**
 * What an XML -> sxpr -> XML trip may change without changing the domain: the live id and
 * console tty (runtime facts XenD reports, not configuration), an explicit driver name where
 * XenD needs one (file: for images, phy: for devices), libvirt's lifecycle defaults written
 * out, and the 'reset' adjustment the XenD parser gives utc/localtime clocks.
 */
function normalizeSeed(d: Domain): Domain {
  const c = structuredClone(d);
  delete c.id;
  for (const con of c.devices.consoles) delete con.source.tty;
  if (c.clock.adjustment === 'reset') delete c.clock.adjustment;
  c.onPoweroff ??= 'destroy';
  c.onReboot ??= 'restart';
  c.onCrash ??= 'destroy';
  if (c.os.type === 'hvm' && c.os.boot.length === 0) c.os.boot = ['hd'];
  for (const disk of c.devices.disks) {
    const natural = disk.type === 'block' ? 'phy' : 'file';
    if (disk.driver?.name === natural) delete disk.driver.name;
  }
  return JSON.parse(JSON.stringify(c)) as Domain;
}

for (const seed of ['pv-bootloader', 'pv-direct-kernel', 'hvm-bios', 'hvm-direct-kernel']) {
  test(`seed ${seed}: XML -> sxpr -> XML keeps the domain`, () => {
    const d = parseDomainXml(read(new URL(`${seed}.xml`, SEED_DIR)));
    const text = sxprToNative(d);
    const back = postParse(sxprToDomain(parseSexpr(text), { secrets: true }));
    assert.deepEqual(normalizeSeed(back), normalizeSeed(d));
  });
}

test('seed hvm-bios: the sxpr XenD gets', () => {
  const d = parseDomainXml(read(new URL('hvm-bios.xml', SEED_DIR)));
  assert.equal(sxprToNative(d),
    "(vm (name fv0)(memory 512)(maxmem 512)(vcpus 1)(uuid 4dea22b3-1d52-d8f3-2516-782e98ab3fa0)" +
    '(on_poweroff destroy)(on_reboot restart)(on_crash restart)' +
    '(image (hvm (kernel /usr/lib/xen/boot/hvmloader)(vcpus 1)(boot c)(acpi 1)(apic 1)(pae 1)(parallel none)(serial none)' +
    '(device_model /usr/lib/xen/bin/qemu-dm)(vnc 1)(vncunused 0)(vncdisplay 4)(fda /root/fd.img)(localtime 1)))(localtime 1)' +
    '(device (vbd (dev hda:disk)(uname file:/var/lib/xen/images/fv0)(mode w)))' +
    '(device (vbd (dev hdc:cdrom)(uname file:/var/lib/xen/images/fc5-x86_64-boot.iso)(mode r)))' +
    '(device (vif (mac 00:16:3e:5d:c7:9e)(bridge xenbr0)(script vif-bridge))))');
});

test('seed pv-bootloader: the sxpr XenD gets', () => {
  const d = parseDomainXml(read(new URL('pv-bootloader.xml', SEED_DIR)));
  const text = sxprToNative(d);
  assert.match(text, /^\(vm \(name fc8\)\(memory 128\)\(maxmem 128\)\(vcpus 1\)\(uuid [0-9a-f-]{36}\)\(bootloader \/usr\/bin\/pygrub\)/);
  assert.match(text, /\(image \(linux \(localtime 0\)\)\)\(localtime 0\)\(device \(vbd \(dev sda1\)\(uname file:\/var\/lib\/xen\/images\/fc4.img\)\(mode w\)\)\)/);
  assert.match(text, /\(device \(vif \(mac aa:00:00:00:00:11\)\(bridge xenbr0\)\(script \/etc\/xen\/scripts\/vif-bridge\)\)\)\)$/);
});

// ---- reading details ----------------------------------------------------------------------

const PV = "(domain (domid 6)(name 'pvtest')(memory 420)(maxmem 512)(vcpus 2)(uuid '596a5d2171f48fb2e068e2386a5c413e')" +
  "(image (linux (kernel '/boot/vmlinuz')))";
const HVM = "(domain (domid 3)(name 'fvtest')(memory 400)(maxmem 400)(vcpus 1)(uuid 'b5d70dd275cdaca517769660b059d8bc')" +
  "(image (hvm (kernel '/usr/lib/xen/boot/hvmloader')(boot c)IMG))";
const pv = (extra = '') => sxpr(`${PV}${extra})`);
const hvm = (img = '', extra = '') => sxpr(`${HVM.replace('IMG', img)}${extra})`);

test('reads the basics of a PV domain without adding libvirt defaults', () => {
  const d = pv();
  assert.equal(d.id, 6);
  assert.equal(d.name, 'pvtest');
  assert.equal(d.uuid, '596a5d21-71f4-8fb2-e068-e2386a5c413e');
  assert.equal(d.memory, 512 * 1024);
  assert.equal(d.currentMemory, 420 * 1024);
  assert.deepEqual(d.vcpu, { count: 2 });
  assert.deepEqual(d.os, { type: 'xen', boot: [], kernel: '/boot/vmlinuz' });
  assert.deepEqual(d.clock, { offset: 'utc', adjustment: 'reset', timers: [] });
  assert.equal(d.onPoweroff, 'destroy');
  assert.equal(d.onReboot, 'restart');
  assert.equal(d.onCrash, 'destroy');
  assert.deepEqual(d.devices.consoles, [{ source: { type: 'pty' }, target: { type: 'xen', port: 0 } }]);
  assert.equal(d.os.arch, undefined);
  assert.equal(d.devices.controllers.length, 0);
});

test('a (vm ...) config reads like a (domain ...) description', () => {
  const d = sxpr("(vm (name x)(memory 64)(vcpus 1)(bootloader /usr/bin/pygrub))");
  assert.equal(d.id, undefined);
  assert.equal(d.memory, 64 * 1024);
  assert.equal(d.currentMemory, 64 * 1024);
  assert.equal(d.bootloader, '/usr/bin/pygrub');
  assert.match(d.uuid!, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
});

test('console tty and VNC port from XenStore, and VNC passwords only on request', () => {
  const text = `${PV}(device (vfb (type vnc)(vncunused 1)(vncpasswd secret)(keymap de))))`;
  const d = sxprToDomain(parseSexpr(text), { tty: '/dev/pts/4', vncPort: 5912, secrets: true });
  assert.equal(d.devices.consoles[0]!.source.path, '/dev/pts/4');
  assert.deepEqual(d.devices.graphics[0], {
    type: 'vnc', port: 5912, autoport: 'yes', listens: [{ type: 'address' }], passwd: 'secret', keymap: 'de',
  });
  assert.equal(sxpr(text).devices.graphics[0]!.passwd, undefined);
});

test('vcpu_avail gives the online vcpus; cpus pins them', () => {
  assert.deepEqual(pv('(vcpu_avail 3)').vcpu, { count: 2 });
  assert.deepEqual(sxpr(`${PV.replace('(vcpus 2)', '(vcpus 4)')}(vcpu_avail 5))`).vcpu, { count: 4, current: 2 });
  assert.equal(pv("(cpus '0-3,^2')").vcpu.cpuset, '0-3,^2');
  assert.equal(pv('(cpus ((1 2 3 5) (5 3 2 1)))').vcpu.cpuset, '1-3,5');
  assert.deepEqual(pv('(cpus ((0) ()))').cputune, { vcpupins: [{ vcpu: 0, cpuset: '0' }] });
  assert.equal(pv('(cpus (()))').vcpu.cpuset, undefined);
});

test('HVM: loader, direct kernel, boot order, features', () => {
  const d = hvm('(acpi 1)(apic 0)(pae 1)(hap 0)(viridian 1)');
  assert.deepEqual(d.os, { type: 'hvm', boot: ['hd'], loader: { path: '/usr/lib/xen/boot/hvmloader' } });
  // A direct kernel boot reads no boot order; libvirt's post-parse gives HVM guests 'hd'.
  assert.deepEqual(d.features, { acpi: true, pae: true, hap: 'off', viridian: true });
  assert.deepEqual(sxpr(HVM.replace('(boot c)IMG', '(boot dnxa)') + ')').os.boot, ['cdrom', 'network', 'fd']);
  const k = sxpr(HVM.replace("(kernel '/usr/lib/xen/boot/hvmloader')", "(kernel /vmlinuz)(loader /hvmloader)(args 'a b')").replace('IMG', '') + ')');
  assert.deepEqual(k.os, { type: 'hvm', boot: [], loader: { path: '/hvmloader' }, kernel: '/vmlinuz', cmdline: 'a b' });
});

test('HVM clocks: reset unless XenD recorded an RTC offset; hpet', () => {
  assert.deepEqual(hvm('(localtime 1)(hpet 0)').clock, {
    offset: 'localtime', adjustment: 'reset', timers: [{ name: 'hpet', present: 'no' }],
  });
  assert.deepEqual(hvm('(rtc_timeoffset -3600)(localtime 1)').clock, { offset: 'variable', adjustment: -3600, basis: 'localtime', timers: [] });
  assert.equal(hvm('', '(localtime 1)').clock.offset, 'localtime');
  assert.equal(hvm('(localtime 0)', '(localtime 1)').clock.offset, 'utc');
});

test('disks: drivers, formats, devices, modes, bootable order', () => {
  const d = hvm('(cdrom /iso/a.iso)(fda /fd.img)',
    "(device (vbd (dev 'ioemu:hda')(uname 'phy:/dev/sda')(mode 'w!')))" +
    "(device (tap (dev 'hdb:disk')(uname 'tap:qcow2:/img/b')(mode w)(bootable 1)))" +
    "(device (tap2 (dev 'xvdc')(uname 'tap:aio:/img/c')(mode r)))");
  assert.deepEqual(d.devices.disks.map((x) => [x.type, x.device, x.driver, x.source?.path, x.target, x.readonly, x.shareable]), [
    // The bootable disk swaps places with the first one.
    ['file', 'disk', { name: 'tap', type: 'qcow2' }, '/img/b', { dev: 'hdb', bus: 'ide' }, undefined, undefined],
    ['block', 'disk', { name: 'phy' }, '/dev/sda', { dev: 'hda', bus: 'ide' }, undefined, true],
    ['file', 'disk', { name: 'tap2', type: 'raw' }, '/img/c', { dev: 'xvdc', bus: 'xen' }, true, undefined],
    ['file', 'cdrom', { name: 'file' }, '/iso/a.iso', { dev: 'hdc', bus: 'ide' }, true, undefined],
    ['file', 'floppy', { name: 'file' }, '/fd.img', { dev: 'fda', bus: 'fdc' }, undefined, undefined],
  ]);
  assert.deepEqual(pv('(device (tap2 (dev xvda)(uname tap2:tapdisk:vhd:/img/d)(mode w)))').devices.disks[0]!.driver, { name: 'tap2', type: 'vhd' });
  // XenD 3.0.2's image cdrom does not duplicate a device on hdc.
  const e = hvm('(cdrom /iso/a.iso)', "(device (vbd (dev hdc:cdrom)(uname file:/iso/b.iso)(mode r)))");
  assert.deepEqual(e.devices.disks.map((x) => x.source?.path), ['/iso/b.iso']);
  // An empty CD-ROM drive.
  const f = hvm('', '(device (vbd (dev hdc:cdrom)(mode r)))');
  assert.deepEqual(f.devices.disks, [{ type: 'file', device: 'cdrom', target: { dev: 'hdc', bus: 'ide' }, readonly: true }]);
});

test('interfaces: bridge, ethernet, names, models, rate', () => {
  const d = pv("(device (vif (mac 'AA:0:86:e2:35:72')(script vif-bridge)(vifname vif6.0)))" +
    "(device (vif (mac 00:16:3e:00:00:01)(bridge br0)(ip 10.0.0.2)(vifname guest0)(model e1000)(rate 8Mb/s@20ms)))" +
    "(device (vif (script vif-routed)(ip 'fe80::1')(type netfront)))");
  assert.deepEqual(d.devices.interfaces, [
    { type: 'bridge', ips: [], script: 'vif-bridge', mac: 'aa:00:86:e2:35:72' },
    { type: 'bridge', ips: [{ address: '10.0.0.2', family: 'ipv4' }], source: { bridge: 'br0' }, target: 'guest0', mac: '00:16:3e:00:00:01', model: 'e1000', bandwidth: { outbound: { average: 1024 } } },
    { type: 'ethernet', ips: [{ address: 'fe80::1', family: 'ipv6' }], script: 'vif-routed', model: 'netfront' },
  ]);
});

test('live descriptions keep and generate XenD interface names', () => {
  const text = `${PV}(device (vif (mac 00:16:3e:00:00:01)))(device (vif (vifname vif6.7)))(device (vif (vifname guest))))`;
  assert.deepEqual(sxpr(text).devices.interfaces.map((n) => n.target), [undefined, undefined, 'guest']);
  assert.deepEqual(sxprToDomain(parseSexpr(text), { live: true }).devices.interfaces.map((n) => n.target), ['vif6.0', 'vif6.7', 'guest']);
});

test('HVM serial, parallel and sound devices', () => {
  const d = hvm("(serial (pty none 'tcp:host:99,server,nowait' telnet::23 'udp:a:1@:2' unix:/s))(parallel file:/tmp/p)(soundhw 'all')");
  assert.deepEqual(d.devices.serials.map((s) => [s.target.port, s.source]), [
    [0, { type: 'pty' }],
    [2, { type: 'tcp', host: 'host', service: '99', mode: 'bind', protocol: 'raw' }],
    [3, { type: 'tcp', protocol: 'telnet', service: '23', mode: 'connect' }],
    [4, { type: 'udp', host: 'a', service: '1', bindService: '2' }],
    [5, { type: 'unix', path: '/s', mode: 'connect' }],
  ]);
  assert.deepEqual(d.devices.parallels, [{ source: { type: 'file', path: '/tmp/p' }, target: { port: 0 } }]);
  assert.deepEqual(d.devices.sounds, [{ model: 'sb16' }, { model: 'es1370' }]);
  assert.deepEqual(parseCharSource('/dev/ttyS1', undefined, 'x'), { type: 'dev', path: '/dev/ttyS1' });
});

test('HVM VNC ports: XenStore, vncdisplay, XenD 3.0.2 fixed port, else unknown', () => {
  const legacy = "(device (vbd (dev ioemu:hda)(uname file:/a)(mode w)))";
  assert.equal(hvm('(vnc 1)', legacy).devices.graphics[0]!.port, 5903);
  assert.equal(hvm('(vnc 1)(vncdisplay 7)', legacy).devices.graphics[0]!.port, 5907);
  assert.deepEqual(hvm('(vnc 1)', "(device (vbd (dev hda:disk)(uname file:/a)(mode w)))").devices.graphics[0],
    { type: 'vnc', port: -1, autoport: 'yes', listens: [{ type: 'address' }] });
  assert.equal(sxprToDomain(parseSexpr(`${HVM.replace('IMG', '(vnc 1)')})`), { vncPort: 5999 }).devices.graphics[0]!.port, 5999);
  assert.deepEqual(hvm('(sdl 1)(display :0)(xauthority /root/.Xauthority)').devices.graphics[0],
    { type: 'sdl', listens: [], display: ':0', xauth: '/root/.Xauthority' });
  // A vfb naming no display type leaves the image settings in charge.
  assert.equal(hvm('(vnc 1)(vncunused 1)(keymap fr)', '(device (vfb (location localhost:5900)))').devices.graphics[0]!.keymap, 'fr');
});

test('PCI passthrough, several devices in one block', () => {
  const d = pv('(device (pci (dev (domain 0x0001)(bus 0x0c)(slot 0x1b)(func 0x2))(dev (domain 0)(bus 1)(slot 0x13)(func 0))))');
  assert.deepEqual(d.devices.hostdevs.map((h) => h.pci), [
    { domain: 1, bus: 12, slot: 27, function: 2 }, { domain: 0, bus: 1, slot: 19, function: 0 },
  ]);
  assert.ok(d.devices.hostdevs.every((h) => h.managed === 'no' && h.mode === 'subsystem' && h.type === 'pci'));
});

test('Domain-0: no image, no console', () => {
  const d = sxpr("(domain (domid 0)(name Domain-0)(memory 1024)(maxmem 2048)(vcpus 2)(uuid 00000000-0000-0000-0000-000000000000))");
  assert.equal(d.id, 0);
  assert.equal(d.devices.consoles.length, 0);
  assert.equal(d.os.kernel, undefined);
});

test('sxprFromNative joins libvirt test-file continuations and closes open lists', () => {
  const d = sxprFromNative("(domain (name 'a')(memory 6\\\n4)(image (linux (kernel /k)))");
  assert.equal(d.memory, 64 * 1024);
});

// ---- bad input -------------------------------------------------------------------------------

test('bad descriptions are VirtErrors naming the node', () => {
  throwsVirt(() => sxpr('(vm-config (name x))'), /expected a \(domain \.\.\.\) description, found \(vm-config \.\.\.\)/);
  throwsVirt(() => sxpr('domain'), /found the atom 'domain'/);
  throwsVirt(() => sxpr('(domain (memory 1))'), /missing name \(domain\/name\)/);
  throwsVirt(() => sxpr('(domain (name x)(memory lots)(image (linux (kernel k))))'), /domain\/memory: 'lots' is not a whole number/);
  throwsVirt(() => sxpr('(domain (name x)(image (linux (kernel k))))'), /missing memory/);
  throwsVirt(() => sxpr('(domain (name x)(memory (1))(image (linux (kernel k))))'), /domain\/memory: expected a single value/);
  throwsVirt(() => sxpr('(domain (name x)(uuid nope)(memory 1))'), /domain\/uuid: 'nope' is not a valid UUID/);
  throwsVirt(() => sxpr('(domain (name x)(memory 1)(vcpus 0))'), /domain\/vcpus: '0' is not a whole number between 1/);
  throwsVirt(() => pv('(on_crash explode)'), /unknown lifecycle type explode \(domain\/on_crash\)/);
  throwsVirt(() => sxpr('(domain (name x)(memory 1)(image (linux (args a))))'), /missing kernel & bootloader/);
  throwsVirt(() => sxpr('(domain (name x)(memory 1)(image (hvm (boot c))))'), /missing HVM loader/);
  throwsVirt(() => pv('(device (vbd (uname file:/a)))'), /vbd has no dev \(domain\/device\[0\]\/vbd\/dev\)/);
  throwsVirt(() => pv('(device (vbd (dev xvda)))'), /vbd has no src/);
  throwsVirt(() => pv('(device (vbd (dev xvda)(uname /a)))'), /cannot parse vbd filename '\/a', missing driver name/);
  throwsVirt(() => pv('(device (tap (dev xvda)(uname tap:frob:/a)))'), /Unknown driver type frob:\/a/);
  throwsVirt(() => pv('(device (vif (mac 00:11)))'), /malformed mac address '00:11' \(domain\/device\[0\]\/vif\/mac\)/);
  throwsVirt(() => pv('(device (vif (rate fast)))'), /Invalid rate 'fast'/);
  throwsVirt(() => pv('(device (vif (ip 300.1.1.1)))'), /invalid IP address '300.1.1.1'/);
  throwsVirt(() => pv('(device (vfb (type spice)))'), /unknown graphics type 'spice'/);
  throwsVirt(() => pv('(device (pci (dev (domain 0)(bus 0)(slot 1))))'), /missing PCI func/);
  throwsVirt(() => pv('(device (pci (dev (domain 0)(bus 0)(slot zz)(func 0))))'), /cannot parse PCI slot 'zz'/);
  throwsVirt(() => hvm('(serial bogus:x)'), /unknown chr device type 'bogus'/);
  throwsVirt(() => hvm('(serial tcp:nohostport)'), /malformed char device string/);
  throwsVirt(() => hvm('(soundhw foo)'), /unknown sound model 'foo'/);
  throwsVirt(() => hvm('(localtime maybe)'), /unknown localtime offset maybe/);
  throwsVirt(() => pv('(device (vbd (dev xvda)(uname file:/a)))(device (frob (x 1)))'), /unknown device kind 'frob' \(domain\/device\[1\]\)/);
  throwsVirt(() => pv('(device)'), /domain\/device\[0\]: expected one \(KIND \.\.\.\) list/);
  throwsVirt(() => pv('(device (vbd (dev xvda)(uname file:/a)) (vif))'), /expected one \(KIND \.\.\.\) list/);
  throwsVirt(() => sxpr('(domain (name x)(memory 1)(bootloader /b)(image (solaris (kernel k))))'), /unknown image kind 'solaris' \(domain\/image\)/);
  // Device classes XenD has but the domain XML does not are read past.
  assert.equal(pv('(device (vtpm (instance 1)))(device (console (location 2)))(device (vkbd))').devices.disks.length, 0);
});

// ---- writing ---------------------------------------------------------------------------------

function baseDomain(hvmGuest: boolean): Domain {
  return {
    type: 'xen', name: 'g', uuid: '596a5d21-71f4-8fb2-e068-e2386a5c413e', memory: 524288, currentMemory: 262144,
    vcpu: { count: 2 }, os: hvmGuest ? { type: 'hvm', boot: ['cdrom', 'hd'], loader: { path: '/usr/lib/xen/boot/hvmloader', type: 'rom' } } : { type: 'xen', boot: [], kernel: '/k' },
    clock: { offset: 'utc', timers: [] }, devices: emptyDevices(),
  };
}

test('to-native: the (vm ...) shape of a PV domain', () => {
  const d = baseDomain(false);
  d.os.cmdline = "root=/dev/xvda1 'quoted'";
  d.vcpu.current = 1;
  d.devices.disks.push({ type: 'block', device: 'disk', driver: { name: 'phy', type: 'raw' }, source: { path: '/dev/vg/g' }, target: { dev: 'xvda', bus: 'xen' } });
  d.devices.interfaces.push({ type: 'bridge', ips: [], mac: '00:16:3e:00:00:01', source: { bridge: 'xenbr0' }, bandwidth: { outbound: { average: 100 } } });
  d.devices.graphics.push({ type: 'vnc', port: 5901, autoport: 'no', listens: [{ type: 'address', address: '0.0.0.0' }], passwd: 'pw' });
  assert.equal(sxprToNative(d),
    "(vm (name g)(memory 256)(maxmem 512)(vcpus 2)(vcpu_avail 1)(uuid 596a5d21-71f4-8fb2-e068-e2386a5c413e)" +
    "(on_poweroff destroy)(on_reboot restart)(on_crash destroy)" +
    "(image (linux (kernel /k)(args 'root=/dev/xvda1 \\'quoted\\'')(localtime 0)))(localtime 0)" +
    "(device (vbd (dev xvda)(uname phy:/dev/vg/g)(mode w)))" +
    "(device (vif (mac 00:16:3e:00:00:01)(rate 100KB/s)(bridge xenbr0)))" +
    "(device (vkbd))(device (vfb (type vnc)(vncunused 0)(vncdisplay 1)(vnclisten 0.0.0.0)(vncpasswd pw))))");
});

test('to-native: HVM image, char devices, usb, sound, clock', () => {
  const d = baseDomain(true);
  d.features = { acpi: true, pae: true, hap: 'off' };
  d.clock = { offset: 'variable', adjustment: 3600, basis: 'localtime', timers: [{ name: 'hpet', present: 'yes' }] };
  d.devices.emulator = '/usr/lib/xen/bin/qemu-dm';
  d.devices.serials.push({ source: { type: 'udp', host: 'h', service: '1' }, target: { port: 1 } });
  d.devices.parallels.push({ source: { type: 'unix', path: '/p', mode: 'bind' }, target: { port: 0 } });
  d.devices.inputs.push({ type: 'tablet', bus: 'usb' }, { type: 'mouse', bus: 'ps2' });
  d.devices.sounds.push({ model: 'es1370' });
  d.devices.disks.push({ type: 'file', device: 'cdrom', target: { dev: 'hdc', bus: 'ide' }, readonly: true });
  d.devices.disks.push({ type: 'file', device: 'disk', driver: { name: 'qemu', type: 'qcow2' }, source: { path: '/i.qcow2' }, target: { dev: 'hda' } });
  d.devices.interfaces.push({ type: 'ethernet', ips: [{ address: '10.0.0.1' }], script: 'vif-route', model: 'netfront', target: 'vm0' });
  d.devices.hostdevs.push({ mode: 'subsystem', type: 'pci', managed: 'no', pci: { domain: 0, bus: 1, slot: 2, function: 3 } });
  assert.equal(sxprToNative(d),
    "(vm (name g)(memory 256)(maxmem 512)(vcpus 2)(uuid 596a5d21-71f4-8fb2-e068-e2386a5c413e)" +
    "(on_poweroff destroy)(on_reboot restart)(on_crash destroy)" +
    "(image (hvm (kernel /usr/lib/xen/boot/hvmloader)(vcpus 2)(boot dc)(acpi 1)(pae 1)(hap 0)(usb 1)(usbdevice tablet)" +
    "(parallel unix:/p,server,nowait)(serial (none udp:h:1))(soundhw es1370)(device_model /usr/lib/xen/bin/qemu-dm)(hpet 1)" +
    "(rtc_timeoffset 3600)(localtime 1)))(localtime 1)" +
    "(device (vbd (dev hdc:cdrom)(mode r)))(device (tap (dev hda:disk)(uname tap:qcow2:/i.qcow2)(mode w)))" +
    "(device (vif (script vif-route)(ip 10.0.0.1)(vifname vm0)(type netfront)))" +
    "(device (pci (dev (domain 0x0000)(bus 0x01)(slot 0x02)(func 0x3)))))");
  const back = postParse(sxpr(sxprToNative(d)), { capabilities: false });
  assert.deepEqual(back.clock, d.clock);
  assert.deepEqual(back.devices.serials.map((s) => [s.target.port, s.source]), [[1, { type: 'udp', host: 'h', service: '1' }]]);
});

test('to-native: what XenD cannot express is refused', () => {
  const pvd = () => baseDomain(false);
  const hvmd = () => baseDomain(true);
  const refuse = (d: Domain, re: RegExp) => assert.throws(() => domainToSxpr(d), (e: unknown) => e instanceof VirtError && e.codeName === 'CONFIG_UNSUPPORTED' && re.test(e.message));
  let d = pvd(); d.type = 'kvm'; refuse(d, /only domains of type 'xen'/);
  d = pvd(); d.os.type = 'xenpvh'; refuse(d, /os type 'xenpvh'/);
  d = pvd(); delete d.os.kernel; refuse(d, /needs a kernel or a bootloader/);
  d = hvmd(); d.os.loader = { type: 'pflash', path: '/ovmf' }; refuse(d, /pflash/);
  d = hvmd(); d.clock = { offset: 'timezone', timezone: 'Europe/Paris', timers: [] }; refuse(d, /clock offset='timezone'/);
  d = pvd(); d.devices.interfaces.push({ type: 'network', ips: [], source: { network: 'default' } }); refuse(d, /network 'default' has no known bridge/);
  d = pvd(); d.devices.interfaces.push({ type: 'user', ips: [] }); refuse(d, /unsupported network type user/);
  d = pvd(); d.devices.disks.push({ type: 'network', device: 'disk', target: { dev: 'xvda' } }); refuse(d, /unsupported disk type network/);
  d = pvd(); d.devices.disks.push({ type: 'file', device: 'disk', source: { path: '/a' }, target: { dev: 'xvda' }, transient: true }); refuse(d, /transient/);
  d = pvd(); d.devices.hostdevs.push({ mode: 'subsystem', type: 'pci', managed: 'yes', pci: { domain: 0, bus: 0, slot: 0, function: 0 } }); refuse(d, /managed PCI devices/);
  d = pvd(); d.devices.graphics.push({ type: 'vnc', listens: [] }, { type: 'sdl', listens: [] }); refuse(d, /one graphics device/);
  d = pvd(); d.devices.serials.push({ source: { type: 'file', path: '/s' }, target: { port: 0 } }); refuse(d, /serial devices need an HVM guest/);
  d = hvmd(); d.devices.serials.push({ source: { type: 'spicevmc' }, target: { port: 0 } }); refuse(d, /unsupported serial device type 'spicevmc'/);
  d = hvmd(); d.devices.channels.push({ source: { type: 'pty' }, target: { type: 'xen', name: 'c' } }); refuse(d, /channel/);
  d = pvd(); d.onCrash = 'coredump-restart'; d.onReboot = 'coredump-restart'; refuse(d, /on_reboot action 'coredump-restart'/);
  // A network resolves when the caller knows its bridge.
  d = pvd(); d.devices.interfaces.push({ type: 'network', ips: [], source: { network: 'default' } });
  assert.match(formatOut(d, (n) => (n === 'default' ? 'virbr0' : undefined)), /\(bridge virbr0\)\(script vif-bridge\)/);
});

function formatOut(d: Domain, networkBridge: (n: string) => string | undefined): string {
  return sxprToNative(d, { networkBridge });
}

// ---- property: random domains survive the trip ----------------------------------------------

const pathArb = fc.stringMatching(/^\/[a-zA-Z0-9 ._'"()\\-]{1,20}$/);
const hostArb = fc.stringMatching(/^[a-z][a-z0-9.]{0,10}$/);
const portArb = fc.integer({ min: 1, max: 65535 }).map(String);

const charArb = fc.oneof(
  fc.constant({ type: 'pty' as const }),
  fc.constant({ type: 'null' as const }),
  fc.constant({ type: 'stdio' as const }),
  pathArb.map((p) => ({ type: 'file' as const, path: p.replace(/[,]/g, '') })),
  pathArb.map((p) => ({ type: 'dev' as const, path: p })),
  fc.record({ host: hostArb, service: portArb, mode: fc.constantFrom('bind' as const, 'connect' as const), protocol: fc.constantFrom('raw' as const, 'telnet' as const) })
    .map((r) => ({ type: 'tcp' as const, ...r })),
  fc.record({ host: hostArb, service: portArb, bindHost: hostArb, bindService: portArb }).map((r) => ({ type: 'udp' as const, ...r })),
  fc.record({ path: pathArb.map((p) => p.replace(/,/g, '')), mode: fc.constantFrom('bind' as const, 'connect' as const) }).map((r) => ({ type: 'unix' as const, ...r })),
);

const domainArb = fc.record({
  hvm: fc.boolean(),
  name: fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_ '()-]{0,15}$/),
  maxMiB: fc.integer({ min: 32, max: 1 << 20 }),
  curFrac: fc.double({ min: 0.1, max: 1, noNaN: true }),
  vcpus: fc.integer({ min: 1, max: 64 }),
  online: fc.integer({ min: 1, max: 64 }),
  kernel: pathArb,
  cmdline: fc.option(fc.string({ maxLength: 30 }), { nil: undefined }),
  localtime: fc.boolean(),
  disks: fc.array(fc.record({ block: fc.boolean(), path: pathArb, ro: fc.boolean(), shared: fc.boolean(), tap: fc.constantFrom(undefined, 'raw', 'qcow2') }), { maxLength: 4 }),
  nics: fc.array(fc.record({ mac: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 }), bridge: fc.option(hostArb, { nil: undefined }), script: fc.option(pathArb, { nil: undefined }), rate: fc.option(fc.integer({ min: 1, max: 1e6 }), { nil: undefined }) }), { maxLength: 3 }),
  serial: fc.option(charArb, { nil: undefined }),
  vnc: fc.option(fc.record({ port: fc.option(fc.integer({ min: 5900, max: 6900 }), { nil: undefined }), keymap: fc.option(fc.constantFrom('en-us', 'de', 'ja'), { nil: undefined }) }), { nil: undefined }),
});

test('property: random domains survive XML model -> sxpr -> model', () => {
  fc.assert(fc.property(domainArb, (r) => {
    const d: Domain = {
      type: 'xen', name: r.name, uuid: '596a5d21-71f4-8fb2-e068-e2386a5c413e',
      memory: r.maxMiB * 1024, currentMemory: Math.max(1, Math.floor(r.maxMiB * r.curFrac)) * 1024,
      vcpu: r.online < r.vcpus ? { count: r.vcpus, current: r.online } : { count: r.vcpus },
      os: r.hvm ? { type: 'hvm', boot: ['hd'], loader: { path: '/usr/lib/xen/boot/hvmloader' } } : { type: 'xen', boot: [], kernel: r.kernel },
      clock: { offset: r.localtime ? 'localtime' : 'utc', adjustment: 'reset', timers: [] },
      onPoweroff: 'destroy', onReboot: 'restart', onCrash: 'destroy',
      devices: emptyDevices(),
    };
    if (!r.hvm && r.cmdline !== undefined) d.os.cmdline = r.cmdline;
    const letters = 'abcdefgh';
    r.disks.forEach((k, i) => {
      const dev = `${r.hvm ? 'hd' : 'xvd'}${letters[i]}`;
      const disk: Domain['devices']['disks'][number] = {
        type: k.block && !k.tap ? 'block' : 'file', device: 'disk', source: { path: k.path },
        driver: k.tap ? { name: 'tap', type: k.tap } : { name: k.block ? 'phy' : 'file' },
        target: { dev, bus: r.hvm ? 'ide' : 'xen' },
      };
      if (k.ro) disk.readonly = true;
      else if (k.shared) disk.shareable = true;
      d.devices.disks.push(disk);
    });
    for (const n of r.nics) {
      const nic: Domain['devices']['interfaces'][number] = {
        type: n.bridge !== undefined ? 'bridge' : 'ethernet', ips: [],
        mac: n.mac.map((b) => b.toString(16).padStart(2, '0')).join(':'),
      };
      if (n.bridge !== undefined) nic.source = { bridge: n.bridge };
      if (n.script !== undefined && n.script !== 'vif-bridge') nic.script = n.script;
      if (n.rate !== undefined) nic.bandwidth = { outbound: { average: n.rate } };
      d.devices.interfaces.push(nic);
    }
    if (r.hvm && r.serial) d.devices.serials.push({ source: r.serial, target: { port: 0 } });
    if (r.vnc) {
      const g: Domain['devices']['graphics'][number] = { type: 'vnc', listens: [{ type: 'address' }] };
      if (r.vnc.port !== undefined) { g.port = r.vnc.port; g.autoport = 'no'; } else { g.port = -1; g.autoport = 'yes'; }
      if (r.vnc.keymap) g.keymap = r.vnc.keymap;
      d.devices.graphics.push(g);
    }
    const before = postParse(structuredClone(d), { capabilities: false });
    const after = postParse(sxpr(sxprToNative(before)), { capabilities: false });
    assert.equal(formatDomainXml(after, { secure: true }), formatDomainXml(before, { secure: true }));
  }), { numRuns: 300 });
});

test('property: any S-expression either converts or fails with a VirtError', () => {
  const atoms = fc.constantFrom(
    'domain', 'vm', 'name', 'memory', 'maxmem', 'vcpus', 'vcpu_avail', 'uuid', 'image', 'linux', 'hvm', 'kernel', 'loader',
    'device', 'vbd', 'tap', 'tap2', 'vif', 'pci', 'vfb', 'dev', 'uname', 'mode', 'mac', 'bridge', 'script', 'rate', 'serial',
    'parallel', 'soundhw', 'boot', 'localtime', 'cpus', 'type', 'vnc', 'vncunused', 'vncdisplay', 'domid', 'usbdevice',
    'x', '0', '1', '-1', '420', '0x1f', 'file:/a', 'tap:aio:/b', 'tap:', 'phy:', 'hda:cdrom', 'ioemu:hda', 'tcp:h:1,server',
    'udp:a:1@b:2', 'unix:/s', 'pty', 'none', 'all', 'sb16', '00:16:3e:00:00:01', '10KB/s', '', 'b5d70dd275cdaca517769660b059d8bc',
  );
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, atoms, fc.array(tie('tree'), { maxLength: 6 })),
  }));
  const domainArbitrary = fc.tuple(fc.constantFrom('domain', 'vm'), fc.array(tree, { maxLength: 12 })).map(([h, rest]) => [h, ...rest]);
  fc.assert(fc.property(domainArbitrary, (e) => {
    try {
      const d = sxprToDomain(e as never);
      // Whatever was read can be written back or is refused cleanly.
      try { sxprToNative(postParse(d, { capabilities: false })); } catch (err) { if (!(err instanceof VirtError)) throw err; }
    } catch (err) {
      if (!(err instanceof VirtError)) throw err;
    }
  }), { numRuns: 2000 });
});

test('single devices for hot-plug', () => {
  assert.equal(formatSexpr(diskToSxpr({ type: 'file', device: 'cdrom', driver: { name: 'file' }, source: { path: '/a b.iso' }, target: { dev: 'hdc' }, readonly: true }, true)),
    "(vbd (dev hdc:cdrom)(uname 'file:/a b.iso')(mode r))");
  assert.throws(() => diskToSxpr({ type: 'file', device: 'floppy', source: { path: '/f' }, target: { dev: 'fda' } }, true),
    (e: unknown) => e instanceof VirtError && e.codeName === 'INVALID_ARG' && /Cannot directly attach floppy \/f/.test(e.message));
  assert.equal(formatSexpr(interfaceToSxpr({ type: 'bridge', ips: [], mac: '00:16:3e:00:00:02', source: { bridge: 'br1' }, model: 'e1000' }, true)),
    '(vif (mac 00:16:3e:00:00:02)(bridge br1)(model e1000))');
  const h = { mode: 'subsystem' as const, type: 'pci' as const, managed: 'no' as const, pci: { domain: 0, bus: 0, slot: 0x1b, function: 0 } };
  assert.equal(formatSexpr(pciHostdevToSxpr(h, false)), '(pci (dev (domain 0x0000)(bus 0x00)(slot 0x1b)(func 0x0))(state Initialising))');
  assert.equal(formatSexpr(pciHostdevToSxpr(h, true)), '(pci (dev (domain 0x0000)(bus 0x00)(slot 0x1b)(func 0x0))(state Closing))');
});
