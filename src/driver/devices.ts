/**
 * Device XML for attach/detach (`<disk>`, `<interface>`), read with the same strict parser and
 * post-parse defaults as whole domains, plus the matching rules libvirt uses to find the
 * device a detach request means.
 */
import { randomBytes } from 'node:crypto';
import { parseXml } from '../domain/xml.js';
import { parseDomainXml } from '../domain/parse.js';
import type { DiskDevice, Domain, InterfaceDevice } from '../domain/types.js';
import { configUnsupported, invalidArg, opFailed } from './errors.js';

export type DeviceDef = { kind: 'disk'; disk: DiskDevice } | { kind: 'interface'; nic: InterfaceDevice };

/**
 * Parse one device element in the context of `owner` (its OS type decides bus defaults).
 * `action` words the error for devices we cannot handle ('attached' / 'detached').
 */
export function parseDeviceXml(xml: string, owner: Domain, action: 'attached' | 'detached'): DeviceDef {
  const root = parseXml(xml, 'device XML');
  if (root.name !== 'disk' && root.name !== 'interface') {
    throw configUnsupported(`device type '${root.name}' cannot be ${action}`);
  }
  const body = xml.replace(/^\s*<\?xml[^?]*\?>/, '');
  const shell = `<domain type='xen'><name>device</name><os><type>${owner.os.type}</type></os><devices>\n${body}\n</devices></domain>`;
  const d = parseDomainXml(shell, { fileName: 'device XML' });
  if (root.name === 'disk') return { kind: 'disk', disk: d.devices.disks[0]! };
  return { kind: 'interface', nic: d.devices.interfaces[0]! };
}

/** A random MAC in Xen's OUI (libxl's macPrefix 00:16:3e), avoiding `taken`. */
export function generateMac(taken: ReadonlySet<string> = new Set()): string {
  for (;;) {
    const b = randomBytes(3);
    b[0] = b[0]! & 0x7f;
    const mac = `00:16:3e:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
    if (!taken.has(mac)) return mac;
  }
}

/** Give every interface without a MAC one, as libvirt does when it parses a definition. */
export function assignMacs(d: Domain): void {
  const taken = new Set(d.devices.interfaces.map((n) => n.mac).filter((m): m is string => !!m));
  for (const n of d.devices.interfaces) {
    if (!n.mac) {
      n.mac = generateMac(taken);
      taken.add(n.mac);
    }
  }
}

export function diskIndex(d: Domain, dev: string): number {
  return d.devices.disks.findIndex((x) => x.target.dev === dev);
}

/** virDomainNetFindIdx: by MAC when the request has one, else the only interface. */
export function nicIndex(d: Domain, nic: InterfaceDevice): number {
  const list = d.devices.interfaces;
  if (nic.mac) {
    const i = list.findIndex((n) => n.mac === nic.mac);
    if (i < 0) throw opFailed(`no device matching MAC address ${nic.mac} found`);
    return i;
  }
  if (list.length === 0) throw opFailed('no device found');
  if (list.length > 1) throw invalidArg('multiple matching devices found: give the MAC address of the one to detach');
  return 0;
}

export function cloneDomain(d: Domain): Domain {
  return structuredClone(d);
}
