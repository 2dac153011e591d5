import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VirtError } from '../errors.js';
import { isXenControlDomain, openConnection, simulatorOf, driverOf } from './open.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-open-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function refused(uri: string | undefined, code: string, message: RegExp): Promise<void> {
  await assert.rejects(openConnection(uri), (e: unknown) => {
    assert.ok(e instanceof VirtError, `${uri}: ${e}`);
    assert.equal(e.codeName, code, `${uri}: ${e.message}`);
    assert.match(e.message, message);
    return true;
  });
}

test('test:/// needs a path, like libvirt\'s test driver', async () => {
  await refused('test:///', 'INVALID_ARG', /^invalid argument: testOpen: supply a path or use test:\/\/\/default$/);
  await refused('test://', 'INVALID_ARG', /supply a path/);
});

test('test:///DIR: created on demand; a file is refused', async () => {
  const host = path.join(dir, 'new', 'host');
  const c = await openConnection(`test://${host}`);
  assert.equal(await c.getUri(), `test://${host}`);
  assert.ok(fs.statSync(host).isDirectory());
  assert.ok(simulatorOf(c));
  assert.ok(driverOf(c));
  await c.close();
  const file = path.join(dir, 'plain-file');
  fs.writeFileSync(file, 'x');
  await refused(`test://${file}`, 'INVALID_ARG', /is not a directory/);
});

test('xen:/// on a machine that is not a Xen control domain: a clear error', async (t) => {
  if (isXenControlDomain()) {
    t.skip('this machine is a Xen dom0');
    return;
  }
  for (const uri of ['xen:///', 'xen:///system', 'xen://', 'libxl:///system']) {
    await refused(uri, 'INTERNAL_ERROR', /^internal error: libxenlight state driver is not active: this machine is not a Xen host/);
  }
  await refused('xen:///session', 'INTERNAL_ERROR', /^internal error: unexpected Xen URI path '\/session', try xen:\/\/\/system$/);
});

test('control-domain detection reads /proc/xen/capabilities', () => {
  const caps = path.join(dir, 'caps');
  fs.writeFileSync(caps, 'control_d\n');
  assert.equal(isXenControlDomain(caps), true);
  fs.writeFileSync(caps, '\n');
  assert.equal(isXenControlDomain(caps), false);
  assert.equal(isXenControlDomain(path.join(dir, 'missing')), false);
});

test('remote URIs go to the RPC client, or say it is not there', async () => {
  let hasClient = false;
  try {
    hasClient = typeof (await import(new URL('../rpc/client.js', import.meta.url).href) as { openRemote?: unknown }).openRemote === 'function';
  } catch { /* not built */ }
  if (hasClient) return; // the RPC client's own tests cover it
  for (const uri of ['xen+ssh://root@host.example/system', 'xen+unix:///system?socket=/nonexistent', 'xen://host.example/', 'test+unix:///default']) {
    await refused(uri, 'NO_CONNECT', /^no connection driver available for .*: remote transport not available yet/);
  }
});

test('unknown drivers and malformed URIs', async () => {
  await refused('qemu:///system', 'NO_CONNECT', /^no connection driver available for qemu:\/\/\/system$/);
  await refused('not a uri', 'INVALID_ARG', /malformed connection URI/);
});

test('the default URI comes from XENVIRT_DEFAULT_URI, then LIBVIRT_DEFAULT_URI', async () => {
  const saved = { x: process.env['XENVIRT_DEFAULT_URI'], l: process.env['LIBVIRT_DEFAULT_URI'] };
  try {
    process.env['XENVIRT_DEFAULT_URI'] = 'test:///default';
    process.env['LIBVIRT_DEFAULT_URI'] = 'qemu:///system';
    let c = await openConnection();
    assert.equal(await c.getUri(), 'test:///default');
    await c.close();
    delete process.env['XENVIRT_DEFAULT_URI'];
    process.env['LIBVIRT_DEFAULT_URI'] = `test://${dir}/via-libvirt`;
    c = await openConnection();
    assert.equal(await c.getUri(), `test://${dir}/via-libvirt`);
    await c.close();
  } finally {
    for (const [k, v] of [['XENVIRT_DEFAULT_URI', saved.x], ['LIBVIRT_DEFAULT_URI', saved.l]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});
