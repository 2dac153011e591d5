/** The xl backend (Xen 4.x, libxl toolstack) for `xen:///system` on a Xen control domain. */
export { XlBackend, type XlBackendOptions, type ShutdownOptions } from './backend.js';
export { LocalExec, type Exec, type ExecResult, type LocalExecOptions } from './exec.js';
export { openXenStore, SocketXenStore, CliXenStore, type XenStore } from './xenstore.js';
export { xlTarget, startXlDriver, type XlTarget } from './open.js';
export { xlError, xlFailed } from './errors.js';
