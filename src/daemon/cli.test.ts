/**
 * xenvirt's own CLI through xenvirtd: `-c test+unix:///default?socket=…` goes through the
 * pure-TypeScript RPC client (src/rpc/client.ts) to the daemon, and sees what virsh sees.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { XENVIRT, run, startDaemonProcess, type DaemonProcess } from './harness.js';

let d: DaemonProcess;

before(async () => {
  d = await startDaemonProcess();
});

after(async () => {
  await d.stop();
  fs.rmSync(d.dir, { recursive: true, force: true });
});

const env = { ...process.env, LC_ALL: 'C', XENVIRT_DEFAULT_URI: '', LIBVIRT_DEFAULT_URI: '' };
const xenvirt = (args: string[]) => run(process.execPath, [XENVIRT, '-c', d.uri, ...args], { env });

async function ok(args: string[]): Promise<string> {
  const r = await xenvirt(args);
  assert.equal(r.code, 0, `xenvirt ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

test('list, dominfo, dumpxml through the daemon', async () => {
  assert.match(await ok(['list', '--all']), /^ Id {3}Name {12}State\n-+\n 0 {4}Domain-0 {8}running\n 1 {4}pv-bootloader {3}running\n -    hvm-bios {8}shut off\n/);
  assert.match(await ok(['dominfo', 'hvm-bios']), /^Id: {13}-\nName: {11}hvm-bios\nUUID: {11}4dea22b3-1d52-d8f3-2516-782e98ab3fa0\n/);
  assert.match(await ok(['dumpxml', 'hvm-bios']), /^<domain type='xen'>\n {2}<name>hvm-bios<\/name>/);
  assert.equal((await ok(['uri'])).trim(), d.uri);
  const missing = await xenvirt(['dominfo', 'nosuch']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /nosuch/);
});

test('define, start, destroy, undefine, and an event, through the daemon', async () => {
  const file = path.join(d.dir, 'cli-guest.xml');
  fs.writeFileSync(file, "<domain type='xen'><name>cli-guest</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type>linux</type><kernel>/boot/vmlinuz</kernel></os></domain>\n");
  assert.match(await ok(['define', file]), /Domain 'cli-guest' defined from /);
  const events = xenvirt(['event', '--event', 'lifecycle', '--loop', '--timeout', '8']);
  // time for node to start and register (generous: CI machines can be busy)
  await new Promise((r) => setTimeout(r, 3000));
  assert.match(await ok(['start', 'cli-guest']), /Domain 'cli-guest' started/);
  assert.match(await ok(['domstate', 'cli-guest']), /^running/);
  assert.match(await ok(['destroy', 'cli-guest']), /Domain 'cli-guest' destroyed/);
  assert.match(await ok(['undefine', 'cli-guest']), /Domain 'cli-guest' has been undefined/);
  const ev = await events;
  assert.match(ev.stdout, /event 'lifecycle' for domain 'cli-guest': Started Booted\n/);
  assert.match(ev.stdout, /event 'lifecycle' for domain 'cli-guest': Stopped Destroyed\n/);
  assert.match(ev.stdout, /event 'lifecycle' for domain 'cli-guest': Undefined Removed\n/);
});
