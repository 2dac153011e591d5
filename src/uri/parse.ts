/**
 * libvirt connection URIs: `driver[+transport]://[user@][host][:port]/path[?params]`.
 *
 * The client keeps the parameters its remote driver consumes (socket, keyfile, netcat, ...) and
 * sends the daemon only the driver part of the URI with the rest of the query, exactly as
 * libvirt's remote driver rebuilds it: the transport and the host are dropped, so
 * `xen+ssh://root@host/system?keyfile=k` opens `xen:///system` on the far side.
 */
import { VirtError } from '../errors.js';

/** How a remote connection is carried (libvirt's remoteDriverTransport). */
export type Transport = 'unix' | 'tls' | 'tcp' | 'ssh' | 'libssh' | 'libssh2' | 'ext';
const TRANSPORTS: readonly Transport[] = ['unix', 'tls', 'tcp', 'ssh', 'libssh', 'libssh2', 'ext'];

/** The remote driver's socket selection (`?mode=`). */
export type SocketMode = 'auto' | 'legacy' | 'direct';
/** How the ssh transports reach the daemon on the far side (`?proxy=`). */
export type ProxyMode = 'auto' | 'netcat' | 'native';

export interface UriParam { name: string; value: string }

/** The query parameters libvirt's remote driver consumes itself and never forwards. */
export interface ClientParams {
  /** `name`: overrides the URI sent to the daemon. */
  name?: string;
  /** `command`: the ssh (or ext) command to run. */
  command?: string;
  /** `socket`: the UNIX socket path, local or on the far side of ssh. */
  socket?: string;
  auth?: string;
  sshauth?: string;
  /** `netcat`: the netcat binary on the remote host. */
  netcat?: string;
  /** `keyfile`: the ssh private key. */
  keyfile?: string;
  /** `pkipath`: the directory holding the TLS certificates. */
  pkipath?: string;
  knownHosts?: string;
  knownHostsVerify?: 'normal' | 'auto' | 'ignore';
  tlsPriority?: string;
  /** `no_sanity=1`: skip the client-side checks of the TLS certificates. */
  noSanity?: boolean;
  /** `no_verify=1`: do not verify the server's TLS certificate (or the ssh host key). */
  noVerify?: boolean;
  /** `no_tty=1`: ssh must not ask for a password on a terminal. */
  noTty?: boolean;
  authfile?: string;
  mode?: SocketMode;
  proxy?: ProxyMode;
}

export interface ParsedUri {
  /** The URI as given. */
  uri: string;
  /** The scheme as given, e.g. `xen+ssh`. */
  scheme: string;
  /** The driver part of the scheme, lower-cased: `xen`, `test`, `libxl`, `remote`, ... */
  driver: string;
  /** The transport named in the scheme (`xen+unix` -> 'unix'), if any. */
  transport?: Transport;
  user?: string;
  host?: string;
  port?: number;
  /** Percent-decoded path: '' (for `xen://host`), '/', '/system', '/default', '/abs/dir'. */
  path: string;
  /** Every query parameter, decoded, in order. */
  params: UriParam[];
  /** The parameters the client consumes (they are not sent to the daemon). */
  client: ClientParams;
  /**
   * True when the connection goes through the remote driver: a transport is named, a host is
   * given, or the scheme is `remote`. `xen:///system` and `test:///default` are local.
   */
  remote: boolean;
  /** For remote URIs: the transport in effect (`tls` when a host is given without one, else `unix`). */
  effectiveTransport?: Transport;
  /** For remote URIs with a TCP-based transport: the port in effect (16514 TLS, 16509 TCP, 22 ssh). */
  effectivePort?: number;
  /**
   * The name the client sends in CONNECT_OPEN: driver scheme + path + the parameters the
   * client does not consume (e.g. `xen:///system`), `""` for a bare `remote://` URI (the daemon
   * picks), or the `name` parameter when one was given.
   */
  daemonUri: string;
}

export const DEFAULT_TLS_PORT = 16514;
export const DEFAULT_TCP_PORT = 16509;
export const DEFAULT_SSH_PORT = 22;

const malformed = (uri: string, why: string) =>
  new VirtError('INVALID_ARG', `invalid argument: malformed connection URI '${uri}': ${why}`);

/** Percent-decoding that reports bad escapes instead of throwing URIError. */
function decode(uri: string, s: string, what: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    throw malformed(uri, `bad percent-escape in ${what} '${s}'`);
  }
}

/** RFC 3986 scheme: a letter, then letters, digits, '+', '-', '.'. */
const SCHEME_RE = /^[A-Za-z][A-Za-z0-9+.-]*$/;

/** Parse a libvirt connection URI; malformed input is a VirtError that says what is wrong. */
export function parseUri(uri: string): ParsedUri {
  if (typeof uri !== 'string' || uri.trim() === '') throw malformed(String(uri), 'the URI is empty');
  if (/[\s\u0000-\u001f\u007f]/.test(uri)) throw malformed(uri, 'it contains whitespace or control characters');

  const colon = uri.indexOf(':');
  if (colon <= 0) throw malformed(uri, "no scheme (expected e.g. 'xen:///system' or 'test:///default')");
  const scheme = uri.slice(0, colon);
  if (!SCHEME_RE.test(scheme)) throw malformed(uri, `invalid scheme '${scheme}'`);
  let rest = uri.slice(colon + 1);

  // The fragment is not meaningful to libvirt; keep it out of the path and the query.
  const hashAt = rest.indexOf('#');
  if (hashAt >= 0) rest = rest.slice(0, hashAt);
  let query = '';
  const qAt = rest.indexOf('?');
  if (qAt >= 0) {
    query = rest.slice(qAt + 1);
    rest = rest.slice(0, qAt);
  }

  let user: string | undefined;
  let host: string | undefined;
  let port: number | undefined;
  let path: string;
  if (rest.startsWith('//')) {
    const authEnd = rest.indexOf('/', 2);
    const authority = authEnd < 0 ? rest.slice(2) : rest.slice(2, authEnd);
    path = authEnd < 0 ? '' : rest.slice(authEnd);
    ({ user, host, port } = parseAuthority(uri, authority));
  } else if (rest === '' || rest.startsWith('/')) {
    // `xen:` or `xen:/system`: libxml2 accepts these forms, and so does libvirt.
    path = rest;
  } else {
    throw malformed(uri, `expected '//' or '/' after '${scheme}:'`);
  }
  path = decode(uri, path, 'the path');

  const [driverPart, transportPart, ...more] = scheme.split('+');
  if (more.length > 0) throw malformed(uri, `scheme '${scheme}' names more than one transport`);
  const driver = driverPart!.toLowerCase();
  if (driver === '') throw malformed(uri, `scheme '${scheme}' has no driver name`);
  let transport: Transport | undefined;
  if (transportPart !== undefined) {
    const t = transportPart.toLowerCase();
    if (!(TRANSPORTS as readonly string[]).includes(t)) {
      throw malformed(uri, `unknown transport '${transportPart}' (expected one of ${TRANSPORTS.join(', ')})`);
    }
    transport = t as Transport;
  }

  const params = parseQuery(uri, query);
  const { client, forwarded } = splitParams(uri, params);

  const remote = transport !== undefined || host !== undefined || driver === 'remote';
  const parsed: ParsedUri = { uri, scheme, driver, path, params, client, remote, daemonUri: '' };
  if (user !== undefined) parsed.user = user;
  if (host !== undefined) parsed.host = host;
  if (port !== undefined) parsed.port = port;
  if (transport !== undefined) parsed.transport = transport;

  if (remote) {
    const eff: Transport = transport ?? (host !== undefined ? 'tls' : 'unix');
    parsed.effectiveTransport = eff;
    if (eff === 'unix' || eff === 'ext') {
      if (host !== undefined && transport !== undefined) {
        throw malformed(uri, `transport '${eff}' connects locally and cannot take a host ('${host}')`);
      }
    } else {
      if (host === undefined) throw malformed(uri, `transport '${eff}' needs a host name`);
      parsed.effectivePort = port ?? (eff === 'tls' ? DEFAULT_TLS_PORT : eff === 'tcp' ? DEFAULT_TCP_PORT : DEFAULT_SSH_PORT);
    }
    if (eff !== 'unix' && eff !== 'ssh' && eff !== 'libssh' && eff !== 'libssh2' && client.socket !== undefined) {
      throw malformed(uri, `the socket parameter only applies to the unix and ssh transports, not '${eff}'`);
    }
    if (eff === 'ext' && client.command === undefined) {
      throw malformed(uri, "the ext transport needs a 'command' parameter");
    }
  }
  parsed.daemonUri = daemonName(parsed, forwarded);
  return parsed;
}

function parseAuthority(uri: string, authority: string): { user?: string; host?: string; port?: number } {
  const out: { user?: string; host?: string; port?: number } = {};
  let hostPort = authority;
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const u = decode(uri, authority.slice(0, at), 'the user name');
    if (u === '') throw malformed(uri, "empty user name before '@'");
    out.user = u;
    hostPort = authority.slice(at + 1);
  }
  let hostText = hostPort;
  let portText: string | undefined;
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    if (close < 0) throw malformed(uri, "unterminated '[' in an IPv6 host");
    hostText = hostPort.slice(1, close);
    const after = hostPort.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw malformed(uri, `unexpected '${after}' after the IPv6 host`);
      portText = after.slice(1);
    }
    if (!/^[0-9A-Fa-f:.]+$/.test(hostText)) throw malformed(uri, `invalid IPv6 address '${hostText}'`);
  } else {
    const c = hostPort.lastIndexOf(':');
    if (c >= 0) {
      hostText = hostPort.slice(0, c);
      portText = hostPort.slice(c + 1);
    }
    if (hostText !== '' && !/^[A-Za-z0-9._~%!$&'()*+,;=-]+$/.test(hostText)) {
      throw malformed(uri, `invalid host name '${hostText}'`);
    }
    hostText = decode(uri, hostText, 'the host name');
  }
  if (portText !== undefined && portText !== '') {
    if (!/^\d+$/.test(portText)) throw malformed(uri, `port '${portText}' is not a number`);
    const p = Number(portText);
    if (p < 1 || p > 65535) throw malformed(uri, `port ${portText} is out of range (1-65535)`);
    out.port = p;
  }
  if (hostText !== '') out.host = hostText;
  else if (out.port !== undefined || out.user !== undefined) {
    throw malformed(uri, 'a user name or port is given without a host');
  }
  return out;
}

/** libvirt's query syntax: `&` or `;` separated, `+` stands for a space, values may be empty. */
function parseQuery(uri: string, query: string): UriParam[] {
  const out: UriParam[] = [];
  if (query === '') return out;
  for (const part of query.split(/[&;]/)) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    const name = decode(uri, rawName.replace(/\+/g, ' '), 'a parameter name');
    if (name === '') throw malformed(uri, `parameter '${part}' has no name`);
    out.push({ name, value: decode(uri, rawValue.replace(/\+/g, ' '), `parameter '${name}'`) });
  }
  return out;
}

function boolParam(uri: string, p: UriParam): boolean {
  // libvirt reads these with virStrToLong_i: any integer, non-zero meaning true.
  if (!/^[+-]?\d+$/.test(p.value.trim())) {
    throw malformed(uri, `parameter '${p.name}' must be an integer (0 or 1), not '${p.value}'`);
  }
  return Number(p.value) !== 0;
}

function splitParams(uri: string, params: UriParam[]): { client: ClientParams; forwarded: UriParam[] } {
  const client: ClientParams = {};
  const forwarded: UriParam[] = [];
  for (const p of params) {
    switch (p.name.toLowerCase()) {
      case 'name': client.name = p.value; break;
      case 'command': client.command = p.value; break;
      case 'socket':
        if (p.value === '') throw malformed(uri, 'the socket parameter is empty');
        client.socket = p.value;
        break;
      case 'auth': client.auth = p.value; break;
      case 'sshauth': client.sshauth = p.value; break;
      case 'netcat': client.netcat = p.value; break;
      case 'keyfile': client.keyfile = p.value; break;
      case 'pkipath': client.pkipath = p.value; break;
      case 'known_hosts': client.knownHosts = p.value; break;
      case 'known_hosts_verify':
        if (p.value !== 'normal' && p.value !== 'auto' && p.value !== 'ignore') {
          throw malformed(uri, `known_hosts_verify must be normal, auto or ignore, not '${p.value}'`);
        }
        client.knownHostsVerify = p.value;
        break;
      case 'tls_priority': client.tlsPriority = p.value; break;
      case 'no_sanity': client.noSanity = boolParam(uri, p); break;
      case 'no_verify': client.noVerify = boolParam(uri, p); break;
      case 'no_tty': client.noTty = boolParam(uri, p); break;
      case 'authfile': client.authfile = p.value; break;
      case 'mode':
        if (p.value !== 'auto' && p.value !== 'legacy' && p.value !== 'direct') {
          throw malformed(uri, `mode must be auto, legacy or direct, not '${p.value}'`);
        }
        client.mode = p.value;
        break;
      case 'proxy':
        if (p.value !== 'auto' && p.value !== 'netcat' && p.value !== 'native') {
          throw malformed(uri, `proxy must be auto, netcat or native, not '${p.value}'`);
        }
        client.proxy = p.value;
        break;
      default: forwarded.push(p);
    }
  }
  return { client, forwarded };
}

function encodeParam(s: string): string {
  return encodeURIComponent(s).replace(/%2F/gi, '/').replace(/%3A/gi, ':').replace(/%2C/gi, ',');
}

function formatQuery(params: readonly UriParam[]): string {
  return params.map((p) => `${encodeParam(p.name)}=${encodeParam(p.value)}`).join('&');
}

function encodePath(path: string): string {
  return path.split('/').map((seg) => encodeURIComponent(seg).replace(/%3A/gi, ':').replace(/%2C/gi, ',').replace(/%2B/gi, '+').replace(/%40/gi, '@')).join('/');
}

function daemonName(p: ParsedUri, forwarded: readonly UriParam[]): string {
  if (p.client.name !== undefined) return p.client.name;
  if (p.driver === 'remote') return '';
  const q = formatQuery(forwarded);
  return `${p.driver}://${encodePath(p.path)}${q ? `?${q}` : ''}`;
}

/**
 * The URI with only what identifies the connection target: used as the canonical form a
 * local driver reports from virConnectGetURI (`xen:///system`, `test:///default`).
 */
export function formatUri(p: Pick<ParsedUri, 'scheme' | 'user' | 'host' | 'port' | 'path' | 'params'>): string {
  let authority = '';
  if (p.host !== undefined) {
    const h = p.host.includes(':') ? `[${p.host}]` : p.host;
    authority = `${p.user !== undefined ? `${encodeURIComponent(p.user)}@` : ''}${h}${p.port !== undefined ? `:${p.port}` : ''}`;
  }
  const q = formatQuery(p.params);
  return `${p.scheme}://${authority}${encodePath(p.path)}${q ? `?${q}` : ''}`;
}

export interface DefaultUriSource {
  uri: string | undefined;
  /** Where it came from: the explicit argument, an environment variable, or nothing. */
  from: 'explicit' | 'XENVIRT_DEFAULT_URI' | 'LIBVIRT_DEFAULT_URI' | 'none';
}

/**
 * The URI to connect to: the explicit one, else $XENVIRT_DEFAULT_URI, else
 * $LIBVIRT_DEFAULT_URI. Empty values count as unset, as in libvirt.
 */
export function resolveDefaultUri(explicit?: string, env: NodeJS.ProcessEnv = process.env): DefaultUriSource {
  if (explicit !== undefined && explicit !== '') return { uri: explicit, from: 'explicit' };
  const x = env['XENVIRT_DEFAULT_URI'];
  if (x) return { uri: x, from: 'XENVIRT_DEFAULT_URI' };
  const l = env['LIBVIRT_DEFAULT_URI'];
  if (l) return { uri: l, from: 'LIBVIRT_DEFAULT_URI' };
  return { uri: undefined, from: 'none' };
}

/** The default UNIX socket libvirt's client picks for a URI (design facts §4), for root. */
export function defaultSocketPath(p: ParsedUri, readonly = false, exists: (path: string) => boolean = () => false): string {
  if (p.client.socket !== undefined) return p.client.socket;
  const ro = readonly ? '-ro' : '';
  const driverDaemon = p.driver === 'xen' || p.driver === 'libxl' ? 'virtxend' : `virt${p.driver}d`;
  const direct = `/var/run/libvirt/${driverDaemon}-sock${ro}`;
  const legacy = `/var/run/libvirt/libvirt-sock${ro}`;
  switch (p.client.mode) {
    case 'direct': return direct;
    case 'legacy': return legacy;
    default:
      if (p.driver === 'remote') return legacy;
      return exists(`/var/run/libvirt/${driverDaemon}-sock`) ? direct : legacy;
  }
}
