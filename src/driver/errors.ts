/**
 * libvirt's error wording (virerror.c prefixes) for the driver's failures, so that users and
 * scripts see the same text virsh prints against libvirt's Xen driver.
 */
import { ErrorDomain, VirtError } from '../errors.js';

const D = ErrorDomain.LIBXL;

export const noDomain = (detail: string) => new VirtError('NO_DOMAIN', `Domain not found: ${detail}`, D);
export const noDomainByName = (name: string) => noDomain(`no domain with matching name '${name}'`);
export const noDomainByUuid = (uuid: string, name?: string) =>
  noDomain(`no domain with matching uuid '${uuid}'${name !== undefined ? ` (${name})` : ''}`);
export const noDomainById = (id: number) => noDomain(`no domain with matching id ${id}`);
export const opInvalid = (detail: string) => new VirtError('OPERATION_INVALID', `Requested operation is not valid: ${detail}`, D);
export const opFailed = (detail: string) => new VirtError('OPERATION_FAILED', `operation failed: ${detail}`, D);
export const invalidArg = (detail: string) => new VirtError('INVALID_ARG', `invalid argument: ${detail}`, D);
export const internalError = (detail: string) => new VirtError('INTERNAL_ERROR', `internal error: ${detail}`, D);
export const configUnsupported = (detail: string) => new VirtError('CONFIG_UNSUPPORTED', `unsupported configuration: ${detail}`, D);
export const argUnsupported = (detail: string) => new VirtError('ARGUMENT_UNSUPPORTED', `argument unsupported: ${detail}`, D);
export const noSupport = (fn: string) => new VirtError('NO_SUPPORT', `this function is not supported by the connection driver: ${fn}`, D);
export const noConnect = (uri: string, why?: string) =>
  new VirtError('NO_CONNECT', `no connection driver available for ${uri}${why ? `: ${why}` : ''}`, ErrorDomain.NONE);
/** virReportSystemError: the message, then the OS error text. */
export const systemError = (detail: string, e: unknown) => {
  const err = e as NodeJS.ErrnoException;
  const text = err?.code ? osErrorText(err.code) ?? err.message : String((e as Error)?.message ?? e);
  return new VirtError('OPERATION_FAILED', `${detail}: ${text}`, D);
};
export const notRunning = () => opInvalid('domain is not running');
export const dom0Unsupported = () => opInvalid('Domain-0 does not support requested operation');
export const invalidConn = (fn: string) => new VirtError('INVALID_CONN', `invalid connection pointer in ${fn}`, ErrorDomain.NONE);

/** virCheckFlags' complaint. */
export function checkFlags(flags: number, allowed: number, fn: string): void {
  const bad = flags & ~allowed;
  if (bad) throw invalidArg(`unsupported flags (0x${bad.toString(16)}) in function ${fn}`);
}

const OS_ERRORS: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  EEXIST: 'File exists',
  EIO: 'Input/output error',
};
function osErrorText(code: string): string | undefined { return OS_ERRORS[code]; }
