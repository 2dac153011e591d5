import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { VirtError } from '../errors.js';
import { type Domain, type DiskDevice, emptyDevices } from '../domain/types.js';
import { parseConf } from './conf.js';
import {
  domainToXl,
  formatXlDisk,
  parseXlDiskSpec,
  splitXlOptions,
  xlFromNative,
  xlToDomain,
  xlToNative,
} from './xl.js';

// Tests run as dist/src/formats/xl.test.js; the shared corpus sits next to the repo root.
const CORPUS = new URL('../../../../shared/conformance/xl/', import.meta.url);

const HVM_HEAD = `name = "g"
uuid = "c7a5fdb2-cdaf-9455-926a-d65c16db1809"
builder = "hvm"
`;
const PV_HEAD = `name = "g"
uuid = "c7a5fdb2-cdaf-9455-926a-d65c16db1809"
`;

const hvm = (body: string) => xlFromNative(HVM_HEAD + body);
const pv = (body: string) => xlFromNative(PV_HEAD + body);

/** Asserts a VirtError whose message contains every given fragment. */
function throwsVirt(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof VirtError, `expected a VirtError, got ${String(e)}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `message '${e.message}' lacks '${f}'`);
    return true;
  });
}

/** A minimal domain for the formatting direction. */
function baseDomain(type: Domain['os']['type'] = 'hvm'): Domain {
  return {
    type: 'xen',
    name: 'g',
    uuid: 'c7a5fdb2-cdaf-9455-926a-d65c16db1809',
    memory: 524288,
    currentMemory: 524288,
    vcpu: { count: 2 },
    os: { type, boot: type === 'hvm' ? ['hd'] : [] },
    clock: type === 'hvm' ? { offset: 'variable', adjustment: 0, basis: 'utc', timers: [] } : { offset: 'utc', timers: [] },
    onPoweroff: 'destroy',
    onReboot: 'restart',
    onCrash: 'destroy',
    devices: emptyDevices(),
  };
}

const keysOf = (text: string) => text.split('\n').filter(Boolean).map((l) => l.slice(0, l.indexOf(' =')));
const lineOf = (text: string, key: string) => text.split('\n').find((l) => l.startsWith(`${key} = `));

describe('xl disk specifications (xl-disk-configuration(5))', () => {
  test('key=value form', () => {
    assert.deepEqual(parseXlDiskSpec('format=qcow2,vdev=xvda,access=ro,backendtype=qdisk,target=/a,b'), {
      format: 'qcow2', vdev: 'xvda', readwrite: false, cdrom: false, backend: 'qdisk', target: '/a,b',
    });
  });

  test('positional parameters, full and partial', () => {
    assert.deepEqual(parseXlDiskSpec('/dev/vg/g,raw,hda,rw,backendtype=phy'), {
      format: 'raw', vdev: 'hda', readwrite: true, cdrom: false, backend: 'phy', target: '/dev/vg/g',
    });
    // Empty positional values take the defaults: raw, read-write.
    assert.deepEqual(parseXlDiskSpec('/img,,hdb,,'), { format: 'raw', vdev: 'hdb', readwrite: true, cdrom: false, target: '/img' });
    assert.equal(parseXlDiskSpec('/img, qcow2,xvdb').format, 'qcow2', 'blanks before a parameter are skipped');
    // ... but not after it, as in xl.
    throwsVirt(() => parseXlDiskSpec('/img,qcow2 ,xvdb'), "unknown value for format: near `qcow2 '");
    assert.equal(parseXlDiskSpec('/img,raw,xvda,r').readwrite, false);
    assert.equal(parseXlDiskSpec('/img,raw,xvda,w').readwrite, true);
  });

  test('blanks before parameters are ignored', () => {
    assert.deepEqual(parseXlDiskSpec(' format=raw, vdev=xvda,\taccess=rw, target=/x'), {
      format: 'raw', vdev: 'xvda', readwrite: true, cdrom: false, target: '/x',
    });
  });

  test('cdroms: devtype, the bare flag and the xend vdev suffix', () => {
    const a = parseXlDiskSpec('/iso,raw,hdc,rw,devtype=cdrom');
    assert.equal(a.cdrom, true);
    assert.equal(a.readwrite, false, 'cdroms are read-only');
    assert.equal(parseXlDiskSpec('vdev=hdc,cdrom').cdrom, true);
    // No media: format "empty".
    assert.deepEqual(parseXlDiskSpec('format=raw,vdev=hdd,access=ro,devtype=cdrom'), {
      format: 'empty', vdev: 'hdd', readwrite: false, cdrom: true,
    });
    const b = parseXlDiskSpec(',hdc:cdrom,r');
    assert.equal(b.vdev, 'hdc');
    assert.equal(b.cdrom, true);
    assert.equal(b.format, 'empty');
  });

  test("xend's deprecated prefixes", () => {
    assert.deepEqual(parseXlDiskSpec('phy:/dev/sda,hda,w'), { format: 'raw', vdev: 'hda', readwrite: true, cdrom: false, target: '/dev/sda' });
    assert.equal(parseXlDiskSpec('tap:qcow2:/i.qcow2,xvda,w').format, 'qcow2');
    assert.equal(parseXlDiskSpec('tap:aio:/i.img,xvda,r').readwrite, false);
    assert.equal(parseXlDiskSpec('file:/i.img,hdc:cdrom,r').cdrom, true);
    assert.equal(parseXlDiskSpec('iscsi:iqn.x,xvda,w').script, 'block-iscsi');
  });

  test('errors name the specification and the offending part', () => {
    throwsVirt(() => parseXlDiskSpec('/i,raw'), 'no vdev specified', '/i,raw');
    throwsVirt(() => parseXlDiskSpec('vdev=xvda'), 'no target specified', 'vdev=xvda');
    throwsVirt(() => parseXlDiskSpec('/i,bogus,xvda'), 'unknown value for format', 'bogus');
    throwsVirt(() => parseXlDiskSpec('/i,raw,xvda,rw,extra'), 'too many positional parameters', 'extra');
    throwsVirt(() => parseXlDiskSpec('frobnicate=1,vdev=xvda,target=/x'), 'unknown parameter', 'frobnicate=1');
    throwsVirt(() => parseXlDiskSpec('foo:/x,xvda'), 'unknown deprecated disk prefix');
    throwsVirt(() => parseXlDiskSpec('/i,raw,xvda,maybe'), 'unknown value for access', 'maybe');
    throwsVirt(() => parseXlDiskSpec('vdev=xvda,vdev=xvdb,target=/x'), 'vdev respecified');
    throwsVirt(() => parseXlDiskSpec('devtype=floppy,vdev=fda,target=/x'), 'unknown value for type');
    throwsVirt(() => parseXlDiskSpec('backendtype=nfs,vdev=xvda,target=/x'), 'unknown value for backendtype');
    throwsVirt(() => parseXlDiskSpec('/x=y,raw,xvda'), 'bad disk syntax');
  });

  test('never crashes: any string parses or throws a VirtError', () => {
    fc.assert(fc.property(fc.string({ maxLength: 60 }), (s) => {
      try {
        parseXlDiskSpec(s);
      } catch (e) {
        assert.ok(e instanceof VirtError);
      }
    }), { numRuns: 2000 });
    fc.assert(fc.property(
      fc.array(fc.constantFrom('format=', 'raw', 'vdev=', 'xvda', 'target=', ',', ':', 'cdrom', 'phy:', 'hdc:cdrom', '=', ' ', 'access=', 'r'), { maxLength: 12 }),
      (parts) => {
        try {
          parseXlDiskSpec(parts.join(''));
        } catch (e) {
          assert.ok(e instanceof VirtError);
        }
      },
    ), { numRuns: 2000 });
  });

  test('what libvirt writes reads back the same', () => {
    const path = fc.stringMatching(/^\/[a-zA-Z0-9_.,=: -]{0,20}[a-zA-Z0-9]$/);
    fc.assert(fc.property(
      path,
      fc.constantFrom('raw', 'qcow', 'qcow2', 'qed'),
      fc.constantFrom('xvda', 'hda', 'sdb'),
      fc.boolean(),
      fc.constantFrom('qemu', 'phy', 'tap'),
      fc.boolean(),
      (p, type, dev, ro, driver, cdrom) => {
        const disk: DiskDevice = {
          type: driver === 'phy' ? 'block' : 'file',
          device: cdrom ? 'cdrom' : 'disk',
          driver: { name: driver, type },
          source: { path: p },
          target: { dev },
          readonly: ro,
        };
        const spec = parseXlDiskSpec(formatXlDisk(disk));
        assert.equal(spec.target, p);
        assert.equal(spec.vdev, dev);
        assert.equal(spec.cdrom, cdrom);
        assert.equal(spec.readwrite, !(ro || cdrom));
        assert.equal(spec.format, type);
        assert.equal(spec.backend, { qemu: 'qdisk', phy: 'phy', tap: 'tap' }[driver]);
      },
    ));
  });
});

describe('xl disks in the domain model', () => {
  test('drivers, types and buses as libvirt reports them', () => {
    const d = hvm(`disk = [ "/dev/vg/a,raw,hda,w,backendtype=phy", "/img/b,qcow2,hdb", "/i.iso,raw,hdc,r,devtype=cdrom",
      "format=raw,vdev=hdd,devtype=cdrom", "/img/c,raw,xvdb", "/img/d,vhd,sda,w,backendtype=tap" ]`);
    const disks = d.devices.disks;
    assert.deepEqual(disks[0], {
      type: 'block', device: 'disk', driver: { name: 'phy', type: 'raw' }, source: { path: '/dev/vg/a' }, target: { dev: 'hda', bus: 'ide' },
    });
    assert.deepEqual(disks[1], {
      type: 'file', device: 'disk', driver: { name: 'qemu', type: 'qcow2' }, source: { path: '/img/b' }, target: { dev: 'hdb', bus: 'ide' },
    });
    assert.deepEqual(disks[2], {
      type: 'file', device: 'cdrom', driver: { name: 'qemu', type: 'raw' }, source: { path: '/i.iso' }, target: { dev: 'hdc', bus: 'ide' }, readonly: true,
    });
    // An empty cdrom has no format of its own (postParse makes it raw).
    assert.deepEqual(disks[3], { type: 'file', device: 'cdrom', driver: { name: 'qemu' }, target: { dev: 'hdd', bus: 'ide' }, readonly: true });
    assert.equal(disks[4]!.target.bus, 'xen');
    assert.deepEqual(disks[5]!.driver, { name: 'tap', type: 'vhd' });
    assert.equal(disks[5]!.target.bus, 'scsi');
  });

  test('PV guests put every disk on the xen bus', () => {
    assert.equal(pv('disk = [ "/i,raw,hda,w" ]').devices.disks[0]!.target.bus, 'xen');
  });

  test('a bad disk is an error naming it; non-string items are skipped as libvirt does', () => {
    throwsVirt(() => hvm('disk = [ "/i,raw" ]'), '/i,raw');
    assert.equal(hvm('disk = [ 1, "/i,raw,xvda" ]').devices.disks.length, 1);
    throwsVirt(() => hvm('disk = [ "vdev=xvda,backendtype=standalone,target=/x" ]'), 'disk backend not supported: standalone');
  });

  test('rbd network disks, both directions', () => {
    const spec = 'format=raw,vdev=hdb,access=rw,backendtype=qdisk,target=rbd:pool/image:auth_supported=none:mon_host=mon1.example.org\\\\:6321\\\\;[fe80\\:\\:1]\\\\:6322\\\\;mon3';
    const d = hvm(`disk = [ "${spec}" ]`);
    assert.deepEqual(d.devices.disks[0], {
      type: 'network', device: 'disk', driver: { name: 'qemu', type: 'raw' },
      source: { protocol: 'rbd', name: 'pool/image', hosts: [{ name: 'mon1.example.org', port: 6321 }, { name: 'fe80::1', port: 6322 }, { name: 'mon3' }] },
      target: { dev: 'hdb', bus: 'ide' },
    });
    assert.equal(formatXlDisk(d.devices.disks[0]!), spec);
    const withId = hvm('disk = [ "vdev=xvda,target=rbd:p/i@snap:id=admin:conf=/etc/ceph.conf" ]').devices.disks[0]!;
    assert.deepEqual(withId.source, { protocol: 'rbd', name: 'p/i', hosts: [], auth: { username: 'admin', secretType: 'ceph' } });
  });

  test('formatting refuses what xl cannot express', () => {
    const disk: DiskDevice = { type: 'network', device: 'disk', source: { protocol: 'nbd', name: 'x' }, target: { dev: 'xvda' } };
    throwsVirt(() => formatXlDisk(disk), "Unsupported network block protocol 'nbd'");
    throwsVirt(() => formatXlDisk({ ...disk, source: { protocol: 'rbd', name: 'pool/a:b' } }), "':' not allowed in RBD source volume name 'a:b'");
    throwsVirt(() => formatXlDisk({ type: 'file', device: 'disk', transient: true, source: { path: '/x' }, target: { dev: 'xvda' } }), 'transient disks not supported yet');
    throwsVirt(() => formatXlDisk({ type: 'volume', device: 'disk', target: { dev: 'xvda' } }), 'unsupported storage type');
  });

  test('formatting: vhd is written xvhd, shareable is "!", floppies are not disk entries', () => {
    assert.equal(formatXlDisk({ type: 'file', device: 'disk', driver: { name: 'file', type: 'vhd' }, shareable: true, source: { path: '/x' }, target: { dev: 'xvda' } }),
      'format=xvhd,vdev=xvda,access=!,backendtype=qdisk,target=/x');
    const dom = baseDomain();
    dom.devices.disks.push({ type: 'file', device: 'floppy', source: { path: '/f' }, target: { dev: 'fda' } });
    assert.equal(lineOf(xlToNative(dom), 'disk'), undefined);
  });
});

describe('floppies (qemu -fda / -fdb in device_model_args)', () => {
  const floppy = (over: Partial<DiskDevice> = {}): DiskDevice =>
    ({ type: 'file', device: 'floppy', source: { path: '/f.img' }, target: { dev: 'fda' }, ...over });

  test('HVM floppies go to qemu ahead of the xen:commandline arguments', () => {
    const dom = baseDomain();
    dom.devices.disks.push(
      floppy({ source: { path: '/b.img' }, target: { dev: 'fdb', bus: 'fdc' } }),
      { type: 'file', device: 'disk', driver: { name: 'qemu', type: 'raw' }, source: { path: '/hd.img' }, target: { dev: 'hda' } },
      floppy(),
    );
    dom.xenCommandline = ['-debugcon', 'file:/tmp/x'];
    const text = xlToNative(dom);
    assert.equal(lineOf(text, 'disk'), 'disk = [ "format=raw,vdev=hda,access=rw,backendtype=qdisk,target=/hd.img" ]');
    assert.equal(lineOf(text, 'device_model_args'),
      'device_model_args = [ "-fdb", "/b.img", "-fda", "/f.img", "-debugcon", "file:/tmp/x" ]');
    assert.equal(keysOf(text).at(-1), 'device_model_args');
    const back = xlFromNative(text);
    assert.deepEqual(back.devices.disks.slice(1), [
      { type: 'file', device: 'floppy', driver: { name: 'qemu' }, source: { path: '/b.img' }, target: { dev: 'fdb', bus: 'fdc' } },
      { type: 'file', device: 'floppy', driver: { name: 'qemu' }, source: { path: '/f.img' }, target: { dev: 'fda', bus: 'fdc' } },
    ]);
    assert.deepEqual(back.xenCommandline, ['-debugcon', 'file:/tmp/x']);
    assert.equal(xlToNative(back), text);
  });

  test('reading: pairs anywhere in the list, --fda too; only HVM guests, only complete pairs', () => {
    const d = hvm('device_model_args = [ "-debugcon", "file:/x", "--fda", "/a.img" ]');
    assert.deepEqual(d.devices.disks.map((k) => [k.device, k.target.dev, k.source?.path]), [['floppy', 'fda', '/a.img']]);
    assert.deepEqual(d.xenCommandline, ['-debugcon', 'file:/x']);
    const only = hvm('device_model_args = [ "-fdb", "/b.img" ]');
    assert.equal(only.xenCommandline, undefined);
    assert.equal(only.devices.disks[0]!.target.dev, 'fdb');
    const dangling = hvm('device_model_args = [ "-fda" ]');
    assert.deepEqual([dangling.devices.disks.length, dangling.xenCommandline], [0, ['-fda']]);
    const onPv = pv('device_model_args = [ "-fda", "/a.img" ]');
    assert.deepEqual([onPv.devices.disks.length, onPv.xenCommandline], [0, ['-fda', '/a.img']]);
    throwsVirt(() => hvm('device_model_args = [ "-fda", "/a.img", "-fda", "/b.img" ]'), 'device_model_args', 'floppy drive fda more than once');
  });

  test('no floppy and no commandline, no device_model_args', () => {
    assert.equal(lineOf(xlToNative(baseDomain()), 'device_model_args'), undefined);
  });

  test('refusals name the disk', () => {
    const pvDom = baseDomain('xen');
    pvDom.devices.disks.push(floppy());
    throwsVirt(() => xlToNative(pvDom), "floppy disk 'fda' (/f.img)", 'xen-xl can only give HVM guests a floppy drive');
    const pvh = baseDomain('xenpvh');
    pvh.devices.disks.push(floppy());
    throwsVirt(() => xlToNative(pvh), "floppy disk 'fda'", 'a xenpvh guest has no floppy controller');
    const hvmWith = (...disks: DiskDevice[]) => {
      const dom = baseDomain();
      dom.devices.disks.push(...disks);
      return dom;
    };
    throwsVirt(() => xlToNative(hvmWith(floppy({ target: { dev: 'fdc' } }))), "floppy disk 'fdc'", 'fda and fdb only');
    throwsVirt(() => xlToNative(hvmWith(floppy(), floppy())), 'given more than once');
    throwsVirt(() => xlToNative(hvmWith(floppy({ source: undefined }))), 'cannot express an empty floppy drive');
    throwsVirt(() => xlToNative(hvmWith(floppy({ readonly: true }))), 'read-only floppy');
    const clash = hvmWith(floppy());
    clash.xenCommandline = ['-fda', '/other.img'];
    throwsVirt(() => xlToNative(clash), "floppy disk 'fda' (/f.img)", "already has '-fda'");
    for (const dom of [pvDom, clash]) {
      assert.throws(() => xlToNative(dom), (e: unknown) => e instanceof VirtError && e.codeName === 'CONFIG_UNSUPPORTED');
    }
  });
});

describe('OS keys', () => {
  test('cmdline wins over root and extra; root and extra combine', () => {
    assert.equal(pv('kernel = "/k"\ncmdline = "a"\nroot = "r"\nextra = "e"').os.cmdline, 'a');
    assert.equal(pv('kernel = "/k"\nroot = "/dev/xvda1"\nextra = "console=hvc0"').os.cmdline, 'root=/dev/xvda1 console=hvc0');
    assert.equal(pv('kernel = "/k"\nroot = "/dev/xvda1"').os.cmdline, 'root=/dev/xvda1');
    assert.equal(hvm('kernel = "/k"\nextra = "quiet"').os.cmdline, 'quiet');
  });

  test('PV: bootloader, bootargs, kernel, ramdisk; pvh writes type', () => {
    const d = pv('bootloader = "/usr/bin/pygrub"\nbootargs = "-q"\nkernel = "/k"\nramdisk = "/r"');
    assert.equal(d.bootloader, '/usr/bin/pygrub');
    assert.equal(d.bootloaderArgs, '-q');
    assert.equal(d.os.initrd, '/r');
    const text = xlToNative({ ...baseDomain('xenpvh'), os: { type: 'xenpvh', boot: [], kernel: '/k' } });
    assert.deepEqual(keysOf(text).slice(-2), ['type', 'kernel']);
  });

  test('HVM boot order, ovmf and the SLIC table', () => {
    const d = hvm('boot = "ndca"\nbios = "ovmf"\nacpi_firmware = "/slic"');
    assert.deepEqual(d.os.boot, ['network', 'cdrom', 'hd', 'fd']);
    assert.deepEqual(d.os.loader, { readonly: 'yes', type: 'pflash', path: '/usr/lib/xen/boot/ovmf.bin' });
    assert.deepEqual(d.os.acpiTables, [{ type: 'slic', path: '/slic' }]);
    assert.deepEqual(hvm('').os.boot, ['hd']);
    // Any other firmware is the default loader, which postParse supplies.
    assert.equal(hvm('bios = "seabios"').os.loader, undefined);
    const text = xlToNative(d);
    assert.equal(lineOf(text, 'bios'), 'bios = "ovmf"');
    assert.equal(lineOf(text, 'boot'), 'boot = "ndca"');
    assert.equal(lineOf(text, 'acpi_firmware'), 'acpi_firmware = "/slic"');
  });

  test('nestedhvm', () => {
    assert.deepEqual(hvm('nestedhvm = 1').cpu, { mode: 'host-passthrough', features: [] });
    assert.deepEqual(hvm('nestedhvm = 0').cpu, { mode: 'host-passthrough', features: [{ policy: 'disable', name: 'vmx' }] });
    assert.equal(hvm('').cpu, undefined);
    assert.equal(pv('nestedhvm = 1').cpu, undefined, 'only HVM guests nest');
    const dom = baseDomain();
    dom.cpu = { mode: 'host-passthrough', features: [{ policy: 'forbid', name: 'svm' }] };
    assert.equal(lineOf(xlToNative(dom), 'nestedhvm'), 'nestedhvm = 0');
    dom.cpu.features = [];
    assert.equal(lineOf(xlToNative(dom), 'nestedhvm'), 'nestedhvm = 1');
  });
});

describe('cpuid', () => {
  test('libxl form, with libxl names translated', () => {
    const d = hvm('cpuid = "host,tm=0,sse3=1,page1gb=x,aes=k,avx=s"');
    assert.deepEqual(d.cpu, {
      mode: 'host-passthrough',
      features: [
        { policy: 'disable', name: 'tm' }, { policy: 'force', name: 'pni' }, { policy: 'optional', name: 'pdpe1gb' },
        { policy: 'optional', name: 'aes' }, { policy: 'optional', name: 'avx' },
      ],
    });
    assert.equal(lineOf(xlToNative(d), 'cpuid'), 'cpuid = "host,tm=0,sse3=1,page1gb=x,aes=x,avx=x"');
  });

  test("libvirt's refusals", () => {
    throwsVirt(() => hvm('cpuid = "tm=0"'), 'cpuid starting with tm=0 is not supported');
    throwsVirt(() => hvm('cpuid = "host,tm"'), 'Invalid libxl cpuid key=value element: tm');
    throwsVirt(() => hvm('cpuid = "host,family=6"'), 'Invalid libxl cpuid value: family=6');
    throwsVirt(() => hvm('cpuid = "host,vmx=0"\nnestedhvm = 0'), "CPU feature 'vmx' specified more than once");
    throwsVirt(() => hvm('cpuid = 1'), 'cpuid');
  });

  test("xend list form (xl.cfg(5)), which libvirt cannot read", () => {
    const d = hvm('cpuid = [ "1:ecx=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx0,edx=xx0xxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "0x80000001:edx=xxxxx1xxxxxxxxxxxxxxxxxxxxxxxxxx" ]');
    assert.deepEqual(d.cpu?.features, [
      { policy: 'disable', name: 'pni' }, { policy: 'disable', name: 'tm' }, { policy: 'force', name: 'pdpe1gb' },
    ]);
    // It is written back in the libxl form.
    assert.equal(lineOf(xlToNative(d), 'cpuid'), 'cpuid = "host,sse3=0,tm=0,page1gb=1"');
    throwsVirt(() => hvm('cpuid = [ "1:ecx=0xxxx" ]'), 'Invalid xend cpuid entry');
    throwsVirt(() => hvm('cpuid = [ "1:ecx=xxxxxxxxxxxxxxxxxxxx0xxxxxxxxxxx" ]'), 'bit 11 of ecx');
    throwsVirt(() => hvm('cpuid = [ "zz:ecx=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" ]'), 'invalid leaf number');
  });

  test('only host-passthrough CPUs are written; vmx/svm go to nestedhvm', () => {
    const dom = baseDomain();
    dom.cpu = { mode: 'host-model', features: [{ policy: 'require', name: 'aes' }] };
    assert.equal(lineOf(xlToNative(dom), 'cpuid'), undefined);
    dom.cpu = { mode: 'host-passthrough', features: [{ policy: 'disable', name: 'vmx' }, { policy: 'require', name: 'cx16' }] };
    assert.equal(lineOf(xlToNative(dom), 'cpuid'), 'cpuid = "host,cmpxchg16=1"');
  });
});

describe('vNUMA', () => {
  const vnuma = (nodes: string) => `vcpus = 4\nvnuma = [ ${nodes} ]`;

  test('cells with distances', () => {
    const d = hvm(vnuma('[ "pnode=0", "size=1024", "vcpus=0-1", "vdistances=10,21" ], [ "pnode=1", "size=1024", "vcpus=2,3", "vdistances=21,10" ]'));
    assert.deepEqual(d.cpu, {
      features: [],
      numa: [
        { id: 0, cpus: '0-1', memory: 1048576, distances: [{ id: 0, value: 10 }, { id: 1, value: 21 }] },
        { id: 1, cpus: '2-3', memory: 1048576, distances: [{ id: 0, value: 21 }, { id: 1, value: 10 }] },
      ],
    });
  });

  test("libvirt's refusals", () => {
    throwsVirt(() => hvm(vnuma('[ "pnode=0", "size=1024" ]')), 'Incomplete vnuma configuration for vnode 0');
    throwsVirt(() => hvm(vnuma('[ "pnode=1", "size=1024", "vcpus=0" ]')), "vnuma vnode 0 contains invalid pnode value '1'");
    throwsVirt(() => hvm(vnuma('[ "pnode=0", "size=1024", "vcpus=0", "vdistances=10,20" ]')), "doesn't fit the number of specified vnodes 1");
    throwsVirt(() => hvm(vnuma('[ "pnode=0", "size=1024", "vcpus=0", "bogus=1" ]')), 'Invalid vnuma configuration for vnode 0');
    throwsVirt(() => hvm(vnuma('[ "pnode" ]')), "vnuma vnode invalid format 'pnode'");
    throwsVirt(() => hvm(vnuma('[ "pnode=0", "size=1024", "vcpus=0-5" ]')), 'vnuma configuration contains 6 vcpus, which is greater than 4 maxvcpus');
    throwsVirt(() => hvm(vnuma('')), 'Cannot set an empty mem_nodes set');
    throwsVirt(() => hvm(vnuma('[ "pnode=0", "size=1024", "vcpus=0", "vdistances=10,9" ], [ "pnode=1", "size=1", "vcpus=1" ]')), 'Distance value of 9');
    throwsVirt(() => hvm(vnuma('[ "pnode=0", "size=1024", "vcpus=x" ]')), "Failed to parse vcpus 'x'");
  });

  test('formatting completes a partial distance table', () => {
    const dom = baseDomain();
    dom.vcpu = { count: 3 };
    dom.cpu = {
      features: [],
      numa: [
        { id: 0, cpus: '0', memory: 2097152, distances: [{ id: 1, value: 21 }, { id: 2, value: 31 }] },
        { id: 1, cpus: '1', memory: 2097152 },
        { id: 2, cpus: '2', memory: 2097152 },
      ],
    };
    assert.equal(lineOf(xlToNative(dom), 'vnuma'),
      'vnuma = [ [ "pnode=0", "size=2048", "vcpus=0", "vdistances=10,21,31" ], [ "pnode=1", "size=2048", "vcpus=1", "vdistances=21,10,20" ], [ "pnode=2", "size=2048", "vcpus=2", "vdistances=31,20,10" ] ]');
  });
});

describe('controllers, USB, channels, SPICE, qemu arguments', () => {
  test('xenbus limits, in decimal or hexadecimal', () => {
    const d = pv('max_grant_frames = 0x40\nmax_event_channels = "2047"');
    assert.deepEqual(d.devices.controllers, [{ type: 'xenbus', index: 0, maxEventChannels: 2047, maxGrantFrames: 64 }]);
    assert.deepEqual(pv('').devices.controllers, [{ type: 'xenbus', index: 0 }]);
    throwsVirt(() => pv('max_grant_frames = "lots"'), 'config value max_grant_frames was malformed');
    const text = xlToNative(Object.assign(baseDomain('xen'), { devices: { ...emptyDevices(), controllers: d.devices.controllers } }));
    assert.equal(lineOf(text, 'max_event_channels'), 'max_event_channels = 2047');
    assert.equal(lineOf(text, 'max_grant_frames'), 'max_grant_frames = 64');
  });

  test('usbctrl and usbdev (hexadecimal numbers, as libvirt reads and writes them)', () => {
    const d = pv('usbctrl = [ "type=qusb,version=1,ports=10", "version=2", "type=pv,version=2", "ports=4," ]\nusbdev = [ "hostbus=1a,hostaddr=3", "hostbus=zz,hostaddr=1" ]');
    assert.deepEqual(d.devices.controllers.filter((c) => c.type === 'usb'), [
      { type: 'usb', index: 0, model: 'qusb1', ports: 16 },
      { type: 'usb', index: 1, model: 'qusb2', ports: 8 },
    ]);
    assert.deepEqual(d.devices.hostdevs, [{ mode: 'subsystem', type: 'usb', managed: 'no', usb: { bus: 26, device: 3 } }]);
    const text = xlToNative(Object.assign(baseDomain('xen'), { devices: { ...emptyDevices(), controllers: d.devices.controllers, hostdevs: d.devices.hostdevs } }));
    assert.equal(lineOf(text, 'usbctrl'), 'usbctrl = [ "type=qusb,version=1,ports=10", "type=qusb,version=2,ports=8" ]');
    assert.equal(lineOf(text, 'usbdev'), 'usbdev = [ "hostbus=1a,hostaddr=3" ]');
    throwsVirt(() => pv('usbdev = [ "hostbus=1" ]'), 'hostbus=1');
  });

  test('usbdevice inputs (HVM only)', () => {
    assert.deepEqual(hvm('usb = 1\nusbdevice = "tablet"').devices.inputs, [{ type: 'tablet', bus: 'usb' }]);
    assert.deepEqual(hvm('usbdevice = [ "mouse", "host:1234:5678", "keyboard" ]').devices.inputs, [
      { type: 'mouse', bus: 'usb' }, { type: 'keyboard', bus: 'usb' },
    ]);
    assert.deepEqual(pv('usbdevice = "tablet"').devices.inputs, []);
    throwsVirt(() => hvm('usbdevice = [ 1 ]'), 'config value usbdevice was malformed');
    const dom = baseDomain();
    dom.devices.inputs = [{ type: 'tablet', bus: 'usb' }];
    assert.deepEqual(keysOf(xlToNative(dom)).slice(-2), ['usb', 'usbdevice']);
    assert.equal(lineOf(xlToNative(dom), 'usbdevice'), 'usbdevice = "tablet"');
  });

  test('channels', () => {
    const d = pv('channel = [ "connection=socket,path=/s,name=a", "name=b,connection=pty", "connection=pty" ]');
    assert.deepEqual(d.devices.channels, [
      { source: { type: 'unix', mode: 'bind', path: '/s' }, target: { type: 'xen', name: 'a' } },
      { source: { type: 'pty' }, target: { type: 'xen', name: 'b' } },
      { source: { type: 'pty' }, target: { type: 'xen' } },
    ]);
    throwsVirt(() => pv('channel = [ "connection=tcp,name=x" ]'), 'connection=tcp,name=x');
    const dom = baseDomain('xen');
    dom.devices.channels = d.devices.channels.slice(0, 2);
    assert.equal(lineOf(xlToNative(dom), 'channel'), 'channel = [ "connection=socket,path=/s,name=a", "connection=pty,name=b" ]');
  });

  test('spice', () => {
    const d = hvm('vnc = 1\nspice = 1\nspicehost = "0.0.0.0"\nspiceport = 5901\nspicedisable_ticketing = 1\nspiceagent_mouse = 1');
    assert.deepEqual(d.devices.graphics, [{
      type: 'spice', listens: [{ type: 'address', address: '0.0.0.0' }], port: 5901, autoport: 'no',
      mouseMode: 'client', clipboardCopypaste: 'no',
    }]);
    throwsVirt(() => hvm('spice = 1'), 'config value spicepasswd was missing');
    assert.deepEqual(pv('spice = 1').devices.graphics, []);
    const text = xlToNative(d);
    assert.deepEqual(keysOf(text).filter((k) => k.startsWith('spice') || k === 'vnc' || k === 'sdl'), [
      'sdl', 'vnc', 'spice', 'spicehost', 'spiceport', 'spicetls_port', 'spicedisable_ticketing', 'spiceagent_mouse', 'spicevdagent',
    ]);
  });

  test('device_model_args', () => {
    const d = hvm('device_model_args = [ "-debugcon", "file:/tmp/x" ]');
    assert.deepEqual(d.xenCommandline, ['-debugcon', 'file:/tmp/x']);
    assert.equal(lineOf(xlToNative(d), 'device_model_args'), 'device_model_args = [ "-debugcon", "file:/tmp/x" ]');
  });
});

describe('what xl.cfg(5) allows beyond libvirt', () => {
  test('hexadecimal numbers and comments inside lists', () => {
    const d = hvm(`memory = 0x200
disk = [ # the system disk
  "/img/a,raw,xvda",   # trailing comment
  # a commented-out disk: "/img/b,raw,xvdb",
]`);
    assert.equal(d.currentMemory, 512 * 1024);
    assert.deepEqual(d.devices.disks.map((x) => x.target.dev), ['xvda']);
  });

  test('cpus = "all", a viridian group list and a negative rtc_timeoffset', () => {
    const d = hvm('cpus = "all"\nviridian = [ "base", "freq" ]\nrtc_timeoffset = -3600');
    assert.equal(d.vcpu.cpuset, undefined);
    assert.equal(d.features?.viridian, true);
    assert.equal(d.clock.adjustment, -3600);
    assert.equal(lineOf(xlToNative(d), 'rtc_timeoffset'), 'rtc_timeoffset = -3600');
  });
});

describe('bad input never crashes', () => {
  test('wrong value types are errors naming the key', () => {
    throwsVirt(() => pv('kernel = 1'), 'kernel');
    throwsVirt(() => hvm('bios = [ "ovmf" ]'), 'bios');
    throwsVirt(() => hvm('spice = [ 1 ]'), 'spice');
    throwsVirt(() => hvm('nestedhvm = [ 1 ]'), 'nestedhvm');
    throwsVirt(() => pv('max_event_channels = [ 1 ]'), 'max_event_channels');
  });

  test('names of Object.prototype members are just unknown names', () => {
    throwsVirt(() => parseXlDiskSpec('format=constructor,vdev=xvda,target=/x'), 'unknown value for format');
    throwsVirt(() => hvm('cpuid = "host,tm=toString"'), 'Invalid libxl cpuid value');
    assert.deepEqual(hvm('usbdevice = "constructor"').devices.inputs, []);
    const disk: DiskDevice = { type: 'file', device: 'disk', driver: { name: 'toString', type: '__proto__' }, source: { path: '/x' }, target: { dev: 'xvda' } };
    assert.equal(formatXlDisk(disk), 'format=raw,vdev=xvda,access=rw,backendtype=,target=/x');
  });

  test('random configurations parse or throw a VirtError', () => {
    const str = fc.constantFrom('"x"', '"0"', '"1"', '1', '0', '-1', '[ ]', '[ "a=b" ]', '[ [ "pnode=0" ] ]', '[ 1, "x" ]', '"host,tm=0"', '"hvm"',
      '[ "-fda", "/f" ]', '[ "-fdb", "/f", "-fdb" ]', '[ "-fda", "/f", "--fda", "/g" ]');
    const key = fc.constantFrom('builder', 'type', 'disk', 'vnuma', 'cpuid', 'spice', 'usbctrl', 'usbdev', 'channel',
      'usbdevice', 'device_model_args', 'boot', 'bios', 'kernel', 'cmdline', 'nestedhvm', 'max_grant_frames', 'vif', 'serial');
    fc.assert(fc.property(fc.uniqueArray(fc.tuple(key, str), { selector: ([k]) => k, maxLength: 6 }), (pairs) => {
      const text = PV_HEAD + pairs.map(([k, v]) => `${k} = ${v}`).join('\n');
      try {
        // What reads must also write back (or be refused with a VirtError).
        xlToNative(xlFromNative(text));
      } catch (e) {
        assert.ok(e instanceof VirtError, `${String(e)} for\n${text}`);
      }
    }), { numRuns: 1000 });
  });
});

describe('option strings', () => {
  test("libvirt's walk over key=value items", () => {
    assert.deepEqual(splitXlOptions('a=1, b=2,,c=3'), [{ key: 'a', value: '1' }, { key: 'b', value: '2' }, { key: 'c', value: '3' }]);
    assert.deepEqual(splitXlOptions('junk,a=1'), [{ key: 'a', value: '1' }]);
    assert.equal(splitXlOptions('a=1,junk'), null);
    assert.equal(splitXlOptions('a=1,'), null);
  });
});

describe('the conformance corpus at the model level', () => {
  const dir = (sub: string) => new URL(`${sub}/`, CORPUS);
  const cases = (sub: string, ext: string) => readdirSync(dir(sub)).filter((f) => f.endsWith(ext)).sort();

  test('every xl input converts, and writing the result reads back to the same model', () => {
    for (const f of cases('from-native', '.cfg')) {
      const text = readFileSync(new URL(f, dir('from-native')), 'utf8');
      const d = xlToDomain(parseConf(text, f));
      const again = xlToDomain(domainToXl(d));
      // Writing loses nothing xl can express, so reading it back gives the same definition.
      assert.deepEqual(again.devices.disks, d.devices.disks, f);
      assert.deepEqual(again.os, d.os, f);
      assert.deepEqual(again.cpu, d.cpu, f);
      assert.deepEqual(again.devices.controllers, d.devices.controllers, f);
      assert.deepEqual(again.devices.channels, d.devices.channels, f);
      assert.deepEqual(again.devices.hostdevs, d.devices.hostdevs, f);
      assert.deepEqual(again.xenCommandline, d.xenCommandline, f);
    }
  });
});

describe('vif entries', () => {
  test("an empty entry (Xen's xlexample files: vif = [ '' ]) is an interface with every default", () => {
    const dom = pv(`kernel = "/boot/vmlinuz"\nvif = [ '' ]\n`);
    assert.equal(dom.devices.interfaces.length, 1);
    assert.equal(dom.devices.interfaces[0]!.type, 'ethernet');
    assert.equal(dom.devices.interfaces[0]!.mac, undefined);
    assert.equal(lineOf(xlToNative(dom), 'vif'), 'vif = [ "" ]');
  });

  test('an entry of blanks is still refused, naming it', () => {
    throwsVirt(() => pv(`kernel = "/boot/vmlinuz"\nvif = [ ' ' ]\n`), "' '");
  });
});
