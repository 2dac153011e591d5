/**
 * `npm run bench:rpc`: the same python3-libvirt workload (../shared/bench/libvirt_bench.py)
 * against xenvirtd (durable: a state directory, domain type xen) and against a private libvirtd
 * (its test driver, in memory), in one run, then the ratios against the targets:
 *
 *   lookupByName+info      >= 2x libvirtd      listAllDomains (1001)  >= 2x libvirtd
 *   XMLDesc                >= 2x libvirtd      define+undefine        >= 1x libvirtd
 *   `virsh list --all` with 1001 domains: at most half of libvirtd's time
 *
 * The round trip of the cheapest call (bench/null_call.py), raw and through python3-libvirt,
 * bounds what any ratio can reach: `ceiling.*` is the ratio xenvirtd would show if it answered
 * in no time at all.
 *
 * define+undefine on xenvirtd is durable: each call is answered once its change is flushed, so
 * a pair costs at least two flushes of the state directory's disk. That floor is measured too
 * (`disk.fdatasync`: a small overwrite plus fdatasync, median) with the pair rate it allows.
 *
 * Every figure is printed as `bench: NAME VALUE UNIT`. Options (or BENCH_* variables):
 *   --seconds N (5)  --count N (1000)  --runs N (20, virsh timings)  --rounds N (1: best of N per side)
 *   --xenvirtd-only  (no libvirtd: just xenvirtd's figures)
 * The run raises its priority (nice -10, when allowed); both daemons and the clients inherit it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { PYTHON, REPO, run, startDaemonProcess, tempDir, uriFor } from '../src/daemon/harness.js';

const BENCH_DIR = process.env['XENVIRT_SHARED'] ? path.join(process.env['XENVIRT_SHARED'], 'bench') : path.join(REPO, '..', 'shared', 'bench');
const SCRIPT = path.join(BENCH_DIR, 'libvirt_bench.py');
const START_LIBVIRTD = path.join(BENCH_DIR, 'start-private-libvirtd.sh');
const NULL_CALL = path.join(REPO, 'bench', 'null_call.py');

interface Wall { mean_s: number; median_s: number; min_s: number; max_s: number; stddev_s: number; tool: string }
interface Result {
  a_lookupByName_info_pairs_per_s: number;
  b_listAllDomains_per_s: number;
  c_XMLDesc_per_s: number;
  d_define_undefine_pairs_per_s: number;
  domains_present: number;
  baseline_virsh_list_all_1_domain: Wall;
  [k: string]: unknown;
}

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: process.env['BENCH_SECONDS'] ?? '5' },
    count: { type: 'string', default: process.env['BENCH_COUNT'] ?? '1000' },
    runs: { type: 'string', default: process.env['BENCH_RUNS'] ?? '20' },
    rounds: { type: 'string', default: process.env['BENCH_ROUNDS'] ?? '1' },
    'xenvirtd-only': { type: 'boolean', default: false },
  },
});

function line(name: string, value: number, unit: string): void {
  const v = Math.abs(value) >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
  console.log(`bench: ${name} ${v} ${unit}`);
}

function listWall(r: Result): Wall {
  const key = Object.keys(r).find((k) => k.startsWith('virsh_list_all_') && k.endsWith('_domains'));
  if (!key) throw new Error('the benchmark reported no virsh list timing');
  return r[key] as Wall;
}

/** Median time of a 300-byte overwrite plus fdatasync in `dir` (preallocated file: no metadata to flush), in µs. */
function fdatasyncFloorUs(dir: string): number {
  const file = path.join(dir, 'fdatasync-floor');
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, Buffer.alloc(1 << 20));
    fs.fsyncSync(fd);
    const rec = Buffer.alloc(300, 0x78);
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      fs.writeSync(fd, rec, 0, rec.length, i * rec.length);
      fs.fdatasyncSync(fd);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return times[times.length >> 1]! * 1000;
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

interface NullCall { raw_us: number; libvirt_us: number; list_raw_us?: number; list_libvirt_us?: number }

/** The cheapest call's round trip on one daemon, and with `list` domains what listing them costs the client (bench/null_call.py). */
async function nullCall(socket: string, uri: string, list = 0): Promise<NullCall> {
  const r = await run(PYTHON, [NULL_CALL, socket, uri, ...(list ? ['--list', String(list)] : [])], { timeoutMs: 5 * 60 * 1000 });
  if (r.code !== 0) throw new Error(`null_call.py failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as NullCall;
}

async function runWorkload(uri: string, domainType: string, label: string): Promise<Result> {
  const out = path.join(tempDir('xvb-'), 'result.json');
  const args = [SCRIPT, '--uri', uri, '--domain-type', domainType, '--seconds', opt.seconds!, '--count', opt.count!, '--runs', opt.runs!, '--json', out];
  console.error(`# ${label}: ${PYTHON} ${args.join(' ')}`);
  const r = await run(PYTHON, args, { timeoutMs: 30 * 60 * 1000, env: { ...process.env, LC_ALL: 'C' } });
  for (const l of r.stdout.trim().split('\n')) console.error(`#   ${l}`);
  if (r.code !== 0) throw new Error(`${label}: libvirt_bench.py failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  const res = JSON.parse(fs.readFileSync(out, 'utf8')) as Result;
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
  return res;
}

/** Best of the rounds, metric by metric (rates: highest; times: lowest mean). */
function best(rs: Result[]): Result {
  const b = { ...rs[0]! };
  for (const r of rs.slice(1)) {
    for (const k of ['a_lookupByName_info_pairs_per_s', 'b_listAllDomains_per_s', 'c_XMLDesc_per_s', 'd_define_undefine_pairs_per_s'] as const) {
      b[k] = Math.max(b[k], r[k]);
    }
    const key = Object.keys(r).find((k) => k.startsWith('virsh_list_all_') && k.endsWith('_domains'))!;
    if ((r[key] as Wall).mean_s < listWall(b).mean_s) b[key] = r[key];
  }
  return b;
}

function report(side: string, r: Result): void {
  line(`${side}.lookupByName_info`, r.a_lookupByName_info_pairs_per_s, 'pairs/s');
  line(`${side}.listAllDomains_${r.domains_present}`, r.b_listAllDomains_per_s, 'calls/s');
  line(`${side}.XMLDesc`, r.c_XMLDesc_per_s, 'calls/s');
  line(`${side}.define_undefine`, r.d_define_undefine_pairs_per_s, 'pairs/s');
  line(`${side}.virsh_list_all_${r.domains_present}`, listWall(r).mean_s * 1000, 'ms');
  line(`${side}.virsh_list_all_1`, r.baseline_virsh_list_all_1_domain.mean_s * 1000, 'ms');
}

async function main(): Promise<number> {
  if (!fs.existsSync(SCRIPT)) throw new Error(`${SCRIPT} not found (set XENVIRT_SHARED to the shared directory)`);
  if (spawnSync(PYTHON, ['-c', 'import libvirt'], { stdio: 'ignore' }).status !== 0) throw new Error('python3-libvirt is needed: apt-get install python3-libvirt');
  if (spawnSync('sh', ['-c', 'command -v virsh'], { stdio: 'ignore' }).status !== 0) throw new Error('virsh is needed: apt-get install libvirt-clients');
  const withLibvirtd = !opt['xenvirtd-only'];
  if (withLibvirtd && spawnSync('sh', ['-c', 'command -v libvirtd'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('libvirtd is needed for the comparison: apt-get install libvirt-daemon (or pass --xenvirtd-only)');
  }
  const rounds = Math.max(1, Number(opt.rounds));
  // Both daemons and the clients inherit this: other work on the machine disturbs both sides less.
  try {
    os.setPriority(-10);
    console.error('# running at nice -10 (both sides)');
  } catch {
    console.error('# could not raise the priority (not root): figures are more sensitive to other load');
  }

  // xenvirtd: durable, in a fresh state directory
  const dir = tempDir('xvb-');
  const xd = await startDaemonProcess({ dir, stateDir: path.join(dir, 'state') });
  // libvirtd: private, unprivileged, its test driver
  let lvPid: number | undefined;
  let lvDir: string | undefined;
  if (withLibvirtd) {
    lvDir = tempDir('xvb-lv-');
    const r = spawnSync('sh', [START_LIBVIRTD, lvDir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`start-private-libvirtd.sh failed: ${r.stderr}`);
    lvPid = Number(r.stdout.trim());
  }
  const xs: Result[] = [];
  const ls: Result[] = [];
  const floors: number[] = [];
  const xNull: NullCall[] = [];
  const lNull: NullCall[] = [];
  const lvSocket = lvDir && path.join(lvDir, 'run', 'libvirt-sock');
  try {
    for (let i = 0; i < rounds; i++) {
      floors.push(fdatasyncFloorUs(dir));
      xNull.push(await nullCall(xd.socket, xd.uri, Number(opt.count)));
      if (lvSocket) lNull.push(await nullCall(lvSocket, uriFor(lvSocket)));
      // alternate the sides so that both see the same machine load
      xs.push(await runWorkload(xd.uri, 'xen', `xenvirtd round ${i + 1}`));
      if (lvSocket) ls.push(await runWorkload(uriFor(lvSocket), 'test', `libvirtd round ${i + 1}`));
    }
  } finally {
    await xd.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    if (lvPid) {
      try { process.kill(lvPid, 'SIGTERM'); } catch { /* gone */ }
      await new Promise((r) => setTimeout(r, 300));
      fs.rmSync(lvDir!, { recursive: true, force: true });
    }
  }

  const x = best(xs);
  report('xenvirtd', x);
  const floor = Math.min(...floors);
  line('disk.fdatasync', floor, 'us');
  line('disk.durable_define_undefine_ceiling', 1e6 / (2 * floor), 'pairs/s');
  const fastest = (ns: NullCall[], k: 'raw_us' | 'libvirt_us') => Math.min(...ns.map((n) => n[k]));
  const xRaw = fastest(xNull, 'raw_us');
  const xLib = fastest(xNull, 'libvirt_us');
  line('xenvirtd.null_call_raw', xRaw, 'us');
  line('xenvirtd.null_call_python_libvirt', xLib, 'us');
  if (!withLibvirtd) return 0;
  const l = best(ls);
  report('libvirtd', l);
  line('libvirtd.null_call_raw', fastest(lNull, 'raw_us'), 'us');
  line('libvirtd.null_call_python_libvirt', fastest(lNull, 'libvirt_us'), 'us');
  // What the ratios could be at best: xenvirtd answering every call in no time at all, so
  // that each call costs only its round trip through python3-libvirt (and, for a durable
  // define and undefine, one flush each).
  line('ceiling.lookupByName_info', 1e6 / l.a_lookupByName_info_pairs_per_s / (2 * xLib), 'x');
  line('ceiling.XMLDesc', 1e6 / l.c_XMLDesc_per_s / xLib, 'x');
  // listing: the client's own unpacking of the answer (python3-libvirt minus raw) plus a round trip
  const unpack = Math.min(...xNull.map((n) => (n.list_libvirt_us ?? NaN) - (n.list_raw_us ?? NaN)));
  line('client.listAllDomains_unpack', unpack, 'us');
  line(`ceiling.listAllDomains_${x.domains_present}`, 1e6 / l.b_listAllDomains_per_s / (unpack + xRaw), 'x');
  line('ceiling.define_undefine_durable', 1e6 / l.d_define_undefine_pairs_per_s / (2 * (xLib + floor)), 'x');

  const ratios: Array<[string, number, number, string]> = [
    ['lookupByName_info', x.a_lookupByName_info_pairs_per_s / l.a_lookupByName_info_pairs_per_s, 2, '>='],
    [`listAllDomains_${x.domains_present}`, x.b_listAllDomains_per_s / l.b_listAllDomains_per_s, 2, '>='],
    ['XMLDesc', x.c_XMLDesc_per_s / l.c_XMLDesc_per_s, 2, '>='],
    ['define_undefine_durable', x.d_define_undefine_pairs_per_s / l.d_define_undefine_pairs_per_s, 1, '>='],
    [`virsh_list_all_${x.domains_present}_time`, listWall(x).mean_s / listWall(l).mean_s, 0.5, '<='],
  ];
  let missed = 0;
  for (const [name, v, target, op] of ratios) {
    line(`ratio.${name}`, v, 'x');
    const ok = op === '>=' ? v >= target : v <= target;
    if (!ok) missed++;
    console.log(`target: ${name} ${op} ${target}x: ${ok ? 'met' : 'MISSED'} (${v.toFixed(2)}x)`);
  }
  return missed === 0 ? 0 : 3;
}

main().then(
  (code) => { process.exitCode = code; },
  (e: Error) => { console.error(`bench:rpc: ${e.message}`); process.exitCode = 1; },
);
