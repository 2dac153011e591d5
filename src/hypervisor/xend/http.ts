/**
 * A client for XenD's HTTP/S-expression interface (Xen 3.0.1 - 4.4).
 *
 * Transport, as XenD and libvirt's old xend driver spoke it:
 * - a UNIX socket (`unix:/var/lib/xend/xend-socket`, XenD's `(xend-unix-server yes)`), or TCP
 *   (`http://host:port`, port 8000 by default, XenD's `(xend-http-server yes)`);
 * - one request per connection, `Host: localhost:8000`, `Accept-Encoding: identity`, form-encoded
 *   POST bodies;
 * - 200/201/202 are success, 404 means "no such object", 500 a failure; a 202 whose body says
 *   `failed`, or any 2xx whose body carries `xend.err`, is a failure too;
 * - answers over 256 KiB are refused (libvirt's limit), without reading them whole.
 *
 * Every failure becomes a VirtError (domain XEND) whose message says what went wrong and what
 * to try, never just a status code.
 */
import http from 'node:http';
import { ErrorDomain, VirtError, type ErrorCodeName } from '../../errors.js';
import { joinBackslashNewlines, parseSexpr, type SExpr } from '../../formats/sexpr.js';

/** libvirt's XEND_RCV_BUF_MAX_LEN. */
export const XEND_MAX_BODY = 256 * 1024;
export const XEND_DEFAULT_SOCKET = '/var/lib/xend/xend-socket';
export const XEND_DEFAULT_PORT = 8000;

export type XendAddress =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number };

const xendError = (code: ErrorCodeName, message: string) => new VirtError(code, message, ErrorDomain.XEND);

/**
 * Reads the address forms we accept: `unix:/path`, a bare absolute path, `http://host[:port]`
 * (port 8000 by default), `host:port`.
 */
export function parseXendAddress(text: string): XendAddress {
  const s = text.trim();
  if (s.startsWith('unix:')) {
    const p = s.slice(5).replace(/^\/\/(?=\/)/, '');
    if (!p.startsWith('/')) throw xendError('INVALID_ARG', `XenD address '${text}': a unix socket path must be absolute (e.g. unix:${XEND_DEFAULT_SOCKET})`);
    return { kind: 'unix', path: p };
  }
  if (s.startsWith('/')) return { kind: 'unix', path: s };
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `http://${s}`);
  } catch {
    throw xendError('INVALID_ARG', `XenD address '${text}' is neither unix:/PATH nor http://HOST[:PORT]`);
  }
  if (url.protocol !== 'http:') {
    throw xendError('INVALID_ARG', `XenD address '${text}': XenD speaks plain http (or a unix socket), not ${url.protocol.slice(0, -1)}`);
  }
  if (url.pathname !== '/' && url.pathname !== '') {
    throw xendError('INVALID_ARG', `XenD address '${text}' has a path: give only http://HOST[:PORT]`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw xendError('INVALID_ARG', `XenD address '${text}' names no host`);
  return { kind: 'tcp', host, port: url.port ? Number(url.port) : XEND_DEFAULT_PORT };
}

export function formatXendAddress(a: XendAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

export interface XendReply {
  status: number;
  body: string;
}

export interface XendRequestOptions {
  /** ms; 0 = wait as long as XenD takes (save, restore, dump, migrate). */
  timeoutMs?: number;
}

/** The text XenD put in a `(xend.err 'message')` body, if it is one. */
export function xendErrText(body: string): string | undefined {
  const i = body.indexOf('xend.err');
  if (i < 0) return undefined;
  try {
    const e = parseSexpr(body.trim(), { lenient: true });
    if (Array.isArray(e) && e[0] === 'xend.err') {
      const parts = e.slice(1).map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
      if (parts.length > 0) return parts.join(' ');
    }
  } catch {
    // not an S-expression: fall through to the raw text
  }
  return body.slice(i + 'xend.err'.length).replace(/^[\s'"(]+|[\s'")]+$/g, '') || body.trim();
}

/** Trim a body for an error message. */
function excerpt(body: string, max = 300): string {
  const t = body.trim().replace(/\s+/g, ' ');
  return t.length > max ? `${t.slice(0, max)}...` : t;
}

function connectHint(a: XendAddress): string {
  return a.kind === 'unix'
    ? 'is xend running on this host? Start it (e.g. \'/etc/init.d/xend start\') and check that /etc/xen/xend-config.sxp has (xend-unix-server yes)'
    : `is xend running on ${a.host}? Start it and check that /etc/xen/xend-config.sxp has (xend-http-server yes) and (xend-port ${a.port})`;
}

export class XendClient {
  readonly address: XendAddress;
  /** Default timeout for quick requests (ms). */
  timeoutMs: number;

  constructor(address: XendAddress | string, opts: { timeoutMs?: number } = {}) {
    this.address = typeof address === 'string' ? parseXendAddress(address) : address;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  get where(): string { return formatXendAddress(this.address); }

  /** One HTTP exchange on a fresh connection; transport failures become VirtErrors. */
  request(method: 'GET' | 'POST', path: string, form?: Record<string, string>, opts: XendRequestOptions = {}): Promise<XendReply> {
    const body = form ? new URLSearchParams(form).toString().replace(/\+/g, '%20') : undefined;
    const headers: Record<string, string> = {
      Host: 'localhost:8000',
      'Accept-Encoding': 'identity',
      'Content-Type': 'application/x-www-form-urlencoded',
    };
    if (body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
    const target = this.address.kind === 'unix'
      ? { socketPath: this.address.path }
      : { host: this.address.host, port: this.address.port };
    const timeout = opts.timeoutMs ?? this.timeoutMs;
    const what = `${method} ${path}`;
    return new Promise<XendReply>((resolve, reject) => {
      let settled = false;
      const fail = (e: VirtError) => {
        if (settled) return;
        settled = true;
        req.destroy();
        reject(e);
      };
      const req = http.request({ ...target, method, path, headers, agent: false }, (res) => {
        const status = res.statusCode ?? 0;
        const declared = Number(res.headers['content-length']);
        const tooBig = (n: number) => xendError('INTERNAL_ERROR',
          `XenD's answer to ${what} is ${n > XEND_MAX_BODY * 4 ? 'over ' : ''}${n} bytes, more than the ${XEND_MAX_BODY / 1024} KiB a client accepts: ` +
          `the server at ${this.where} is not behaving like XenD; check the address, or restart xend`);
        if (Number.isFinite(declared) && declared > XEND_MAX_BODY) {
          fail(tooBig(declared));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > XEND_MAX_BODY) {
            fail(tooBig(size));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          if (settled) return;
          settled = true;
          resolve({ status, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (e) => fail(this.transportError(what, e)));
      });
      if (timeout > 0) {
        req.setTimeout(timeout, () => fail(xendError('OPERATION_TIMEOUT',
          `XenD at ${this.where} did not answer ${what} within ${Math.round(timeout / 1000)} s: xend may be hung; check it with 'xm list' and restart it if needed`)));
      }
      req.on('error', (e) => fail(this.transportError(what, e)));
      req.end(body);
    });
  }

  private transportError(what: string, e: Error): VirtError {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND') {
      const why = code === 'ENOENT' ? 'the socket does not exist'
        : code === 'EACCES' ? 'permission denied (XenD\'s socket is root-only: run as root)'
          : code === 'ENOTFOUND' ? 'unknown host' : 'connection refused';
      return xendError('NO_CONNECT', `cannot connect to XenD at ${this.where}: ${why}; ${code === 'EACCES' ? 'use sudo or a privileged daemon' : connectHint(this.address)}`);
    }
    return xendError('INTERNAL_ERROR', `XenD at ${this.where} broke off ${what}: ${e.message}; retry, and restart xend if it keeps happening`);
  }

  /**
   * GET that must succeed; `undefined` for 404 on a domain path (a probe: the domain is not
   * there). Parses the answer as an S-expression.
   */
  async getSexpr(path: string, opts: XendRequestOptions = {}): Promise<SExpr | undefined> {
    const r = await this.request('GET', path, undefined, opts);
    if (r.status === 404 && path.startsWith('/xend/domain/')) return undefined;
    if (r.status < 200 || r.status > 202) {
      const err = xendErrText(r.body);
      if (r.status === 404) {
        throw xendError('GET_FAILED', `XenD at ${this.where} has no ${path} (HTTP 404): it is not a XenD of Xen 3.x/4.x, or too old; check the address`);
      }
      throw xendError('GET_FAILED', `XenD failed to answer GET ${path} (HTTP ${r.status}): ${err ?? (excerpt(r.body) || 'no explanation given')}`);
    }
    let e: SExpr;
    try {
      e = parseSexpr(joinBackslashNewlines(r.body), { lenient: true });
    } catch (err) {
      throw xendError('INTERNAL_ERROR', `XenD's answer to GET ${path} is not an S-expression (${(err as Error).message}): '${excerpt(r.body, 120)}'`);
    }
    // an error reported with a success code; a domain that merely mentions xend.err is fine
    if (Array.isArray(e) && e[0] === 'xend.err') throw xendError('GET_FAILED', `XenD failed to answer GET ${path}: ${xendErrText(r.body)}`);
    return e;
  }

  /**
   * POST an operation; resolves with the reply body on success. `target` names the object for
   * messages (e.g. "domain 'vm1'").
   */
  async post(path: string, form: Record<string, string>, opts: XendRequestOptions & { target?: string } = {}): Promise<string> {
    const r = await this.request('POST', path, form, opts);
    const op = form['op'] ?? 'the operation';
    const target = opts.target ?? path;
    const err = xendErrText(r.body);
    if (r.status === 404) {
      throw xendError('NO_DOMAIN', `XenD has no ${target}, or does not know operation '${op}' (HTTP 404): the domain may have stopped meanwhile; list the domains again`);
    }
    if (r.status < 200 || r.status > 202) {
      throw xendError('POST_FAILED', `XenD failed to ${op} ${target} (HTTP ${r.status}): ${err ?? (excerpt(r.body) || 'no explanation given')}`);
    }
    if (err !== undefined) throw xendError('POST_FAILED', `XenD failed to ${op} ${target}: ${err}`);
    if (r.status === 202 && r.body.includes('failed')) {
      throw xendError('POST_FAILED', `XenD accepted '${op}' for ${target} but reports it failed: ${excerpt(r.body)}`);
    }
    return r.body;
  }
}
