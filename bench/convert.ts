/**
 * Conversions per second, in-process, on one core: `bench: NAME VALUE conv/s`, side by side
 * with libvirt 9.0's own C converters on the same inputs.
 *
 * libvirt's anchor is bench/libvirt-anchor.c, built here with the system C compiler: it calls
 * the converters exported by Debian's libvirt-daemon-driver-xen module exactly as libvirtd's
 * libxl driver does for domxml-from-native / domxml-to-native. Before timing, each case's
 * libvirt output is compared with ours (they must be the same bytes), so both sides do the same
 * work. libvirt 9.0 has no sxpr reader: sxpr-to-xml is set against libvirt's xm reader on
 * rhel5pv. Without a compiler or the module, the issue's recorded figures for libvirt
 * (45,000/s native->XML, 5,000/s XML->native on rhel5pv) stand in, and the output says so.
 *
 * Both sides are measured the same way: best of 50 short rounds of CPU time per case, the cases
 * taking turns; the two sides take turns too (libvirt, ours, libvirt, ours) and each keeps its
 * best pass, so a busy spell on the machine does not favour either.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { domainFromNative, domainToNative } from '../src/formats/native.js';
import { parseDomainXml } from '../src/domain/parse.js';
import { formatDomainXml } from '../src/domain/format.js';
import { joinBackslashNewlines } from '../src/formats/sexpr.js';

const shared = process.env.XENVIRT_SHARED ?? fileURLToPath(new URL('../../../shared/', import.meta.url));
const anchorSource = fileURLToPath(new URL('../../bench/libvirt-anchor.c', import.meta.url));
const HVM_CASE = process.env.BENCH_HVM_CASE ?? 'fullvirt-nohap';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const PASSES = 2;

/** The targets: multiples of libvirt's rate on the same input. */
const TARGET = { fromNative: 2, toNative: 9 };
const RECORDED = { fromNative: 45_000, toNative: 5_000 };

type Dir = keyof typeof TARGET;
interface Case {
  name: string;
  dir: Dir;
  run: () => string;
  /** libvirt-anchor's case and input file; none for sxpr. */
  anchor?: [kind: string, file: string];
  /** Which case's libvirt figure this one is set against. */
  against: string;
}

const path = (p: string) => join(shared, p);
const read = (p: string) => readFileSync(path(p), 'utf8');
const files = {
  rhel5pvCfg: 'seed/rhel5pv.cfg',
  rhel5pvXml: 'seed/rhel5pv-libvirt9.xml',
  hvmCfg: `conformance/xl/from-native/${HVM_CASE}.cfg`,
  hvmXml: `conformance/xl/to-native/${HVM_CASE}.xml`,
};
const rhel5pvCfg = read(files.rhel5pvCfg);
const rhel5pvXml = read(files.rhel5pvXml);
const hvmCfg = read(files.hvmCfg);
const hvmXml = read(files.hvmXml);
const pvSexpr = joinBackslashNewlines(read('conformance/sexpr/from-native/pv.sexpr'));

const cases: Case[] = [
  { name: 'xm-to-xml/rhel5pv', dir: 'fromNative', run: () => formatDomainXml(domainFromNative('xen-xm', rhel5pvCfg), { inactive: true }), anchor: ['from-xm', files.rhel5pvCfg], against: 'xm-to-xml/rhel5pv' },
  { name: 'xml-to-xm/rhel5pv', dir: 'toNative', run: () => domainToNative('xen-xm', parseDomainXml(rhel5pvXml)), anchor: ['to-xm', files.rhel5pvXml], against: 'xml-to-xm/rhel5pv' },
  { name: 'xl-to-xml/hvm', dir: 'fromNative', run: () => formatDomainXml(domainFromNative('xen-xl', hvmCfg), { inactive: true }), anchor: ['from-xl', files.hvmCfg], against: 'xl-to-xml/hvm' },
  { name: 'xml-to-xl/hvm', dir: 'toNative', run: () => domainToNative('xen-xl', parseDomainXml(hvmXml)), anchor: ['to-xl', files.hvmXml], against: 'xml-to-xl/hvm' },
  { name: 'sxpr-to-xml/pv', dir: 'fromNative', run: () => formatDomainXml(domainFromNative('xen-sxpr', pvSexpr), { inactive: true }), against: 'xm-to-xml/rhel5pv' },
];

/** Conversions per second of CPU time in one round of `budget` microseconds of it. */
function round(fn: () => unknown, budget: number): number {
  const t0 = process.cpuUsage();
  let n = 0;
  let used = 0;
  while (used < budget) {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
    const t = process.cpuUsage(t0);
    used = t.user + t.system;
  }
  return (n * 1e6) / used;
}

let warm = false;
/**
 * Each case's best rate over many short rounds of CPU time, the cases taking turns. CPU time
 * leaves out the time other processes hold the core; what they still cost (shared caches, a
 * busy sibling core) only ever slows a round down, so the best round is the least disturbed
 * one. The first pass warms up so the JIT has finished optimising before anything is timed.
 */
function ourRates(): number[] {
  if (!warm) for (const c of cases) for (let i = 0; i < 20_000; i++) c.run();
  warm = true;
  const rounds = 50;
  const budget = (SECONDS * 1e6) / rounds;
  const best = cases.map(() => 0);
  for (let r = 0; r < rounds; r++) {
    cases.forEach((c, i) => { best[i] = Math.max(best[i]!, round(c.run, budget)); });
  }
  return best;
}

/**
 * libvirt logs while it converts (an error each time xenParseXL tries a plain string as a list,
 * warnings such as "ignoring CPU mode 'custom'"): into /dev/null, the cheapest place, so the
 * anchor is not slowed by a terminal or a pipe.
 */
const anchorEnv = { ...process.env, LIBVIRT_LOG_OUTPUTS: process.env.LIBVIRT_LOG_OUTPUTS ?? '3:file:/dev/null' };

/** Builds libvirt-anchor; returns its path, or why it cannot run here. */
function buildAnchor(dir: string): { exe: string } | { why: string } {
  const exe = join(dir, 'libvirt-anchor');
  const cc = spawnSync('cc', ['-O2', '-o', exe, anchorSource, '-ldl', '-lpthread'], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) return { why: `cannot build ${anchorSource}: ${cc.error?.message ?? cc.stderr.trim()}` };
  return { exe };
}

/** Runs libvirt-anchor on every case that has one and checks its output is ours, byte for byte. */
function checkAnchor(exe: string): string | undefined {
  for (const c of cases) {
    if (!c.anchor) continue;
    const r = spawnSync(exe, ['print', c.anchor[0], path(c.anchor[1])], { encoding: 'utf8', env: anchorEnv });
    if (r.status !== 0) return `libvirt-anchor failed: ${r.stderr.trim()} (apt-get install libvirt-daemon-driver-xen)`;
    if (r.stdout !== c.run()) return `libvirt's output for ${c.name} differs from ours; the two sides would not do the same work`;
  }
  return undefined;
}

function libvirtRates(exe: string): Map<string, number> {
  const args = cases.flatMap((c) => (c.anchor ? [c.anchor[0], path(c.anchor[1])] : []));
  const out = execFileSync(exe, ['bench', String(SECONDS), ...args], { encoding: 'utf8', env: anchorEnv });
  const rates = new Map<string, number>();
  const timed = cases.filter((c) => c.anchor);
  out.trim().split('\n').forEach((line, i) => rates.set(timed[i]!.name, Number(line.split(' ').at(-1))));
  return rates;
}

const dir = mkdtempSync(join(tmpdir(), 'xenvirt-bench-'));
try {
  const built = buildAnchor(dir);
  const why = 'why' in built ? built.why : checkAnchor(built.exe);
  const exe = why === undefined && 'exe' in built ? built.exe : undefined;
  const ours = cases.map(() => 0);
  const libvirt = exe ? new Map<string, number>() : undefined;
  for (let p = 0; p < PASSES; p++) {
    if (exe && libvirt) for (const [k, v] of libvirtRates(exe)) libvirt.set(k, Math.max(libvirt.get(k) ?? 0, v));
    ourRates().forEach((r, i) => { ours[i] = Math.max(ours[i]!, r); });
  }

  console.log(`# hvm = conformance xl case ${HVM_CASE}; best of ${PASSES} passes x 50 rounds of CPU time per side`);
  if (why) console.log(`# libvirt anchor unavailable (${why}); using the issue's recorded libvirt figures: ${RECORDED.fromNative}/s native->XML, ${RECORDED.toNative}/s XML->native`);
  else console.log('# anchor: libvirt 9.0 converters (bench/libvirt-anchor.c), same inputs, outputs checked identical to ours');
  cases.forEach((c, i) => console.log(`bench: ${c.name} ${Math.round(ours[i]!)} conv/s`));
  for (const c of cases) if (c.anchor && libvirt) console.log(`bench: libvirt.${c.name} ${Math.round(libvirt.get(c.name)!)} conv/s`);
  cases.forEach((c, i) => {
    const base = libvirt?.get(c.against) ?? RECORDED[c.dir];
    const ratio = ours[i]! / base;
    const note = c.against === c.name ? '' : `, against libvirt's ${c.against} (libvirt 9.0 reads no sxpr)`;
    console.log(`bench: ${c.name}-vs-libvirt ${ratio.toFixed(1)} x   # target ${TARGET[c.dir]}x: ${ratio >= TARGET[c.dir] ? 'met' : 'NOT met'}${note}`);
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
