/**
 * Protocol constants shared by the client and the daemon: the programs, the keepalive
 * program's procedures, the feature ids of CONNECT_SUPPORTS_FEATURE, auth types, and the
 * conversion between VirtError and the wire's remote_error (design facts §2, §5, §6).
 */
import { VirtError, ErrorCode, ErrorDomain, type ErrorCodeName } from '../errors.js';
import { RemoteError } from './generated/remote-types.js';
import type { RemoteNonnullDomain } from './generated/remote-types.js';
import type { DomainRef } from '../driver/connection.js';
import { uuidFromString, uuidToString } from './xdr.js';

export { REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION } from './generated/remote-procedures.js';

/** The keepalive program ("keep"), version 1: PING and PONG, both MESSAGEs with serial 0 and no payload. */
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const KeepaliveProcedure = { PING: 1, PONG: 2 } as const;
/** QEMU and LXC programs (not served; listed so a daemon can name them in errors). */
export const QEMU_PROGRAM = 0x20008087;
export const LXC_PROGRAM = 0x00068000;

/** libvirt's keepalive defaults on both sides: a PING after 5 s of silence, give up after 5 unanswered. */
export const KEEPALIVE_INTERVAL_MS = 5000;
export const KEEPALIVE_COUNT = 5;

/** virDrvFeature ids probed with CONNECT_SUPPORTS_FEATURE (facts §2.3). */
export const Feature = {
  MIGRATION_V1: 1,
  REMOTE: 2,
  MIGRATION_V2: 3,
  MIGRATION_P2P: 4,
  MIGRATION_DIRECT: 5,
  MIGRATION_V3: 6,
  MIGRATE_CHANGE_PROTECTION: 7,
  FD_PASSING: 8,
  TYPED_PARAM_STRING: 9,
  PROGRAM_KEEPALIVE: 10,
  XML_MIGRATABLE: 11,
  MIGRATION_OFFLINE: 12,
  MIGRATION_PARAMS: 13,
  REMOTE_EVENT_CALLBACK: 14,
  REMOTE_CLOSE_CALLBACK: 15,
  NETWORK_UPDATE_HAS_CORRECT_ORDER: 16,
} as const;

/** remote_auth_type */
export const AuthType = { NONE: 0, SASL: 1, POLKIT: 2 } as const;

/** CONNECT_OPEN flags (virConnectFlags). */
export const ConnectFlags = { RO: 1, NO_ALIASES: 2 } as const;

/** virErrorLevel */
export const ErrorLevel = { NONE: 0, WARNING: 1, ERROR: 2 } as const;

/** virDomainEventID values used with CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY. */
export const DomainEventId = { LIFECYCLE: 0 } as const;

const CODE_NAMES = new Map<number, ErrorCodeName>(
  (Object.entries(ErrorCode) as [ErrorCodeName, number][]).map(([name, code]) => [code, name]),
);

/**
 * An error that came over the wire (or is about to go out): a VirtError with the exact code
 * and domain numbers, plus remote_error's extra fields.
 */
export class RpcError extends VirtError {
  readonly level: number;
  readonly str1: string | null;
  readonly str2: string | null;
  readonly str3: string | null;
  readonly int1: number;
  readonly int2: number;

  constructor(e: RemoteError) {
    const name = CODE_NAMES.get(e.code) ?? 'INTERNAL_ERROR';
    super(name, e.message ?? `unknown error (code ${e.code}, domain ${e.domain})`, e.domain);
    this.name = 'RpcError';
    // A code this build has no name for still carries its real number.
    if (!CODE_NAMES.has(e.code)) (this as { code: number }).code = e.code;
    this.level = e.level;
    this.str1 = e.str1;
    this.str2 = e.str2;
    this.str3 = e.str3;
    this.int1 = e.int1;
    this.int2 = e.int2;
  }
}

/** The remote_error a daemon sends for an error (facts §6: str1 "%s", str2 the message, ints -1). */
export function toRemoteError(err: unknown): RemoteError {
  if (err instanceof RpcError) {
    return {
      code: err.code, domain: err.domain, message: err.message, level: err.level, dom: null,
      str1: err.str1, str2: err.str2, str3: err.str3, int1: err.int1, int2: err.int2, net: null,
    };
  }
  let code: number = ErrorCode.INTERNAL_ERROR;
  let domain: number = ErrorDomain.RPC;
  let message: string;
  if (err instanceof VirtError) {
    code = err.code;
    domain = err.domain;
    message = err.message;
  } else {
    message = `internal error: ${err instanceof Error ? err.message : String(err)}`;
  }
  return {
    code, domain, message, level: ErrorLevel.ERROR, dom: null,
    str1: '%s', str2: message, str3: null, int1: -1, int2: -1, net: null,
  };
}

/** Encode/decode helpers for error payloads, so callers need not import the generated module. */
export const RemoteErrorCodec = RemoteError;

/** The wire handle of a domain -> the Connection's DomainRef. */
export function domainRefFromWire(d: RemoteNonnullDomain): DomainRef {
  return { name: d.name, uuid: uuidToString(d.uuid), id: d.id };
}

/** A DomainRef -> the wire handle. */
export function domainRefToWire(d: DomainRef): RemoteNonnullDomain {
  return { name: d.name, uuid: uuidFromString(d.uuid), id: d.id };
}
