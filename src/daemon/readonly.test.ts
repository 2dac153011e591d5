/**
 * `virsh -r` on xenvirtd's read-only socket: read commands work; every command that would
 * change something is refused with libvirt's own message, naming the API virsh called.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { haveTool, requireTool, SEED_DIR } from '../../test/support.js';
import { startDaemonProcess, virsh, type DaemonProcess } from './harness.js';

let d: DaemonProcess | undefined;

before(async () => {
  if (haveTool('virsh')) d = await startDaemonProcess();
});

after(async () => {
  if (d) {
    await d.stop();
    fs.rmSync(d.dir, { recursive: true, force: true });
  }
});

const ro = (args: string[]) => virsh(d!.roUri, args, { readonly: true });

test('read commands work on the read-only socket', async (t) => {
  if (!requireTool(t, 'virsh')) return;
  for (const args of [['list', '--all'], ['dominfo', 'pv-bootloader'], ['domstate', '--reason', 'pv-bootloader'],
    ['dumpxml', 'hvm-bios'], ['nodeinfo'], ['capabilities'], ['hostname'], ['version'], ['domuuid', 'hvm-bios']]) {
    const r = await ro(args);
    assert.equal(r.code, 0, `virsh -r ${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, '');
  }
  assert.match((await ro(['list', '--all'])).stdout, / 1 {4}pv-bootloader {3}running\n/);
  // a read-only client still gets events (it only listens)
  const ev = await ro(['event', '--event', 'lifecycle', '--timeout', '1']);
  assert.match(ev.stdout, /events received: 0/);
  // virsh -r on the read-write socket asks for a read-only connection: the same rules apply
  const rw = await virsh(d!.uri, ['destroy', 'pv-bootloader'], { readonly: true });
  assert.equal(rw.code, 1);
  assert.match(rw.stderr, /operation forbidden: read only access prevents virDomainDestroy/);
});

test('every mutating command is denied, with the API libvirt names', async (t) => {
  if (!requireTool(t, 'virsh')) return;
  const xml = path.join(d!.dir, 'ro-guest.xml');
  fs.writeFileSync(xml, "<domain type='xen'><name>ro-guest</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type>linux</type><kernel>/k</kernel></os></domain>\n");
  const save = path.join(d!.dir, 'x.save');
  const cases: Array<[string[], string]> = [
    [['define', xml], 'read only access prevents virDomainDefineXML'],
    [['create', xml], 'read only access prevents virDomainCreateXML'],
    [['undefine', 'hvm-bios'], 'read only access prevents virDomainUndefineFlags'],
    [['start', 'hvm-bios'], 'read only access prevents virDomainCreate'],
    [['shutdown', 'pv-bootloader'], 'read only access prevents virDomainShutdown'],
    [['reboot', 'pv-bootloader'], 'read only access prevents virDomainReboot'],
    [['destroy', 'pv-bootloader'], 'read only access prevents virDomainDestroy'],
    [['suspend', 'pv-bootloader'], 'read only access prevents virDomainSuspend'],
    [['resume', 'pv-bootloader'], 'read only access prevents virDomainResume'],
    [['setmem', 'pv-bootloader', '65536'], 'read only access prevents virDomainSetMemoryFlags'],
    [['setmaxmem', 'hvm-bios', '600000', '--config'], 'read only access prevents virDomainSetMemoryFlags'],
    [['setvcpus', 'pv-bootloader', '1'], 'read only access prevents virDomainSetVcpus'],
    [['setvcpus', 'hvm-bios', '1', '--config'], 'read only access prevents virDomainSetVcpusFlags'],
    [['autostart', 'hvm-bios'], 'read only access prevents virDomainSetAutostart'],
    [['autostart', '--disable', 'pv-bootloader'], 'read only access prevents virDomainSetAutostart'],
    [['save', 'pv-bootloader', save], 'read only access prevents virDomainSave'],
    [['restore', save], 'read only access prevents virDomainRestore'],
    [['managedsave', 'pv-bootloader'], 'read only access prevents virDomainManagedSave'],
    [['domxml-from-native', 'xen-xm', path.join(SEED_DIR, 'rhel5pv.cfg')], 'read only access prevents virConnectDomainXMLFromNative'],
    [['domxml-to-native', 'xen-xm', xml], 'read only access prevents virConnectDomainXMLToNative'],
    [['dumpxml', '--security-info', 'hvm-bios'], 'virDomainGetXMLDesc with secure flag'],
  ];
  for (const [args, why] of cases) {
    const r = await ro(args);
    assert.equal(r.code, 1, `virsh -r ${args.join(' ')} must fail: ${r.stdout}`);
    assert.match(r.stderr, new RegExp(`error: operation forbidden: ${why}\n`), `virsh -r ${args.join(' ')}`);
  }
  // nothing changed
  const list = await virsh(d!.uri, ['list', '--all']);
  assert.equal(list.stdout, [
    ' Id   Name            State',
    '--------------------------------',
    ' 0    Domain-0        running',
    ' 1    pv-bootloader   running',
    ' -    hvm-bios        shut off',
    ' -    hvm-kernel      shut off',
    ' -    pv-kernel       shut off',
    '', '',
  ].join('\n'));
  assert.equal(fs.existsSync(save), false);
});
