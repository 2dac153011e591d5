/**
 * XenStore access for the xl backend: reads (domain ids, names, memory limits) and the
 * `@introduceDomain` / `@releaseDomain` watches that tell when domains appear, stop or vanish.
 *
 * Two ways in, same interface:
 * - `SocketXenStore` speaks xenstored's wire protocol on its UNIX socket
 *   (/var/run/xenstored/socket, or $XENSTORED_PATH as libxenstore honours it): a request costs
 *   a round trip, not a process start, and a watch is one more message on the same socket.
 * - `CliXenStore` runs `xenstore-read`, `xenstore-list` and `xenstore-watch`, for hosts where
 *   the socket is not reachable (xenstored in a stub domain, for instance).
 *
 * Wire format: every message is a 16-byte header (type, request id, transaction id, payload
 * length; little-endian u32) and a payload of NUL-terminated strings. Replies echo the request
 * id; watch events arrive unsolicited as XS_WATCH_EVENT with "path\0token\0".
 */
import net from 'node:net';
import { createInterface } from 'node:readline';
import type { Exec } from './exec.js';

export const XS_DIRECTORY = 1;
export const XS_READ = 2;
export const XS_WATCH = 4;
export const XS_UNWATCH = 5;
export const XS_WATCH_EVENT = 15;
export const XS_ERROR = 16;
export const XS_HEADER_BYTES = 16;

export const DEFAULT_XENSTORED_SOCKET = '/var/run/xenstored/socket';

export interface XenStore {
  readonly kind: 'socket' | 'cli';
  /** The value at `path`, or undefined when there is no such node. */
  read(path: string): Promise<string | undefined>;
  /** The children of `path`; empty when there is no such node. */
  directory(path: string): Promise<string[]>;
  /**
   * Call `fn` whenever `path` fires. xenstored fires every new watch once right away; that
   * first firing is not passed on (the caller looks at the state after setting its watches).
   * Resolves once the watch is in place; the returned function removes it.
   */
  watch(path: string, fn: () => void): Promise<() => void>;
  close(): void;
}

export class XenStoreError extends Error {
  constructor(readonly errno: string, readonly path: string) {
    super(`xenstore: ${errno} on ${path}`);
  }
}

/** Encode one request. */
export function encodeMessage(type: number, reqId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(XS_HEADER_BYTES);
  head.writeUInt32LE(type, 0);
  head.writeUInt32LE(reqId, 4);
  head.writeUInt32LE(0, 8);
  head.writeUInt32LE(payload.length, 12);
  return Buffer.concat([head, payload]);
}

export interface XsMessage { type: number; reqId: number; txId: number; payload: Buffer }

/** Split complete messages off the front of `buf`; returns them and what is left over. */
export function decodeMessages(buf: Buffer): { messages: XsMessage[]; rest: Buffer } {
  const messages: XsMessage[] = [];
  let off = 0;
  while (buf.length - off >= XS_HEADER_BYTES) {
    const len = buf.readUInt32LE(off + 12);
    if (buf.length - off - XS_HEADER_BYTES < len) break;
    messages.push({
      type: buf.readUInt32LE(off),
      reqId: buf.readUInt32LE(off + 4),
      txId: buf.readUInt32LE(off + 8),
      payload: buf.subarray(off + XS_HEADER_BYTES, off + XS_HEADER_BYTES + len),
    });
    off += XS_HEADER_BYTES + len;
  }
  return { messages, rest: buf.subarray(off) };
}

/** NUL-terminated strings of a payload. */
export function splitStrings(payload: Buffer): string[] {
  const s = payload.toString('utf8');
  const parts = s.split('\0');
  if (parts.length && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

const nulJoin = (...parts: string[]) => Buffer.from(parts.map((p) => p + '\0').join(''), 'utf8');

interface Pending { resolve: (m: XsMessage) => void; reject: (e: Error) => void }

export class SocketXenStore implements XenStore {
  readonly kind = 'socket';
  private nextId = 1;
  private nextToken = 1;
  private buf = Buffer.alloc(0);
  private readonly pending = new Map<number, Pending>();
  private readonly watches = new Map<string, { path: string; fn: () => void; fired: boolean }>();
  private closed = false;
  private failure: Error | undefined;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error('the xenstored connection closed')));
    // A watch alone must not keep a command-line process alive; pending requests do (see ref()).
    sock.unref();
  }

  /** Connect, or reject when the socket is not there / not accepting. */
  static connect(socketPath: string, timeoutMs = 2000): Promise<SocketXenStore> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(socketPath);
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`timed out connecting to ${socketPath}`)); }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new SocketXenStore(sock));
      });
      sock.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  }

  private fail(e: Error): void {
    if (!this.failure) this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.refresh();
  }

  private refresh(): void {
    if (this.pending.size > 0 && !this.closed) this.sock.ref();
    else this.sock.unref();
  }

  private onData(chunk: Buffer): void {
    const { messages, rest } = decodeMessages(this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk);
    this.buf = Buffer.from(rest);
    for (const m of messages) {
      if (m.type === XS_WATCH_EVENT) {
        const [, token] = splitStrings(m.payload);
        const w = token !== undefined ? this.watches.get(token) : undefined;
        if (w && !w.fired) w.fired = true;
        else if (w) {
          try { w.fn(); } catch { /* a watcher's failure is its own */ }
        }
        continue;
      }
      const p = this.pending.get(m.reqId);
      if (!p) continue;
      this.pending.delete(m.reqId);
      p.resolve(m);
    }
    this.refresh();
  }

  private request(type: number, payload: Buffer, what: string): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('the xenstore connection is closed'));
    if (this.failure) return Promise.reject(this.failure);
    const reqId = this.nextId++;
    return new Promise<XsMessage>((resolve, reject) => {
      this.pending.set(reqId, { resolve, reject });
      this.refresh();
      this.sock.write(encodeMessage(type, reqId, payload));
    }).then((m) => {
      if (m.type === XS_ERROR) throw new XenStoreError(splitStrings(m.payload)[0] ?? 'EIO', what);
      return m.payload;
    });
  }

  async read(path: string): Promise<string | undefined> {
    try {
      return (await this.request(XS_READ, nulJoin(path), path)).toString('utf8');
    } catch (e) {
      if (e instanceof XenStoreError && (e.errno === 'ENOENT' || e.errno === 'EACCES')) return undefined;
      throw e;
    }
  }

  async directory(path: string): Promise<string[]> {
    try {
      return splitStrings(await this.request(XS_DIRECTORY, nulJoin(path), path));
    } catch (e) {
      if (e instanceof XenStoreError && (e.errno === 'ENOENT' || e.errno === 'EACCES')) return [];
      throw e;
    }
  }

  async watch(path: string, fn: () => void): Promise<() => void> {
    const token = `xenvirt-${process.pid}-${this.nextToken++}`;
    this.watches.set(token, { path, fn, fired: false });
    try {
      await this.request(XS_WATCH, nulJoin(path, token), path);
    } catch (e) {
      this.watches.delete(token);
      throw e;
    }
    return () => {
      if (!this.watches.delete(token) || this.closed || this.failure) return;
      this.request(XS_UNWATCH, nulJoin(path, token), path).catch(() => {});
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watches.clear();
    for (const p of this.pending.values()) p.reject(new Error('the xenstore connection is closed'));
    this.pending.clear();
    this.sock.destroy();
  }
}

/** XenStore through the xenstore-* command line tools. */
export class CliXenStore implements XenStore {
  readonly kind = 'cli';
  private readonly children = new Set<import('node:child_process').ChildProcess>();

  constructor(private readonly exec: Exec) {}

  async read(path: string): Promise<string | undefined> {
    const r = await this.exec.run(['xenstore-read', path]);
    if (r.code !== 0) return undefined;
    return r.stdout.replace(/\n$/, '');
  }

  async directory(path: string): Promise<string[]> {
    const r = await this.exec.run(['xenstore-list', path]);
    if (r.code !== 0) return [];
    return r.stdout.split('\n').filter((l) => l !== '');
  }

  watch(path: string, fn: () => void): Promise<() => void> {
    return new Promise((resolve, reject) => {
      const child = this.exec.spawn(['xenstore-watch', path], { stdio: ['ignore', 'pipe', 'ignore'] });
      this.children.add(child);
      let started = false;
      child.once('error', (e) => {
        this.children.delete(child);
        if (!started) reject(e);
      });
      child.once('exit', () => this.children.delete(child));
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', () => {
        // xenstore-watch prints the path each time the watch fires, the first time at once
        if (!started) {
          started = true;
          // from now on the watcher must not keep a command-line process alive on its own
          child.unref();
          (child.stdout as unknown as { unref?: () => void }).unref?.();
          resolve(() => { child.kill(); this.children.delete(child); });
          return;
        }
        try { fn(); } catch { /* a watcher's failure is its own */ }
      });
      child.once('exit', (code) => {
        if (!started) reject(new Error(`xenstore-watch ${path} exited with status ${code}`));
      });
    });
  }

  close(): void {
    for (const c of this.children) c.kill();
    this.children.clear();
  }
}

/**
 * The best XenStore access this host offers: the daemon's socket when it answers, else the
 * command line tools.
 */
export async function openXenStore(exec: Exec, socketPath?: string): Promise<XenStore> {
  const path = socketPath ?? process.env['XENSTORED_PATH'] ?? DEFAULT_XENSTORED_SOCKET;
  try {
    return await SocketXenStore.connect(path);
  } catch {
    return new CliXenStore(exec);
  }
}
