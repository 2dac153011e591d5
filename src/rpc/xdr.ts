/**
 * XDR (RFC 4506) as libvirt's RPC uses it: big-endian 4-byte units, hyper as 8 bytes, strings
 * and variable opaque data with a length word and zero padding to a multiple of 4, optional
 * data ("pointers") as a 0/1 word before the value.
 *
 * libvirt's quirks (design facts §1.2) follow from glibc's xdr_char / xdr_u_char / xdr_short:
 * every C char, unsigned char, short and unsigned short travels as a full 4-byte int, including
 * each element of `char model[32]` (32 ints) and `char label<N>` (a count, then one int per
 * char). The writer and reader here are the primitives; the generated codecs in
 * ./generated/ compose them per struct.
 */
import { VirtError, ErrorDomain } from '../errors.js';

/** libvirt 9.0's REMOTE_STRING_MAX: the longest string accepted anywhere in the protocol. */
export const XDR_STRING_MAX = 4 * 1024 * 1024;
/** Length of a UUID on the wire (VIR_UUID_BUFLEN): 16 raw bytes, no length word. */
export const UUID_LEN = 16;

/**
 * A payload that does not decode. libvirtd answers such a call with
 * "Unable to decode message payload" (code RPC, domain RPC); `detail` says what was wrong.
 */
export class XdrError extends VirtError {
  readonly detail: string;
  constructor(detail: string) {
    super('RPC', `Unable to decode message payload: ${detail}`, ErrorDomain.RPC);
    this.name = 'XdrError';
    this.detail = detail;
  }
}

/** A value that cannot be encoded (out of range, too long): a programming or input error. */
function encodeError(what: string): VirtError {
  return new VirtError('RPC', `cannot encode XDR value: ${what}`, ErrorDomain.RPC);
}

const pad4 = (n: number) => (4 - (n & 3)) & 3;

/** Serialises XDR into one growing buffer (no per-field allocations). */
export class XdrWriter {
  private buf: Buffer;
  private pos: number;

  /** `reserve` bytes at the start are left for a header the caller fills in later. */
  constructor(initial = 256, reserve = 0) {
    this.buf = Buffer.allocUnsafe(Math.max(initial, reserve + 16));
    this.buf.fill(0, 0, reserve);
    this.pos = reserve;
  }

  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  int(v: number): void {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw encodeError(`int out of range: ${v}`);
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
  }

  uint(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw encodeError(`unsigned int out of range: ${v}`);
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }

  /** C `char` / `short`: an int on the wire, range-checked to the C type. */
  char(v: number): void {
    if (!Number.isInteger(v) || v < -128 || v > 127) throw encodeError(`char out of range: ${v}`);
    this.int(v);
  }

  uchar(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 255) throw encodeError(`unsigned char out of range: ${v}`);
    this.uint(v);
  }

  short(v: number): void {
    if (!Number.isInteger(v) || v < -32768 || v > 32767) throw encodeError(`short out of range: ${v}`);
    this.int(v);
  }

  ushort(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 65535) throw encodeError(`unsigned short out of range: ${v}`);
    this.uint(v);
  }

  hyper(v: bigint): void {
    if (typeof v !== 'bigint' || v < -(1n << 63n) || v >= 1n << 63n) throw encodeError(`hyper out of range: ${v}`);
    this.ensure(8);
    this.buf.writeBigInt64BE(v, this.pos);
    this.pos += 8;
  }

  uhyper(v: bigint): void {
    if (typeof v !== 'bigint' || v < 0n || v >= 1n << 64n) throw encodeError(`unsigned hyper out of range: ${v}`);
    this.ensure(8);
    this.buf.writeBigUInt64BE(v, this.pos);
    this.pos += 8;
  }

  bool(v: boolean): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v ? 1 : 0, this.pos);
    this.pos += 4;
  }

  /** An enum is an int; the generated codecs check the value against the enum's members. */
  enum(v: number): void {
    this.int(v);
  }

  float(v: number): void {
    this.ensure(4);
    this.buf.writeFloatBE(v, this.pos);
    this.pos += 4;
  }

  double(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
  }

  /** Fixed-length opaque: exactly `len` bytes, padded; no length word. */
  fixedOpaque(v: Uint8Array, len: number): void {
    if (v.length !== len) throw encodeError(`fixed opaque needs ${len} bytes, got ${v.length}`);
    this.rawPadded(v);
  }

  /** Variable-length opaque: length word, bytes, padding. */
  varOpaque(v: Uint8Array, max = 0xffffffff): void {
    if (v.length > max) throw encodeError(`opaque of ${v.length} bytes exceeds its limit ${max}`);
    this.uint(v.length);
    this.rawPadded(v);
  }

  string(s: string, max = XDR_STRING_MAX): void {
    if (typeof s !== 'string') throw encodeError(`expected a string, got ${typeof s}`);
    const n = Buffer.byteLength(s, 'utf8');
    if (n > max) throw encodeError(`string of ${n} bytes exceeds its limit ${max}`);
    this.ensure(4 + n + 3);
    this.buf.writeUInt32BE(n, this.pos);
    this.pos += 4;
    this.buf.write(s, this.pos, n, 'utf8');
    this.pos += n;
    const p = pad4(n);
    if (p) {
      this.buf.fill(0, this.pos, this.pos + p);
      this.pos += p;
    }
  }

  /** XDR optional-data: 0 for null/undefined, else 1 followed by the value. */
  optional<T>(v: T | null | undefined, enc: (w: XdrWriter, v: T) => void): void {
    if (v === null || v === undefined) {
      this.uint(0);
    } else {
      this.uint(1);
      enc(this, v);
    }
  }

  /** Variable-length array: count word, then each element. */
  varArray<T>(items: readonly T[], max: number, enc: (w: XdrWriter, v: T) => void): void {
    if (!Array.isArray(items)) throw encodeError('expected an array');
    if (items.length > max) throw encodeError(`array of ${items.length} elements exceeds its limit ${max}`);
    this.uint(items.length);
    for (const it of items) enc(this, it);
  }

  /** Fixed-length array: exactly `len` elements, no count word. */
  fixedArray<T>(items: readonly T[], len: number, enc: (w: XdrWriter, v: T) => void): void {
    if (!Array.isArray(items) || items.length !== len) throw encodeError(`fixed array needs ${len} elements`);
    for (const it of items) enc(this, it);
  }

  /**
   * `char x[N]` / `unsigned char x[N]`: N bytes sent as N ints. Shorter input is zero-filled
   * (the C side is a zeroed buffer holding a NUL-terminated string).
   */
  fixedCharArray(v: Uint8Array, len: number, signed: boolean): void {
    if (v.length > len) throw encodeError(`char array of ${v.length} exceeds its size ${len}`);
    this.ensure(4 * len);
    for (let i = 0; i < len; i++) this.charElement(i < v.length ? v[i]! : 0, signed);
  }

  /** `char x<N>`: a count, then one int per byte. */
  varCharArray(v: Uint8Array, max: number, signed: boolean): void {
    if (v.length > max) throw encodeError(`char array of ${v.length} exceeds its limit ${max}`);
    this.uint(v.length);
    this.ensure(4 * v.length);
    for (let i = 0; i < v.length; i++) this.charElement(v[i]!, signed);
  }

  /** Append already-encoded XDR (e.g. a payload built elsewhere). */
  raw(v: Uint8Array): void {
    this.ensure(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  /** Overwrite a uint32 at an absolute offset (length and header words). */
  patchUint(offset: number, v: number): void {
    this.buf.writeUInt32BE(v >>> 0, offset);
  }

  /** The encoded bytes (a view, valid until the next write). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  private charElement(b: number, signed: boolean): void {
    // glibc's xdr_char sign-extends a (signed) char; bytes >= 0x80 travel as negative ints.
    const v = signed && b > 127 ? b - 256 : b;
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
  }

  private rawPadded(v: Uint8Array): void {
    const p = pad4(v.length);
    this.ensure(v.length + p);
    this.buf.set(v, this.pos);
    this.pos += v.length;
    if (p) {
      this.buf.fill(0, this.pos, this.pos + p);
      this.pos += p;
    }
  }
}

/** Reads XDR from a buffer; every failure is an XdrError naming what did not fit. */
export class XdrReader {
  private readonly buf: Buffer;
  private pos: number;
  private readonly end: number;

  constructor(buf: Uint8Array, offset = 0, end?: number) {
    this.buf = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = offset;
    this.end = end ?? this.buf.length;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.end - this.pos < n) {
      throw new XdrError(`truncated ${what}: need ${n} bytes at offset ${this.pos}, have ${this.end - this.pos}`);
    }
  }

  int(): number {
    this.need(4, 'int');
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint(): number {
    this.need(4, 'unsigned int');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /**
   * C `char`, `short` and their unsigned forms arrive as ints; glibc truncates them to the C
   * type, and so do we (a daemon sending 0x101 for an unsigned char means 1).
   */
  char(): number {
    return (this.int() << 24) >> 24;
  }

  uchar(): number {
    return this.uint() & 0xff;
  }

  short(): number {
    return (this.int() << 16) >> 16;
  }

  ushort(): number {
    return this.uint() & 0xffff;
  }

  hyper(): bigint {
    this.need(8, 'hyper');
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  uhyper(): bigint {
    this.need(8, 'unsigned hyper');
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Any non-zero word is true, as glibc's xdr_bool decodes it. */
  bool(): boolean {
    return this.uint() !== 0;
  }

  enum(): number {
    return this.int();
  }

  float(): number {
    this.need(4, 'float');
    const v = this.buf.readFloatBE(this.pos);
    this.pos += 4;
    return v;
  }

  double(): number {
    this.need(8, 'double');
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A copy of `len` bytes (the caller may keep it after the packet buffer is reused). */
  fixedOpaque(len: number): Buffer {
    const total = len + pad4(len);
    this.need(total, `opaque[${len}]`);
    const v = Buffer.from(this.buf.subarray(this.pos, this.pos + len));
    this.pos += total;
    return v;
  }

  varOpaque(max = 0xffffffff): Buffer {
    const n = this.uint();
    if (n > max) throw new XdrError(`opaque length ${n} exceeds its limit ${max}`);
    return this.fixedOpaque(n);
  }

  string(max = XDR_STRING_MAX): string {
    const n = this.uint();
    if (n > max) throw new XdrError(`string length ${n} exceeds its limit ${max}`);
    const total = n + pad4(n);
    this.need(total, `string of ${n} bytes`);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += total;
    return s;
  }

  optional<T>(dec: (r: XdrReader) => T): T | null {
    const flag = this.uint();
    if (flag === 0) return null;
    if (flag !== 1) throw new XdrError(`optional-data flag must be 0 or 1, got ${flag}`);
    return dec(this);
  }

  varArray<T>(max: number, dec: (r: XdrReader) => T): T[] {
    const n = this.uint();
    if (n > max) throw new XdrError(`array length ${n} exceeds its limit ${max}`);
    // Each element takes at least 4 bytes: refuse counts the data cannot hold before allocating.
    if (n * 4 > this.remaining) throw new XdrError(`array of ${n} elements is longer than the remaining ${this.remaining} bytes`);
    const out: T[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = dec(this);
    return out;
  }

  fixedArray<T>(len: number, dec: (r: XdrReader) => T): T[] {
    const out: T[] = new Array(len);
    for (let i = 0; i < len; i++) out[i] = dec(this);
    return out;
  }

  fixedCharArray(len: number): Buffer {
    this.need(4 * len, `char[${len}]`);
    const out = Buffer.allocUnsafe(len);
    for (let i = 0; i < len; i++) {
      out[i] = this.buf.readInt32BE(this.pos) & 0xff;
      this.pos += 4;
    }
    return out;
  }

  varCharArray(max: number): Buffer {
    const n = this.uint();
    if (n > max) throw new XdrError(`char array length ${n} exceeds its limit ${max}`);
    return this.fixedCharArray(n);
  }

  /** Everything not read yet (e.g. a payload after the header). */
  rest(): Buffer {
    const v = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return v;
  }

  /** Strict decoders call this: trailing bytes mean the payload was not what we expected. */
  expectEnd(what = 'payload'): void {
    if (this.pos !== this.end) throw new XdrError(`${this.end - this.pos} unexpected trailing bytes after the ${what}`);
  }
}

/** An encoder/decoder pair for one XDR type; the generated code exports one per struct. */
export interface Codec<T> {
  enc(w: XdrWriter, v: T): void;
  dec(r: XdrReader): T;
}

/** Encode one value with a codec into a fresh buffer. */
export function encode<T>(codec: Codec<T>, v: T): Buffer {
  const w = new XdrWriter();
  codec.enc(w, v);
  return Buffer.from(w.finish());
}

/** Decode one value, requiring the whole buffer to be consumed. */
export function decode<T>(codec: Codec<T>, buf: Uint8Array): T {
  const r = new XdrReader(buf);
  const v = codec.dec(r);
  r.expectEnd();
  return v;
}

/** The bytes of a C string as libvirt sends it in `char x<N>`: the text plus its NUL. */
export function cStringBytes(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]);
}

/** A C string out of a char array: the bytes before the first NUL. */
export function fromCString(b: Uint8Array): string {
  const nul = b.indexOf(0);
  return Buffer.from(b.buffer, b.byteOffset, nul < 0 ? b.length : nul).toString('utf8');
}

/** 16 raw UUID bytes -> libvirt's dashed lowercase form. */
export function uuidToString(b: Uint8Array): string {
  if (b.length !== UUID_LEN) throw new XdrError(`a UUID has ${UUID_LEN} bytes, got ${b.length}`);
  const h = Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * A UUID string -> 16 bytes. Accepts libvirt's forms: 32 hex digits, optionally separated by
 * dashes (and spaces) between byte pairs, as virUUIDParse does.
 */
export function uuidFromString(s: string): Buffer {
  const hex = s.trim().replace(/[-\s]/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) {
    throw new VirtError('INVALID_ARG', `invalid argument: malformed UUID '${s}'`);
  }
  return Buffer.from(hex, 'hex');
}
