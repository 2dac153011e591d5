import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { SHARED_DIR } from '../../test/support.js';
import {
  XdrWriter, XdrReader, XdrError, XDR_STRING_MAX, encode, decode,
  cStringBytes, fromCString, uuidToString, uuidFromString,
} from './xdr.js';
import { encodePacket, MessageType, MessageStatus, decodePacket } from './packet.js';
import { toRemoteError, RpcError } from './protocol.js';
import { VirtError, ErrorDomain } from '../errors.js';
import * as T from './generated/remote-types.js';
import { REMOTE_PROCEDURE_LIST, REMOTE_PROGRAM, RemoteProcedure } from './generated/remote-procedures.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const words = (...w: number[]) => Buffer.concat(w.map((x) => { const b = Buffer.alloc(4); b.writeUInt32BE(x >>> 0); return b; }));

test('primitives: sizes and big-endian layout', () => {
  const w = new XdrWriter(4);
  w.int(-2);
  w.uint(0xdeadbeef);
  w.hyper(-1n);
  w.uhyper(0x0102030405060708n);
  w.bool(true);
  w.uchar(255);
  w.ushort(65535);
  w.char(-1);
  w.double(1.5);
  assert.equal(
    hex(w.finish()),
    'fffffffe' + 'deadbeef' + 'ffffffffffffffff' + '0102030405060708' + '00000001' +
    '000000ff' + '0000ffff' + 'ffffffff' + '3ff8000000000000',
  );
  const r = new XdrReader(w.finish());
  assert.equal(r.int(), -2);
  assert.equal(r.uint(), 0xdeadbeef);
  assert.equal(r.hyper(), -1n);
  assert.equal(r.uhyper(), 0x0102030405060708n);
  assert.equal(r.bool(), true);
  assert.equal(r.uchar(), 255);
  assert.equal(r.ushort(), 65535);
  assert.equal(r.char(), -1);
  assert.equal(r.double(), 1.5);
  r.expectEnd();
});

test('strings, opaque and optionals pad to 4 bytes', () => {
  const w = new XdrWriter();
  w.string('test:///default');
  w.varOpaque(Buffer.from([1, 2, 3, 4, 5]));
  w.fixedOpaque(Buffer.from([9, 9, 9]), 3);
  w.optional<string>(null, (w, s) => w.string(s));
  w.optional('x', (w, s) => w.string(s));
  assert.equal(
    hex(w.finish()),
    '0000000f' + Buffer.from('test:///default').toString('hex') + '00' +
    '00000005' + '0102030405' + '000000' +
    '090909' + '00' +
    '00000000' +
    '00000001' + '00000001' + '78000000',
  );
});

test('libvirt quirks: unsigned char/short take 4 bytes, char model[32] is 32 ints', () => {
  const info = encode(T.RemoteNodeGetInfoRet, {
    model: Buffer.from('i686'), memory: 3145728n, cpus: 16, mhz: 1400, nodes: 2, sockets: 2, cores: 2, threads: 2,
  });
  assert.equal(info.length, 128 + 8 + 6 * 4);
  assert.equal(hex(info.subarray(0, 20)), '00000069' + '00000036' + '00000038' + '00000036' + '00000000');
  const back = decode(T.RemoteNodeGetInfoRet, info);
  assert.equal(fromCString(back.model), 'i686');

  const dominfo = encode(T.RemoteDomainGetInfoRet, { state: 1, maxMem: 8388608n, memory: 2097152n, nrVirtCpu: 2, cpuTime: 5n });
  assert.equal(dominfo.length, 4 + 8 + 8 + 4 + 8);

  // `char label<N>`: a count, then one int per char, the trailing NUL included.
  const label = encode(T.RemoteDomainGetSecurityLabelRet, { label: cStringBytes('ab'), enforcing: 1 });
  assert.equal(hex(label), '00000003' + '00000061' + '00000062' + '00000000' + '00000001');
  // Bytes >= 0x80 of a signed char travel sign-extended, and decode back to the byte.
  const hi = encode(T.RemoteDomainGetSecurityLabelRet, { label: Buffer.from([0xc3, 0xa9, 0]), enforcing: 0 });
  assert.equal(hex(hi.subarray(4, 12)), 'ffffffc3' + 'ffffffa9');
  assert.deepEqual([...decode(T.RemoteDomainGetSecurityLabelRet, hi).label], [0xc3, 0xa9, 0]);
});

// The worked sizes of design facts §1.2: whole packets, header included.
test('worked packet sizes from the facts table', () => {
  const reply = (proc: number, body?: Parameters<typeof encodePacket>[1]) =>
    encodePacket({ prog: REMOTE_PROGRAM, vers: 1, proc, type: MessageType.REPLY, serial: 0, status: MessageStatus.OK }, body);
  const open = encodePacket(
    { prog: REMOTE_PROGRAM, vers: 1, proc: RemoteProcedure.CONNECT_OPEN, type: MessageType.CALL, serial: 2, status: 0 },
    { codec: T.RemoteConnectOpenArgs, value: { name: 'test:///default', flags: 0 } },
  );
  assert.equal(open.length, 56);
  assert.equal(open.readUInt32BE(0), 56);
  assert.equal(hex(open.subarray(4, 28)), '20008086' + '00000001' + '00000001' + '00000000' + '00000002' + '00000000');
  assert.equal(reply(66, { codec: T.RemoteAuthListRet, value: { types: [0] } }).length, 36);
  assert.equal(reply(6, {
    codec: T.RemoteNodeGetInfoRet,
    value: { model: Buffer.from('i686'), memory: 3145728n, cpus: 16, mhz: 1400, nodes: 2, sockets: 2, cores: 2, threads: 2 },
  }).length, 188);
  assert.equal(reply(16, {
    codec: T.RemoteDomainGetInfoRet, value: { state: 1, maxMem: 8388608n, memory: 2097152n, nrVirtCpu: 2, cpuTime: 0n },
  }).length, 60);
  assert.equal(reply(212, { codec: T.RemoteDomainGetStateRet, value: { state: 1, reason: 0 } }).length, 36);
  assert.equal(reply(273, {
    codec: T.RemoteConnectListAllDomainsRet,
    value: { domains: [{ name: 'test', uuid: Buffer.alloc(16), id: 1 }], ret: 1 },
  }).length, 64);
  assert.equal(reply(4, { codec: T.RemoteConnectGetVersionRet, value: { hv_ver: 2n } }).length, 36);
  assert.equal(reply(157, { codec: T.RemoteConnectGetLibVersionRet, value: { lib_ver: 9000000n } }).length, 36);
  assert.equal(reply(426, { codec: T.RemoteDomainGetMessagesRet, value: { msgs: [] } }).length, 32);
});

// The exact payload libvirtd 9.0 sent for an unknown procedure (facts §6).
const UNKNOWN_PROC_ERROR = Buffer.concat([
  words(0x27, 7, 1, 0x17), Buffer.from('unknown procedure: 9999'), Buffer.alloc(1),
  words(2, 0, 1, 2), Buffer.from('%s'), Buffer.alloc(2),
  words(1, 0x17), Buffer.from('unknown procedure: 9999'), Buffer.alloc(1),
  words(0, 0xffffffff, 0xffffffff, 0),
]);

test('remote_error: the captured bytes decode, and our encoder reproduces them', () => {
  const e = decode(T.RemoteError, UNKNOWN_PROC_ERROR);
  assert.deepEqual(e, {
    code: 39, domain: 7, message: 'unknown procedure: 9999', level: 2, dom: null,
    str1: '%s', str2: 'unknown procedure: 9999', str3: null, int1: -1, int2: -1, net: null,
  });
  const ours = toRemoteError(new VirtError('RPC', 'unknown procedure: 9999', ErrorDomain.RPC));
  assert.equal(hex(encode(T.RemoteError, ours)), hex(UNKNOWN_PROC_ERROR));
  const err = new RpcError(e);
  assert.ok(err instanceof VirtError);
  assert.equal(err.code, 39);
  assert.equal(err.codeName, 'RPC');
  assert.equal(err.domain, 7);
  assert.equal(err.message, 'unknown procedure: 9999');
  // A code this build does not know keeps its number.
  assert.equal(new RpcError({ ...e, code: 4242 }).code, 4242);
});

test('limits: 4 MiB strings decode, one byte more is refused; counts beyond max are refused', () => {
  const big = 'a'.repeat(XDR_STRING_MAX);
  const w = new XdrWriter();
  w.string(big);
  assert.equal(new XdrReader(w.finish()).string().length, XDR_STRING_MAX);
  assert.throws(() => new XdrWriter().string(big + 'a'), VirtError);
  const tooLong = Buffer.concat([words(XDR_STRING_MAX + 4), Buffer.alloc(XDR_STRING_MAX + 4)]);
  assert.throws(() => new XdrReader(tooLong).string(), XdrError);
  assert.throws(() => new XdrReader(words(21)).varArray(20, (r) => r.int()), /exceeds its limit 20/);
  // A count the remaining bytes cannot hold is refused before allocating.
  assert.throws(() => new XdrReader(words(16000, 1)).varArray(16384, (r) => r.int()), /longer than the remaining/);
});

test('malformed input: truncation, bad optional flags, trailing bytes', () => {
  assert.throws(() => new XdrReader(Buffer.from([0, 0, 1])).int(), /truncated int/);
  assert.throws(() => new XdrReader(words(8, 0x41414141)).string(), /truncated string/);
  assert.throws(() => new XdrReader(words(2)).optional((r) => r.int()), /must be 0 or 1/);
  assert.throws(() => decode(T.RemoteDomainGetStateRet, words(1, 2, 3)), /trailing bytes/);
  assert.throws(() => decode(T.RemoteTypedParamValue, words(99)), /unknown type 99/);
  assert.throws(() => new XdrWriter().int(2 ** 31), VirtError);
  assert.throws(() => new XdrWriter().uhyper(-1n), VirtError);
  assert.throws(() => new XdrWriter().uchar(256), VirtError);
});

test('uuid helpers', () => {
  const u = '6695eb01-f6a4-8304-79aa-97f2502e193f';
  assert.equal(uuidToString(uuidFromString(u)), u);
  assert.equal(uuidToString(uuidFromString(u.replace(/-/g, '').toUpperCase())), u);
  assert.throws(() => uuidFromString('not-a-uuid'), /malformed UUID/);
});

test('property: primitives round-trip', () => {
  fc.assert(fc.property(
    fc.integer({ min: -0x80000000, max: 0x7fffffff }),
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
    fc.string({ maxLength: 40 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(fc.option(fc.string({ maxLength: 5 }), { nil: null }), { maxLength: 6 }),
    (i, uh, h, s, bytes, opts) => {
      const w = new XdrWriter(8);
      w.int(i);
      w.uhyper(uh);
      w.hyper(h);
      w.string(s);
      w.varOpaque(bytes);
      w.varArray(opts, 100, (w, o) => w.optional(o, (w, x) => w.string(x)));
      const buf = w.finish();
      assert.equal(buf.length % 4, 0);
      const r = new XdrReader(buf);
      assert.equal(r.int(), i);
      assert.equal(r.uhyper(), uh);
      assert.equal(r.hyper(), h);
      assert.equal(r.string(), s);
      assert.deepEqual([...r.varOpaque()], [...bytes]);
      assert.deepEqual(r.varArray(100, (r) => r.optional((r) => r.string())), opts);
      r.expectEnd();
    },
  ));
});

/**
 * Every generated codec of every procedure, exercised two ways: from all-zero words (empty
 * arrays, NULL optionals: the decoded value re-encodes to the same bytes) and from all-one
 * words (one-element arrays, present optionals, union arm 1: decode -> encode -> decode is
 * stable).
 */
test('all 443 procedures: generated codecs round-trip', () => {
  const zeros = Buffer.alloc(1 << 16);
  const ones = Buffer.alloc(1 << 20);
  for (let i = 0; i < ones.length; i += 4) ones.writeUInt32BE(1, i);
  let exercised = 0;
  for (const p of REMOTE_PROCEDURE_LIST) {
    for (const codec of [p.args, p.ret, p.msg]) {
      if (!codec) continue;
      exercised++;
      const r = new XdrReader(zeros);
      let v: unknown;
      try {
        v = codec.dec(r);
      } catch (e) {
        // Only a union with no arm 0 (remote_typed_param_value) may refuse all-zero input.
        assert.match((e as Error).message, /unknown type 0/, `${p.name}: ${(e as Error).message}`);
        continue;
      }
      assert.equal(hex(encode(codec, v)), hex(zeros.subarray(0, r.offset)), `${p.name} zero round trip`);
      const v1 = codec.dec(new XdrReader(ones));
      assert.deepEqual(decode(codec, encode(codec, v1)), v1, `${p.name} ones round trip`);
    }
  }
  assert.equal(REMOTE_PROCEDURE_LIST.length, 443);
  assert.ok(exercised > 600, `exercised ${exercised} codecs`);
});

test('procedure table matches libvirt 9.0 names and numbers', async () => {
  const url = join(SHARED_DIR, 'design', 'remote-procedures.json');
  if (!existsSync(url)) return; // the shared design folder sits beside the repository in CI and on dev machines
  const table = (JSON.parse(readFileSync(url, 'utf8')) as { remote: Record<string, string> }).remote;
  for (const p of REMOTE_PROCEDURE_LIST) assert.equal(table[String(p.num)], p.name);
  assert.equal(Object.keys(table).length, REMOTE_PROCEDURE_LIST.length);
  const console = REMOTE_PROCEDURE_LIST.find((p) => p.name === 'DOMAIN_OPEN_CONSOLE')!;
  assert.deepEqual(console.stream, { direction: 'read', param: 2 });
  assert.equal(REMOTE_PROCEDURE_LIST.find((p) => p.name === 'DOMAIN_LOOKUP_BY_NAME')!.priority, 'high');
});

test('decodePacket reads the header fields', () => {
  const pkt = encodePacket({ prog: REMOTE_PROGRAM, vers: 1, proc: 9999, type: MessageType.REPLY, serial: 0xdeadbeef, status: MessageStatus.ERROR }, UNKNOWN_PROC_ERROR);
  const d = decodePacket(pkt);
  assert.deepEqual(d.header, { prog: REMOTE_PROGRAM, vers: 1, proc: 9999, type: 1, serial: 0xdeadbeef, status: 1 });
  assert.equal(hex(d.payload), hex(UNKNOWN_PROC_ERROR));
});
