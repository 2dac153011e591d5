/**
 * Real virsh (libvirt 9.0's client) against bin/xenvirtd, command by command, each checked
 * against the output virsh prints. The daemon runs as its own process on a temporary socket,
 * serving the in-memory simulated host (test:///default with the fixture guests).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { haveTool, requireTool, SEED_DIR, CONFORMANCE_DIR } from '../../test/support.js';
import { openRemote, type RemoteConnection } from '../rpc/client.js';
import { startDaemonProcess, virsh, type DaemonProcess } from './harness.js';

let d: DaemonProcess | undefined;
let conn: RemoteConnection | undefined;

const GUEST = `<domain type='xen'>
  <name>virsh-guest</name>
  <uuid>3c6a2f0e-8d1b-4a5c-9e7f-1b2c3d4e5f60</uuid>
  <memory unit='KiB'>262144</memory>
  <currentMemory unit='KiB'>262144</currentMemory>
  <vcpu current='2'>4</vcpu>
  <os>
    <type arch='x86_64' machine='xenpv'>linux</type>
    <kernel>/boot/vmlinuz-xen</kernel>
  </os>
</domain>
`;

before(async () => {
  if (!haveTool('virsh')) return;
  d = await startDaemonProcess();
  conn = await openRemote(d.uri, { keepalive: false });
});

after(async () => {
  await conn?.close().catch(() => {});
  if (d) {
    const r = await d.stop('SIGTERM');
    // SIGTERM is a clean stop: exit status 0, sockets removed
    assert.deepEqual(r, { code: 0, signal: null }, d.stderr());
    assert.equal(fs.existsSync(d.socket), false);
    fs.rmSync(d.dir, { recursive: true, force: true });
  }
});

async function ok(args: string[], expected?: string | RegExp): Promise<string> {
  const r = await virsh(d!.uri, args);
  assert.equal(r.code, 0, `virsh ${args.join(' ')}: ${r.stderr}`);
  if (typeof expected === 'string') assert.equal(r.stdout, expected, `virsh ${args.join(' ')}`);
  else if (expected) assert.match(r.stdout, expected, `virsh ${args.join(' ')}`);
  return r.stdout;
}

async function state(name: string): Promise<string> {
  return (await ok(['domstate', '--reason', name])).trim();
}

test('ready line and the connection basics: version, uri, hostname, nodeinfo, capabilities', async (t) => {
  if (!requireTool(t, 'virsh')) return;
  assert.match(d!.stdout(), /^xenvirtd: ready/m);
  await ok(['version'], 'Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\nUsing API: Xen 9.0.0\nRunning hypervisor: Xen 4.17.0\n\n');
  await ok(['version', '--daemon'], /Running against daemon: 9\.0\.0\n/);
  await ok(['uri'], `${d!.uri}\n\n`);
  await ok(['hostname'], `${os.hostname()}\n\n`);
  await ok(['nodeinfo'], [
    'CPU model:           x86_64',
    'CPU(s):              8',
    'CPU frequency:       2400 MHz',
    'CPU socket(s):       1',
    'Core(s) per socket:  4',
    'Thread(s) per core:  2',
    'NUMA cell(s):        1',
    'Memory size:         16777216 KiB',
    '', '',
  ].join('\n'));
  const caps = await ok(['capabilities']);
  assert.equal(caps, `${await conn!.getCapabilities()}\n\n`);
  assert.match(caps, /^<capabilities>\n/);
  assert.match(caps, /<os_type>xen<\/os_type>/);
  assert.match(caps, /<os_type>hvm<\/os_type>/);
});

test('list --all, dominfo, domstate --reason, dumpxml', async (t) => {
  if (!requireTool(t, 'virsh')) return;
  await ok(['list', '--all'], [
    ' Id   Name            State',
    '--------------------------------',
    ' 0    Domain-0        running',
    ' 1    pv-bootloader   running',
    ' -    hvm-bios        shut off',
    ' -    hvm-kernel      shut off',
    ' -    pv-kernel       shut off',
    '', '',
  ].join('\n'));
  await ok(['list', '--all', '--name'], 'Domain-0\npv-bootloader\nhvm-bios\nhvm-kernel\npv-kernel\n\n');
  await ok(['dominfo', 'hvm-bios'], [
    'Id:             -',
    'Name:           hvm-bios',
    'UUID:           4dea22b3-1d52-d8f3-2516-782e98ab3fa0',
    'OS Type:        hvm',
    'State:          shut off',
    'CPU(s):         1',
    'Max memory:     524288 KiB',
    'Used memory:    524288 KiB',
    'Persistent:     yes',
    'Autostart:      disable',
    'Managed save:   no',
    '', '',
  ].join('\n'));
  const running = await ok(['dominfo', 'pv-bootloader']);
  assert.equal(running.replace(/CPU time:\s+[\d.]+s/, 'CPU time:       Xs'), [
    'Id:             1',
    'Name:           pv-bootloader',
    'UUID:           9f3b6c1e-2d4a-4e8b-9c7d-5a1f0e2b3c40',
    // libxl answers virDomainGetOSType with virDomainOSTypeToString: 'xen' for PV (the XML says linux)
    'OS Type:        xen',
    'State:          running',
    'CPU(s):         1',
    'CPU time:       Xs',
    'Max memory:     131072 KiB',
    'Used memory:    131072 KiB',
    'Persistent:     yes',
    'Autostart:      enable',
    'Managed save:   no',
    '', '',
  ].join('\n'));
  await ok(['domstate', '--reason', 'pv-bootloader'], 'running (booted)\n\n');
  await ok(['domstate', 'hvm-bios'], 'shut off\n\n');
  await ok(['domid', 'pv-bootloader'], '1\n\n');
  await ok(['domname', '1'], 'pv-bootloader\n\n');
  await ok(['domuuid', 'hvm-bios'], '4dea22b3-1d52-d8f3-2516-782e98ab3fa0\n\n');
  await ok(['domstate', '9f3b6c1e-2d4a-4e8b-9c7d-5a1f0e2b3c40'], 'running\n\n');
  const xml = await ok(['dumpxml', 'hvm-bios']);
  assert.equal(xml, `${await conn!.getXmlDesc(await conn!.lookupByName('hvm-bios'))}\n`);
  assert.match(xml, /^<domain type='xen'>\n  <name>hvm-bios<\/name>\n  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0<\/uuid>\n/);
  const missing = await virsh(d!.uri, ['dominfo', 'nosuch']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /error: failed to get domain 'nosuch'\n/);
});

test('define, start, suspend, resume, setmem, setmaxmem, setvcpus, autostart, save, restore, reboot, shutdown, destroy, undefine', async (t) => {
  if (!requireTool(t, 'virsh')) return;
  const file = path.join(d!.dir, 'guest.xml');
  fs.writeFileSync(file, GUEST);
  await ok(['define', file], `Domain 'virsh-guest' defined from ${file}\n\n`);
  await ok(['domstate', '--reason', 'virsh-guest'], 'shut off (unknown)\n\n');
  await ok(['start', 'virsh-guest'], "Domain 'virsh-guest' started\n\n");
  assert.equal(await state('virsh-guest'), 'running (booted)');
  const again = await virsh(d!.uri, ['start', 'virsh-guest']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /error: Domain is already active/);

  await ok(['suspend', 'virsh-guest'], "Domain 'virsh-guest' suspended\n\n");
  assert.equal(await state('virsh-guest'), 'paused (user)');
  await ok(['resume', 'virsh-guest'], "Domain 'virsh-guest' resumed\n\n");
  assert.equal(await state('virsh-guest'), 'running (unpaused)');

  await ok(['setmem', 'virsh-guest', '131072'], '\n');
  await ok(['dominfo', 'virsh-guest'], /Used memory:    131072 KiB\n/);
  await ok(['setmaxmem', 'virsh-guest', '300000', '--config'], '\n');
  await ok(['dumpxml', '--inactive', 'virsh-guest'], /<memory unit='KiB'>300000<\/memory>/);
  await ok(['setvcpus', 'virsh-guest', '1'], '\n');
  await ok(['dominfo', 'virsh-guest'], /CPU\(s\):         1\n/);
  await ok(['setvcpus', 'virsh-guest', '3', '--config'], '\n');
  await ok(['dumpxml', '--inactive', 'virsh-guest'], /<vcpu placement='static' current='3'>4<\/vcpu>/);

  await ok(['autostart', 'virsh-guest'], "Domain 'virsh-guest' marked as autostarted\n\n");
  await ok(['dominfo', 'virsh-guest'], /Autostart:      enable\n/);
  await ok(['autostart', '--disable', 'virsh-guest'], "Domain 'virsh-guest' unmarked as autostarted\n\n");
  await ok(['dominfo', 'virsh-guest'], /Autostart:      disable\n/);

  // save/restore paths are the daemon's (same host here)
  const img = path.join(d!.dir, 'virsh-guest.save');
  await ok(['save', 'virsh-guest', img], `\nDomain 'virsh-guest' saved to ${img}\n\n`);
  assert.equal(fs.existsSync(img), true);
  assert.equal(await state('virsh-guest'), 'shut off (saved)');
  await ok(['restore', img], `Domain restored from ${img}\n\n`);
  assert.equal(await state('virsh-guest'), 'running (restored)');

  await ok(['reboot', 'virsh-guest'], "Domain 'virsh-guest' is being rebooted\n\n");
  await ok(['shutdown', 'virsh-guest'], "Domain 'virsh-guest' is being shutdown\n\n");
  for (let i = 0; i < 100 && (await state('virsh-guest')) !== 'shut off (shutdown)'; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await state('virsh-guest'), 'shut off (shutdown)');

  await ok(['start', 'virsh-guest'], "Domain 'virsh-guest' started\n\n");
  await ok(['destroy', 'virsh-guest'], "Domain 'virsh-guest' destroyed\n\n");
  assert.equal(await state('virsh-guest'), 'shut off (destroyed)');
  const off = await virsh(d!.uri, ['destroy', 'virsh-guest']);
  assert.equal(off.code, 1);
  assert.equal(off.stderr, "error: Failed to destroy domain 'virsh-guest'\nerror: Requested operation is not valid: domain is not running\n");

  await ok(['undefine', 'virsh-guest'], "Domain 'virsh-guest' has been undefined\n\n");
  assert.equal((await virsh(d!.uri, ['domstate', 'virsh-guest'])).code, 1);
});

test('domxml-from-native xen-xm (the seed rhel5pv file) and domxml-to-native', async (t) => {
  if (!requireTool(t, 'virsh')) return;
  const expected = fs.readFileSync(path.join(SEED_DIR, 'rhel5pv-libvirt9.xml'), 'utf8');
  await ok(['domxml-from-native', 'xen-xm', path.join(SEED_DIR, 'rhel5pv.cfg')], `${expected}\n`);
  // libxl formats from-native output without VIR_DOMAIN_DEF_FORMAT_SECURE: the VNC password is dropped
  const xm = path.join(CONFORMANCE_DIR, 'xm');
  const withPasswd = fs.readFileSync(path.join(xm, 'from-native', 'paravirt-net-vifname.xml'), 'utf8');
  assert.match(withPasswd, / passwd='123poi'/);
  await ok(['domxml-from-native', 'xen-xm', path.join(xm, 'from-native', 'paravirt-net-vifname.cfg')], `${withPasswd.replace(" passwd='123poi'", '')}\n`);
  const cfg = fs.readFileSync(path.join(xm, 'to-native', 'paravirt-net-vifname.cfg'), 'utf8');
  await ok(['domxml-to-native', 'xen-xm', path.join(xm, 'to-native', 'paravirt-net-vifname.xml')], `${cfg}\n`);
  const bad = await virsh(d!.uri, ['domxml-from-native', 'qemu-argv', path.join(SEED_DIR, 'rhel5pv.cfg')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /error: .*qemu-argv/);
});

test('event --all --loop --timeout catches lifecycle events made by another client', async (t) => {
  if (!requireTool(t, 'virsh')) return;
  const events = virsh(d!.uri, ['event', '--all', '--loop', '--timeout', '5']);
  // give virsh time to register its 27 callbacks
  await new Promise((r) => setTimeout(r, 2000));
  await ok(['start', 'pv-kernel']);
  await ok(['suspend', 'pv-kernel']);
  await ok(['destroy', 'pv-kernel']);
  const r = await events;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, [
    "event 'lifecycle' for domain 'pv-kernel': Started Booted",
    "event 'lifecycle' for domain 'pv-kernel': Suspended Paused",
    "event 'lifecycle' for domain 'pv-kernel': Stopped Destroyed",
    'event loop timed out',
    'events received: 3',
    '', '',
  ].join('\n'));
  // nothing happens: virsh reports it with status 1
  const none = await virsh(d!.uri, ['event', '--event', 'lifecycle', '--timeout', '1']);
  assert.equal(none.code, 1);
  assert.match(none.stdout, /events received: 0/);
});

test('xen:///system on a machine that is not a Xen host: a clear error', async (t) => {
  if (!requireTool(t, 'virsh')) return;
  if (fs.existsSync('/proc/xen/capabilities')) return t.skip('this is a Xen host');
  const r = await virsh(`xen+unix:///system?socket=${d!.socket}`, ['list']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: failed to connect to the hypervisor\nerror: internal error: libxenlight state driver is not active: this machine is not a Xen host/);
});
