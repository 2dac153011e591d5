/**
 * libvirt RPC framing (design facts §1.1): every packet is a big-endian uint32 length that
 * counts itself, a 24-byte header (program, version, procedure, type, serial, status), then
 * an XDR payload. libvirtd drops the connection on a length under 28 or over 32 MiB + 4.
 */
import { VirtError, ErrorDomain } from '../errors.js';
import { XdrWriter, XdrReader, type Codec } from './xdr.js';

/** The length word. */
export const LEN_SIZE = 4;
/** program, version, procedure, type, serial, status. */
export const HEADER_SIZE = 24;
/** A packet with an empty payload. */
export const MIN_PACKET = LEN_SIZE + HEADER_SIZE;
/** libvirt's VIR_NET_MESSAGE_MAX (32 MiB) of payload+header, plus the length word itself. */
export const MAX_PACKET = 32 * 1024 * 1024 + LEN_SIZE;

/** virNetMessageType */
export const MessageType = {
  CALL: 0,
  REPLY: 1,
  MESSAGE: 2,
  STREAM: 3,
  CALL_WITH_FDS: 4,
  REPLY_WITH_FDS: 5,
  STREAM_HOLE: 6,
} as const;
export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];

/** virNetMessageStatus */
export const MessageStatus = { OK: 0, ERROR: 1, CONTINUE: 2 } as const;
export type MessageStatusCode = (typeof MessageStatus)[keyof typeof MessageStatus];

export interface PacketHeader {
  prog: number;
  vers: number;
  proc: number;
  type: number;
  serial: number;
  status: number;
}

export interface Packet {
  header: PacketHeader;
  /** The XDR payload (may be empty). A view into the reader's buffer: copy to keep it. */
  payload: Buffer;
}

/** The stream broke framing: the peer must be disconnected (libvirtd closes the socket). */
export class FrameError extends VirtError {
  constructor(message: string) {
    super('RPC', message, ErrorDomain.RPC);
    this.name = 'FrameError';
  }
}

/** A writer positioned after a packet header; `finishPacket` fills in the length and header. */
export function startPacket(initial = 256): XdrWriter {
  return new XdrWriter(initial, MIN_PACKET);
}

export function finishPacket(w: XdrWriter, h: PacketHeader): Buffer {
  const len = w.length;
  if (len > MAX_PACKET) throw new FrameError(`packet of ${len} bytes exceeds the ${MAX_PACKET}-byte limit`);
  w.patchUint(0, len);
  w.patchUint(4, h.prog);
  w.patchUint(8, h.vers);
  w.patchUint(12, h.proc);
  w.patchUint(16, h.type);
  w.patchUint(20, h.serial);
  w.patchUint(24, h.status);
  return w.finish();
}

/** Encode a whole packet: header plus an optional payload (a codec and its value, or raw bytes). */
export function encodePacket<T>(h: PacketHeader, body?: { codec: Codec<T>; value: T } | Uint8Array): Buffer {
  // raw bytes: the exact size at once (a big payload is copied once, not at every doubling)
  const w = startPacket(body instanceof Uint8Array ? MIN_PACKET + body.length : 256);
  if (body instanceof Uint8Array) w.raw(body);
  else if (body) body.codec.enc(w, body.value);
  return finishPacket(w, h);
}

/** Decode the header of one complete packet (length word included) and slice its payload. */
export function decodePacket(buf: Buffer): Packet {
  if (buf.length < MIN_PACKET) throw new FrameError(`packet of ${buf.length} bytes is shorter than the ${MIN_PACKET}-byte header`);
  const len = buf.readUInt32BE(0);
  if (len !== buf.length) throw new FrameError(`packet length word ${len} does not match its ${buf.length} bytes`);
  return {
    header: {
      prog: buf.readUInt32BE(4),
      vers: buf.readUInt32BE(8),
      proc: buf.readInt32BE(12),
      type: buf.readInt32BE(16),
      serial: buf.readUInt32BE(20),
      status: buf.readInt32BE(24),
    },
    payload: buf.subarray(MIN_PACKET),
  };
}

/** Decode a payload with a codec; the whole payload must be consumed. */
export function decodePayload<T>(codec: Codec<T>, payload: Buffer): T {
  const r = new XdrReader(payload);
  const v = codec.dec(r);
  r.expectEnd();
  return v;
}

/**
 * Splits a byte stream into packets. Feed it whatever the socket delivers (partial packets,
 * several packets at once); it returns the complete ones. A bad length word throws a
 * FrameError and the reader refuses further input: framing cannot be recovered after that.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: FrameError | null = null;

  constructor(private readonly maxPacket = MAX_PACKET) {}

  /** Bytes held waiting for the rest of a packet. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Packet[] {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return [];
    let buf: Buffer;
    if (this.buffered === 0) {
      buf = chunk;
    } else {
      // Collect the pieces of a large packet and join them once, when it is complete.
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered < LEN_SIZE) return [];
      const head = this.chunks[0]!.length >= LEN_SIZE ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
      const len = this.checkLength(head.readUInt32BE(0));
      if (this.buffered < len) return [];
      buf = Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
    }
    const out: Packet[] = [];
    let off = 0;
    while (buf.length - off >= LEN_SIZE) {
      const len = this.checkLength(buf.readUInt32BE(off));
      if (buf.length - off < len) break;
      out.push(decodePacket(buf.subarray(off, off + len)));
      off += len;
    }
    if (off < buf.length) {
      // Keep the partial packet; copy it so the caller's chunk is not pinned.
      const rest = Buffer.from(buf.subarray(off));
      this.chunks = [rest];
      this.buffered = rest.length;
    }
    return out;
  }

  private checkLength(len: number): number {
    if (len >= MIN_PACKET && len <= this.maxPacket) return len;
    this.failed = new FrameError(
      len < MIN_PACKET
        ? `packet length ${len} is shorter than the ${MIN_PACKET}-byte minimum`
        : `packet length ${len} exceeds the ${this.maxPacket}-byte maximum`,
    );
    throw this.failed;
  }
}
