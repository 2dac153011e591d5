/**
 * The client half of libvirt's RPC over one stream socket: serial numbering, replies matched
 * to calls by serial, error replies turned into RpcError, event MESSAGEs and STREAM packets
 * handed to listeners, and the keepalive program (answer every PING with a PONG; when
 * started, PING after `interval` of silence and give up after `count` unanswered PINGs, as
 * libvirt's virKeepAlive does).
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { VirtError, ErrorDomain } from '../errors.js';
import { XdrReader, type Codec } from './xdr.js';
import {
  FrameReader, MessageType, MessageStatus, startPacket, finishPacket, encodePacket,
  type Packet,
} from './packet.js';
import {
  KEEPALIVE_PROGRAM, KEEPALIVE_PROTOCOL_VERSION, KeepaliveProcedure, KEEPALIVE_INTERVAL_MS, KEEPALIVE_COUNT,
  RpcError,
} from './protocol.js';
import { RemoteError } from './generated/remote-types.js';
import {
  REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, RemoteProcedure, REMOTE_PROCEDURES,
  type RemoteProcedureName, type RemoteProcedureTypes,
} from './generated/remote-procedures.js';

interface Pending {
  proc: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  ret: Codec<any> | null;
  resolve(v: unknown): void;
  reject(e: Error): void;
}

export interface RpcClientOptions {
  /** Called for every MESSAGE of the REMOTE program (domain events, connection closed, ...). */
  onMessage?: (pkt: Packet) => void;
  /** Called for STREAM / STREAM_HOLE packets (consoles; not used yet). */
  onStream?: (pkt: Packet) => void;
  /** Called once when the connection ends; `err` is set when it did not end by close(). */
  onClose?: (err?: Error) => void;
}

const closedError = () => new VirtError('INTERNAL_ERROR', 'internal error: client socket is closed', ErrorDomain.RPC);

/** Connect to a UNIX socket; failures read like libvirt's ("Failed to connect socket to ..."). */
export function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ path });
    const onError = (e: NodeJS.ErrnoException) => {
      sock.destroy();
      reject(new VirtError('SYSTEM_ERROR', `Failed to connect socket to '${path}': ${describeErrno(e)}`, ErrorDomain.RPC));
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

function describeErrno(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'ENOENT': return 'No such file or directory';
    case 'ECONNREFUSED': return 'Connection refused';
    case 'EACCES': return 'Permission denied';
    case 'ENOTSOCK': return 'Socket operation on non-socket';
    default: return e.message;
  }
}

export class RpcClient {
  private readonly frames = new FrameReader();
  private readonly pending = new Map<number, Pending>();
  private serial = 0;
  private ended = false;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private lastReceived = Date.now();
  private unanswered = 0;

  constructor(private readonly sock: Duplex, private readonly opts: RpcClientOptions = {}) {
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (e: Error) => this.shutdown(
      new VirtError('SYSTEM_ERROR', `Cannot recv data: ${describeErrno(e as NodeJS.ErrnoException)}`, ErrorDomain.RPC),
    ));
    sock.on('close', () => this.shutdown(
      new VirtError('SYSTEM_ERROR', 'End of file while reading data: Input/output error', ErrorDomain.RPC),
    ));
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Calls sent and not answered yet. */
  get outstanding(): number {
    return this.pending.size;
  }

  /** A typed call of a REMOTE procedure by name; args and result types come from the .x file. */
  callProc<K extends RemoteProcedureName>(
    name: K,
    ...args: RemoteProcedureTypes[K]['args'] extends void ? [] : [RemoteProcedureTypes[K]['args']]
  ): Promise<RemoteProcedureTypes[K]['ret']> {
    const num = RemoteProcedure[name];
    const info = REMOTE_PROCEDURES.get(num)!;
    return this.call(REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, num, info.args, args[0], info.ret) as Promise<
      RemoteProcedureTypes[K]['ret']
    >;
  }

  /** A raw call: any program/procedure, with explicit codecs (null for void). */
  call<A, R>(prog: number, vers: number, proc: number, argsCodec: Codec<A> | null, args: A, retCodec: Codec<R> | null): Promise<R> {
    if (this.ended) return Promise.reject(closedError());
    const serial = this.serial;
    this.serial = (this.serial + 1) >>> 0;
    let packet: Buffer;
    try {
      const w = startPacket();
      if (argsCodec) argsCodec.enc(w, args);
      packet = finishPacket(w, { prog, vers, proc, type: MessageType.CALL, serial, status: MessageStatus.OK });
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<R>((resolve, reject) => {
      this.pending.set(serial, { proc, ret: retCodec, resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(packet);
    });
  }

  /** Send a packet that expects no reply (keepalive, stream data). */
  send(packet: Buffer): void {
    if (!this.ended) this.sock.write(packet);
  }

  /**
   * Start pinging: every `intervalMs` with no traffic from the peer, send a PING; after
   * `count` PINGs without any traffic back, drop the connection (libvirt's keepalive).
   */
  startKeepalive(intervalMs = KEEPALIVE_INTERVAL_MS, count = KEEPALIVE_COUNT): void {
    this.stopKeepalive();
    if (intervalMs <= 0 || this.ended) return;
    this.lastReceived = Date.now();
    this.unanswered = 0;
    this.keepaliveTimer = setInterval(() => this.keepaliveTick(intervalMs, count), intervalMs);
    this.keepaliveTimer.unref();
  }

  stopKeepalive(): void {
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
  }

  /** Close the socket; outstanding calls fail. */
  close(): void {
    this.shutdown(undefined);
  }

  private keepaliveTick(intervalMs: number, count: number): void {
    if (Date.now() - this.lastReceived < intervalMs) return;
    if (this.unanswered >= count) {
      this.shutdown(new VirtError('SYSTEM_ERROR', 'internal error: connection closed due to keepalive timeout', ErrorDomain.RPC));
      return;
    }
    this.unanswered++;
    this.send(keepalivePacket(KeepaliveProcedure.PING));
  }

  private onData(chunk: Buffer): void {
    this.lastReceived = Date.now();
    this.unanswered = 0;
    let packets: Packet[];
    try {
      packets = this.frames.push(chunk);
    } catch (e) {
      this.shutdown(e as Error);
      return;
    }
    for (const p of packets) this.onPacket(p);
  }

  private onPacket(p: Packet): void {
    const h = p.header;
    if (h.prog === KEEPALIVE_PROGRAM) {
      if (h.proc === KeepaliveProcedure.PING) this.send(keepalivePacket(KeepaliveProcedure.PONG));
      return;
    }
    switch (h.type) {
      case MessageType.REPLY:
      case MessageType.REPLY_WITH_FDS:
        this.onReply(p);
        return;
      case MessageType.MESSAGE:
        this.opts.onMessage?.(p);
        return;
      case MessageType.STREAM:
      case MessageType.STREAM_HOLE:
        this.opts.onStream?.(p);
        return;
      default:
        // A daemon never sends CALLs to its clients; ignore rather than drop the connection.
        return;
    }
  }

  private onReply(p: Packet): void {
    const call = this.pending.get(p.header.serial);
    if (!call) return; // a reply to nothing we sent: ignore, as libvirt's client does
    this.pending.delete(p.header.serial);
    try {
      const r = new XdrReader(p.payload);
      if (p.header.status === MessageStatus.ERROR) {
        call.reject(new RpcError(RemoteError.dec(r)));
        return;
      }
      call.resolve(call.ret ? call.ret.dec(r) : undefined);
    } catch (e) {
      call.reject(e as Error);
    }
  }

  private shutdown(err: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.stopKeepalive();
    const reason = err ?? closedError();
    for (const call of this.pending.values()) call.reject(reason);
    this.pending.clear();
    this.sock.destroy();
    this.opts.onClose?.(err);
  }
}

/** A keepalive PING or PONG: a MESSAGE with serial 0 and no payload. */
export function keepalivePacket(proc: number): Buffer {
  return encodePacket({
    prog: KEEPALIVE_PROGRAM, vers: KEEPALIVE_PROTOCOL_VERSION, proc,
    type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK,
  });
}
