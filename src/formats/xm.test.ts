import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { VirtError } from '../errors.js';
import { emptyDevices, type Domain } from '../domain/types.js';
import { postParse } from '../domain/defaults.js';
import { parseDomainXml } from '../domain/parse.js';
import { parseConf } from './conf.js';
import { domainToXm, parseXmDisk, formatXmDisk, xmFromNative, xmToNative } from './xm.js';
import {
  formatCharSource,
  formatConfigCommon,
  formatCpuset,
  parseCharSource,
  parseCpuset,
  parsePciEntry,
  parseVfbEntry,
} from './xen-common.js';

// Tests run as dist/src/formats/xm.test.js; the shared corpus sits next to the repository.
const CORPUS = new URL('../../../../shared/conformance/xm/', import.meta.url);
const corpus = (dir: string, file: string) => readFileSync(new URL(`${dir}/${file}`, CORPUS), 'utf8');
const corpusNames = (dir: string, ext: string) =>
  readdirSync(new URL(`${dir}/`, CORPUS)).filter((n) => n.endsWith(ext)).map((n) => n.slice(0, -ext.length)).sort();

/** Asserts fn throws a VirtError whose message contains `message`. */
function throwsVirt(fn: () => unknown, message: string | RegExp, codeName?: VirtError['codeName']): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof VirtError, `expected a VirtError, got ${String(e)}`);
    if (typeof message === 'string') assert.ok(e.message.includes(message), `message '${e.message}' lacks '${message}'`);
    else assert.match(e.message, message);
    if (codeName) assert.equal(e.codeName, codeName);
    return true;
  });
}

const PV_BASE = `name = "pv"\nuuid = "c7a5fdb0-cdaf-9455-926a-d65c16db1809"\nmemory = 512\n`;
const HVM_BASE = `${PV_BASE}builder = "hvm"\nkernel = "/usr/lib/xen/boot/hvmloader"\n`;

// ---- xm -> Domain, at the model level ----------------------------------------------------

test('paravirt-vcpu: what libvirt\'s xm parser builds for a PV guest', () => {
  const d = xmFromNative(corpus('from-native', 'paravirt-vcpu.cfg'));
  assert.equal(d.type, 'xen');
  assert.equal(d.name, 'XenGuest1');
  assert.equal(d.uuid, 'c7a5fdb0-cdaf-9455-926a-d65c16db1809');
  assert.equal(d.os.type, 'xen');
  assert.equal(d.memory, 579 * 1024);
  assert.equal(d.currentMemory, 394 * 1024);
  assert.deepEqual(d.vcpu, { count: 4, current: 2 });
  assert.equal(d.bootloader, '/usr/bin/pygrub');
  assert.equal(d.os.cmdline, 'console=hvc0');
  assert.deepEqual(d.clock, { offset: 'utc', adjustment: 'reset', timers: [] });
  assert.deepEqual([d.onPoweroff, d.onReboot, d.onCrash], ['destroy', 'restart', 'restart']);
  assert.equal(d.features, undefined);
  assert.deepEqual(d.devices.disks, [{
    type: 'block', device: 'disk', driver: { name: 'phy' },
    source: { path: '/dev/HostVG/XenGuest1' }, target: { dev: 'xvda', bus: 'xen' },
  }]);
  assert.deepEqual(d.devices.interfaces, [{
    type: 'bridge', mac: '00:16:3e:66:94:9c', source: { bridge: 'br0' }, ips: [], script: 'vif-bridge',
  }]);
  assert.deepEqual(d.devices.consoles, [{ source: { type: 'pty' }, target: { type: 'xen', port: 0 } }]);
  assert.deepEqual(d.devices.graphics, []);
});

test('fullvirt-force-hpet: HVM features, clock, emulator, graphics and boot order', () => {
  const d = xmFromNative(corpus('from-native', 'fullvirt-force-hpet.cfg'));
  assert.equal(d.os.type, 'hvm');
  assert.deepEqual(d.os.loader, { path: '/usr/lib/xen/boot/hvmloader' });
  assert.deepEqual(d.os.boot, ['cdrom']);
  assert.deepEqual(d.features, { pae: true, acpi: true, apic: true });
  assert.deepEqual(d.clock, {
    offset: 'variable', adjustment: 0, basis: 'utc', timers: [{ name: 'hpet', present: 'yes' }],
  });
  assert.equal(d.devices.emulator, '/usr/lib/xen/bin/qemu-system-i386');
  assert.deepEqual(d.devices.graphics, [{
    type: 'vnc', port: -1, autoport: 'yes', listens: [{ type: 'address', address: '127.0.0.1' }], passwd: '123poi',
  }]);
  assert.deepEqual(d.devices.serials, []);
  assert.deepEqual(d.devices.parallels, []);
  assert.deepEqual(d.devices.consoles, []);
  assert.equal(d.devices.interfaces[0]!.model, 'e1000');
  assert.deepEqual(d.devices.disks.map((x) => [x.device, x.target.bus, x.readonly ?? false]), [
    ['disk', 'ide', false], ['cdrom', 'ide', true],
  ]);
});

test('HVM feature keys: defaults, hap=0, viridian, hpet=0, localtime and rtc_timeoffset', () => {
  const d = xmFromNative(`${HVM_BASE}pae = 0\nacpi = 0\nhap = 0\nviridian = 1\nhpet = 0\nlocaltime = 1\nrtc_timeoffset = 3600\n`);
  assert.deepEqual(d.features, { apic: true, hap: 'off', viridian: true });
  assert.deepEqual(d.clock, {
    offset: 'variable', adjustment: 3600, basis: 'localtime', timers: [{ name: 'hpet', present: 'no' }],
  });
  // xl.cfg(5) allows a negative offset.
  assert.equal(xmFromNative(`${HVM_BASE}rtc_timeoffset = -60\n`).clock.adjustment, -60);
});

test('PV guests: localtime, root/extra, kernel, ramdisk, bootargs', () => {
  const d = xmFromNative(`${PV_BASE}localtime = 1\nkernel = "/k"\nramdisk = "/r"\nroot = "/dev/xvda1"\nextra = "ro quiet"\nbootloader = "/bl"\nbootargs = "-q"\n`);
  assert.deepEqual(d.clock, { offset: 'localtime', adjustment: 'reset', timers: [] });
  assert.equal(d.os.kernel, '/k');
  assert.equal(d.os.initrd, '/r');
  assert.equal(d.os.cmdline, 'root=/dev/xvda1 ro quiet');
  assert.equal(d.bootloader, '/bl');
  assert.equal(d.bootloaderArgs, '-q');
  assert.equal(xmFromNative(`${PV_BASE}root = "/dev/xvda2"\n`).os.cmdline, 'root=/dev/xvda2');
});

test('defaults: memory 128 MiB, one vcpu, lifecycle actions; maxvcpus and cpus', () => {
  const d = xmFromNative('name = "x"\nuuid = "00000000000000000000000000000001"\n');
  assert.equal(d.uuid, '00000000-0000-0000-0000-000000000001');
  assert.equal(d.memory, 128 * 1024);
  assert.equal(d.currentMemory, 128 * 1024);
  assert.deepEqual(d.vcpu, { count: 1 });
  assert.deepEqual([d.onPoweroff, d.onReboot, d.onCrash], ['destroy', 'restart', 'restart']);
  const c = xmFromNative(`${PV_BASE}vcpus = "3"\nmaxvcpus = 8\ncpus = "0-3,^2, 6"\n`);
  assert.deepEqual(c.vcpu, { count: 8, current: 3, cpuset: '0-1,3,6' });
  // A missing uuid gets a fresh one.
  assert.match(xmFromNative('name = "x"\n').uuid!, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
});

test('HVM graphics: vncunused=0 + vncdisplay, sdl; PV ignores vnc=1 without vfb', () => {
  const v = xmFromNative(`${HVM_BASE}vnc = 1\nvncunused = 0\nvncdisplay = 3\nkeymap = "de"\n`);
  assert.deepEqual(v.devices.graphics, [{ type: 'vnc', port: 5903, autoport: 'no', listens: [{ type: 'address' }], keymap: 'de' }]);
  const s = xmFromNative(`${HVM_BASE}sdl = 1\ndisplay = ":0"\nxauthority = "/root/.Xauthority"\n`);
  assert.deepEqual(s.devices.graphics, [{ type: 'sdl', listens: [], display: ':0', xauth: '/root/.Xauthority' }]);
  assert.deepEqual(xmFromNative(corpus('from-native', 'paravirt-old-pvfb.cfg')).devices.graphics, []);
});

test('vfb entries', () => {
  assert.deepEqual(parseVfbEntry('type=vnc,vncunused=0,vncdisplay=25,vnclisten=127.0.0.1,vncpasswd=123poi'), {
    type: 'vnc', port: 5925, autoport: 'no', listens: [{ type: 'address', address: '127.0.0.1' }], passwd: '123poi',
  });
  assert.deepEqual(parseVfbEntry('type=sdl, display=:1,xauthority=/x'), { type: 'sdl', listens: [], display: ':1', xauth: '/x' });
  // Parsing stops at an item without '='.
  assert.deepEqual(parseVfbEntry('vncunused=1,junk,vncpasswd=x'), { type: 'vnc', port: -1, autoport: 'yes', listens: [{ type: 'address' }] });
  throwsVirt(() => parseVfbEntry('type=vnc,vncdisplay=abc'), "invalid vncdisplay value 'abc'");
  // Only the first vfb of a list is used, and an empty list is no graphics.
  assert.equal(xmFromNative(`${PV_BASE}vfb = [ "type=sdl", "type=vnc" ]\n`).devices.graphics[0]!.type, 'sdl');
  assert.deepEqual(xmFromNative(`${PV_BASE}vfb = [ ]\n`).devices.graphics, []);
});

test('vif entries', () => {
  const [a, b, c] = xmFromNative(`${HVM_BASE}vif = [ "mac=00:16:3E:0:7b:39, bridge=br0.10,type=netfront,vifname=net0,rate=10Mb/s@20ms", "ip=10.0.0.1 fe80::1,script=/etc/xen/vif-route,model=E1000", "bridge=ovs:10:20" ]\n`).devices.interfaces;
  assert.deepEqual(a, {
    type: 'bridge', mac: '00:16:3e:00:7b:39', ips: [], source: { bridge: 'br0' },
    vlan: { tags: [{ id: 10 }] }, virtualport: { type: 'openvswitch' },
    model: 'netfront', target: 'net0', bandwidth: { outbound: { average: 1280 } },
  });
  assert.deepEqual(b, {
    type: 'ethernet', ips: [{ address: '10.0.0.1', family: 'ipv4' }, { address: 'fe80::1', family: 'ipv6' }],
    script: '/etc/xen/vif-route', model: 'e1000',
  });
  assert.deepEqual(c!.vlan, { trunk: true, tags: [{ id: 10 }, { id: 20 }] });
  // type=ioemu is no model at all; unknown models are kept as written.
  assert.equal(xmFromNative(`${HVM_BASE}vif = [ "bridge=b,type=ioemu" ]\n`).devices.interfaces[0]!.model, undefined);
  assert.equal(xmFromNative(corpus('from-native', 'paravirt-net-fakemodel.cfg')).devices.interfaces[0]!.model, 'fakemodel');
  throwsVirt(() => xmFromNative(`${PV_BASE}vif = [ "mac=00:16:3e:66" ]\n`), "malformed mac address '00:16:3e:66'");
  throwsVirt(() => xmFromNative(`${PV_BASE}vif = [ "bridge=br0,oops" ]\n`), "'bridge=br0,oops'");
  throwsVirt(() => xmFromNative(`${PV_BASE}vif = [ "bridge=br0,rate=fast" ]\n`), "Invalid rate 'fast' specified");
  throwsVirt(() => xmFromNative(`${PV_BASE}vif = [ "ip=300.1.1.1" ]\n`), "'300.1.1.1'");
  throwsVirt(() => xmFromNative(`${PV_BASE}vif = [ "model=a b" ]\n`), 'Model name contains invalid characters');
  // A vif that is not a list is ignored, as libvirt does.
  assert.deepEqual(xmFromNative(`${PV_BASE}vif = "bridge=br0"\n`).devices.interfaces, []);
});

test('pci entries', () => {
  assert.deepEqual(parsePciEntry('0001:0c:1b.2'), {
    mode: 'subsystem', type: 'pci', managed: 'no', pci: { domain: 1, bus: 12, slot: 27, function: 2 },
  });
  assert.deepEqual(parsePciEntry('01:13.0,permissive=1,msitranslate=0').writeFiltering, 'no');
  assert.deepEqual(parsePciEntry('01:13.0,permissive=0').writeFiltering, 'yes');
  throwsVirt(() => parsePciEntry('01:13'), 'Malformed PCI address');
  throwsVirt(() => parsePciEntry('zz:13.0'), 'Malformed PCI address zz:13.0');
  throwsVirt(() => parsePciEntry('01:13.0,permissive'), 'Malformed PCI options permissive');
  throwsVirt(() => parsePciEntry('garbage'), 'Malformed PCI address garbage');
});

test('xm disk syntax', () => {
  const d = (entry: string, hvm = true) => parseXmDisk(entry, hvm);
  assert.deepEqual(d('tap:qcow:/root/q.img,xvdd,w'), {
    type: 'file', device: 'disk', driver: { name: 'tap', type: 'qcow' }, source: { path: '/root/q.img' }, target: { dev: 'xvdd', bus: 'xen' },
  });
  assert.deepEqual(d('tap2:aio:/i,hda,w').driver, { name: 'tap2', type: 'raw' });
  assert.deepEqual(d(',hdc:cdrom,r'), {
    type: 'block', device: 'cdrom', driver: { name: 'phy' }, target: { dev: 'hdc', bus: 'ide' }, readonly: true,
  });
  assert.deepEqual(d('phy:/dev/sdb,ioemu:hda,w!'), {
    type: 'block', device: 'disk', driver: { name: 'phy' }, source: { path: '/dev/sdb' }, target: { dev: 'hda', bus: 'ide' }, shareable: true,
  });
  assert.equal(d('/dev/sdb,sda,w').target.bus, 'scsi');
  assert.equal(d('file:/x,hda:disk,ro').readonly, true);
  assert.equal(d('file:/x,hda,w', false).target.bus, 'xen');
  throwsVirt(() => d('phy:/dev/sdb'), "malformed disk entry 'phy:/dev/sdb'");
  throwsVirt(() => d('phy:/dev/sdb,hda'), "malformed disk entry 'phy:/dev/sdb,hda'");
  throwsVirt(() => d('tap:/img,hda,w'), "malformed disk entry 'tap:/img,hda,w'");
  throwsVirt(() => d('tap:vhdx:/img,hda,w'), 'Unknown driver type vhdx:/img');
  throwsVirt(() => xmFromNative(`${PV_BASE}disk = "phy:/dev/sdb,xvda,w"\n`), "expected a string list for 'disk' parameter");
});

test('character devices in xend notation round-trip', () => {
  for (const s of ['pty', 'null', 'stdio', 'vc', 'file:/tmp/log', 'pipe:/tmp/p', '/dev/ttyS0',
    'tcp:127.0.0.1:7777', 'tcp::7777,server,nowait', 'telnet:127.0.0.1:9999,server,nowait',
    'udp:127.0.0.1:9999@0.0.0.0:99998', 'unix:/tmp/s,server,nowait', 'unix:/tmp/s']) {
    const src = parseCharSource(s);
    const back = formatCharSource(src);
    assert.deepEqual(parseCharSource(back), src, s);
  }
  assert.deepEqual(parseCharSource('udp:127.0.0.1:9999@0.0.0.0:99998'), {
    type: 'udp', host: '127.0.0.1', service: '9999', bindHost: '0.0.0.0', bindService: '99998',
  });
  // libvirt always writes the bind half of udp, so it reads back as an empty service.
  assert.equal(formatCharSource(parseCharSource('udp:h:1')), 'udp:h:1@:');
  assert.equal(formatCharSource({ type: 'file', path: "/tmp/it's" }), "file:/tmp/it\\'s");
  throwsVirt(() => parseCharSource('bogus:x'), "unknown chr device type 'bogus'");
  throwsVirt(() => parseCharSource('tcp:nocolon'), 'malformed char device string');
});

test('cpusets', () => {
  assert.deepEqual(parseCpuset('0-3,^2,8'), [0, 1, 3, 8]);
  assert.equal(formatCpuset([5, 0, 1, 2, 7, 8]), '0-2,5,7-8');
  throwsVirt(() => parseCpuset('1-x'), "'1-x'");
  throwsVirt(() => parseCpuset('5000'), "'5000'");
});

test('cpusets: items apply in order, blanks may surround items and their dash', () => {
  assert.deepEqual(parseCpuset(' 0 - 2 , 5 '), [0, 1, 2, 5]);
  assert.deepEqual(parseCpuset('6,0-1,1'), [0, 1, 6]);
  assert.deepEqual(parseCpuset('0-3,^1,1'), [0, 1, 2, 3]);
  assert.deepEqual(parseCpuset('^1,1-2'), [1, 2]);
  assert.deepEqual(parseCpuset('007'), [7]);
  assert.equal(parseCpuset('0-4095').length, 4096);
  for (const bad of ['', ',', '1,', '^1-2', '^ 1', '1 2', '3-1', '1--2', '4096', '99999999999999999999']) {
    throwsVirt(() => parseCpuset(bad, 'vcpus'), `Failed to parse vcpus '${bad}'`);
  }
  assert.equal(formatCpuset([3, 1, 2, 2, 9]), '1-3,9');
  assert.equal(formatCpuset([]), '');
});

// ---- libvirt's refusals (README "Cases dropped") ---------------------------------------

/** The upstream inputs of the dropped serial cases (not in the corpus, since libvirt refuses them). */
const TWO_SERIALS = corpus('from-native', 'fullvirt-serial-pty.cfg').replace('serial = "pty"', 'serial = [ "/dev/ttyS0", "/dev/ttyS1" ]');
const SECOND_SERIAL = corpus('from-native', 'fullvirt-serial-pty.cfg').replace('serial = "pty"', 'serial = [ "none", "/dev/ttyS1" ]');

test('dropped from-native cases: xen-xm takes one serial device', () => {
  for (const text of [TWO_SERIALS, SECOND_SERIAL]) {
    throwsVirt(() => xmFromNative(text), 'Multiple serial devices are not supported by xen-xm', 'CONFIG_UNSUPPORTED');
  }
});

test('dropped to-native cases: i686 guests have no capabilities on the test host', () => {
  const serials = (xml: string, devs: string) => xml.replace(/<serial type='pty'>[\s\S]*?<\/console>/, devs);
  const dev = (path: string, port: number) =>
    `<serial type='dev'><source path='${path}'/><target port='${port}'/></serial>`;
  const inputs: Array<[string, string]> = [
    ['paravirt-old-pvfb', corpus('from-native', 'paravirt-old-pvfb.xml')],
    ['paravirt-old-pvfb-vncdisplay', corpus('from-native', 'paravirt-old-pvfb-vncdisplay.xml')],
    ['fullvirt-old-cdrom', corpus('from-native', 'fullvirt-old-cdrom.xml')],
    ['fullvirt-net-ioemu', corpus('from-native', 'fullvirt-net-ioemu.xml')],
    ['fullvirt-serial-dev-2-ports', serials(corpus('to-native', 'fullvirt-serial-pty.xml'), dev('/dev/ttyS0', 0) + dev('/dev/ttyS1', 1))],
    ['fullvirt-serial-dev-2nd-port', serials(corpus('to-native', 'fullvirt-serial-pty.xml'), dev('/dev/ttyS1', 1))],
  ];
  for (const [name, x86] of inputs) {
    // The historical inputs were the i686 twins of these x86_64 documents.
    const xml = x86.replace("arch='x86_64'", "arch='i686'");
    assert.notEqual(xml, x86, name);
    const osType = xml.includes('>hvm</type>') ? '' : 'ostype=xen ';
    throwsVirt(() => xmToNative(parseDomainXml(xml)),
      `could not find capabilities for ${osType}arch=i686 domaintype=xen`, 'INVALID_ARG');
    // On x86_64 the serial ones still fail, for xm's own reason.
    if (name.startsWith('fullvirt-serial-dev')) {
      throwsVirt(() => xmToNative(parseDomainXml(x86)), 'Multiple serial devices are not supported by xen-xm');
    }
  }
});

test("dropped to-native case: HVM clocks with adjustment='reset'", () => {
  const xml = corpus('to-native', 'fullvirt-usbtablet.xml')
    .replace(/<clock [^>]*\/>/, "<clock offset='utc' adjustment='reset'/>");
  throwsVirt(() => xmToNative(parseDomainXml(xml)), "unsupported clock adjustment='reset'", 'CONFIG_UNSUPPORTED');
});

test('to-native: more than one serial device is refused for xen-xm', () => {
  const d = xmFromNative(corpus('from-native', 'fullvirt-serial-pty.cfg'));
  d.devices.serials.push({ source: { type: 'null' }, target: { port: 1 } });
  throwsVirt(() => xmToNative(d), 'Multiple serial devices are not supported by xen-xm', 'CONFIG_UNSUPPORTED');
  d.devices.serials = [{ source: { type: 'null' }, target: { port: 1 } }];
  throwsVirt(() => xmToNative(d), 'Multiple serial devices are not supported by xen-xm');
});

// ---- Domain -> xm ------------------------------------------------------------------------

function minimalDomain(over: Partial<Domain> = {}): Domain {
  return {
    type: 'xen', name: 'g', uuid: 'c7a5fdb0-cdaf-9455-926a-d65c16db1809', memory: 1024 * 1024 + 1, currentMemory: 512 * 1024,
    vcpu: { count: 2 }, os: { type: 'xen', boot: [] }, clock: { offset: 'utc', timers: [] }, devices: emptyDevices(), ...over,
  };
}

test('to-native: key order and values of the shared keys', () => {
  const d = minimalDomain({
    vcpu: { count: 4, current: 2, cpuset: '0-1,3' },
    features: { xen: { e820_host: 'on', passthrough: { state: 'on', mode: 'sync_pt' } } },
    clock: { offset: 'localtime', timers: [{ name: 'tsc', mode: 'paravirt' }] },
    onCrash: 'preserve',
  });
  d.devices.graphics.push({ type: 'vnc', port: 5901, autoport: 'no', listens: [{ type: 'address', address: '::' }], keymap: 'fr' });
  d.devices.interfaces.push({ type: 'bridge', mac: '00:16:3e:00:00:01', source: { bridge: 'ovs' }, virtualport: { type: 'openvswitch' },
    vlan: { trunk: true, tags: [{ id: 1 }, { id: 2 }] }, ips: [{ address: '10.0.0.2' }], target: 'vif1.0', model: 'netfront',
    bandwidth: { outbound: { average: 100 } } });
  d.devices.hostdevs.push({ mode: 'subsystem', type: 'pci', managed: 'no', writeFiltering: 'no', pci: { domain: 0, bus: 0x1b, slot: 0, function: 7 } });
  d.devices.disks.push({ type: 'file', device: 'disk', driver: { name: 'tap', type: 'qcow2' }, source: { path: '/i' }, target: { dev: 'xvda' }, shareable: true });
  d.os.kernel = '/k';
  d.os.cmdline = 'root=/dev/xvda1';
  assert.equal(xmToNative(d), [
    'name = "g"', 'uuid = "c7a5fdb0-cdaf-9455-926a-d65c16db1809"', 'maxmem = 1025', 'memory = 512',
    'maxvcpus = 4', 'vcpus = 2', 'cpus = "0-1,3"', 'e820_host = 1', 'passthrough = "sync_pt"',
    'tsc_mode = "native_paravirt"', 'localtime = 1', 'on_poweroff = "destroy"', 'on_reboot = "restart"',
    'on_crash = "preserve"', 'vfb = [ "type=vnc,vncunused=0,vncdisplay=1,vnclisten=::,keymap=fr" ]',
    'vif = [ "mac=00:16:3e:00:00:01,bridge=ovs:1:2,ip=10.0.0.2,script=vif-openvswitch,model=netfront,vifname=vif1.0,rate=100KB/s" ]',
    'pci = [ "0000:1b:00.7,permissive=1" ]', 'kernel = "/k"', 'extra = "root=/dev/xvda1"', 'disk = [ "tap:qcow2:/i,xvda,!" ]', '',
  ].join('\n'));
});

test('to-native: HVM specifics (netfront type, usb input, sdl, boot order, hpet on PV refused)', () => {
  const d = minimalDomain({ os: { type: 'hvm', loader: { path: '/hvmloader', type: 'rom' }, boot: ['network', 'cdrom', 'hd', 'fd'] } });
  d.clock = { offset: 'variable', adjustment: -30, basis: 'localtime', timers: [{ name: 'hpet', present: 'no' }] };
  d.features = { pae: true, viridian: true };
  d.devices.graphics.push({ type: 'sdl', listens: [], display: ':0' });
  d.devices.interfaces.push({ type: 'ethernet', mac: '00:16:3e:00:00:02', ips: [], model: 'netfront' });
  d.devices.inputs.push({ type: 'mouse', bus: 'ps2' }, { type: 'passthrough', bus: 'usb' }, { type: 'tablet', bus: 'usb' });
  d.devices.sounds.push({ model: 'ac97' });
  d.devices.parallels.push({ source: { type: 'tcp', host: 'h', service: '1', protocol: 'telnet', mode: 'bind' }, target: { port: 0 } });
  const text = xmToNative(d);
  assert.equal(text, [
    'name = "g"', 'uuid = "c7a5fdb0-cdaf-9455-926a-d65c16db1809"', 'maxmem = 1025', 'memory = 512', 'vcpus = 2',
    'pae = 1', 'acpi = 0', 'apic = 0', 'viridian = 1', 'hpet = 0', 'rtc_timeoffset = -30', 'localtime = 1',
    'on_poweroff = "destroy"', 'on_reboot = "restart"', 'on_crash = "destroy"', 'sdl = 1', 'vnc = 0', 'display = ":0"',
    'vif = [ "mac=00:16:3e:00:00:02,type=netfront" ]', 'parallel = "telnet:h:1,server,nowait"', 'serial = "none"',
    'soundhw = "ac97"', 'builder = "hvm"', 'kernel = "/hvmloader"', 'boot = "ndca"', 'usb = 1', 'usbdevice = "tablet"', '',
  ].join('\n'));
  // ... and it reads back to the same thing.
  assert.equal(xmToNative(xmFromNative(text)), text);

  const pv = minimalDomain({ clock: { offset: 'utc', timers: [{ name: 'hpet' }] } });
  throwsVirt(() => xmToNative(pv), "unsupported timer type (name) 'hpet'", 'CONFIG_UNSUPPORTED');
  throwsVirt(() => xmToNative(minimalDomain({ clock: { offset: 'timezone', timezone: 'UTC', timers: [] } })), "unsupported clock offset='timezone'");
});

test('to-native: refusals name the offending thing', () => {
  const net = minimalDomain();
  net.devices.interfaces.push({ type: 'direct', ips: [], source: { dev: 'eth0' } });
  throwsVirt(() => xmToNative(net), "Unsupported net type 'direct'", 'CONFIG_UNSUPPORTED');
  const network = minimalDomain();
  network.devices.interfaces.push({ type: 'network', mac: '00:16:3e:00:00:03', ips: [], source: { network: 'default' } });
  throwsVirt(() => xmToNative(network), 'network default is not active');
  assert.match(xmToNative(network, { networkBridge: (n) => (n === 'default' ? 'virbr0' : undefined) }),
    /vif = \[ "mac=00:16:3e:00:00:03,bridge=virbr0,script=vif-bridge" \]/);
  const transient = minimalDomain();
  transient.devices.disks.push({ type: 'file', device: 'disk', source: { path: '/x' }, target: { dev: 'xvda' }, transient: true });
  throwsVirt(() => xmToNative(transient), 'transient disks not supported yet');
  assert.equal(formatXmDisk({ type: 'block', device: 'disk', source: { path: '/dev/x' }, target: { dev: 'xvda' } }), 'phy:/dev/x,xvda,w');
  assert.equal(formatXmDisk({ type: 'file', device: 'disk', driver: { type: 'raw' }, source: { path: '/x' }, target: { dev: 'xvda' } }), '/x,xvda,w');
  throwsVirt(() => formatXmDisk({ type: 'dir', device: 'disk', source: { path: '/x' }, target: { dev: 'xvda' } }), 'unsupported disk type dir');
});

test('HVM floppies: written as fda/fdb after disk, read back as floppy disks on the fdc bus', () => {
  const d = minimalDomain({ os: { type: 'hvm', loader: { path: '/hvmloader', type: 'rom' }, boot: ['fd', 'hd'] } });
  d.clock = { offset: 'variable', adjustment: 0, basis: 'utc', timers: [] };
  d.devices.disks.push(
    { type: 'file', device: 'floppy', source: { path: '/b.img' }, target: { dev: 'fdb', bus: 'fdc' } },
    { type: 'file', device: 'disk', source: { path: '/hd.img' }, target: { dev: 'hda' } },
    { type: 'block', device: 'floppy', source: { path: '/dev/fd0' }, target: { dev: 'fda' } },
  );
  const text = xmToNative(d);
  assert.deepEqual(text.split('\n').slice(-5), [
    'boot = "ac"', 'disk = [ "file:/hd.img,hda,w" ]', 'fdb = "/b.img"', 'fda = "/dev/fd0"', '',
  ]);
  const back = xmFromNative(text);
  assert.deepEqual(back.devices.disks.slice(1), [
    { type: 'file', device: 'floppy', driver: { name: 'file' }, source: { path: '/dev/fd0' }, target: { dev: 'fda', bus: 'fdc' } },
    { type: 'file', device: 'floppy', driver: { name: 'file' }, source: { path: '/b.img' }, target: { dev: 'fdb', bus: 'fdc' } },
  ]);
  assert.equal(xmToNative(back).includes('fda = "/dev/fd0"'), true);
  // No floppy, no keys; an empty fda is no drive, and PV guests have no floppy controller.
  assert.equal(/^fd[ab] /m.test(xmToNative(minimalDomain())), false);
  assert.equal(xmFromNative(`${HVM_BASE}fda = ""\n`).devices.disks.length, 0);
  assert.equal(xmFromNative(`${PV_BASE}fda = "/f.img"\n`).devices.disks.length, 0);
  throwsVirt(() => xmFromNative(`${HVM_BASE}fdb = 1\n`), "'fdb'", 'CONF_SYNTAX');
});

test('floppies xm cannot express are refused, naming the disk', () => {
  const floppy = (over: Partial<Domain['devices']['disks'][number]> = {}) =>
    ({ type: 'file' as const, device: 'floppy' as const, source: { path: '/f.img' }, target: { dev: 'fda' }, ...over });
  const pv = minimalDomain();
  pv.devices.disks.push(floppy());
  throwsVirt(() => xmToNative(pv), "floppy disk 'fda' (/f.img): xen-xm can only give HVM guests a floppy drive", 'CONFIG_UNSUPPORTED');
  const hvmWith = (...disks: Array<Domain['devices']['disks'][number]>) => {
    const d = minimalDomain({ os: { type: 'hvm', loader: { path: '/hvmloader' }, boot: ['hd'] } });
    d.clock = { offset: 'variable', adjustment: 0, basis: 'utc', timers: [] };
    d.devices.disks.push(...disks);
    return d;
  };
  throwsVirt(() => xmToNative(hvmWith(floppy({ target: { dev: 'fdc' } }))), "floppy disk 'fdc' (/f.img): xen-xm supports the floppy drives fda and fdb only", 'CONFIG_UNSUPPORTED');
  throwsVirt(() => xmToNative(hvmWith(floppy(), floppy())), "floppy disk 'fda' (/f.img): the drive is given more than once");
  throwsVirt(() => xmToNative(hvmWith(floppy({ source: undefined }))), "floppy disk 'fda': xen-xm cannot express an empty floppy drive");
  throwsVirt(() => xmToNative(hvmWith(floppy({ type: 'network', source: { protocol: 'nbd', name: 'x' } }))), "a 'network' floppy source");
  throwsVirt(() => xmToNative(hvmWith(floppy({ readonly: true }))), 'cannot express a read-only floppy');
  throwsVirt(() => xmToNative(hvmWith(floppy({ transient: true }))), 'transient disks not supported yet');
});

test("HVM direct kernel boot: xend's loader key names the firmware, kernel the kernel", () => {
  const d = minimalDomain({
    os: { type: 'hvm', loader: { path: '/hvmloader', type: 'rom' }, kernel: '/vmlinuz', initrd: '/initrd', cmdline: 'ks=x', boot: ['cdrom'] },
  });
  d.clock = { offset: 'variable', adjustment: 0, basis: 'utc', timers: [] };
  const text = xmToNative(d);
  assert.deepEqual(text.split('\n').slice(-7), [
    'builder = "hvm"', 'loader = "/hvmloader"', 'kernel = "/vmlinuz"', 'ramdisk = "/initrd"', 'extra = "ks=x"', 'boot = "d"', '',
  ]);
  const back = xmFromNative(text);
  assert.deepEqual(back.os, { type: 'hvm', loader: { path: '/hvmloader' }, kernel: '/vmlinuz', initrd: '/initrd', cmdline: 'ks=x', boot: ['cdrom'] });
  assert.equal(xmToNative(back), text);
  // root + extra combine as for PV guests; a loader without a kernel is plain firmware boot.
  assert.equal(xmFromNative(`${HVM_BASE}loader = "/fw"\nroot = "/dev/hda1"\nextra = "ro"\n`).os.cmdline, 'root=/dev/hda1 ro');
  const fw = xmFromNative(`${PV_BASE}builder = "hvm"\nloader = "/fw"\n`);
  assert.deepEqual([fw.os.loader, fw.os.kernel], [{ path: '/fw' }, undefined]);
  // Without loader, kernel is the firmware, as libvirt reads it.
  const plain = xmFromNative(`${HVM_BASE}ramdisk = "/ignored"\n`);
  assert.deepEqual([plain.os.loader, plain.os.kernel, plain.os.initrd], [{ path: '/usr/lib/xen/boot/hvmloader' }, undefined, undefined]);
  // A domain built without a loader gets the capabilities' hvmloader next to its kernel.
  delete d.os.loader;
  assert.match(xmToNative(d), /^loader = "\/usr\/lib\/xen\/boot\/hvmloader"$/m);
});

test('formatConfigCommon replaces keys already present in place', () => {
  const out = parseConf('memory = 1\nfoo = "bar"\n');
  formatConfigCommon(minimalDomain(), out, 'xen-xm');
  assert.deepEqual(out.entries.slice(0, 3).map((e) => e.key), ['memory', 'foo', 'name']);
  assert.deepEqual(out.entries[0]!.value, { type: 'number', value: 512 });
});

// ---- malformed input ---------------------------------------------------------------------

test('wrong value types and values are VirtErrors naming the key', () => {
  throwsVirt(() => xmFromNative('uuid = "c7a5fdb0-cdaf-9455-926a-d65c16db1809"\n'), 'config value name was missing');
  throwsVirt(() => xmFromNative('name = 1\n'), "'name'");
  throwsVirt(() => xmFromNative('name = "x"\nuuid = "nope"\n'), 'nope not parseable');
  throwsVirt(() => xmFromNative(`${PV_BASE}vcpus = "two"\n`), 'config value vcpus was malformed');
  throwsVirt(() => xmFromNative(`${PV_BASE}maxmem = -5\n`), 'config value maxmem was malformed');
  throwsVirt(() => xmFromNative(`${PV_BASE}vcpus = [ 1 ]\n`), 'config value vcpus was malformed');
  throwsVirt(() => xmFromNative(`${PV_BASE}on_crash = "explode"\n`), 'unexpected value explode for on_crash');
  throwsVirt(() => xmFromNative(`${PV_BASE}bootloader = 3\n`), "'bootloader'");
  throwsVirt(() => xmFromNative(`${PV_BASE}type = "weird"\n`), 'type weird is not supported');
  throwsVirt(() => xmFromNative(`${HVM_BASE}pae = [ ]\n`), 'config value pae was malformed');
  throwsVirt(() => xmFromNative(`${HVM_BASE}soundhw = "sb16,hda"\n`), "unknown sound model 'hda'");
  throwsVirt(() => xmFromNative(`${PV_BASE}builder = "hvm"\n`), 'config value kernel was missing');
  throwsVirt(() => xmFromNative(`${PV_BASE}pci = [ 1 ]\n`), "'pci'");
  throwsVirt(() => xmFromNative(`${PV_BASE}cpus = "1-"\n`), "'1-'");
  throwsVirt(() => xmFromNative(`${PV_BASE}vcpus = 0\n`), 'at least 1 vCPU');
});

test('fuzz: any conf value for any key converts or fails with a VirtError', () => {
  const keys = ['name', 'uuid', 'memory', 'maxmem', 'vcpus', 'maxvcpus', 'cpus', 'builder', 'type', 'kernel', 'boot',
    'pae', 'acpi', 'hap', 'viridian', 'hpet', 'localtime', 'rtc_timeoffset', 'on_crash', 'vif', 'pci', 'disk',
    'vfb', 'vnc', 'vncunused', 'vncdisplay', 'sdl', 'serial', 'parallel', 'soundhw', 'usbdevice', 'tsc_mode',
    'passthrough', 'e820_host', 'root', 'extra', 'device_model_override', 'fda', 'fdb', 'loader', 'ramdisk'];
  const chars = fc.constantFrom(...'abc019:,.@/=^- !x'.split(''));
  const str = fc.stringOf(chars, { maxLength: 24 }).map((s) => JSON.stringify(s).replace(/\\/g, ''));
  const scalar = fc.oneof(str, fc.integer({ min: -5, max: 70000 }).map(String));
  const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }).map((a) => `[ ${a.join(', ')} ]`));
  const hvm = corpus('from-native', 'fullvirt-serial-udp.cfg');
  const pv = corpus('from-native', 'paravirt-new-pvfb.cfg');
  fc.assert(fc.property(fc.boolean(), fc.constantFrom(...keys), value, (isHvm, key, v) => {
    const base = (isHvm ? hvm : pv).split('\n').filter((l) => !l.startsWith(`${key} `)).join('\n');
    let text: string;
    try {
      text = `${base}\n${key} = ${v}\n`;
      parseConf(text);
    } catch {
      return; // not valid conf syntax: conf.ts's business
    }
    try {
      const d = postParse(xmFromNative(text));
      xmToNative(d);
    } catch (e) {
      assert.ok(e instanceof VirtError, `${key} = ${v}: ${String(e)}`);
    }
  }), { numRuns: 3000 });
});

// ---- the corpus, native -> Domain -> native --------------------------------------------

test('every to-native .cfg reads back to the same text through postParse', () => {
  for (const name of corpusNames('to-native', '.cfg')) {
    const text = corpus('to-native', `${name}.cfg`);
    assert.equal(xmToNative(postParse(xmFromNative(text, `${name}.cfg`))), text, name);
  }
});

test('every to-native .xml converts to its .cfg', () => {
  for (const name of corpusNames('to-native', '.xml')) {
    const d = parseDomainXml(corpus('to-native', `${name}.xml`), { fileName: `${name}.xml` });
    assert.equal(xmToNative(d), corpus('to-native', `${name}.cfg`), name);
  }
});

test('domainToXm returns an ordered ConfFile', () => {
  const conf = domainToXm(xmFromNative(corpus('from-native', 'rhel5pv.cfg')));
  assert.deepEqual(conf.entries.map((e) => e.key), [
    'name', 'uuid', 'maxmem', 'memory', 'vcpus', 'localtime', 'on_poweroff', 'on_reboot', 'on_crash', 'vif',
    'bootloader', 'kernel', 'ramdisk', 'extra', 'disk',
  ]);
});
