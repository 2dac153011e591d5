/** libvirt's remote RPC protocol: XDR, framing, generated procedure codecs, client and server halves. */
export * from './xdr.js';
export * from './packet.js';
export * from './protocol.js';
export { RpcClient, connectUnix, keepalivePacket, type RpcClientOptions } from './rpc-client.js';
export { RemoteConnection, openRemote, type OpenRemoteOptions, type RemoteFeatures } from './client.js';
export { Dispatcher, serveStream, errorReply, eventPacket, apiName, type Handler, type ServeOptions } from './dispatcher.js';
export {
  RemoteProcedure, REMOTE_PROCEDURES, REMOTE_PROCEDURE_LIST,
  type RemoteProcedureName, type RemoteProcedureTypes, type ProcedureInfo,
} from './generated/remote-procedures.js';
