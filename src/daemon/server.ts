/**
 * xenvirtd: libvirt's remote protocol served over UNIX sockets, a read-write one and a
 * read-only one (`PATH-ro`), in front of the drivers of drivers.ts. Any libvirt client (virsh,
 * python3-libvirt, virt-manager, ...) reaches it with `test+unix:///default?socket=PATH` or,
 * on the default sockets, plain `xen:///system`.
 *
 * Daemon-wide state, as in libvirtd: the drivers (shared by all clients), the domain event
 * callback ids (one counter for the whole daemon), the client cap (clients over it wait,
 * accepted but unread, until one leaves).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { LifecycleEvent } from '../driver/connection.js';
import { eventPacket } from '../rpc/dispatcher.js';
import type { Dispatcher } from '../rpc/dispatcher.js';
import { uuidFromString } from '../rpc/xdr.js';
import { MAX_PACKET } from '../rpc/packet.js';
import { VirtError } from '../errors.js';
import type { DaemonConfig } from './config.js';
import { DriverHub, type DriverEntry } from './drivers.js';
import { createDispatcher, type DaemonServices, type Session } from './handlers.js';
import { ClientSession, type SessionLimits } from './session.js';

interface CallbackReg {
  session: ClientSession;
  eventID: number;
  uuid: string | undefined;
}

export interface DaemonOptions {
  /** Diagnostics (client errors, shutdown); default: none. */
  log?: (msg: string) => void;
}

/** virDomainEventID LIFECYCLE */
const EVENT_LIFECYCLE = 0;

export class XenvirtDaemon implements DaemonServices {
  readonly hub: DriverHub;
  private readonly dispatcher: Dispatcher<Session> = createDispatcher();
  private readonly servers: Array<{ server: net.Server; path: string }> = [];
  private readonly active = new Set<ClientSession>();
  private readonly waiting: ClientSession[] = [];
  private readonly callbacks = new Map<number, CallbackReg>();
  private nextCallbackId = 0;
  private readonly limits: SessionLimits;
  private stopping: Promise<void> | undefined;
  private readonly log: (msg: string) => void;

  private constructor(readonly config: DaemonConfig, opts: DaemonOptions) {
    this.log = opts.log ?? (() => {});
    this.limits = {
      maxRequests: config.maxClientRequests,
      keepaliveIntervalMs: config.keepaliveInterval > 0 ? config.keepaliveInterval * 1000 : 0,
      keepaliveCount: config.keepaliveCount,
      handshakeTimeoutMs: config.handshakeTimeout * 1000,
      // A full reply plus a backlog of events; past that the client is not reading.
      maxOutputBytes: 2 * MAX_PACKET,
    };
    this.hub = new DriverHub({
      stateDir: config.stateDir,
      defaultUri: config.defaultUri,
      onLifecycle: (entry, e) => this.broadcastLifecycle(entry, e),
    });
  }

  /** Open the simulated host (so state problems show now) and start listening. */
  static async start(config: DaemonConfig, opts: DaemonOptions = {}): Promise<XenvirtDaemon> {
    const d = new XenvirtDaemon(config, opts);
    try {
      await d.hub.open('test:///default');
      await d.listen(config.socketPath, false, config.rwPerms);
      if (config.socketRoPath) await d.listen(config.socketRoPath, true, config.roPerms);
    } catch (e) {
      await d.stop();
      throw e;
    }
    return d;
  }

  get socketPaths(): { rw: string; ro: string | undefined } {
    return { rw: this.config.socketPath, ro: this.config.socketRoPath || undefined };
  }

  /** Clients being served, and waiting for a slot. */
  get clientCount(): { active: number; waiting: number } {
    return { active: this.active.size, waiting: this.waiting.length };
  }

  private async listen(sockPath: string, readOnly: boolean, perms: number): Promise<void> {
    checkSocketDir(path.dirname(sockPath));
    await removeStaleSocket(sockPath);
    const server = net.createServer({ pauseOnConnect: true }, (sock) => this.accept(sock, readOnly));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(sockPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.log(`listener ${sockPath}: ${e.message}`));
    fs.chmodSync(sockPath, perms);
    this.servers.push({ server, path: sockPath });
  }

  private accept(sock: net.Socket, readOnly: boolean): void {
    if (this.stopping) {
      sock.destroy();
      return;
    }
    const s = new ClientSession(sock, readOnly, this, this.dispatcher, this.limits, (c, why) => this.onSessionEnd(c, why));
    if (this.active.size < this.config.maxClients) {
      this.activate(s);
    } else if (this.waiting.length < this.config.maxQueuedClients) {
      // libvirtd stops accepting at max_clients; here the client is accepted but not read
      // until a slot frees, which its handshake experiences the same way.
      this.waiting.push(s);
    } else {
      this.log(`refusing a client: ${this.config.maxClients} clients connected and ${this.waiting.length} waiting`);
      s.destroy('too many clients');
    }
  }

  private activate(s: ClientSession): void {
    this.active.add(s);
    s.start();
    s.sock.resume();
  }

  private onSessionEnd(s: ClientSession, why: string | undefined): void {
    if (why) this.log(`client ${s.id}: ${why}`);
    for (const id of s.callbackIds) this.callbacks.delete(id);
    s.callbackIds.clear();
    if (this.active.delete(s)) {
      while (this.waiting.length > 0 && this.active.size < this.config.maxClients && !this.stopping) {
        const next = this.waiting.shift()!;
        if (!next.closed) this.activate(next);
      }
    } else {
      const i = this.waiting.indexOf(s);
      if (i >= 0) this.waiting.splice(i, 1);
    }
  }

  // -- DaemonServices ---------------------------------------------------------------------------

  openDriver(name: string): Promise<DriverEntry> {
    return this.hub.open(name);
  }

  addCallback(s: Session, eventID: number, uuid: string | undefined): number {
    const session = s as ClientSession;
    const id = this.nextCallbackId++;
    if (this.nextCallbackId > 0x7fffffff) this.nextCallbackId = 0;
    this.callbacks.set(id, { session, eventID, uuid });
    session.callbackIds.add(id);
    return id;
  }

  removeCallback(s: Session, id: number): boolean {
    const reg = this.callbacks.get(id);
    if (!reg || reg.session !== s) return false;
    this.callbacks.delete(id);
    reg.session.callbackIds.delete(id);
    return true;
  }

  // -- events -----------------------------------------------------------------------------------

  private broadcastLifecycle(entry: DriverEntry, e: LifecycleEvent): void {
    let dom: { name: string; uuid: Buffer; id: number } | undefined;
    const wireDom = () => (dom ??= { name: e.domain.name, uuid: uuidFromString(e.domain.uuid), id: e.domain.id });
    for (const [callbackID, reg] of this.callbacks) {
      if (reg.eventID !== EVENT_LIFECYCLE || reg.session.entry !== entry) continue;
      if (reg.uuid !== undefined && reg.uuid !== e.domain.uuid) continue;
      reg.session.send(eventPacket('DOMAIN_EVENT_CALLBACK_LIFECYCLE', {
        callbackID, msg: { dom: wireDom(), event: e.event, detail: e.detail },
      }));
    }
    let legacy: Buffer | undefined;
    for (const s of this.active) {
      if (s.entry !== entry || !(s.legacyRegister || s.legacyEvents.has(EVENT_LIFECYCLE))) continue;
      legacy ??= eventPacket('DOMAIN_EVENT_LIFECYCLE', { dom: wireDom(), event: e.event, detail: e.detail });
      s.send(legacy);
    }
  }

  // -- shutdown ---------------------------------------------------------------------------------

  /**
   * Graceful stop: no new clients, the sockets are removed, calls in progress finish (up to
   * shutdown_timeout) and their replies are sent, then clients are disconnected and the
   * drivers closed (persistent state flushed).
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    for (const { server, path: p } of this.servers.splice(0)) {
      server.close();
      try { fs.unlinkSync(p); } catch { /* already gone */ }
    }
    for (const s of this.waiting.splice(0)) s.destroy('the daemon is shutting down');
    const timeout = this.config.shutdownTimeout * 1000;
    await Promise.all([...this.active].map((s) => s.drain(timeout)));
    this.callbacks.clear();
    await this.hub.close();
  }
}

/**
 * Create the socket's directory if needed. An existing one must belong to us (or root): in a
 * shared place such as /tmp another user could otherwise have prepared it for us.
 */
function checkSocketDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const st = fs.lstatSync(dir);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  if (!st.isDirectory() || (st.uid !== uid && st.uid !== 0)) {
    throw new VirtError('OPERATION_FAILED', `cannot listen in '${dir}': it is not a directory owned by this user or root`);
  }
}

/**
 * A socket file left by a daemon that died is removed; one another process still listens on
 * is an error (two daemons must not share a path).
 */
async function removeStaleSocket(p: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new VirtError('OPERATION_FAILED', `cannot listen on '${p}': the path exists and is not a socket`);
  const inUse = await new Promise<boolean>((resolve) => {
    const c = net.createConnection(p);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
  if (inUse) throw new VirtError('OPERATION_FAILED', `cannot listen on '${p}': another daemon is already listening there`);
  fs.unlinkSync(p);
}
