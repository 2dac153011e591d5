/**
 * One client of the daemon: its socket, framing, the calls it has in flight, keepalive, and
 * the state the handlers keep for it (see handlers.ts `Session`).
 *
 * Limits, as libvirtd's:
 * - at most `maxRequests` calls run at once (max_client_requests, 5); while they run and more
 *   are waiting, the socket is not read, so a flooding client is slowed, not buffered;
 * - a length word under 28 or over 32 MiB + 4 drops the client at once, with no reply;
 * - once the client asked for PROGRAM_KEEPALIVE, it is PINGed after `keepaliveIntervalMs` of
 *   silence and dropped after `keepaliveCount` unanswered PINGs;
 * - a client that never opens a connection is dropped after `handshakeTimeoutMs`;
 * - a client that does not read what it is sent (replies, events) is dropped once
 *   `maxOutputBytes` are waiting for it.
 */
import type { Socket } from 'node:net';
import { FrameReader, MessageType, type Packet } from '../rpc/packet.js';
import { KEEPALIVE_PROGRAM, KeepaliveProcedure } from '../rpc/protocol.js';
import { keepalivePacket } from '../rpc/rpc-client.js';
import { errorReply, type Dispatcher, type DispatchResult } from '../rpc/dispatcher.js';
import type { DriverEntry } from './drivers.js';
import type { DaemonServices, Session } from './handlers.js';
import { rpcInternal } from './errors.js';

export interface SessionLimits {
  maxRequests: number;
  /** 0 disables keepalive */
  keepaliveIntervalMs: number;
  keepaliveCount: number;
  /** 0 = no limit */
  handshakeTimeoutMs: number;
  maxOutputBytes: number;
}

const PING = keepalivePacket(KeepaliveProcedure.PING);
const PONG = keepalivePacket(KeepaliveProcedure.PONG);

let nextSessionId = 1;

export class ClientSession implements Session {
  readonly id = nextSessionId++;
  entry: DriverEntry | undefined;
  readOnly: boolean;
  uri = '';
  keepaliveRequested = false;
  closeCallback = false;
  readonly legacyEvents = new Set<number>();
  legacyRegister = false;
  /** Daemon-wide ids of this client's domain event callbacks. */
  readonly callbackIds = new Set<number>();

  private readonly frames = new FrameReader();
  private readonly queue: Packet[] = [];
  private running = 0;
  private paused = false;
  private closeRequested = false;
  private ended = false;
  private lastReceived = Date.now();
  private unanswered = 0;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(
    readonly sock: Socket,
    readonly roSocket: boolean,
    readonly services: DaemonServices,
    private readonly dispatcher: Dispatcher<Session>,
    private readonly limits: SessionLimits,
    private readonly onEnd: (s: ClientSession, why: string | undefined) => void,
  ) {
    this.readOnly = roSocket;
    sock.on('error', (e) => this.end(`socket error: ${e.message}`));
    sock.on('close', () => this.end(undefined));
  }

  /** Start serving (a client waiting for a free slot is accepted but not read until then). */
  start(): void {
    if (this.ended) return;
    this.sock.setNoDelay?.(true);
    this.sock.on('data', (chunk: Buffer) => this.onData(chunk));
    if (this.limits.keepaliveIntervalMs > 0) {
      this.keepaliveTimer = setInterval(() => this.keepaliveTick(), Math.max(50, Math.floor(this.limits.keepaliveIntervalMs / 5)));
      this.keepaliveTimer.unref();
    }
    if (this.limits.handshakeTimeoutMs > 0) {
      this.handshakeTimer = setTimeout(() => {
        if (!this.entry) this.destroy('no connection was opened in time');
      }, this.limits.handshakeTimeoutMs);
      this.handshakeTimer.unref();
    }
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Send a MESSAGE (an event) to the client. */
  send(buf: Buffer): void {
    if (this.ended || this.closeRequested) return;
    this.write(buf);
  }

  closeAfterReply(): void {
    this.closeRequested = true;
  }

  private write(buf: Buffer): void {
    this.sock.write(buf);
    if (this.sock.writableLength > this.limits.maxOutputBytes) this.destroy('the client does not read its replies and events');
  }

  private onData(chunk: Buffer): void {
    if (this.ended || this.closeRequested) return;
    this.lastReceived = Date.now();
    this.unanswered = 0;
    let packets: Packet[];
    try {
      packets = this.frames.push(chunk);
    } catch (e) {
      // libvirtd closes the connection on a length word it cannot accept, with no reply.
      this.destroy((e as Error).message);
      return;
    }
    for (const p of packets) {
      const h = p.header;
      if (h.prog === KEEPALIVE_PROGRAM) {
        // Answered at once, whatever is queued: keepalive must not wait behind slow calls.
        if (h.proc === KeepaliveProcedure.PING && h.type === MessageType.MESSAGE) this.write(PONG);
        continue;
      }
      if (h.type === MessageType.CALL_WITH_FDS) {
        // UNIX fd passing is not offered (feature FD_PASSING is answered 0): refuse, don't hang.
        this.write(errorReply(h, rpcInternal('file descriptor passing is not supported by xenvirtd')));
        continue;
      }
      if (h.type !== MessageType.CALL) continue; // stray STREAM / REPLY / MESSAGE packets are dropped
      this.queue.push(p);
    }
    this.pump();
  }

  private pump(): void {
    while (this.running < this.limits.maxRequests && this.queue.length > 0 && !this.ended && !this.closeRequested) {
      const p = this.queue.shift()!;
      let reply: DispatchResult;
      try {
        reply = this.dispatcher.dispatch(p, this);
      } catch (e) {
        this.destroy(`internal error: ${(e as Error).message}`);
        return;
      }
      if (!(reply instanceof Promise)) {
        // answered at once (cached replies, the handshake): no promise, no extra turn
        this.sendReply(reply);
        continue;
      }
      this.running++;
      reply.then(
        (r) => this.onReply(r),
        (e: Error) => {
          this.running--;
          this.destroy(`internal error: ${e.message}`);
        },
      );
    }
    // Backpressure: while every slot is busy and calls wait, stop reading the socket.
    const shouldPause = this.queue.length > 0;
    if (shouldPause !== this.paused && !this.ended) {
      this.paused = shouldPause;
      if (shouldPause) this.sock.pause();
      else this.sock.resume();
    }
  }

  private onReply(reply: Buffer | null): void {
    this.running--;
    if (this.ended) return;
    this.sendReply(reply);
    if (this.ended) return;
    this.pump();
    if (this.running === 0) this.notifyIdle();
  }

  private sendReply(reply: Buffer | null): void {
    if (reply) this.write(reply);
    if (this.closeRequested && !this.ended) {
      // CONNECT_CLOSE (or a drain): reply, then close; whatever else was queued is dropped, as libvirtd does.
      this.queue.length = 0;
      if (this.running === 0) this.finish();
    }
  }

  private keepaliveTick(): void {
    if (!this.keepaliveRequested || this.ended) return;
    const now = Date.now();
    const silentFor = now - this.lastReceived;
    const due = this.limits.keepaliveIntervalMs * (this.unanswered + 1);
    if (silentFor < due) return;
    if (this.unanswered >= this.limits.keepaliveCount) {
      this.destroy('connection closed due to keepalive timeout');
      return;
    }
    this.unanswered++;
    this.write(PING);
  }

  /** Graceful end: stop reading, let calls in flight finish and their replies go out, close. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.ended) return;
    this.closeRequested = true;
    this.queue.length = 0;
    this.sock.pause();
    if (this.running > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    this.finish();
  }

  private notifyIdle(): void {
    const w = this.idleWaiters.splice(0);
    for (const f of w) f();
  }

  /** Close after flushing what was written. */
  private finish(): void {
    if (this.ended) return;
    this.sock.end();
    // A peer that never reads would keep the socket half-open forever.
    setTimeout(() => this.sock.destroy(), 2000).unref();
    this.end(undefined);
  }

  /** Drop the client now. */
  destroy(why: string): void {
    if (this.ended) return;
    this.sock.destroy();
    this.end(why);
  }

  private end(why: string | undefined): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.queue.length = 0;
    this.notifyIdle();
    this.onEnd(this, why);
  }
}
