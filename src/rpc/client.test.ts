import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { requireTool, SHARED_DIR } from '../../test/support.js';
import { VirtError } from '../errors.js';
import type { LifecycleEvent } from '../driver/connection.js';
import { openRemote } from './client.js';
import { RpcClient, keepalivePacket } from './rpc-client.js';
import { Dispatcher, serveStream, eventPacket, apiName } from './dispatcher.js';
import { FrameReader, encodePacket, MessageType, MessageStatus, type Packet } from './packet.js';
import { KEEPALIVE_PROGRAM, KeepaliveProcedure, Feature, domainRefToWire } from './protocol.js';
import { XdrReader } from './xdr.js';
import { RemoteError } from './generated/remote-types.js';
import { REMOTE_PROGRAM, RemoteProcedure } from './generated/remote-procedures.js';

const UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f';

function tmpDir(): string {
  return mkdtempSync('/tmp/xv-rpc-');
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve) => server.listen(path, resolve));
}

function until<T>(what: string, get: () => T | undefined, ms = 3000): Promise<T> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      const v = get();
      if (v !== undefined) return resolve(v);
      if (Date.now() - start > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

interface FakeCtx {
  calls: string[];
  sock?: Socket;
}

/** A small daemon built on the dispatcher skeleton: enough of the test driver for the client. */
function fakeDaemon(): { dispatcher: Dispatcher<FakeCtx>; opened: { name: string | null; flags: number }[] } {
  const opened: { name: string | null; flags: number }[] = [];
  const dom = domainRefToWire({ name: 'test', uuid: UUID, id: 1 });
  const d = new Dispatcher<FakeCtx>()
    .handle('AUTH_LIST', () => ({ types: [0] }))
    .handle('CONNECT_SUPPORTS_FEATURE', ({ feature }, ctx) => {
      ctx.calls.push(`feature ${feature}`);
      const supported: number[] = [Feature.PROGRAM_KEEPALIVE, Feature.REMOTE_EVENT_CALLBACK, Feature.REMOTE_CLOSE_CALLBACK];
      return { supported: supported.includes(feature) ? 1 : 0 };
    })
    .handle('CONNECT_OPEN', (args) => {
      opened.push(args);
    })
    .handle('CONNECT_GET_URI', () => ({ uri: 'test:///default' }))
    .handle('CONNECT_CLOSE', (_a, ctx) => {
      // libvirtd closes the connection right after its reply.
      setImmediate(() => ctx.sock?.end());
    })
    .handle('CONNECT_LIST_ALL_DOMAINS', () => ({ domains: [dom], ret: 1 }))
    .handle('DOMAIN_LOOKUP_BY_NAME', ({ name }) => {
      if (name !== 'test') throw new VirtError('NO_DOMAIN', 'Domain not found', 12);
      return { dom };
    })
    .handle('DOMAIN_GET_INFO', () => ({ state: 1, maxMem: 8388608n, memory: 2097152n, nrVirtCpu: 2, cpuTime: 42n }))
    .handle('CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY', ({ eventID }, ctx) => {
      ctx.calls.push(`register ${eventID}`);
      // Send the event right behind the reply: the client must not lose it.
      setImmediate(() => ctx.sock?.write(eventPacket('DOMAIN_EVENT_CALLBACK_LIFECYCLE', { callbackID: 7, msg: { dom, event: 3, detail: 0 } })));
      return { callbackID: 7 };
    })
    .handle('CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY', ({ callbackID }, ctx) => {
      ctx.calls.push(`deregister ${callbackID}`);
    });
  return { dispatcher: d, opened };
}

async function startFake(t: TestContext) {
  const dir = tmpDir();
  const path = join(dir, 'sock');
  const { dispatcher, opened } = fakeDaemon();
  const contexts: FakeCtx[] = [];
  const procs: number[] = [];
  const server = createServer((sock) => {
    const ctx: FakeCtx = { calls: [], sock };
    contexts.push(ctx);
    // Record the procedure numbers of the CALLs (a second FrameReader on the same bytes).
    const fr = new FrameReader();
    sock.on('data', (b: Buffer) => {
      for (const p of fr.push(b)) if (p.header.type === MessageType.CALL) procs.push(p.header.proc);
    });
    serveStream(sock, dispatcher, ctx);
  });
  await listen(server, path);
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, opened, contexts, procs, dir };
}

test('handshake, calls and close against the dispatcher skeleton', async (t) => {
  const fake = await startFake(t);
  const conn = await openRemote(`test+unix:///default?socket=${fake.path}`);
  assert.deepEqual(conn.features, { keepalive: true, eventCallbacks: true, closeCallbacks: true });
  // facts §2.1: AUTH_LIST, feature 10 before the open, CONNECT_OPEN, features 14 and 15.
  assert.deepEqual(fake.procs, [66, 60, 1, 60, 60]);
  assert.deepEqual(fake.contexts[0]!.calls, ['feature 10', 'feature 14', 'feature 15']);
  assert.deepEqual(fake.opened, [{ name: 'test:///default', flags: 0 }]);
  assert.equal(await conn.getUri(), `test+unix:///default?socket=${fake.path}`);

  assert.deepEqual(await conn.listAllDomains(3), [{ name: 'test', uuid: UUID, id: 1 }]);
  const dom = await conn.lookupByName('test');
  assert.deepEqual(await conn.getInfo(dom), { state: 1, maxMem: 8388608, memory: 2097152, nrVirtCpu: 2, cpuTime: 42n });
  await assert.rejects(conn.lookupByName('nosuch'), (e: VirtError) => e.codeName === 'NO_DOMAIN' && e.domain === 12 && e.message === 'Domain not found');
  await assert.rejects(conn.getOsType(dom), (e: VirtError) =>
    e.code === 3 && e.message === 'this function is not supported by the connection driver: virDomainGetOSType');

  await conn.close();
  assert.equal(fake.procs.at(-1), RemoteProcedure.CONNECT_CLOSE);
  await assert.rejects(conn.lookupByName('test'), /client socket is closed/);
});

test('read-only opens send flag 1; an empty name asks CONNECT_GET_URI', async (t) => {
  const fake = await startFake(t);
  const conn = await openRemote(`test+unix:///default?socket=${fake.path}`, { readonly: true, name: '', keepalive: false });
  assert.equal(conn.isReadOnly(), true);
  assert.deepEqual(fake.opened, [{ name: '', flags: 1 }]);
  assert.equal(await conn.getUri(), 'test:///default');
  // keepalive: false never probes feature 10 (python without an event loop).
  assert.deepEqual(fake.procs, [66, 1, 110, 60, 60]);
  await conn.close();
});

test('lifecycle events: register, a MESSAGE right behind the reply, deregister', async (t) => {
  const fake = await startFake(t);
  const conn = await openRemote(`test+unix:///default?socket=${fake.path}`);
  const events: LifecycleEvent[] = [];
  const off = await conn.onLifecycle((e) => events.push(e));
  await until('the event', () => events[0]);
  assert.deepEqual(events, [{ domain: { name: 'test', uuid: UUID, id: 1 }, event: 3, detail: 0 }]);
  await off();
  assert.deepEqual(fake.contexts[0]!.calls.slice(3), ['register 0', 'deregister 7']);
  await conn.close();
});

test('a failed open closes the socket without CONNECT_CLOSE', async (t) => {
  const dir = tmpDir();
  const path = join(dir, 'sock');
  const procs: number[] = [];
  const d = new Dispatcher<null>()
    .handle('AUTH_LIST', () => ({ types: [0] }))
    .handle('CONNECT_SUPPORTS_FEATURE', () => ({ supported: 0 }))
    .handle('CONNECT_OPEN', () => {
      throw new VirtError('NO_CONNECT', 'no connection driver available for nosuch:///', 0);
    });
  let closed = false;
  const server = createServer((sock) => {
    const fr = new FrameReader();
    sock.on('data', (b: Buffer) => fr.push(b).forEach((p) => procs.push(p.header.proc)));
    serveStream(sock, d, null, { onClose: () => (closed = true) });
  });
  await listen(server, path);
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await assert.rejects(openRemote('nosuch:///', { socketPath: path }), (e: VirtError) => e.codeName === 'NO_CONNECT' && e.domain === 0);
  await until('the server to see the close', () => (closed ? true : undefined));
  assert.deepEqual(procs, [66, 60, 1]);
});

test('connecting to a missing socket reads like libvirt', async () => {
  await assert.rejects(
    openRemote('test+unix:///default?socket=/nonexistent/xv.sock'),
    /Failed to connect socket to '\/nonexistent\/xv.sock': No such file or directory/,
  );
  await assert.rejects(openRemote('test+tls://host/default'), /'tls' transport is not implemented/);
});

/** Raw packets to the dispatcher: what a hostile or broken client gets back. */
test('dispatcher: hostile input gets libvirtd\'s error replies or a closed connection', async (t) => {
  const dir = tmpDir();
  const path = join(dir, 'sock');
  const d = new Dispatcher<null>().handle('DOMAIN_LOOKUP_BY_NAME', () => {
    throw new Error('handlers must not be reached with bad input');
  });
  const server = createServer((sock) => serveStream(sock, d, null));
  await listen(server, path);
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const exchange = async (bytes: Buffer): Promise<{ packets: Packet[]; closed: boolean }> => {
    const sock = connect({ path });
    const fr = new FrameReader();
    const packets: Packet[] = [];
    let closed = false;
    sock.on('data', (b: Buffer) => packets.push(...fr.push(b)));
    sock.on('close', () => (closed = true));
    sock.on('error', () => {});
    sock.write(bytes);
    await new Promise((r) => setTimeout(r, 100));
    sock.destroy();
    return { packets, closed };
  };
  const call = (prog: number, vers: number, proc: number, payload = Buffer.alloc(0)) =>
    encodePacket({ prog, vers, proc, type: MessageType.CALL, serial: 0xdeadbeef, status: 0 }, payload);
  const errorOf = (p: Packet) => RemoteError.dec(new XdrReader(p.payload));

  let r = await exchange(call(0x12345678, 1, 1));
  assert.equal(r.packets[0]!.header.status, MessageStatus.ERROR);
  assert.deepEqual(
    { ...r.packets[0]!.header },
    { prog: 0x12345678, vers: 1, proc: 1, type: MessageType.REPLY, serial: 0xdeadbeef, status: 1 },
  );
  assert.equal(errorOf(r.packets[0]!).message, 'Cannot find program 305419896 version 1');

  r = await exchange(call(REMOTE_PROGRAM, 1, 9999));
  assert.deepEqual({ code: errorOf(r.packets[0]!).code, domain: errorOf(r.packets[0]!).domain, message: errorOf(r.packets[0]!).message },
    { code: 39, domain: 7, message: 'unknown procedure: 9999' });

  r = await exchange(call(REMOTE_PROGRAM, 1, RemoteProcedure.DOMAIN_LOOKUP_BY_NAME)); // no args at all
  assert.equal(errorOf(r.packets[0]!).message, 'Unable to decode message payload');

  const truncated = Buffer.from([0, 0, 0, 10, 0x61]);
  r = await exchange(call(REMOTE_PROGRAM, 1, RemoteProcedure.DOMAIN_LOOKUP_BY_NAME, truncated));
  assert.equal(errorOf(r.packets[0]!).message, 'Unable to decode message payload');

  r = await exchange(keepalivePacket(KeepaliveProcedure.PING));
  assert.deepEqual({ prog: r.packets[0]!.header.prog, proc: r.packets[0]!.header.proc, serial: r.packets[0]!.header.serial },
    { prog: KEEPALIVE_PROGRAM, proc: KeepaliveProcedure.PONG, serial: 0 });

  r = await exchange(Buffer.from([0, 0, 0, 8, 0, 0, 0, 0]));
  assert.deepEqual(r, { packets: [], closed: true });
  const over = Buffer.alloc(4);
  over.writeUInt32BE(33554437);
  r = await exchange(over);
  assert.deepEqual(r, { packets: [], closed: true });

  // A stray STREAM packet is dropped silently; the next call is answered.
  const stream = encodePacket({ prog: REMOTE_PROGRAM, vers: 1, proc: 201, type: MessageType.STREAM, serial: 5, status: 2 }, Buffer.from('hi'));
  r = await exchange(Buffer.concat([stream, call(REMOTE_PROGRAM, 1, 9999)]));
  assert.equal(r.packets.length, 1);
  assert.equal(r.packets[0]!.header.proc, 9999);
});

test('apiName follows libvirt\'s spelling', () => {
  assert.equal(apiName('CONNECT_DOMAIN_XML_FROM_NATIVE'), 'virConnectDomainXMLFromNative');
  assert.equal(apiName('DOMAIN_LOOKUP_BY_UUID'), 'virDomainLookupByUUID');
  assert.equal(apiName('DOMAIN_GET_INFO'), 'virDomainGetInfo');
});

test('keepalive: PINGs after silence, PONG answers, and a dead peer is dropped', async (t) => {
  const dir = tmpDir();
  const path = join(dir, 'sock');
  let answer = true;
  let pings = 0;
  let pongs = 0;
  let serverSock: Socket | undefined;
  const server = createServer((sock) => {
    serverSock = sock;
    const fr = new FrameReader();
    sock.on('data', (b: Buffer) => {
      for (const p of fr.push(b)) {
        if (p.header.prog === KEEPALIVE_PROGRAM && p.header.proc === KeepaliveProcedure.PING) {
          pings++;
          if (answer) sock.write(keepalivePacket(KeepaliveProcedure.PONG));
        }
        if (p.header.prog === KEEPALIVE_PROGRAM && p.header.proc === KeepaliveProcedure.PONG) pongs++;
      }
    });
    sock.on('error', () => {});
  });
  await listen(server, path);
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let closedWith: Error | undefined;
  const sock = connect({ path });
  await new Promise((r) => sock.once('connect', r));
  const client = new RpcClient(sock, { onClose: (e) => (closedWith = e) });
  // The peer's PING is answered with a PONG.
  await until('the server socket', () => serverSock);
  serverSock!.write(keepalivePacket(KeepaliveProcedure.PING));
  await until('the PONG', () => (pongs === 1 ? true : undefined));
  client.startKeepalive(40, 2);
  await until('two answered pings', () => (pings >= 2 ? true : undefined));
  assert.equal(client.closed, false);
  // Now the peer goes silent: after `count` unanswered PINGs the client gives up.
  answer = false;
  await until('the keepalive timeout', () => (client.closed ? true : undefined));
  assert.match(String(closedWith?.message), /keepalive timeout/);
});

// ---------------------------------------------------------------------------------------------
// Against a real, private libvirtd (Debian's libvirt-daemon, test driver).

function startPrivateLibvirtd(t: TestContext): { dir: string; pid: number; sock: string } | null {
  if (!requireTool(t, 'libvirtd')) return null;
  if (process.getuid?.() !== 0) {
    if (process.env.CI === 'true') throw new Error('the private libvirtd needs root in CI');
    console.log('SKIP: starting a private libvirtd needs root (it runs it as nobody)');
    t.skip('not root');
    return null;
  }
  const script = join(SHARED_DIR, 'bench', 'start-private-libvirtd.sh');
  assert.ok(existsSync(script), `${script} is missing`);
  const dir = tmpDir();
  const r = spawnSync('sh', [script, dir], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `start-private-libvirtd.sh failed: ${r.stderr}`);
  const pid = Number.parseInt(r.stdout.trim(), 10);
  assert.ok(pid > 0, `no PID from start-private-libvirtd.sh: ${r.stdout}`);
  return { dir, pid, sock: join(dir, 'run', 'libvirt-sock') };
}

async function stopLibvirtd(pid: number, dir: string): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
  for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}

const TEST_XML = `<domain type='test'>
  <name>xv-rpc-client</name>
  <uuid>2f2b6c4e-6a39-4a8e-9a1b-3c8b5e9d0a11</uuid>
  <memory unit='KiB'>131072</memory>
  <vcpu>1</vcpu>
  <os><type arch='i686'>hvm</type></os>
</domain>`;

test('real libvirtd: list, dominfo, define, start, destroy, dumpxml, undefine and events', { timeout: 30000 }, async (t) => {
  const lv = startPrivateLibvirtd(t);
  if (!lv) return;
  t.after(() => stopLibvirtd(lv.pid, lv.dir));

  const conn = await openRemote(`test+unix:///default?socket=${lv.sock}`);
  assert.deepEqual(conn.features, { keepalive: true, eventCallbacks: true, closeCallbacks: true });
  assert.equal(await conn.getType(), 'TEST');
  assert.equal(await conn.getLibVersion(), 9000000);
  assert.equal((await conn.nodeGetInfo()).model, 'i686');

  const listed = await conn.listAllDomains(3);
  assert.deepEqual(listed.map((d) => [d.name, d.id]), [['test', 1]]);
  const test1 = await conn.lookupByName('test');
  const { cpuTime, ...info } = await conn.getInfo(test1);
  assert.deepEqual(info, { state: 1, maxMem: 8388608, memory: 2097152, nrVirtCpu: 2 });
  assert.equal(typeof cpuTime, 'bigint');
  await assert.rejects(conn.lookupByName('nosuch'), (e: VirtError) => e.code === 42 && e.domain === 12 && e.message === 'Domain not found');

  const events: LifecycleEvent[] = [];
  const off = await conn.onLifecycle((e) => {
    if (e.domain.name === 'xv-rpc-client') events.push(e);
  });

  const dom = await conn.defineXml(TEST_XML);
  assert.deepEqual(dom, { name: 'xv-rpc-client', uuid: '2f2b6c4e-6a39-4a8e-9a1b-3c8b5e9d0a11', id: -1 });
  assert.equal((await conn.getInfo(dom)).state, 5);
  await conn.create(dom);
  assert.ok(dom.id > 0, `create() refreshed the id (${dom.id})`);
  assert.deepEqual(await conn.getState(dom), { state: 1, reason: 1 });
  assert.match(await conn.getXmlDesc(dom), new RegExp(`<domain type='test' id='${dom.id}'>[\\s\\S]*<name>xv-rpc-client</name>`));
  await conn.destroy(dom);
  assert.equal((await conn.getInfo(dom)).state, 5);
  await assert.rejects(conn.destroy(dom), (e: VirtError) => e.code === 55 && /domain is not running/.test(e.message));
  await conn.undefine(dom);
  await assert.rejects(conn.lookupByName('xv-rpc-client'), (e: VirtError) => e.codeName === 'NO_DOMAIN');

  // DEFINED/ADDED, STARTED/BOOTED, STOPPED/DESTROYED, UNDEFINED/REMOVED.
  await until('four lifecycle events', () => (events.length >= 4 ? true : undefined));
  assert.deepEqual(events.map((e) => [e.event, e.detail]), [[0, 0], [2, 0], [5, 1], [1, 0]]);
  await off();
  await conn.close();
});
