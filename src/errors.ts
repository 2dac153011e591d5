/**
 * Typed errors carrying libvirt's error codes (virErrorNumber), so that the CLI, the
 * daemon (remote_error) and library users all see the same classification libvirt gives.
 */
export const ErrorCode = {
  INTERNAL_ERROR: 1,
  NO_MEMORY: 2,
  NO_SUPPORT: 3,
  UNKNOWN_HOST: 4,
  NO_CONNECT: 5,
  INVALID_CONN: 6,
  INVALID_DOMAIN: 7,
  INVALID_ARG: 8,
  OPERATION_FAILED: 9,
  GET_FAILED: 10,
  POST_FAILED: 11,
  HTTP_ERROR: 12,
  SEXPR_SERIAL: 13,
  NO_XEN: 14,
  XEN_CALL: 15,
  OS_TYPE: 16,
  NO_KERNEL: 17,
  NO_ROOT: 18,
  NO_SOURCE: 19,
  NO_TARGET: 20,
  NO_NAME: 21,
  NO_OS: 22,
  NO_DEVICE: 23,
  NO_XENSTORE: 24,
  DRIVER_FULL: 25,
  CALL_FAILED: 26,
  XML_ERROR: 27,
  DOM_EXIST: 28,
  OPERATION_DENIED: 29,
  OPEN_FAILED: 30,
  READ_FAILED: 31,
  PARSE_FAILED: 32,
  CONF_SYNTAX: 33,
  WRITE_FAILED: 34,
  XML_DETAIL: 35,
  NO_DOMAIN: 42,
  OPERATION_INVALID: 55,
  CONFIG_UNSUPPORTED: 67,
  OPERATION_TIMEOUT: 68,
  AUTH_FAILED: 45,
  RPC: 39,
  ARGUMENT_UNSUPPORTED: 74,
  OPERATION_UNSUPPORTED: 84,
  AUTH_CANCELLED: 79,
  NO_DOMAIN_SNAPSHOT: 72,
  INVALID_SCHEMA: 92,
  // The rest of virErrorNumber (include/libvirt/virterror.h), so that every code a remote
  // daemon sends has a name here.
  INVALID_NETWORK: 36,
  NETWORK_EXIST: 37,
  SYSTEM_ERROR: 38,
  GNUTLS_ERROR: 40,
  WAR_NO_NETWORK: 41,
  NO_NETWORK: 43,
  INVALID_MAC: 44,
  INVALID_STORAGE_POOL: 46,
  INVALID_STORAGE_VOL: 47,
  WAR_NO_STORAGE: 48,
  NO_STORAGE_POOL: 49,
  NO_STORAGE_VOL: 50,
  WAR_NO_NODE: 51,
  INVALID_NODE_DEVICE: 52,
  NO_NODE_DEVICE: 53,
  NO_SECURITY_MODEL: 54,
  WAR_NO_INTERFACE: 56,
  NO_INTERFACE: 57,
  INVALID_INTERFACE: 58,
  MULTIPLE_INTERFACES: 59,
  WAR_NO_NWFILTER: 60,
  INVALID_NWFILTER: 61,
  NO_NWFILTER: 62,
  BUILD_FIREWALL: 63,
  WAR_NO_SECRET: 64,
  INVALID_SECRET: 65,
  NO_SECRET: 66,
  MIGRATE_PERSIST_FAILED: 69,
  HOOK_SCRIPT_FAILED: 70,
  INVALID_DOMAIN_SNAPSHOT: 71,
  INVALID_STREAM: 73,
  STORAGE_PROBE_FAILED: 75,
  STORAGE_POOL_BUILT: 76,
  SNAPSHOT_REVERT_RISKY: 77,
  OPERATION_ABORTED: 78,
  NO_DOMAIN_METADATA: 80,
  MIGRATE_UNSAFE: 81,
  OVERFLOW: 82,
  BLOCK_COPY_ACTIVE: 83,
  SSH: 85,
  AGENT_UNRESPONSIVE: 86,
  RESOURCE_BUSY: 87,
  ACCESS_DENIED: 88,
  DBUS_SERVICE: 89,
  STORAGE_VOL_EXIST: 90,
  CPU_INCOMPATIBLE: 91,
  MIGRATE_FINISH_OK: 93,
  AUTH_UNAVAILABLE: 94,
  NO_SERVER: 95,
  NO_CLIENT: 96,
  AGENT_UNSYNCED: 97,
  LIBSSH: 98,
  DEVICE_MISSING: 99,
  INVALID_NWFILTER_BINDING: 100,
  NO_NWFILTER_BINDING: 101,
  INVALID_DOMAIN_CHECKPOINT: 102,
  NO_DOMAIN_CHECKPOINT: 103,
  NO_DOMAIN_BACKUP: 104,
  INVALID_NETWORK_PORT: 105,
  NETWORK_PORT_EXIST: 106,
  NO_NETWORK_PORT: 107,
  NO_HOSTNAME: 108,
  CHECKPOINT_INCONSISTENT: 109,
  MULTIPLE_DOMAINS: 110,
} as const;
export type ErrorCodeName = keyof typeof ErrorCode;

/** libvirt's virErrorDomain values we report from (the wire carries these numbers). */
export const ErrorDomain = {
  NONE: 0,
  XEN: 1,
  XEND: 2,
  SEXPR: 4,
  XML: 5,
  DOM: 6,
  RPC: 7,
  CONF: 9,
  TEST: 12,
  REMOTE: 13,
  XENXM: 15,
  DOMAIN: 20,
  LIBXL: 41,
  XENXL: 64,
} as const;

export class VirtError extends Error {
  readonly code: number;
  readonly codeName: ErrorCodeName;
  readonly domain: number;
  constructor(codeName: ErrorCodeName, message: string, domain: number = ErrorDomain.XEN) {
    super(message);
    this.name = 'VirtError';
    this.codeName = codeName;
    this.code = ErrorCode[codeName];
    this.domain = domain;
  }
}

/** A syntax error in a text input, located by line and column (both 1-based). */
export class LocatedError extends VirtError {
  readonly line: number;
  readonly column: number;
  constructor(codeName: ErrorCodeName, what: string, line: number, column: number, detail: string) {
    super(codeName, `${what}:${line}:${column}: ${detail}`);
    this.line = line;
    this.column = column;
  }
}

export const xmlError = (msg: string) => new VirtError('XML_ERROR', msg, ErrorDomain.XML);
export const confError = (msg: string) => new VirtError('CONF_SYNTAX', msg, ErrorDomain.CONF);
export const unsupported = (msg: string) => new VirtError('CONFIG_UNSUPPORTED', msg);
export const internal = (msg: string) => new VirtError('INTERNAL_ERROR', msg);
export const invalidArg = (msg: string) => new VirtError('INVALID_ARG', msg);
