/**
 * Errors the daemon itself raises, shaped as libvirtd sends them: remote_error's str1 is the
 * printf format of the message and str2 its argument (design facts §6), so a client that
 * rebuilds the text from them gets the same words.
 */
import { ErrorCode, ErrorDomain, type ErrorCodeName, type VirtError } from '../errors.js';
import { RpcError, ErrorLevel } from '../rpc/protocol.js';

/** An error whose message is `format` with its one `%s` replaced by `arg`. */
export function libvirtError(code: ErrorCodeName, domain: number, format: string, arg: string): VirtError {
  return new RpcError({
    code: ErrorCode[code], domain, message: format.replace('%s', arg), level: ErrorLevel.ERROR, dom: null,
    str1: format, str2: arg, str3: null, int1: -1, int2: -1, net: null,
  });
}

/** "internal error: %s", from the RPC layer (code 1, domain 7). */
export const rpcInternal = (detail: string) => libvirtError('INTERNAL_ERROR', ErrorDomain.RPC, 'internal error: %s', detail);

/** Any call but the handshake before CONNECT_OPEN. */
export const notOpen = () => rpcInternal('hypervisor connection not open');

/** The driver does not implement the API. */
export const noSupport = (api: string, domain: number = ErrorDomain.DOMAIN) =>
  libvirtError('NO_SUPPORT', domain, 'this function is not supported by the connection driver: %s', api);

/** CONNECT_OPEN for a URI no driver of this daemon serves. */
export const noConnectDriver = (uri: string) =>
  libvirtError('NO_CONNECT', ErrorDomain.NONE, 'no connection driver available for %s', uri);
