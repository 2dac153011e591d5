/**
 * The server half of libvirt's RPC, as a skeleton for xenvirtd: decode a CALL, run the
 * handler registered for its procedure, encode the REPLY. Everything that is not a handler's
 * business is answered here the way libvirtd 9.0 answers it (design facts §1, §5, §6):
 *
 * - keepalive PING -> PONG (MESSAGE, serial 0);
 * - unknown program or version -> ERROR 39/7 "Cannot find program N version V" (decimal),
 *   copying the bad program/version/procedure into the reply;
 * - a procedure number libvirt does not define -> ERROR 39/7 "unknown procedure: N";
 * - a payload that does not decode -> ERROR 39/7 "Unable to decode message payload";
 * - a defined procedure with no handler -> ERROR 3 "this function is not supported by the
 *   connection driver: virXxx";
 * - a handler's VirtError -> its code/domain/message in remote_error;
 * - STREAM packets for no known stream are dropped silently.
 *
 * `serveStream` wires a dispatcher to a socket: framing, up to `maxConcurrent` calls in
 * flight per client (libvirtd's max_client_requests = 5), and dropping the client on a bad
 * length word.
 */
import type { Duplex } from 'node:stream';
import { VirtError, ErrorDomain } from '../errors.js';
import { XdrReader, XdrError } from './xdr.js';
import {
  FrameReader, MessageType, MessageStatus, startPacket, finishPacket, encodePacket,
  type Packet, type PacketHeader,
} from './packet.js';
import { KEEPALIVE_PROGRAM, KeepaliveProcedure, toRemoteError } from './protocol.js';
import { keepalivePacket } from './rpc-client.js';
import { RemoteError } from './generated/remote-types.js';
import {
  REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, REMOTE_PROCEDURES, RemoteProcedure,
  type ProcedureInfo, type RemoteProcedureName, type RemoteProcedureTypes,
} from './generated/remote-procedures.js';

/** A reply payload encoded beforehand (a cached answer): sent as it is. */
export class EncodedReply {
  constructor(readonly payload: Buffer) {}
}

export type Handler<K extends RemoteProcedureName, Ctx> = (
  args: RemoteProcedureTypes[K]['args'],
  ctx: Ctx,
  header: PacketHeader,
) => RemoteProcedureTypes[K]['ret'] | EncodedReply | Promise<RemoteProcedureTypes[K]['ret'] | EncodedReply>;

/** What dispatch gives back: at once when the handler answered at once (no promise to wait for). */
export type DispatchResult = Buffer | null | Promise<Buffer | null>;

/** The public API name libvirt reports for a procedure, e.g. DOMAIN_GET_XML_DESC -> virDomainGetXMLDesc. */
export function apiName(name: string): string {
  const special: Record<string, string> = { XML: 'XML', UUID: 'UUID', ID: 'ID', OS: 'OS', CPU: 'CPU', URI: 'URI', MAC: 'MAC' };
  return 'vir' + name.split('_').map((t) => special[t] ?? t[0] + t.slice(1).toLowerCase()).join('');
}

const rpcError = (message: string) => new VirtError('RPC', message, ErrorDomain.RPC);

export class Dispatcher<Ctx> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly handlers = new Map<number, Handler<any, Ctx>>();

  /** Register the handler of one REMOTE procedure (replacing any earlier one). */
  handle<K extends RemoteProcedureName>(name: K, fn: Handler<K, Ctx>): this {
    this.handlers.set(RemoteProcedure[name], fn);
    return this;
  }

  has(name: RemoteProcedureName): boolean {
    return this.handlers.has(RemoteProcedure[name]);
  }

  /**
   * Process one packet from a client. Returns the bytes to send back (a REPLY, a PONG), or
   * null when nothing is owed (PONGs, stray STREAM packets, client MESSAGEs); a promise of
   * them only when the handler returned one.
   */
  dispatch(pkt: Packet, ctx: Ctx): DispatchResult {
    const h = pkt.header;
    if (h.prog === KEEPALIVE_PROGRAM) {
      return h.proc === KeepaliveProcedure.PING ? keepalivePacket(KeepaliveProcedure.PONG) : null;
    }
    if (h.type !== MessageType.CALL) return null;
    if (h.prog !== REMOTE_PROGRAM || h.vers !== REMOTE_PROTOCOL_VERSION) {
      return errorReply(h, rpcError(`Cannot find program ${h.prog} version ${h.vers}`));
    }
    const info = REMOTE_PROCEDURES.get(h.proc);
    if (!info) return errorReply(h, rpcError(`unknown procedure: ${h.proc}`));

    let args: unknown;
    try {
      args = decodeArgs(info, pkt.payload);
    } catch (e) {
      if (e instanceof XdrError) return errorReply(h, rpcError('Unable to decode message payload'));
      throw e;
    }
    const fn = this.handlers.get(h.proc);
    if (!fn) {
      return errorReply(h, new VirtError('NO_SUPPORT', `this function is not supported by the connection driver: ${apiName(info.name)}`, ErrorDomain.DOMAIN));
    }
    let ret: unknown;
    try {
      ret = fn(args, ctx, h);
    } catch (e) {
      return errorReply(h, e);
    }
    if (ret instanceof Promise) return ret.then((v: unknown) => okReply(info, h, v), (e: unknown) => errorReply(h, e));
    return okReply(info, h, ret);
  }
}

/** The OK reply to the call `h`. */
function okReply(info: ProcedureInfo, h: PacketHeader, ret: unknown): Buffer {
  const header = { prog: h.prog, vers: h.vers, proc: h.proc, type: MessageType.REPLY, serial: h.serial, status: MessageStatus.OK };
  try {
    if (ret instanceof EncodedReply) return encodePacket(header, ret.payload);
    const w = startPacket();
    if (info.ret) info.ret.enc(w, ret);
    return finishPacket(w, header);
  } catch (e) {
    return errorReply(h, new VirtError('INTERNAL_ERROR', `internal error: cannot encode the reply of ${info.name}: ${(e as Error).message}`, ErrorDomain.RPC));
  }
}

function decodeArgs(info: ProcedureInfo, payload: Buffer): unknown {
  if (!info.args) {
    if (payload.length !== 0) throw new XdrError(`${info.name} takes no arguments`);
    return undefined;
  }
  const r = new XdrReader(payload);
  return info.args.dec(r);
}

/** An ERROR reply to the call `h`: same program, version, procedure and serial. */
export function errorReply(h: PacketHeader, err: unknown): Buffer {
  return encodePacket(
    { prog: h.prog, vers: h.vers, proc: h.proc, type: MessageType.REPLY, serial: h.serial, status: MessageStatus.ERROR },
    { codec: RemoteError, value: toRemoteError(err) },
  );
}

/** An event MESSAGE (libvirtd sends them with serial 1, facts §1.3). */
export function eventPacket<K extends RemoteProcedureName>(name: K, msg: RemoteProcedureTypes[K]['msg'], serial = 1): Buffer {
  const info = REMOTE_PROCEDURES.get(RemoteProcedure[name])!;
  if (!info.msg) throw new VirtError('INTERNAL_ERROR', `internal error: ${name} is not an event`, ErrorDomain.RPC);
  return encodePacket(
    { prog: REMOTE_PROGRAM, vers: REMOTE_PROTOCOL_VERSION, proc: info.num, type: MessageType.MESSAGE, serial, status: MessageStatus.OK },
    { codec: info.msg, value: msg },
  );
}

export interface ServeOptions {
  /** Calls processed at once for this client; more wait in order (libvirtd: 5). */
  maxConcurrent?: number;
  /** Called when the client is gone (closed, broke framing, or socket error). */
  onClose?: (err?: Error) => void;
}

/** Serve one client stream with a dispatcher until it closes. Returns a function that drops it. */
export function serveStream<Ctx>(sock: Duplex, dispatcher: Dispatcher<Ctx>, ctx: Ctx, opts: ServeOptions = {}): () => void {
  const frames = new FrameReader();
  const max = opts.maxConcurrent ?? 5;
  const queue: Packet[] = [];
  let running = 0;
  let closed = false;

  const finish = (err?: Error) => {
    if (closed) return;
    closed = true;
    sock.destroy();
    opts.onClose?.(err);
  };
  const pump = () => {
    while (!closed && running < max && queue.length > 0) {
      const p = queue.shift()!;
      let reply: DispatchResult;
      try {
        reply = dispatcher.dispatch(p, ctx);
      } catch (e) {
        finish(e as Error);
        return;
      }
      if (!(reply instanceof Promise)) {
        if (reply) sock.write(reply);
        continue;
      }
      running++;
      reply.then(
        (r) => {
          running--;
          if (r && !closed) sock.write(r);
          pump();
        },
        (e: Error) => {
          running--;
          finish(e);
        },
      );
    }
  };
  sock.on('data', (chunk: Buffer) => {
    if (closed) return;
    let packets: Packet[];
    try {
      packets = frames.push(chunk);
    } catch (e) {
      finish(e as Error); // libvirtd drops a client whose length word is out of range
      return;
    }
    for (const p of packets) {
      // Copy: the payload views the chunk, and calls may wait in the queue.
      queue.push({ header: p.header, payload: Buffer.from(p.payload) });
    }
    pump();
  });
  sock.on('error', (e: Error) => finish(e));
  sock.on('close', () => finish());
  return () => finish();
}
