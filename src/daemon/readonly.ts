/**
 * What a read-only connection may not do. libvirt checks this in the public API entry points
 * (virCheckReadOnlyGoto): the call fails with VIR_ERR_OPERATION_DENIED from the API's own error
 * domain, "operation forbidden: read only access prevents virXxx", naming the C function.
 *
 * The table below is libvirtd 9.0's behaviour, measured: every REMOTE procedure was sent with
 * zeroed arguments on a read-only connection to libvirtd 9.0.0 and the ones answered with
 * OPERATION_DENIED are listed with the function their message names. Five procedures whose
 * argument checks run before the read-only check (OPEN_GRAPHICS, SEND_PROCESS_SIGNAL, RENAME,
 * SET_LAUNCH_SECURITY_STATE, FD_ASSOCIATE) are added by hand: they change state too.
 */
import { ErrorDomain, type VirtError } from '../errors.js';
import { libvirtError } from './errors.js';

/** procedure number -> the libvirt function named in the denial */
export const READ_ONLY_DENIED: ReadonlyMap<number, string> = new Map(Object.entries({
  8: 'virDomainAttachDevice', 9: 'virDomainCreate', 10: 'virDomainCreateXML', 11: 'virDomainDefineXML',
  12: 'virDomainDestroy', 13: 'virDomainDetachDevice', 26: 'virDomainPinVcpu', 27: 'virDomainReboot',
  28: 'virDomainResume', 29: 'virDomainSetAutostart', 30: 'virDomainSetMaxMemory', 31: 'virDomainSetMemory',
  32: 'virDomainSetVcpus', 33: 'virDomainShutdown', 34: 'virDomainSuspend', 35: 'virDomainUndefine',
  39: 'virNetworkCreate', 40: 'virNetworkCreateXML', 41: 'virNetworkDefineXML', 42: 'virNetworkDestroy',
  48: 'virNetworkSetAutostart', 49: 'virNetworkUndefine', 53: 'virDomainCoreDump', 54: 'virDomainRestore',
  55: 'virDomainSave', 58: 'virDomainSetSchedulerParameters', 61: 'virDomainMigratePrepare',
  62: 'virDomainMigratePerform', 63: 'virDomainMigrateFinish', 75: 'virConnectFindStoragePoolSources',
  76: 'virStoragePoolCreateXML', 77: 'virStoragePoolDefineXML', 78: 'virStoragePoolCreate',
  79: 'virStoragePoolBuild', 80: 'virStoragePoolDestroy', 81: 'virStoragePoolDelete',
  82: 'virStoragePoolUndefine', 83: 'virStoragePoolRefresh', 90: 'virStoragePoolSetAutostart',
  93: 'virStorageVolCreateXML', 94: 'virStorageVolDelete', 103: 'virDomainBlockPeek',
  104: 'virDomainMemoryPeek', 108: 'virDomainMigratePrepare2', 109: 'virDomainMigrateFinish2',
  118: 'virNodeDeviceDettach', 119: 'virNodeDeviceReAttach', 120: 'virNodeDeviceReset',
  123: 'virNodeDeviceCreateXML', 124: 'virNodeDeviceDestroy', 125: 'virStorageVolCreateXMLFrom',
  131: 'virInterfaceDefineXML', 132: 'virInterfaceUndefine', 133: 'virInterfaceCreate',
  134: 'virInterfaceDestroy', 135: 'virConnectDomainXMLFromNative', 136: 'virConnectDomainXMLToNative',
  142: 'virSecretDefineXML', 144: 'virSecretSetValue', 145: 'virSecretGetValue', 146: 'virSecretUndefine',
  148: 'virDomainMigratePrepareTunnel', 160: 'virDomainAttachDeviceFlags', 161: 'virDomainDetachDeviceFlags',
  164: 'virDomainAbortJob', 165: 'virStorageVolWipe', 166: 'virDomainMigrateSetMaxDowntime',
  174: 'virDomainUpdateDeviceFlags', 180: 'virNWFilterDefineXML', 181: 'virNWFilterUndefine',
  182: 'virDomainManagedSave', 184: 'virDomainManagedSaveRemove', 185: 'virDomainSnapshotCreateXML',
  192: 'virDomainRevertToSnapshot', 193: 'virDomainSnapshotDelete', 196: 'virDomainCreateWithFlags',
  197: 'virDomainSetMemoryParameters', 199: 'virDomainSetVcpusFlags', 201: 'virDomainOpenConsole',
  204: 'virDomainSetMemoryFlags', 205: 'virDomainSetBlkioParameters', 207: 'virDomainMigrateSetMaxSpeed',
  208: 'virStorageVolUpload', 209: 'virStorageVolDownload', 210: 'virDomainInjectNMI',
  211: 'virDomainScreenshot', 213: 'virDomainMigrateBegin3', 214: 'virDomainMigratePrepare3',
  215: 'virDomainMigratePrepareTunnel3', 216: 'virDomainMigratePerform3', 217: 'virDomainMigrateFinish3',
  218: 'virDomainMigrateConfirm3', 219: 'virDomainSetSchedulerParametersFlags',
  220: 'virInterfaceChangeBegin', 221: 'virInterfaceChangeCommit', 222: 'virInterfaceChangeRollback',
  225: 'virDomainPinVcpuFlags', 226: 'virDomainSendKey', 231: 'virDomainUndefineFlags',
  232: 'virDomainSaveFlags', 233: 'virDomainRestoreFlags', 234: 'virDomainDestroyFlags',
  235: 'virDomainSaveImageGetXMLDesc', 236: 'virDomainSaveImageDefineXML', 237: 'virDomainBlockJobAbort',
  239: 'virDomainBlockJobSetSpeed', 240: 'virDomainBlockPull', 242: 'virDomainMigrateGetMaxSpeed',
  245: 'virDomainReset', 249: 'virDomainOpenGraphics', 250: 'virNodeSuspendForDuration',
  251: 'virDomainBlockResize', 252: 'virDomainSetBlockIoTune', 254: 'virDomainSetNumaParameters',
  256: 'virDomainSetInterfaceParameters', 258: 'virDomainShutdownFlags', 259: 'virStorageVolWipePattern',
  260: 'virStorageVolResize', 261: 'virDomainPMSuspendForDuration', 264: 'virDomainSetMetadata',
  266: 'virDomainBlockRebase', 267: 'virDomainPMWakeup', 277: 'virDomainGetHostname',
  279: 'virDomainPinEmulator', 288: 'virNodeSetMemoryParameters', 290: 'virDomainBlockCommit',
  291: 'virNetworkUpdate', 294: 'virDomainFSTrim', 295: 'virDomainSendProcessSignal',
  296: 'virDomainOpenChannel', 300: 'virDomainMigrateSetCompressionCache', 301: 'virNodeDeviceDetachFlags',
  302: 'virDomainMigrateBegin3Params', 303: 'virDomainMigratePrepare3Params',
  304: 'virDomainMigratePrepareTunnel3Params', 305: 'virDomainMigratePerform3Params',
  306: 'virDomainMigrateFinish3Params', 307: 'virDomainMigrateConfirm3Params',
  308: 'virDomainSetMemoryStatsPeriod', 309: 'virDomainCreateXMLWithFiles', 310: 'virDomainCreateWithFiles',
  334: 'virDomainCoreDumpWithFormat', 335: 'virDomainFSFreeze', 336: 'virDomainFSThaw',
  337: 'virDomainGetTime', 338: 'virDomainSetTime', 342: 'virConnectGetDomainCapabilities',
  343: 'virDomainOpenGraphicsFD', 345: 'virDomainBlockCopy', 347: 'virNodeAllocPages',
  349: 'virDomainGetFSInfo', 350: 'virDomainDefineXMLFlags', 352: 'virDomainPinIOThread',
  355: 'virDomainAddIOThread', 356: 'virDomainDelIOThread', 357: 'virDomainSetUserPassword',
  358: 'virDomainRename', 364: 'virDomainMigrateStartPostCopy', 366: 'virDomainSetPerfEvents',
  371: 'virDomainGetGuestVcpus', 372: 'virDomainSetGuestVcpus', 384: 'virDomainSetVcpu',
  386: 'virDomainSetBlockThreshold', 389: 'virDomainManagedSaveDefineXML', 390: 'virDomainSetLifecycleAction',
  392: 'virDomainDetachDeviceAlias', 393: 'virConnectCompareHypervisorCPU', 395: 'virNodeGetSEVInfo',
  396: 'virDomainGetLaunchSecurityInfo', 399: 'virNWFilterBindingCreateXML', 400: 'virNWFilterBindingDelete',
  402: 'virDomainSetIOThreadParams', 406: 'virNetworkPortCreateXML', 408: 'virNetworkPortSetParameters',
  410: 'virNetworkPortDelete', 411: 'virDomainCheckpointCreateXML', 417: 'virDomainCheckpointDelete',
  418: 'virDomainGetGuestInfo', 420: 'virDomainAgentSetResponseTimeout', 421: 'virDomainBackupBegin',
  424: 'virDomainAuthorizedSSHKeysGet', 425: 'virDomainAuthorizedSSHKeysSet',
  427: 'virDomainStartDirtyRateCalc', 428: 'virNodeDeviceDefineXML', 429: 'virNodeDeviceUndefine',
  430: 'virNodeDeviceCreate', 431: 'virNWFilterDefineXMLFlags', 432: 'virNetworkDefineXMLFlags',
  433: 'virNodeDeviceGetAutostart', 434: 'virNodeDeviceSetAutostart', 437: 'virNetworkCreateXMLFlags',
  439: 'virDomainSetLaunchSecurityState', 440: 'virDomainSaveParams', 441: 'virDomainRestoreParams',
  442: 'virDomainAbortJobFlags', 443: 'virDomainFDAssociate',
}).map(([n, f]) => [Number(n), f]));

/** The virErrorDomain of a public API function (its source file's VIR_FROM_THIS). */
export function apiErrorDomain(fn: string): number {
  if (fn.startsWith('virNetwork')) return 19;
  if (fn.startsWith('virStorage') || fn === 'virConnectFindStoragePoolSources') return 18;
  if (fn.startsWith('virNodeDevice')) return 22;
  if (fn.startsWith('virInterface')) return 26;
  if (fn.startsWith('virSecret')) return 30;
  if (fn.startsWith('virNWFilter')) return 33;
  if (fn.startsWith('virDomainSnapshot') || fn === 'virDomainRevertToSnapshot') return 35;
  if (fn.startsWith('virDomainCheckpoint')) return 69;
  return ErrorDomain.DOMAIN;
}

/** libvirt's virReportRestrictedError: OPERATION_DENIED, "operation forbidden: %s". */
export function operationDenied(detail: string, domain: number = ErrorDomain.DOMAIN): VirtError {
  return libvirtError('OPERATION_DENIED', domain, 'operation forbidden: %s', detail);
}

/** VIR_DOMAIN_XML_SECURE */
const XML_SECURE = 1;

/**
 * The denial a read-only connection gets for this call, or undefined when it is allowed.
 * `args` is the decoded argument record (for the flag-dependent checks).
 */
export function readOnlyDenial(proc: number, args: unknown): VirtError | undefined {
  const fn = READ_ONLY_DENIED.get(proc);
  if (fn !== undefined) return operationDenied(`read only access prevents ${fn}`, apiErrorDomain(fn));
  // DOMAIN_GET_XML_DESC: secrets (graphics passwords) are for read-write connections only.
  if (proc === 14 && ((args as { flags?: number })?.flags ?? 0) & XML_SECURE) {
    return operationDenied('virDomainGetXMLDesc with secure flag');
  }
  return undefined;
}
