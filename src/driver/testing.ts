/**
 * Test plumbing for the driver's tests: the two simulated hosts every behaviour is checked
 * against, small domain documents, and ways to compare stored state.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Connection, LifecycleEvent } from './connection.js';
import { openConnection } from './open.js';

export interface TestHost {
  label: string;
  uri: string;
  /** the state directory of a persistent host */
  dir?: string;
  open(): Promise<Connection>;
  cleanup(): void;
}

/** test:///default and a fresh persistent host in a temp directory. */
export function testHosts(): TestHost[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-host-'));
  return [
    { label: 'test:///default', uri: 'test:///default', open: () => openConnection('test:///default'), cleanup: () => {} },
    {
      label: 'test:///TMPDIR',
      uri: `test://${dir}`,
      dir,
      open: () => openConnection(`test://${dir}`),
      cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
    },
  ];
}

export interface GuestOptions {
  uuid?: string;
  memory?: number;
  currentMemory?: number;
  vcpus?: number;
  vcpuCurrent?: number;
  hvm?: boolean;
  onPoweroff?: string;
  onReboot?: string;
  onCrash?: string;
  mac?: string;
  description?: string;
  graphics?: boolean;
}

/** A small PV (or HVM) guest. */
export function guestXml(name: string, o: GuestOptions = {}): string {
  const uuid = o.uuid ?? randomUUID();
  const os = o.hvm
    ? "<os>\n    <type>hvm</type>\n    <boot dev='hd'/>\n  </os>"
    : '<os>\n    <type>linux</type>\n    <kernel>/boot/vmlinuz</kernel>\n  </os>';
  const vcpu = o.vcpuCurrent ? `<vcpu current='${o.vcpuCurrent}'>${o.vcpus ?? 2}</vcpu>` : `<vcpu>${o.vcpus ?? 2}</vcpu>`;
  return `<domain type='xen'>
  <name>${name}</name>
  <uuid>${uuid}</uuid>
  ${o.description !== undefined ? `<description>${o.description}</description>` : ''}
  <memory unit='KiB'>${o.memory ?? 262144}</memory>
  ${o.currentMemory ? `<currentMemory unit='KiB'>${o.currentMemory}</currentMemory>` : ''}
  ${vcpu}
  ${os}
  ${o.onPoweroff ? `<on_poweroff>${o.onPoweroff}</on_poweroff>` : ''}
  ${o.onReboot ? `<on_reboot>${o.onReboot}</on_reboot>` : ''}
  ${o.onCrash ? `<on_crash>${o.onCrash}</on_crash>` : ''}
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/xen/images/${name}.img'/>
      <target dev='xvda' bus='xen'/>
    </disk>
    <interface type='bridge'>
      <mac address='${o.mac ?? '00:16:3e:00:00:01'}'/>
      <source bridge='xenbr0'/>
    </interface>
    ${o.graphics ? "<graphics type='vnc' port='-1'/>" : ''}
  </devices>
</domain>
`;
}

/** Every file of a state directory (but the lock) with its content: "stored state". */
export function snapshotDir(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (abs: string, rel: string) => {
    for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
      const a = path.join(abs, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(a, r);
      else if (r !== 'lock') out.set(r, fs.readFileSync(a, 'latin1'));
    }
  };
  walk(dir, '');
  return out;
}

/** Everything a client can see of the host's domains. */
export async function observableState(c: Connection): Promise<string> {
  const parts: string[] = [];
  for (const d of await c.listAllDomains()) {
    parts.push(JSON.stringify(d), JSON.stringify(await c.getState(d)), await c.getXmlDesc(d, 3));
    if (await c.isPersistent(d)) parts.push(await c.getXmlDesc(d, 2), String(await c.getAutostart(d)));
  }
  return parts.join('\n');
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Collect lifecycle events as [name, event, detail] triples. */
export async function recordEvents(c: Connection): Promise<{ events: LifecycleEvent[]; list(name?: string): Array<[string, number, number]>; stop(): Promise<void> }> {
  const events: LifecycleEvent[] = [];
  const stop = await c.onLifecycle((e) => events.push(e));
  return {
    events,
    list: (name?: string) => events.filter((e) => name === undefined || e.domain.name === name).map((e) => [e.domain.name, e.event, e.detail]),
    stop,
  };
}
