/** Xen 3.x through XenD: the backend, its HTTP client, the URI wiring, and the emulator for tests. */
export { XendBackend, guestInfoFromSxpr, guestsFromXenCaps, secondsToNs, type XendBackendOptions } from './backend.js';
export {
  XendClient, parseXendAddress, formatXendAddress, xendErrText, XEND_DEFAULT_SOCKET, XEND_DEFAULT_PORT, XEND_MAX_BODY,
  type XendAddress, type XendReply,
} from './http.js';
export { xendTarget, startXendDriver, isXendHost, type XendTarget } from './open.js';
export { XendEmulator, DEFAULT_EMU_HOST, diskDeviceNumber, type XendEmulatorOptions, type EmuHostConfig } from './emulator.js';
