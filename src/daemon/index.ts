/** xenvirtd: libvirt's remote protocol daemon over the xenvirt drivers. */
export { XenvirtDaemon, type DaemonOptions } from './server.js';
export { DriverHub, type DriverEntry, type DriverHubOptions } from './drivers.js';
export {
  defaultConfig, defaultSocketPath, parseDaemonConfig, loadConfigFile, resolveConfig,
  type DaemonConfig, type ConfigOverrides,
} from './config.js';
export { createDispatcher, type Session, type DaemonServices } from './handlers.js';
export { READ_ONLY_DENIED, readOnlyDenial } from './readonly.js';
export { main as xenvirtdMain } from './main.js';
