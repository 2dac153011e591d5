/**
 * xenvirtd's protocol behaviour, in-process: handshake, libvirtd's error replies, read-only
 * connections, events, limits (concurrency, clients, keepalive, handshake), graceful stop and
 * persistence. Real virsh / python3-libvirt runs are in the other test files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MessageType, MessageStatus, encodePacket } from '../rpc/packet.js';
import { spawnSync } from 'node:child_process';
import { XdrReader } from '../rpc/xdr.js';
import { KEEPALIVE_PROGRAM, KeepaliveProcedure, REMOTE_PROGRAM } from '../rpc/protocol.js';
import { openRemote } from '../rpc/client.js';
import { openConnection } from '../driver/open.js';
import { RemoteProcedure as P } from '../rpc/generated/remote-procedures.js';
import * as T from '../rpc/generated/remote-types.js';
import { Dispatcher } from '../rpc/dispatcher.js';
import { RawClient, replyError, replyValue, startDaemon, tempDir, uriFor } from './harness.js';
import { ClientSession } from './session.js';
import type { DaemonServices, Session } from './handlers.js';
import { parseDaemonConfig, resolveConfig } from './config.js';
import { XenvirtDaemon } from './server.js';

const open = (name: string | null, flags = 0) => ({ codec: T.RemoteConnectOpenArgs, value: { name, flags } });
const feature = (f: number) => ({ codec: T.RemoteConnectSupportsFeatureArgs, value: { feature: f } });
const byName = (name: string) => ({ codec: T.RemoteDomainLookupByNameArgs, value: { name } });

async function opened(sock: string, flags = 0): Promise<RawClient> {
  const c = await RawClient.connect(sock);
  replyValue(await c.call(P.AUTH_LIST) as never, T.RemoteAuthListRet);
  const r = await c.call(P.CONNECT_OPEN, open('test:///default', flags));
  assert.equal(r?.header.status, MessageStatus.OK);
  return c;
}

async function lookup(c: RawClient, name: string): Promise<T.RemoteNonnullDomain> {
  return replyValue((await c.call(P.DOMAIN_LOOKUP_BY_NAME, byName(name)))!, T.RemoteDomainLookupByNameRet).dom;
}

test('handshake as libvirtd answers it (facts §2)', async () => {
  const { daemon, socket, stop } = await startDaemon();
  try {
    const c = await RawClient.connect(socket);
    const auth = replyValue((await c.call(P.AUTH_LIST))!, T.RemoteAuthListRet);
    assert.deepEqual(auth.types, [0]);
    // only PROGRAM_KEEPALIVE is answered before the open
    assert.equal(replyValue((await c.call(P.CONNECT_SUPPORTS_FEATURE, feature(10)))!, T.RemoteConnectSupportsFeatureRet).supported, 1);
    let e = replyError((await c.call(P.CONNECT_SUPPORTS_FEATURE, feature(14)))!);
    assert.deepEqual([e.code, e.domain, e.message], [1, 7, 'internal error: hypervisor connection not open']);
    e = replyError((await c.call(P.CONNECT_GET_HOSTNAME))!);
    assert.deepEqual([e.code, e.domain, e.message], [1, 7, 'internal error: hypervisor connection not open']);
    // even procedures the driver lacks say "not open" first, as libvirtd's stubs do
    e = replyError((await c.call(P.DOMAIN_GET_VCPUS, { codec: T.RemoteDomainGetVcpusArgs, value: { dom: { name: 'x', uuid: Buffer.alloc(16), id: -1 }, maxinfo: 1, maplen: 1 } }))!);
    assert.equal(e.message, 'internal error: hypervisor connection not open');

    // "" opens the default URI, then CONNECT_GET_URI tells which
    assert.equal((await c.call(P.CONNECT_OPEN, open('')))?.header.status, MessageStatus.OK);
    assert.equal(replyValue((await c.call(P.CONNECT_GET_URI))!, T.RemoteConnectGetUriRet).uri, 'test:///default');
    for (const [f, want] of [[14, 1], [15, 1], [10, 1], [9, 1], [8, 0], [1, 0], [17, 0]] as const) {
      assert.equal(replyValue((await c.call(P.CONNECT_SUPPORTS_FEATURE, feature(f)))!, T.RemoteConnectSupportsFeatureRet).supported, want, `feature ${f}`);
    }
    assert.equal((await c.call(P.CONNECT_REGISTER_CLOSE_CALLBACK))?.header.status, MessageStatus.OK);
    assert.equal((await c.call(P.CONNECT_UNREGISTER_CLOSE_CALLBACK))?.header.status, MessageStatus.OK);

    // a second open fails, and the connection then counts as not open
    e = replyError((await c.call(P.CONNECT_OPEN, open('test:///default')))!);
    assert.deepEqual([e.code, e.domain, e.message], [1, 7, 'internal error: connection already open']);
    e = replyError((await c.call(P.CONNECT_GET_HOSTNAME))!);
    assert.equal(e.message, 'internal error: hypervisor connection not open');

    // the reply serial is copied, whatever it is
    c.write(encodePacket({ prog: REMOTE_PROGRAM, vers: 1, proc: P.AUTH_LIST, type: MessageType.CALL, serial: 0xdeadbeef, status: 0 }));
    const p = await c.next((x) => x.header.serial === 0xdeadbeef);
    assert.equal(p?.header.proc, P.AUTH_LIST);
    c.close();

    // CONNECT_CLOSE: a reply, then the daemon closes the socket
    const d = await opened(socket);
    assert.equal((await d.call(P.CONNECT_CLOSE))?.header.status, MessageStatus.OK);
    assert.equal(await d.waitClosed(), true);
  } finally {
    await stop();
  }
});

test('CONNECT_OPEN routes by URI', async () => {
  const { daemon, socket, stop } = await startDaemon();
  try {
    const cases: Array<[string, number, number, RegExp]> = [
      ['xen:///system', 1, 41, /^internal error: libxenlight state driver is not active/],
      ['xen:///', 1, 41, /^internal error: libxenlight state driver is not active/],
      ['unix:///system', 5, 0, /^no connection driver available for unix:\/\/\/system$/],
      ['qemu:///system', 5, 0, /^no connection driver available for qemu:\/\/\/system$/],
      ['test:///etc/passwd', 5, 0, /^no connection driver available for test:\/\/\/etc\/passwd$/],
      ['test+unix:///default', 5, 0, /^no connection driver available/],
    ];
    const onXen = fs.existsSync('/proc/xen/capabilities') && fs.readFileSync('/proc/xen/capabilities', 'utf8').startsWith('control_d');
    for (const [uri, code, domain, msg] of cases) {
      if (onXen && uri.startsWith('xen:')) continue;
      const c = await RawClient.connect(socket);
      const e = replyError((await c.call(P.CONNECT_OPEN, open(uri)))!);
      assert.deepEqual([e.code, e.domain], [code, domain], `${uri}: ${e.message}`);
      assert.match(e.message ?? '', msg);
      c.close();
    }
    // NULL name (real clients send "")
    const c = await RawClient.connect(socket);
    assert.equal(replyError((await c.call(P.CONNECT_OPEN, open(null)))!).message, 'internal error: connection not open');
    // query parameters the client did not consume are tolerated
    assert.equal((await c.call(P.CONNECT_OPEN, open('test:///default?keepalive_interval=7')))?.header.status, MessageStatus.OK);
    assert.equal(replyValue((await c.call(P.CONNECT_GET_URI))!, T.RemoteConnectGetUriRet).uri, 'test:///default?keepalive_interval=7');
    c.close();
  } finally {
    await stop();
  }
});

test("libvirtd's error replies: unknown procedure, program, version; undecodable payload; unsupported API", async () => {
  const { daemon, socket, stop } = await startDaemon();
  try {
    const c = await opened(socket);
    let p = (await c.call(9999))!;
    let e = replyError(p);
    assert.deepEqual([e.code, e.domain, e.message, e.str1, e.int1, e.int2], [39, 7, 'unknown procedure: 9999', '%s', -1, -1]);
    assert.equal(p.header.proc, 9999);

    p = (await c.call(1, undefined, { prog: 0x12345678 }))!;
    e = replyError(p);
    assert.deepEqual([e.code, e.domain, e.message], [39, 7, 'Cannot find program 305419896 version 1']);
    assert.equal(p.header.prog, 0x12345678);
    e = replyError((await c.call(P.CONNECT_GET_TYPE, undefined, { vers: 2 }))!);
    assert.equal(e.message, `Cannot find program ${REMOTE_PROGRAM} version 2`);

    // truncated XDR: a string length with no bytes behind it
    e = replyError((await c.call(P.DOMAIN_LOOKUP_BY_NAME, Buffer.from([0, 0, 0, 9, 0x61])))!);
    assert.deepEqual([e.code, e.domain, e.message], [39, 7, 'Unable to decode message payload']);
    e = replyError((await c.call(P.DOMAIN_LOOKUP_BY_NAME))!);
    assert.equal(e.message, 'Unable to decode message payload');

    // a procedure libvirt defines but the Xen driver does not implement
    e = replyError((await c.call(P.DOMAIN_BLOCK_STATS, { codec: T.RemoteDomainBlockStatsArgs, value: { dom: await lookup(c, 'Domain-0'), path: 'xvda' } }))!);
    assert.deepEqual([e.code, e.domain, e.message, e.str1, e.str2],
      [3, 20, 'this function is not supported by the connection driver: virDomainBlockStats', 'this function is not supported by the connection driver: %s', 'virDomainBlockStats']);
    e = replyError((await c.call(P.NETWORK_LOOKUP_BY_NAME, { codec: T.RemoteNetworkLookupByNameArgs, value: { name: 'default' } }))!);
    assert.deepEqual([e.code, e.domain], [3, 19]);

    // the driver's own errors pass through
    e = replyError((await c.call(P.DOMAIN_LOOKUP_BY_NAME, byName('nosuch')))!);
    assert.equal(e.code, 42);
    assert.match(e.message ?? '', /^Domain not found/);
    const off = await lookup(c, 'hvm-bios');
    e = replyError((await c.call(P.DOMAIN_DESTROY, { codec: T.RemoteDomainDestroyArgs, value: { dom: off } }))!);
    assert.deepEqual([e.code, e.message], [55, 'Requested operation is not valid: domain is not running']);
    // and the connection stays usable
    assert.equal(replyValue((await c.call(P.CONNECT_GET_LIB_VERSION))!, T.RemoteConnectGetLibVersionRet).lib_ver, 9000000n);
    // stray STREAM packets are dropped silently
    c.send(P.DOMAIN_OPEN_CONSOLE, Buffer.alloc(8), { type: MessageType.STREAM });
    assert.equal(replyValue((await c.call(P.CONNECT_GET_TYPE))!, T.RemoteConnectGetTypeRet).type, 'Xen');
    c.close();
  } finally {
    await stop();
  }
});

test('read-only connections: reads work, every state change is refused as libvirtd refuses it', async () => {
  const { daemon, socket, roSocket, stop } = await startDaemon();
  try {
    // on the -ro socket the open is read-only whatever the flags; on the rw socket flag 1 does it
    for (const [sock, flags] of [[roSocket, 0], [socket, 1]] as const) {
      const c = await opened(sock, flags);
      const dom = await lookup(c, 'pv-bootloader');
      assert.equal(replyValue((await c.call(P.DOMAIN_GET_STATE, { codec: T.RemoteDomainGetStateArgs, value: { dom, flags: 0 } }))!, T.RemoteDomainGetStateRet).state, 1);
      const xml = replyValue((await c.call(P.DOMAIN_GET_XML_DESC, { codec: T.RemoteDomainGetXmlDescArgs, value: { dom, flags: 0 } }))!, T.RemoteDomainGetXmlDescRet).xml;
      assert.match(xml, /<name>pv-bootloader<\/name>/);
      let e = replyError((await c.call(P.DOMAIN_DESTROY, { codec: T.RemoteDomainDestroyArgs, value: { dom } }))!);
      assert.deepEqual([e.code, e.domain, e.message, e.str1, e.str2],
        [29, 20, 'operation forbidden: read only access prevents virDomainDestroy', 'operation forbidden: %s', 'read only access prevents virDomainDestroy']);
      e = replyError((await c.call(P.DOMAIN_DEFINE_XML, { codec: T.RemoteDomainDefineXmlArgs, value: { xml: '<domain/>' } }))!);
      assert.equal(e.message, 'operation forbidden: read only access prevents virDomainDefineXML');
      e = replyError((await c.call(P.DOMAIN_GET_XML_DESC, { codec: T.RemoteDomainGetXmlDescArgs, value: { dom, flags: 1 } }))!);
      assert.deepEqual([e.code, e.message], [29, 'operation forbidden: virDomainGetXMLDesc with secure flag']);
      e = replyError((await c.call(P.CONNECT_DOMAIN_XML_FROM_NATIVE, { codec: T.RemoteConnectDomainXmlFromNativeArgs, value: { nativeFormat: 'xen-xm', nativeConfig: 'name="a"', flags: 0 } }))!);
      assert.equal(e.message, 'operation forbidden: read only access prevents virConnectDomainXMLFromNative');
      // refused before "not supported": libvirt checks read-only in the public API
      e = replyError((await c.call(P.NETWORK_DESTROY, { codec: T.RemoteNetworkDestroyArgs, value: { net: { name: 'n', uuid: Buffer.alloc(16) } } }))!);
      assert.deepEqual([e.code, e.domain, e.message], [29, 19, 'operation forbidden: read only access prevents virNetworkDestroy']);
      // events are reads
      assert.equal((await c.call(P.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, { codec: T.RemoteConnectDomainEventCallbackRegisterAnyArgs, value: { eventID: 0, dom: null } }))?.header.status, MessageStatus.OK);
      c.close();
    }
  } finally {
    await stop();
  }
});

test('events: callback ids from one daemon-wide counter, lifecycle MESSAGEs to every registered client', async () => {
  const { daemon, socket, stop } = await startDaemon();
  try {
    const a = await opened(socket);
    const b = await opened(socket);
    const reg = async (c: RawClient, eventID: number, dom: T.RemoteNonnullDomain | null = null) =>
      replyValue((await c.call(P.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, { codec: T.RemoteConnectDomainEventCallbackRegisterAnyArgs, value: { eventID, dom } }))!, T.RemoteConnectDomainEventCallbackRegisterAnyRet).callbackID;
    const idsA: number[] = [];
    for (let ev = 0; ev < 27; ev++) idsA.push(await reg(a, ev));
    assert.deepEqual(idsA, Array.from({ length: 27 }, (_, i) => i));
    assert.equal(await reg(b, 0), 27);
    const e = replyError((await a.call(P.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, { codec: T.RemoteConnectDomainEventCallbackRegisterAnyArgs, value: { eventID: 27, dom: null } }))!);
    assert.deepEqual([e.code, e.domain, e.message], [1, 7, 'internal error: unsupported event ID 27']);
    // a callback for another domain only
    const other = await lookup(b, 'hvm-bios');
    const narrowId = await reg(b, 0, other);

    const dom = await lookup(b, 'pv-bootloader');
    assert.equal((await b.call(P.DOMAIN_SUSPEND, { codec: T.RemoteDomainSuspendArgs, value: { dom } }))?.header.status, MessageStatus.OK);
    for (const [c, id] of [[a, 0], [b, 27]] as const) {
      const m = await c.next((p) => p.header.type === MessageType.MESSAGE && p.header.proc === P.DOMAIN_EVENT_CALLBACK_LIFECYCLE);
      assert.ok(m, 'lifecycle event received');
      assert.equal(m.header.serial, 1);
      const msg = T.RemoteDomainEventCallbackLifecycleMsg.dec(new XdrReader(m.payload));
      assert.deepEqual([msg.callbackID, msg.msg.dom.name, msg.msg.event, msg.msg.detail], [id, 'pv-bootloader', 3, 0]);
    }
    assert.equal(await b.next((p) => p.header.type === MessageType.MESSAGE && p.payload.readInt32BE(0) === narrowId, 300), null);

    // deregistering: unknown ids and other clients' ids are refused
    assert.equal(replyError((await b.call(P.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY, { codec: T.RemoteConnectDomainEventCallbackDeregisterAnyArgs, value: { callbackID: 0 } }))!).message,
      'internal error: domain event callback 0 not registered');
    for (const id of idsA) {
      assert.equal((await a.call(P.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY, { codec: T.RemoteConnectDomainEventCallbackDeregisterAnyArgs, value: { callbackID: id } }))?.header.status, MessageStatus.OK);
    }
    // legacy registration (clients without REMOTE_EVENT_CALLBACK)
    assert.equal((await a.call(P.CONNECT_DOMAIN_EVENT_REGISTER_ANY, { codec: T.RemoteConnectDomainEventRegisterAnyArgs, value: { eventID: 0 } }))?.header.status, MessageStatus.OK);
    assert.equal(replyError((await a.call(P.CONNECT_DOMAIN_EVENT_REGISTER_ANY, { codec: T.RemoteConnectDomainEventRegisterAnyArgs, value: { eventID: 16 } }))!).message, 'internal error: unsupported event ID 16');
    assert.equal((await b.call(P.DOMAIN_RESUME, { codec: T.RemoteDomainResumeArgs, value: { dom } }))?.header.status, MessageStatus.OK);
    const legacy = await a.next((p) => p.header.type === MessageType.MESSAGE && p.header.proc === P.DOMAIN_EVENT_LIFECYCLE);
    assert.ok(legacy, 'legacy lifecycle event');
    assert.equal(await a.next((p) => p.header.proc === P.DOMAIN_EVENT_CALLBACK_LIFECYCLE, 200), null);
    a.close();
    b.close();
  } finally {
    await stop();
  }
});

test('hostile input: each gets an error reply or a closed connection, and others are still served', async () => {
  const { daemon, socket, stop } = await startDaemon({ handshakeTimeout: 1 });
  try {
    const good = await opened(socket);
    const stillServed = async () => {
      assert.equal(replyValue((await good.call(P.CONNECT_GET_HOSTNAME))!, T.RemoteConnectGetHostnameRet).hostname.length > 0, true);
    };
    // garbage bytes: the length word reads as a huge packet -> dropped
    let c = await RawClient.connect(socket);
    c.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    assert.equal(await c.waitClosed(), true, 'garbage closes the connection');
    await stillServed();
    // a length word under 28
    c = await RawClient.connect(socket);
    c.write(Buffer.from([0, 0, 0, 8, 1, 2, 3, 4]));
    assert.equal(await c.waitClosed(), true, 'short length closes the connection');
    // a length word over 32 MiB + 4 (the largest accepted)
    c = await RawClient.connect(socket);
    const big = Buffer.alloc(28);
    big.writeUInt32BE(32 * 1024 * 1024 + 5, 0);
    c.write(big);
    assert.equal(await c.waitClosed(), true, 'oversized length closes the connection');
    await stillServed();
    // the largest packet is accepted and answered (a 32 MiB payload that does not decode)
    c = await RawClient.connect(socket);
    const huge = Buffer.alloc(32 * 1024 * 1024 + 4);
    huge.writeUInt32BE(huge.length, 0);
    huge.writeUInt32BE(REMOTE_PROGRAM, 4);
    huge.writeUInt32BE(1, 8);
    huge.writeUInt32BE(P.AUTH_LIST, 12);
    c.write(huge);
    const r = await c.next((p) => p.header.type === MessageType.REPLY, 15000);
    assert.equal(r && replyError(r).message, 'Unable to decode message payload');
    c.close();
    // unknown program, truncated XDR: error replies, connection kept
    c = await RawClient.connect(socket);
    assert.equal(replyError((await c.call(5, undefined, { prog: 0x20008087 }))!).code, 39);
    assert.equal(replyError((await c.call(P.CONNECT_OPEN, Buffer.from([0, 0, 0, 1, 0, 0, 0, 200])))!).message, 'Unable to decode message payload');
    // a packet cut off mid-way, then silence: the handshake timeout drops the client
    c.write(Buffer.from([0, 0, 0, 100, 0x20, 0, 0x80, 0x86]));
    assert.equal(await c.waitClosed(3000), true, 'a silent half-packet client is dropped');
    // a client that connects and sends nothing
    c = await RawClient.connect(socket);
    await stillServed();
    assert.equal(await c.waitClosed(3000), true, 'an idle client that never opens is dropped');
    // keepalive PING before anything else gets a PONG
    c = await RawClient.connect(socket);
    c.send(KeepaliveProcedure.PING, undefined, { prog: KEEPALIVE_PROGRAM, type: MessageType.MESSAGE });
    const pong = await c.next((p) => p.header.prog === KEEPALIVE_PROGRAM);
    assert.equal(pong?.header.proc, KeepaliveProcedure.PONG);
    c.close();
    await stillServed();
    good.close();
  } finally {
    await stop();
  }
});

test('keepalive: the daemon PINGs a silent client that asked for keepalive, and drops it when PINGs go unanswered', async () => {
  const { daemon, socket, stop } = await startDaemon({ keepaliveInterval: 1, keepaliveCount: 1 });
  try {
    // a client that never asked is left alone
    const quiet = await opened(socket);
    const c = await opened(socket);
    assert.equal(replyValue((await c.call(P.CONNECT_SUPPORTS_FEATURE, feature(10)))!, T.RemoteConnectSupportsFeatureRet).supported, 1);
    const t0 = Date.now();
    const ping = await c.next((p) => p.header.prog === KEEPALIVE_PROGRAM, 3000);
    assert.equal(ping?.header.proc, KeepaliveProcedure.PING);
    assert.equal(ping?.header.type, MessageType.MESSAGE);
    assert.ok(Date.now() - t0 >= 800, 'first PING after the interval');
    assert.equal(await c.waitClosed(4000), true, 'dropped after keepalive_count unanswered PINGs');
    assert.equal(quiet.closed, false);
    assert.equal(await quiet.next((p) => p.header.prog === KEEPALIVE_PROGRAM, 200), null);
    quiet.close();

    // answering PINGs keeps it connected
    const live = await opened(socket);
    await live.call(P.CONNECT_SUPPORTS_FEATURE, feature(10));
    const answer = (buf: Buffer) => {
      if (buf.readUInt32BE(4) === KEEPALIVE_PROGRAM && buf.readUInt32BE(12) === KeepaliveProcedure.PING) {
        live.send(KeepaliveProcedure.PONG, undefined, { prog: KEEPALIVE_PROGRAM, type: MessageType.MESSAGE });
      }
    };
    live.sock.on('data', answer);
    await new Promise((r) => setTimeout(r, 3500));
    assert.equal(live.closed, false);
    live.close();
  } finally {
    await stop();
  }
});

test('limits: 5 calls in flight per client; clients over max_clients wait for a slot', async () => {
  // the per-client cap, with a dispatcher whose calls take a while
  let inFlight = 0;
  let peak = 0;
  const slow = new Dispatcher<Session>();
  slow.handle('CONNECT_GET_HOSTNAME', async () => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setTimeout(r, 20));
    inFlight--;
    return { hostname: 'h' };
  });
  const dir = tempDir();
  const sockPath = path.join(dir, 's');
  const services = {} as DaemonServices;
  const server = net.createServer((s) => {
    new ClientSession(s, false, services, slow, { maxRequests: 5, keepaliveIntervalMs: 0, keepaliveCount: 0, handshakeTimeoutMs: 0, maxOutputBytes: 1 << 30 }, () => {}).start();
  });
  await new Promise<void>((r) => server.listen(sockPath, r));
  try {
    const c = await RawClient.connect(sockPath);
    const serials = Array.from({ length: 12 }, () => c.send(P.CONNECT_GET_HOSTNAME));
    for (const s of serials) assert.ok(await c.next((p) => p.header.serial === s), `reply ${s}`);
    assert.equal(peak, 5);
    c.close();
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const { daemon, socket, stop } = await startDaemon({ maxClients: 1 });
  try {
    const first = await opened(socket);
    const second = await RawClient.connect(socket);
    const serial = second.send(P.AUTH_LIST);
    assert.equal(await second.next((p) => p.header.serial === serial, 300), null, 'the second client waits');
    assert.deepEqual(daemon.clientCount, { active: 1, waiting: 1 });
    first.close();
    assert.ok(await second.next((p) => p.header.serial === serial, 3000), 'served once the first leaves');
    second.close();
  } finally {
    await stop();
  }
});

test('graceful stop: sockets removed, clients disconnected; a persistent host survives a restart', async () => {
  const dir = tempDir();
  const stateDir = path.join(dir, 'state');
  const sock = path.join(dir, 'sock');
  const config = resolveConfig({ socketPath: sock, stateDir });
  let daemon = await XenvirtDaemon.start(config);
  let conn = await openRemote(uriFor(sock), { keepalive: false });
  const names = (await conn.listAllDomains()).map((d) => d.name).sort();
  assert.deepEqual(names, ['Domain-0', 'hvm-bios', 'hvm-kernel', 'pv-bootloader', 'pv-kernel'], 'a fresh state dir looks like test:///default');
  const xml = "<domain type='xen'><name>keeper</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type>linux</type><kernel>/k</kernel></os></domain>";
  const dom = await conn.defineXml(xml);
  await conn.setAutostart(dom, true);
  await daemon.stop();
  for (let i = 0; i < 100 && !conn.rpc.closed; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(conn.rpc.closed, true, 'the client was disconnected');
  assert.equal(fs.existsSync(sock), false);
  assert.equal(fs.existsSync(`${sock}-ro`), false);

  daemon = await XenvirtDaemon.start(config);
  try {
    conn = await openRemote(uriFor(sock), { keepalive: false });
    const again = await conn.lookupByName('keeper');
    assert.equal(again.uuid, dom.uuid);
    assert.equal(await conn.getAutostart(again), true);
    await conn.close();
  } finally {
    await daemon.stop();
  }
  // a second daemon on a live socket is refused; a stale socket file is replaced
  daemon = await XenvirtDaemon.start(config);
  try {
    await assert.rejects(XenvirtDaemon.start(resolveConfig({ socketPath: sock, socketRoPath: '' })), /another daemon is already listening/);
  } finally {
    await daemon.stop();
  }
  // a daemon killed with SIGKILL leaves its socket file behind
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.equal(fs.existsSync(sock), true);
  daemon = await XenvirtDaemon.start(resolveConfig({ socketPath: sock, socketRoPath: '' }));
  await daemon.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a persistent host: other processes' changes to the state directory show through the daemon", async () => {
  const dir = tempDir();
  const stateDir = path.join(dir, 'state');
  const sock = path.join(dir, 'sock');
  const daemon = await XenvirtDaemon.start(resolveConfig({ socketPath: sock, stateDir }));
  let local: Awaited<ReturnType<typeof openConnection>> | undefined;
  try {
    const conn = await openRemote(uriFor(sock), { keepalive: false });
    const seen: string[] = [];
    await conn.onLifecycle((e) => seen.push(`${e.domain.name} ${e.event}`));
    assert.equal((await conn.listAllDomains()).length, 5);
    // xenvirt -c test:///STATE/test-default, in another "process" (its own store instance)
    local = await openConnection(`test://${stateDir}/test-default`);
    await local.defineXml("<domain type='xen'><name>foreign</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type>linux</type><kernel>/k</kernel></os></domain>");
    // visible on the next call (the daemon watches the directory), and its event is relayed
    let found = false;
    for (let i = 0; i < 50 && !found; i++) {
      found = (await conn.listAllDomains()).some((d) => d.name === 'foreign');
      if (!found) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(found, true);
    for (let i = 0; i < 100 && !seen.includes('foreign 0'); i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen, ['foreign 0']);
    // and the other way round
    await conn.undefine(await conn.lookupByName('foreign'));
    await assert.rejects(local.lookupByName('foreign'), /Domain not found/);
    await conn.close();
  } finally {
    await local?.close();
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('config file: libvirtd.conf syntax, known keys, errors that name the key', () => {
  const c = parseDaemonConfig(`# xenvirtd
unix_sock_dir = "/run/xv"
unix_sock_rw_perms = "0770"
max_clients = 20
max_client_requests = 3
keepalive_interval = -1
listen_tls = 0
auth_unix_ro = "none"
state_dir = "/var/lib/xenvirt"
`);
  const r = resolveConfig(c);
  assert.equal(r.socketPath, '/run/xv/libvirt-sock');
  assert.equal(r.socketRoPath, '/run/xv/libvirt-sock-ro');
  assert.equal(r.rwPerms, 0o770);
  assert.equal(r.roPerms, 0o777);
  assert.deepEqual([r.maxClients, r.maxClientRequests, r.keepaliveInterval, r.keepaliveCount], [20, 3, -1, 5]);
  assert.equal(r.stateDir, '/var/lib/xenvirt');
  // the command line wins, and moves the ro socket along
  const r2 = resolveConfig(c, { socketPath: '/tmp/x/sock' });
  assert.equal(r2.socketRoPath, '/tmp/x/sock-ro');
  assert.throws(() => parseDaemonConfig('max_clinets = 5', 'a.conf'), /a\.conf: unknown setting 'max_clinets'/);
  assert.throws(() => parseDaemonConfig('max_clients = "5"', 'a.conf'), /'max_clients' must be a number/);
  assert.throws(() => parseDaemonConfig('max_client_requests = 0'), /'max_client_requests' must be an integer >= 1/);
  assert.throws(() => parseDaemonConfig('auth_unix_rw = "sasl"'), /auth_unix_rw/);
  assert.throws(() => parseDaemonConfig('unix_sock_path = "rel/sock"'), /absolute path/);
  assert.throws(() => parseDaemonConfig('max_clients = = 5'), /CONF|expect|syntax|=/i);
});
