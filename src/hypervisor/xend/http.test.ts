/**
 * XenD's transport: addresses, the request format, one request per connection over a unix
 * socket and TCP, and every kind of error reply becoming a clear VirtError.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { VirtError } from '../../errors.js';
import { XendClient, XEND_MAX_BODY, parseXendAddress, formatXendAddress, xendErrText } from './http.js';
import { XendEmulator } from './emulator.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-xend-http-'));
let emu: XendEmulator;
let unix: XendClient;
let tcp: XendClient;

before(async () => {
  emu = await XendEmulator.start({ socketPath: path.join(dir, 'xend-socket'), tcp: true });
  unix = new XendClient(emu.unixAddress!);
  tcp = new XendClient(emu.httpAddress!);
});
after(async () => {
  await emu.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function isVirtError(code: string, message: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof VirtError, `not a VirtError: ${String(e)}`);
    assert.equal(e.codeName, code, e.message);
    assert.match(e.message, message);
    return true;
  };
}

test('addresses: unix:/path, a bare path, http://host[:port] (8000 by default), host:port', () => {
  assert.deepEqual(parseXendAddress('unix:/var/lib/xend/xend-socket'), { kind: 'unix', path: '/var/lib/xend/xend-socket' });
  assert.deepEqual(parseXendAddress('/tmp/s'), { kind: 'unix', path: '/tmp/s' });
  assert.deepEqual(parseXendAddress('http://xenhost'), { kind: 'tcp', host: 'xenhost', port: 8000 });
  assert.deepEqual(parseXendAddress('http://127.0.0.1:8123'), { kind: 'tcp', host: '127.0.0.1', port: 8123 });
  assert.deepEqual(parseXendAddress('xenhost:9000'), { kind: 'tcp', host: 'xenhost', port: 9000 });
  assert.deepEqual(parseXendAddress('http://[::1]:8000'), { kind: 'tcp', host: '::1', port: 8000 });
  assert.equal(formatXendAddress(parseXendAddress('http://[::1]')), 'http://[::1]:8000');
  assert.throws(() => parseXendAddress('unix:relative'), isVirtError('INVALID_ARG', /must be absolute/));
  assert.throws(() => parseXendAddress('https://h'), isVirtError('INVALID_ARG', /plain http/));
  assert.throws(() => parseXendAddress('http://h/xend'), isVirtError('INVALID_ARG', /has a path/));
});

test('the emulator answers the same over its unix socket and TCP', async () => {
  for (const c of [unix, tcp]) {
    const node = await c.getSexpr('/xend/node/');
    assert.ok(Array.isArray(node) && node[0] === 'node');
    const names = await c.getSexpr('/xend/domain');
    assert.deepEqual(names, ['Domain-0']);
  }
});

test('one request per connection: the server closes after its answer', async () => {
  const sock = net.connect(path.join(dir, 'xend-socket'));
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const chunks: Buffer[] = [];
  sock.on('data', (c) => chunks.push(c));
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  // A second request on the same connection is never answered.
  sock.write('GET /xend/node/ HTTP/1.1\r\nHost: localhost:8000\r\n\r\nGET /xend/domain HTTP/1.1\r\nHost: localhost:8000\r\n\r\n');
  await closed;
  const text = Buffer.concat(chunks).toString();
  assert.match(text, /^HTTP\/1\.1 200 /);
  assert.match(text, /\r\nConnection: close\r\n/i);
  assert.equal(text.match(/HTTP\/1\.1 /g)!.length, 1);
});

test('requests carry what XenD expects: HTTP/1.1, Host localhost:8000, identity, form-encoded POSTs', async () => {
  const seen: string[] = [];
  const server = net.createServer((s) => {
    let buf = '';
    s.on('data', (c) => {
      buf += c.toString();
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/content-length: (\d+)/i.exec(buf)?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      seen.push(buf);
      s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n()');
    });
  });
  const sockPath = path.join(dir, 'raw-socket');
  await new Promise<void>((r) => server.listen(sockPath, () => r()));
  try {
    const c = new XendClient(`unix:${sockPath}`);
    await c.getSexpr('/xend/domain/x?detail=1');
    await c.post('/xend/domain/x', { op: 'device_create', config: "(vbd (dev xvdb)(uname 'file:/a b+c&d'))" });
    assert.match(seen[0]!, /^GET \/xend\/domain\/x\?detail=1 HTTP\/1\.1\r\n/);
    for (const r of seen) {
      assert.match(r, /\r\nHost: localhost:8000\r\n/);
      assert.match(r, /\r\nAccept-Encoding: identity\r\n/);
      assert.match(r, /\r\nContent-Type: application\/x-www-form-urlencoded\r\n/);
    }
    const post = seen[1]!;
    assert.match(post, /^POST \/xend\/domain\/x HTTP\/1\.1\r\n/);
    const body = post.slice(post.indexOf('\r\n\r\n') + 4);
    assert.match(post, new RegExp(`\\r\\nContent-Length: ${Buffer.byteLength(body)}\\r\\n`));
    assert.deepEqual(Object.fromEntries(new URLSearchParams(body)), { op: 'device_create', config: "(vbd (dev xvdb)(uname 'file:/a b+c&d'))" });
    assert.doesNotMatch(body, / /);
  } finally {
    server.close();
  }
});

test('404 on a domain is a probe result, not an error; 404 elsewhere says the server is not XenD', async () => {
  assert.equal(await unix.getSexpr('/xend/domain/no-such-domain?detail=1'), undefined);
  await assert.rejects(unix.getSexpr('/xend/nothing'), isVirtError('GET_FAILED', /has no \/xend\/nothing \(HTTP 404\).*not a XenD/));
  await assert.rejects(unix.post('/xend/domain/no-such-domain', { op: 'pause' }, { target: "domain 'no-such-domain'" }),
    isVirtError('NO_DOMAIN', /XenD has no domain 'no-such-domain', or does not know operation 'pause' \(HTTP 404\).*list the domains again/));
});

test('500 with a (xend.err ...) body: the message is XenD\'s own text', async () => {
  await assert.rejects(unix.post('/xend/domain/Domain-0', { op: 'save', file: '/tmp/x' }, { target: 'Domain-0' }),
    isVirtError('POST_FAILED', /^XenD failed to save Domain-0 \(HTTP 500\): Cannot save privileged domain 0$/));
  assert.equal(xendErrText("(xend.err 'Domain not found: x')"), 'Domain not found: x');
  assert.equal(xendErrText('garbage xend.err: broken (thing'), ': broken (thing');
});

test('a 2xx answer with xend.err in its body is an error (XenD\'s Domain-0 core dump)', async () => {
  await assert.rejects(tcp.post('/xend/domain/0', { op: 'dump', file: path.join(dir, 'core'), live: '0', crash: '0' }, { target: 'Domain-0' }),
    isVirtError('POST_FAILED', /^XenD failed to dump Domain-0: Cannot dump core for privileged domain 0$/));
  emu.inject({ method: 'GET', path: '/xend/node/', status: 200, body: "(xend.err 'node info unavailable')" });
  await assert.rejects(unix.getSexpr('/xend/node/'), isVirtError('GET_FAILED', /node info unavailable/));
  // a description that merely mentions xend.err is an answer, not an error
  emu.inject({ method: 'GET', path: '/xend/node/', status: 200, body: "(node (host h)(description 'see xend.err'))" });
  assert.deepEqual(await unix.getSexpr('/xend/node/'), ['node', ['host', 'h'], ['description', 'see xend.err']]);
});

test('202 whose body says "failed" is an error', async () => {
  emu.inject({ method: 'POST', op: 'pause', status: 202, body: 'operation failed: device model did not answer' });
  await assert.rejects(unix.post('/xend/domain/Domain-0', { op: 'pause' }, { target: 'Domain-0' }),
    isVirtError('POST_FAILED', /accepted 'pause' for Domain-0 but reports it failed: operation failed: device model did not answer/));
  emu.inject({ method: 'POST', op: 'pause', status: 202, body: '(pause accepted)' });
  assert.equal(await unix.post('/xend/domain/Domain-0', { op: 'pause' }), '(pause accepted)');
});

test('answers over 256 KiB are refused, whether announced or not', async () => {
  const big = `(${'x'.repeat(XEND_MAX_BODY + 10)})`;
  emu.inject({ method: 'GET', path: '/xend/node/', status: 200, body: big });
  await assert.rejects(unix.getSexpr('/xend/node/'), isVirtError('INTERNAL_ERROR', /is \d+ bytes, more than the 256 KiB a client accepts.*not behaving like XenD/));
  emu.inject({ method: 'GET', path: '/xend/node/', status: 200, body: big, contentLength: 'none' });
  await assert.rejects(tcp.getSexpr('/xend/node/'), isVirtError('INTERNAL_ERROR', /more than the 256 KiB/));
  // exactly at the limit is fine
  emu.inject({ method: 'GET', path: '/xend/node/', status: 200, body: `(${'y'.repeat(XEND_MAX_BODY - 2)})` });
  const ok = await unix.getSexpr('/xend/node/');
  assert.equal((ok as string[])[0]!.length, XEND_MAX_BODY - 2);
});

test('other statuses and unparseable bodies are reported with what came back', async () => {
  emu.inject({ method: 'GET', path: '/xend/domain', status: 503, body: 'busy' });
  await assert.rejects(unix.getSexpr('/xend/domain'), isVirtError('GET_FAILED', /HTTP 503\): busy/));
  emu.inject({ method: 'GET', path: '/xend/domain', status: 200, body: "(name 'unterminated)" });
  await assert.rejects(unix.getSexpr('/xend/domain'), isVirtError('INTERNAL_ERROR', /not an S-expression/));
});

test('no XenD there: a clear NO_CONNECT that says how to start it', async () => {
  await assert.rejects(new XendClient(`unix:${path.join(dir, 'missing')}`).getSexpr('/xend/node/'),
    isVirtError('NO_CONNECT', /cannot connect to XenD at unix:.*missing: the socket does not exist; is xend running.*xend-unix-server yes/));
  const free = net.createServer();
  await new Promise<void>((r) => free.listen(0, '127.0.0.1', () => r()));
  const port = (free.address() as net.AddressInfo).port;
  await new Promise<void>((r) => free.close(() => r()));
  await assert.rejects(new XendClient(`http://127.0.0.1:${port}`).getSexpr('/xend/node/'),
    isVirtError('NO_CONNECT', /connection refused; is xend running on 127\.0\.0\.1\?.*xend-http-server yes/));
});

test('a XenD that never answers times out with advice', async () => {
  const mute = net.createServer(() => { /* never answers */ });
  const sockPath = path.join(dir, 'mute-socket');
  await new Promise<void>((r) => mute.listen(sockPath, () => r()));
  try {
    const c = new XendClient(`unix:${sockPath}`, { timeoutMs: 100 });
    await assert.rejects(c.getSexpr('/xend/node/'), isVirtError('OPERATION_TIMEOUT', /did not answer GET \/xend\/node\/ within .*restart it/));
  } finally {
    mute.close();
  }
});
