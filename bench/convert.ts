/**
 * Conversions per second, in-process, on one core: `bench: NAME VALUE conv/s`.
 *
 * libvirt's C converters cannot run on a host without Xen (its libxl driver refuses to load),
 * so the anchor is the figure measured for libvirt 9.0 on this kind of machine and recorded in
 * the issue (about 45,000/s native->XML and 5,000/s XML->native on rhel5pv); the ratio lines
 * compare against it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { domainFromNative, domainToNative } from '../src/formats/native.js';
import { parseDomainXml } from '../src/domain/parse.js';
import { formatDomainXml } from '../src/domain/format.js';
import { joinBackslashNewlines } from '../src/formats/sexpr.js';

const shared = process.env.XENVIRT_SHARED ?? fileURLToPath(new URL('../../../shared/', import.meta.url));
const read = (p: string) => readFileSync(join(shared, p), 'utf8');
const HVM_CASE = 'fullvirt-nohap';

const LIBVIRT_REFERENCE = { fromNative: 45_000, toNative: 5_000 };

function rate(fn: () => unknown, seconds = Number(process.env.BENCH_SECONDS ?? 1)): number {
  for (let i = 0; i < 2000; i++) fn(); // warm up the JIT
  const budget = BigInt(Math.round(seconds * 1e9));
  const t0 = process.hrtime.bigint();
  let n = 0;
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 200; i++) fn();
    n += 200;
    elapsed = process.hrtime.bigint() - t0;
  }
  return (n * 1e9) / Number(elapsed);
}

const rhel5pvCfg = read('seed/rhel5pv.cfg');
const rhel5pvXml = read('seed/rhel5pv-libvirt9.xml');
const hvmCfg = read(`conformance/xl/from-native/${HVM_CASE}.cfg`);
const hvmXml = read(`conformance/xl/to-native/${HVM_CASE}.xml`);
const pvSexpr = joinBackslashNewlines(read('conformance/sexpr/from-native/pv.sexpr'));

const results: Array<[string, number, 'fromNative' | 'toNative']> = [
  ['xm-to-xml/rhel5pv', rate(() => formatDomainXml(domainFromNative('xen-xm', rhel5pvCfg), { inactive: true })), 'fromNative'],
  ['xml-to-xm/rhel5pv', rate(() => domainToNative('xen-xm', parseDomainXml(rhel5pvXml))), 'toNative'],
  [`xl-to-xml/hvm`, rate(() => formatDomainXml(domainFromNative('xen-xl', hvmCfg), { inactive: true })), 'fromNative'],
  [`xml-to-xl/hvm`, rate(() => domainToNative('xen-xl', parseDomainXml(hvmXml))), 'toNative'],
  ['sxpr-to-xml/pv', rate(() => formatDomainXml(domainFromNative('xen-sxpr', pvSexpr), { inactive: true })), 'fromNative'],
];
console.log(`# hvm = conformance xl case ${HVM_CASE}; libvirt 9.0 reference: ${LIBVIRT_REFERENCE.fromNative} native->XML/s, ${LIBVIRT_REFERENCE.toNative} XML->native/s`);
for (const [name, value, dir] of results) {
  console.log(`bench: ${name} ${Math.round(value)} conv/s`);
}
for (const [name, value, dir] of results) {
  console.log(`bench: ${name}-vs-libvirt ${(value / LIBVIRT_REFERENCE[dir]).toFixed(1)} x`);
}
