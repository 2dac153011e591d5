import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameReader, FrameError, encodePacket, MAX_PACKET, MIN_PACKET, MessageType, type Packet } from './packet.js';

const pkt = (serial: number, payload = Buffer.alloc(0)) =>
  encodePacket({ prog: 0x20008086, vers: 1, proc: 16, type: MessageType.CALL, serial, status: 0 }, payload);

const serials = (ps: Packet[]) => ps.map((p) => p.header.serial);

test('limits are libvirtd 9.0\'s: 28 bytes minimum, 32 MiB + 4 maximum', () => {
  assert.equal(MIN_PACKET, 28);
  assert.equal(MAX_PACKET, 33554436);
});

test('one packet split at every possible byte boundary', () => {
  const p = pkt(7, Buffer.from('0123456789abcdef'));
  for (let cut = 0; cut <= p.length; cut++) {
    const fr = new FrameReader();
    const got = [...fr.push(p.subarray(0, cut)), ...fr.push(p.subarray(cut))];
    assert.deepEqual(serials(got), [7], `cut at ${cut}`);
    assert.equal(got[0]!.payload.toString(), '0123456789abcdef');
    assert.equal(fr.pending, 0);
  }
});

test('coalesced packets, and a stream fed one byte at a time', () => {
  const all = Buffer.concat([pkt(1), pkt(2, Buffer.alloc(8, 1)), pkt(3)]);
  assert.deepEqual(serials(new FrameReader().push(all)), [1, 2, 3]);
  const fr = new FrameReader();
  const got: Packet[] = [];
  for (const b of all) got.push(...fr.push(Buffer.from([b])));
  assert.deepEqual(serials(got), [1, 2, 3]);
});

test('property: any chunking yields the same packets', () => {
  fc.assert(fc.property(
    fc.array(fc.uint8Array({ maxLength: 64 }), { minLength: 1, maxLength: 8 }),
    fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 }),
    (payloads, cuts) => {
      const stream = Buffer.concat(payloads.map((pl, i) => pkt(i, Buffer.from(pl))));
      const fr = new FrameReader();
      const got: Packet[] = [];
      let off = 0;
      for (let i = 0; off < stream.length; i++) {
        const n = cuts[i % cuts.length]!;
        got.push(...fr.push(stream.subarray(off, off + n)));
        off += n;
      }
      assert.deepEqual(serials(got), payloads.map((_, i) => i));
      got.forEach((p, i) => assert.deepEqual([...p.payload], [...payloads[i]!]));
    },
  ));
});

test('a length word under 28 or over the maximum breaks the stream for good', () => {
  const short = Buffer.from([0, 0, 0, 8, 1, 2, 3, 4]);
  const fr = new FrameReader();
  assert.throws(() => fr.push(short), (e) => e instanceof FrameError && /shorter than the 28-byte minimum/.test(e.message));
  assert.throws(() => fr.push(pkt(1)), FrameError);

  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(MAX_PACKET + 1);
  assert.throws(() => new FrameReader().push(huge), /exceeds the 33554436-byte maximum/);
  // The bad word is detected even when it arrives split, and after good packets in the same chunk.
  const fr2 = new FrameReader();
  assert.deepEqual(serials(fr2.push(Buffer.concat([pkt(5), huge.subarray(0, 2)]))), [5]);
  assert.throws(() => fr2.push(huge.subarray(2)), FrameError);
  // Exactly the maximum is fine as a length word (we only wait for the data).
  const max = Buffer.alloc(4);
  max.writeUInt32BE(MAX_PACKET);
  assert.deepEqual(new FrameReader().push(max), []);
});

test('a large packet arriving in many chunks is assembled once', () => {
  const big = pkt(9, Buffer.alloc(3 * 1024 * 1024, 0xab));
  const fr = new FrameReader();
  const got: Packet[] = [];
  for (let off = 0; off < big.length; off += 65536) got.push(...fr.push(big.subarray(off, off + 65536)));
  assert.deepEqual(serials(got), [9]);
  assert.equal(got[0]!.payload.length, 3 * 1024 * 1024);
  assert.equal(got[0]!.payload[12345], 0xab);
});
