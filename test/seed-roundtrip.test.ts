/**
 * The seed's four example domains survive XML -> native -> XML in every native format with
 * their meaning intact. Native formats cannot carry everything XML can (an xm file has no
 * place for a disk's driver cache mode), so the comparison is over what a guest *is*: its
 * identity, resources, boot path, lifecycle, and devices as the guest sees them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDomainXml } from '../src/domain/parse.js';
import { formatDomainXml } from '../src/domain/format.js';
import type { Domain } from '../src/domain/types.js';
import { domainFromNative, domainToNative, NATIVE_FORMATS } from '../src/formats/native.js';
import { SEED_DIR } from './support.js';

const SEEDS = ['pv-bootloader', 'pv-direct-kernel', 'hvm-bios', 'hvm-direct-kernel'];

/** What a guest is, independent of how a format spells it. */
function meaning(d: Domain) {
  const dev = d.devices;
  return {
    name: d.name,
    uuid: d.uuid,
    memory: d.memory,
    currentMemory: d.currentMemory,
    vcpus: [d.vcpu.count, d.vcpu.current ?? d.vcpu.count],
    os: { type: d.os.type === 'linux' ? 'xen' : d.os.type, kernel: d.os.kernel, initrd: d.os.initrd,
      cmdline: d.os.cmdline?.trim() || undefined, boot: d.os.type === 'hvm' ? d.os.boot : [] },
    bootloader: d.bootloader,
    features: { pae: !!d.features?.pae, acpi: !!d.features?.acpi, apic: !!d.features?.apic },
    clock: d.clock.offset === 'variable' ? d.clock.basis : d.clock.offset,
    lifecycle: [d.onPoweroff ?? 'destroy', d.onReboot ?? 'restart', d.onCrash ?? 'destroy'],
    disks: dev.disks.map((k) => ({ path: k.source?.path, dev: k.target.dev, device: k.device, readonly: !!k.readonly })),
    nics: dev.interfaces.map((n) => ({ mac: n.mac, bridge: n.source?.bridge, script: n.script })),
    graphics: dev.graphics.map((g) => ({ type: g.type, port: g.autoport === 'yes' ? -1 : g.port })),
    serials: dev.serials.length,
  };
}

for (const seed of SEEDS) {
  for (const format of NATIVE_FORMATS) {
    test(`seed ${seed} survives XML -> ${format} -> XML`, () => {
      const original = parseDomainXml(readFileSync(join(SEED_DIR, `${seed}.xml`), 'utf8'), { fileName: `${seed}.xml` });
      const native = domainToNative(format, original);
      const back = domainFromNative(format, native);
      assert.deepEqual(meaning(back), meaning(original), `native form was:\n${native}`);
      // And the result is a document we can print and read again.
      parseDomainXml(formatDomainXml(back, { inactive: true }));
    });
  }
}
