/** Every CLI command, in the order `help` lists them. */
import type { Command } from '../command.js';
import { domxmlFromNative, domxmlToNative } from './domxml.js';
import { attachDevice, attachDisk, attachInterface, detachDevice } from './devices.js';
import { event } from './event.js';
import { capabilities, hostname, nodeinfo, sysinfo, uri, version } from './host.js';
import {
  autostart, create, define, destroy, dump, managedsave, reboot, restore, resume, save, shutdown, start, suspend, undefine,
} from './lifecycle.js';
import { list } from './list.js';
import { dominfo, domid, domname, domstate, domuuid, dumpxml, vcpucount } from './monitor.js';
import { setmaxmem, setmem, setvcpus } from './resources.js';
import { schedinfo, vcpuinfo, vcpupin } from './tuning.js';

export const COMMANDS: Command[] = [
  // Domain Management
  attachDevice,
  attachDisk,
  attachInterface,
  autostart,
  create,
  define,
  destroy,
  detachDevice,
  domid,
  domname,
  domuuid,
  domxmlFromNative,
  domxmlToNative,
  dump,
  dumpxml,
  managedsave,
  reboot,
  restore,
  resume,
  save,
  schedinfo,
  setmaxmem,
  setmem,
  setvcpus,
  shutdown,
  start,
  suspend,
  undefine,
  vcpucount,
  vcpuinfo,
  vcpupin,
  // Domain Monitoring
  dominfo,
  domstate,
  list,
  // Domain Events
  event,
  // Host and Hypervisor
  capabilities,
  hostname,
  nodeinfo,
  sysinfo,
  uri,
  version,
];
