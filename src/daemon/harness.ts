/**
 * Test plumbing for xenvirtd (used by the *.test.ts files beside it and by bench/rpc.ts):
 * start the daemon as a process or in-process on a temporary socket, run real libvirt
 * clients against it, and speak raw packets to it.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FrameReader, encodePacket, MessageType, MessageStatus, type Packet } from '../rpc/packet.js';
import { REMOTE_PROGRAM, RemoteErrorCodec } from '../rpc/protocol.js';
import { XdrReader, type Codec } from '../rpc/xdr.js';
import type { RemoteError } from '../rpc/generated/remote-types.js';
import { resolveConfig, type ConfigOverrides } from './config.js';
import { XenvirtDaemon } from './server.js';

/** The repository root (this file runs from dist/src/daemon/). */
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const XENVIRTD = path.join(REPO, 'bin', 'xenvirtd');
export const XENVIRT = path.join(REPO, 'bin', 'xenvirt');
export const PYTHON = '/usr/bin/python3';

/** A short temporary directory (socket paths must stay under 108 bytes). */
export function tempDir(prefix = 'xvd-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export const uriFor = (sock: string) => `test+unix:///default?socket=${sock}`;

export interface DaemonProcess {
  proc: ChildProcess;
  dir: string;
  socket: string;
  roSocket: string;
  uri: string;
  roUri: string;
  stdout(): string;
  stderr(): string;
  /** Send a signal and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Run bin/xenvirtd on a fresh socket and wait for its `ready` line. */
export async function startDaemonProcess(opts: { dir?: string; stateDir?: string; args?: string[]; timeoutMs?: number } = {}): Promise<DaemonProcess> {
  const dir = opts.dir ?? tempDir();
  const socket = path.join(dir, 'sock');
  const args = [XENVIRTD, '--socket', socket];
  if (opts.stateDir) args.push('--state-dir', opts.stateDir);
  args.push(...(opts.args ?? []));
  // stdin stays open while we live: if this process dies, the daemon sees EOF and stops
  const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, XENVIRTD_STOP_ON_STDIN_EOF: '1' } });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; });
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => { err += s; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`xenvirtd did not get ready: ${out}${err}`)); }, opts.timeoutMs ?? 20000);
    const check = () => {
      if (out.includes('ready')) { clearTimeout(t); resolve(); }
    };
    proc.stdout!.on('data', check);
    void exited.then((r) => { clearTimeout(t); reject(new Error(`xenvirtd exited (${r.code ?? r.signal}): ${out}${err}`)); });
  });
  return {
    proc, dir, socket, roSocket: `${socket}-ro`, uri: uriFor(socket), roUri: uriFor(`${socket}-ro`),
    stdout: () => out, stderr: () => err,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** An in-process daemon on a fresh socket (fast, and its config can be tuned per test). */
export async function startDaemon(over: ConfigOverrides = {}, log?: (m: string) => void): Promise<{ daemon: XenvirtDaemon; dir: string; socket: string; roSocket: string; stop(): Promise<void> }> {
  const dir = tempDir();
  const socket = path.join(dir, 'sock');
  const daemon = await XenvirtDaemon.start(resolveConfig({ socketPath: socket, ...over }), { log });
  const stop = async () => {
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { daemon, dir, socket, roSocket: `${socket}-ro`, stop };
}

export interface RunResult { code: number | null; stdout: string; stderr: string }

/** Run a command, collecting its output. */
export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    p.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${cmd} ${args.join(' ')} timed out\n${stdout}${stderr}`)); }, opts.timeoutMs ?? 30000);
    p.on('error', (e) => { clearTimeout(t); reject(e); });
    p.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
    p.stdin.end(opts.input ?? '');
  });
}

/** virsh with a connection URI (and -r for read-only). */
export function virsh(uri: string, args: string[], opts: { readonly?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  // LC_ALL=C: virsh translates its messages; the expected texts are the C locale's.
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C', LIBVIRT_DEFAULT_URI: '' };
  return run('virsh', [...(opts.readonly ? ['-r'] : []), '-c', uri, ...args], { env, timeoutMs: opts.timeoutMs });
}

/** A raw libvirt RPC client: for malformed and hostile traffic. */
export class RawClient {
  private readonly frames = new FrameReader();
  private readonly packets: Packet[] = [];
  private waiters: Array<() => void> = [];
  private serial = 0;
  closed = false;

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (c: Buffer) => {
      try {
        this.packets.push(...this.frames.push(c));
      } catch {
        sock.destroy();
      }
      this.wake();
    });
    sock.on('close', () => { this.closed = true; this.wake(); });
    sock.on('error', () => { /* 'close' follows */ });
  }

  static connect(p: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(p, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters.splice(0);
    for (const f of w) f();
  }

  /** Wait for a packet matching `pred` (consumed), or null when the socket closes or time runs out. */
  async next(pred: (p: Packet) => boolean, timeoutMs = 5000): Promise<Packet | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.packets.findIndex(pred);
      if (i >= 0) return this.packets.splice(i, 1)[0]!;
      if (this.closed || Date.now() >= deadline) return null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  write(buf: Uint8Array): void {
    this.sock.write(buf);
  }

  /** Send a CALL (payload: raw bytes or a codec and value); returns its serial. */
  send<T>(proc: number, body?: { codec: Codec<T>; value: T } | Uint8Array, h: { prog?: number; vers?: number; type?: number } = {}): number {
    const serial = this.serial++;
    this.write(encodePacket({ prog: h.prog ?? REMOTE_PROGRAM, vers: h.vers ?? 1, proc, type: h.type ?? MessageType.CALL, serial, status: 0 }, body));
    return serial;
  }

  /** Send a CALL and wait for its reply. */
  async call<T>(proc: number, body?: { codec: Codec<T>; value: T } | Uint8Array, h: { prog?: number; vers?: number } = {}, timeoutMs = 5000): Promise<Packet | null> {
    const serial = this.send(proc, body, h);
    return this.next((p) => p.header.type === MessageType.REPLY && p.header.serial === serial, timeoutMs);
  }

  /** Wait until the daemon closes the connection. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    await this.next(() => false, timeoutMs);
    return this.closed;
  }

  close(): void {
    this.sock.destroy();
  }
}

/** The remote_error of an ERROR reply. */
export function replyError(p: Packet): RemoteError {
  if (p.header.status !== MessageStatus.ERROR) throw new Error(`expected an error reply, got status ${p.header.status}`);
  return RemoteErrorCodec.dec(new XdrReader(p.payload));
}

/** Decode an OK reply's payload. */
export function replyValue<T>(p: Packet, codec: Codec<T>): T {
  if (p.header.status !== MessageStatus.OK) {
    const e = replyError(p);
    throw new Error(`expected an OK reply, got error ${e.code}/${e.domain}: ${e.message}`);
  }
  return codec.dec(new XdrReader(p.payload));
}
