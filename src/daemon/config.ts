/**
 * xenvirtd's configuration: libvirtd.conf's syntax (`key = value`, `#` comments, strings in
 * quotes) and, where a setting exists in libvirtd, its name and default. Settings of libvirtd
 * that xenvirtd has no use for (TCP/TLS listeners, logging, workers, ...) are accepted and
 * ignored, so a libvirtd.conf can be reused; any other key is an error naming it (a typo
 * should not silently fall back to a default).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConf, type ConfValue } from '../formats/conf.js';
import { VirtError, ErrorDomain } from '../errors.js';

export interface DaemonConfig {
  /** The read-write socket. */
  socketPath: string;
  /** The read-only socket ('' = none). Default: socketPath + '-ro'. */
  socketRoPath: string;
  /** File modes of the sockets (libvirtd: rw 0700 for root, ro 0777). */
  rwPerms: number;
  roPerms: number;
  /** Where persistent state lives (undefined = the simulated host lives in memory). */
  stateDir: string | undefined;
  /** The URI an empty CONNECT_OPEN name stands for. */
  defaultUri: string | undefined;
  /** Connected clients served at once; more wait (libvirtd max_clients). */
  maxClients: number;
  /** Clients waiting for a slot; beyond that new connections are closed (libvirtd max_queued_clients). */
  maxQueuedClients: number;
  /** Calls processed at once per client (libvirtd max_client_requests). */
  maxClientRequests: number;
  /** Seconds of silence before a PING; -1 disables keepalive (libvirtd keepalive_interval). */
  keepaliveInterval: number;
  /** Unanswered PINGs before the client is dropped (libvirtd keepalive_count). */
  keepaliveCount: number;
  /** Seconds a client may take to open its connection before it is dropped (0 = forever). */
  handshakeTimeout: number;
  /** Seconds graceful shutdown waits for calls in progress. */
  shutdownTimeout: number;
}

/** libvirtd's own settings xenvirtd accepts and ignores. */
const IGNORED_LIBVIRTD_KEYS = new Set([
  'listen_tls', 'listen_tcp', 'tls_port', 'tcp_port', 'listen_addr', 'mdns_adv', 'mdns_name',
  'unix_sock_group', 'unix_sock_admin_perms', 'auth_tcp', 'auth_tls', 'access_drivers',
  'tls_no_sanity_certificate', 'tls_no_verify_certificate', 'tls_allowed_dn_list', 'sasl_allowed_username_list',
  'tls_priority', 'key_file', 'cert_file', 'ca_file', 'crl_file', 'max_anonymous_clients', 'min_workers',
  'max_workers', 'prio_workers', 'admin_max_workers', 'admin_max_clients', 'admin_max_queued_clients',
  'admin_max_client_requests', 'admin_min_workers', 'admin_keepalive_interval', 'admin_keepalive_count',
  'log_level', 'log_filters', 'log_outputs', 'audit_level', 'audit_logging', 'host_uuid', 'host_uuid_source',
  'ovs_timeout', 'keepalive_required', 'admin_keepalive_required', 'tcp_min_ssf', 'auth_unix_perms',
]);

function num(v: ConfValue, key: string, file: string): number {
  if (v.type === 'number') return v.value;
  throw badValue(file, key, 'a number');
}

function badValue(file: string, key: string, want: string): VirtError {
  return new VirtError('CONF_SYNTAX', `${file}: '${key}' must be ${want}`, ErrorDomain.CONF);
}

/**
 * The socket `npm start` and a bare `xenvirtd` use, per user: $XDG_RUNTIME_DIR/xenvirt/xenvirtd-sock,
 * else /tmp/xenvirt-UID/xenvirtd-sock. (As root, `--socket /run/libvirt/libvirt-sock` makes plain
 * `virsh -c xen:///system` and `test+unix:///default` find it, see design facts §4.)
 */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const base = env['XDG_RUNTIME_DIR'] ? path.join(env['XDG_RUNTIME_DIR'], 'xenvirt') : path.join(os.tmpdir(), `xenvirt-${uid}`);
  return path.join(base, 'xenvirtd-sock');
}

export function defaultConfig(): DaemonConfig {
  const socketPath = defaultSocketPath();
  return {
    socketPath,
    socketRoPath: `${socketPath}-ro`,
    rwPerms: 0o700,
    roPerms: 0o777,
    stateDir: undefined,
    defaultUri: undefined,
    maxClients: 5000,
    maxQueuedClients: 1000,
    maxClientRequests: 5,
    keepaliveInterval: 5,
    keepaliveCount: 5,
    handshakeTimeout: 30,
    shutdownTimeout: 10,
  };
}

/** The settings a config file makes; only the keys it names. */
export type ConfigOverrides = Partial<DaemonConfig>;

/**
 * Parse a config file's text. Supported keys:
 *   unix_sock_path, unix_sock_ro_path (xenvirtd), unix_sock_dir (libvirtd: libvirt-sock and
 *   libvirt-sock-ro in it), unix_sock_rw_perms, unix_sock_ro_perms, auth_unix_rw and
 *   auth_unix_ro (only "none"), state_dir, default_uri, max_clients, max_queued_clients,
 *   max_client_requests, keepalive_interval, keepalive_count, handshake_timeout, shutdown_timeout.
 */
export function parseDaemonConfig(text: string, fileName = 'xenvirtd.conf'): ConfigOverrides {
  const conf = parseConf(text, fileName);
  const out: ConfigOverrides = {};
  const str = (v: ConfValue, key: string): string => {
    if (v.type === 'string') return v.value;
    throw badValue(fileName, key, 'a string');
  };
  const positive = (v: ConfValue, key: string, min: number): number => {
    const n = num(v, key, fileName);
    if (!Number.isInteger(n) || n < min) throw badValue(fileName, key, `an integer >= ${min}`);
    return n;
  };
  const perms = (v: ConfValue, key: string): number => {
    const s = str(v, key);
    if (!/^0?[0-7]{3,4}$/.test(s)) throw badValue(fileName, key, 'an octal mode such as "0770"');
    return parseInt(s, 8);
  };
  const absPath = (v: ConfValue, key: string): string => {
    const s = str(v, key);
    if (!path.isAbsolute(s)) throw badValue(fileName, key, 'an absolute path');
    return s;
  };
  for (const { key, value } of conf.entries) {
    switch (key) {
      case 'unix_sock_path': out.socketPath = absPath(value, key); break;
      case 'unix_sock_ro_path': out.socketRoPath = str(value, key) === '' ? '' : absPath(value, key); break;
      case 'unix_sock_dir': {
        const dir = absPath(value, key);
        out.socketPath = path.join(dir, 'libvirt-sock');
        out.socketRoPath = path.join(dir, 'libvirt-sock-ro');
        break;
      }
      case 'unix_sock_rw_perms': out.rwPerms = perms(value, key); break;
      case 'unix_sock_ro_perms': out.roPerms = perms(value, key); break;
      case 'auth_unix_rw':
      case 'auth_unix_ro':
        if (str(value, key) !== 'none') throw badValue(fileName, key, '"none" (the only authentication xenvirtd has on UNIX sockets)');
        break;
      case 'state_dir': out.stateDir = absPath(value, key); break;
      case 'default_uri': out.defaultUri = str(value, key); break;
      case 'max_clients': out.maxClients = positive(value, key, 1); break;
      case 'max_queued_clients': out.maxQueuedClients = positive(value, key, 0); break;
      case 'max_client_requests': out.maxClientRequests = positive(value, key, 1); break;
      case 'keepalive_interval': {
        const n = num(value, key, fileName);
        if (!Number.isInteger(n) || (n < 1 && n !== -1)) throw badValue(fileName, key, 'a number of seconds >= 1, or -1 to disable keepalive');
        out.keepaliveInterval = n;
        break;
      }
      case 'keepalive_count': out.keepaliveCount = positive(value, key, 0); break;
      case 'handshake_timeout': out.handshakeTimeout = positive(value, key, 0); break;
      case 'shutdown_timeout': out.shutdownTimeout = positive(value, key, 0); break;
      default:
        if (!IGNORED_LIBVIRTD_KEYS.has(key)) {
          throw new VirtError('CONF_SYNTAX', `${fileName}: unknown setting '${key}'`, ErrorDomain.CONF);
        }
    }
  }
  return out;
}

export function loadConfigFile(file: string): ConfigOverrides {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new VirtError('CONF_SYNTAX', `cannot read config file '${file}': ${(e as Error).message}`, ErrorDomain.CONF);
  }
  return parseDaemonConfig(text, file);
}

/** Defaults, then the file's settings, then explicit overrides (command line). */
export function resolveConfig(...layers: ConfigOverrides[]): DaemonConfig {
  const c = defaultConfig();
  for (const l of layers) {
    for (const [k, v] of Object.entries(l)) {
      if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
    }
    // Moving the read-write socket moves the read-only one beside it, unless that is set too.
    if (l.socketPath !== undefined && l.socketRoPath === undefined) c.socketRoPath = `${l.socketPath}-ro`;
  }
  return c;
}
