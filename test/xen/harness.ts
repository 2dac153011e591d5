/**
 * npm run test:xen / npm run bench:xen: the real-Xen tests, from the build machine.
 *
 * 1. Xen host: reuse $XENQ (default /tmp/xenq) when build.sh has filled it, else run
 *    ../shared/xen-in-qemu/build.sh (root, Debian mirrors; about 2 minutes).
 * 2. Image: xenvirt goes into dom0 as one more cpio archive appended to the dom0 initramfs
 *    (Linux unpacks concatenated archives): this Node binary (stripped), package.json, bin/,
 *    dist/src and dist/test/xen, plus the test guest's initramfs (the harness's busybox one
 *    with Xen's block/net frontends and a console command loop). The combined image lives in
 *    $XENQ-xenvirt/, next to links to $XENQ's hypervisor, kernel and ssh key. Copying all of
 *    it over dom0's emulated network instead would cost 30-50 s.
 * 3. Boot with run.py --serve; once sshd answers, run.py starts this file again as its
 *    on-ready hook (`--hook`), which prepares dom0 (device links, backend modules, a bridge,
 *    a tmpfs for images) and runs the suite (or the benchmark) there over ssh.
 * 4. The hook's exit status is the run's; dom0 is powered off after it.
 *
 *   node dist/test/xen/harness.js --run [--bench] [--only GROUPS] [--keep-going]
 *
 * Environment: XENQ, XENQ_SRC (the xen-in-qemu scripts), XENVIRT_XEN_TIMEOUT (s, default 900).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { appendToInitrd, cpio, type CpioEntry } from './cpio.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SELF = fileURLToPath(import.meta.url);
const XENQ = path.resolve(process.env['XENQ'] ?? '/tmp/xenq');
const XENQ_SRC = path.resolve(process.env['XENQ_SRC'] ?? path.join(ROOT, '../shared/xen-in-qemu'));
const OVL = path.resolve(process.env['XENVIRT_XENQ_OVERLAY'] ?? `${XENQ}-xenvirt`);
const T0 = Date.now();
const say = (s: string) => process.stdout.write(`[xen-test ${((Date.now() - T0) / 1000).toFixed(1).padStart(6)}s] ${s}\n`);

function die(msg: string): never {
  process.stdout.write(`XEN-TEST RESULT: FAIL (${msg})\n`);
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// 1. the Xen host build

const BUILT = ['xen-4.17-amd64', 'vmlinuz', 'dom0-initrd.cpio', 'guest-initrd.cpio.gz', 'ssh/id_ed25519'];

function ensureBuild(): void {
  if (BUILT.every((f) => fs.existsSync(path.join(XENQ, f)))) {
    say(`reusing the Xen host build in ${XENQ}`);
    return;
  }
  const build = path.join(XENQ_SRC, 'build.sh');
  if (!fs.existsSync(build)) die(`no Xen host build in ${XENQ} and no ${build} to make one (set XENQ or XENQ_SRC)`);
  if (process.getuid?.() !== 0) die(`no Xen host build in ${XENQ}; building one needs root: sudo XENQ=${XENQ} ${build}`);
  say(`building the Xen host into ${XENQ} (${build})`);
  const r = spawnSync('bash', [build], { stdio: 'inherit', env: { ...process.env, XENQ } });
  if (r.status !== 0) die(`${build} failed with status ${r.status}`);
}

// ---------------------------------------------------------------------------------------------
// 2. the image

function walk(dir: string, keep: (f: string) => boolean, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, keep, out);
    else if (keep(p)) out.push(p);
  }
  return out;
}

/** This Node binary without debug info (98 -> 86 MB): cached by the binary's identity. */
function strippedNode(): string {
  const st = fs.statSync(process.execPath);
  const cached = path.join(OVL, `node-${process.version}-${st.size}-${Math.floor(st.mtimeMs)}`);
  if (fs.existsSync(cached)) return cached;
  const r = spawnSync('strip', ['-o', `${cached}.tmp`, process.execPath]);
  if (r.status === 0) fs.renameSync(`${cached}.tmp`, cached);
  else fs.copyFileSync(process.execPath, cached);
  fs.chmodSync(cached, 0o755);
  return cached;
}

function guestInitrd(): Buffer {
  const pkgMods = path.join(XENQ, 'pkg/lib/modules');
  const kver = fs.existsSync(pkgMods) ? fs.readdirSync(pkgMods)[0] : undefined;
  const mod = (rel: string): CpioEntry[] => {
    const f = kver ? path.join(pkgMods, kver, 'kernel/drivers', rel) : '';
    return f && fs.existsSync(f) ? [{ name: `lib/xenvirt/${path.basename(rel)}`, data: fs.readFileSync(f) }] : [];
  };
  return appendToInitrd(fs.readFileSync(path.join(XENQ, 'guest-initrd.cpio.gz')), [
    { name: 'lib' }, { name: 'lib/xenvirt' },
    ...mod('block/xen-blkfront.ko'),
    ...mod('net/xen-netfront.ko'),
    { name: 'xenvirt-init', data: fs.readFileSync(path.join(ROOT, 'test/xen/guest-init.sh')), mode: 0o755 },
  ]);
}

function buildImage(): void {
  fs.mkdirSync(OVL, { recursive: true });
  for (const f of ['xen-4.17-amd64', 'vmlinuz', 'ssh']) {
    const link = path.join(OVL, f);
    fs.rmSync(link, { force: true, recursive: false });
    fs.symlinkSync(path.join(XENQ, f), link);
  }
  const dist = path.join(ROOT, 'dist');
  if (!fs.existsSync(path.join(dist, 'src/cli/main.js'))) die(`no build in ${dist}: run npx tsc -p . first`);
  const js = (f: string) => f.endsWith('.js') && !f.endsWith('.test.js');
  const files = [
    ...walk(path.join(dist, 'src'), js),
    ...walk(path.join(dist, 'test/xen'), js),
  ];
  const entries: CpioEntry[] = [];
  const dirs = new Set<string>();
  const addDir = (d: string) => {
    if (d === '.' || dirs.has(d)) return;
    addDir(path.dirname(d));
    dirs.add(d);
    entries.push({ name: d });
  };
  const add = (rel: string, data: Buffer, mode = 0o644) => {
    addDir(path.dirname(rel));
    entries.push({ name: rel, data, mode });
  };
  add('opt/xenvirt/node', fs.readFileSync(strippedNode()), 0o755);
  add('opt/xenvirt/package.json', fs.readFileSync(path.join(ROOT, 'package.json')));
  add('opt/xenvirt/bin/xenvirt', fs.readFileSync(path.join(ROOT, 'bin/xenvirt')), 0o755);
  for (const f of files) add(path.join('opt/xenvirt', path.relative(ROOT, f)), fs.readFileSync(f));
  add('opt/xenvirt/guest/initrd.gz', guestInitrd());
  // `node` on dom0's PATH for the scripts that want it
  add('usr/local/bin/node', Buffer.from('#!/bin/sh\nexec /opt/xenvirt/node "$@"\n'), 0o755);
  const overlay = cpio(entries);
  const base = path.join(XENQ, 'dom0-initrd.cpio');
  const out = path.join(OVL, 'dom0-initrd.cpio');
  const tag = createHash('sha256').update(overlay).update(String(fs.statSync(base).mtimeMs)).digest('hex');
  const tagFile = `${out}.sha256`;
  if (fs.existsSync(out) && fs.existsSync(tagFile) && fs.readFileSync(tagFile, 'utf8') === tag) {
    say(`dom0 image unchanged (${OVL})`);
    return;
  }
  fs.copyFileSync(base, `${out}.tmp`);
  const pad = (512 - (fs.statSync(`${out}.tmp`).size % 512)) % 512;
  fs.appendFileSync(`${out}.tmp`, Buffer.concat([Buffer.alloc(pad), overlay]));
  fs.renameSync(`${out}.tmp`, out);
  fs.writeFileSync(tagFile, tag);
  say(`dom0 image: ${OVL}/dom0-initrd.cpio (+${(overlay.length / 1048576).toFixed(0)} MiB: node, xenvirt, ${files.length} modules, test guest)`);
}

// ---------------------------------------------------------------------------------------------
// 3. boot and hand over to the hook

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function boot(hookArgs: string[]): Promise<number> {
  const runPy = path.join(XENQ_SRC, 'run.py');
  if (!fs.existsSync(runPy)) die(`${runPy} not found (set XENQ_SRC)`);
  const port = await freePort();
  const timeout = Number(process.env['XENVIRT_XEN_TIMEOUT'] ?? 900);
  const hook = [process.execPath, SELF, '--hook', ...hookArgs].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  // QEMU 7.2's TCG emulates AVX/AVX2 (new in that release). With them on, dom0's processes
  // now and then died while Xen switched between dom0 and a pinned, capped guest: `xl` with a
  // general protection fault inside libc, node with SIGSEGV (in CI runs, with the other test
  // files beside it; never in a run of the suite alone). Without them libc and V8 take their
  // SSE paths.
  const cpu = process.env['XENVIRT_XEN_CPU'] ?? 'max,-avx,-avx2';
  say(`booting Xen in QEMU (run.py --serve, cpu ${cpu}, ssh on 127.0.0.1:${port}, timeout ${timeout} s)`);
  const child = spawn('python3', [runPy, '--xenq', OVL, '--serve', '--cpu', cpu, '--ssh-port', String(port), '--timeout', String(timeout), '--on-ready', hook],
    { stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
  const code: number = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  return code;
}

// ---------------------------------------------------------------------------------------------
// 4. the hook, inside run.py: prepare dom0 and run the suite there

const DOM0_SETUP = `set -e
# what udev/systemd would have made: the block hotplug script locks through /dev/stdin
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin; ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
# backends for guest disks and NICs, and a bridge for the NICs
for m in xen-blkback loop xen-netback bridge; do modprobe $m; done
ip link show xenbr0 >/dev/null 2>&1 || { ip link add xenbr0 type bridge; ip link set xenbr0 up; }
# images and save files in their own tmpfs (the root fs is small)
mkdir -p /var/lib/xenvirt-test
mountpoint -q /var/lib/xenvirt-test || mount -t tmpfs -o size=480M tmpfs /var/lib/xenvirt-test
/opt/xenvirt/node -e 'process.stdout.write("node " + process.version + " in dom0\\n")'
`;

function sshRun(ssh: string, script: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', `${ssh} bash -s`], { stdio: ['pipe', 'inherit', 'inherit'] });
    const timer = setTimeout(() => { say(`ssh command timed out after ${timeoutMs / 1000} s`); child.kill('SIGKILL'); }, timeoutMs);
    child.on('close', (c) => { clearTimeout(timer); resolve(c ?? 1); });
    child.stdin.end(script);
  });
}

async function hook(args: string[]): Promise<number> {
  const ssh = process.env['XENQ_SSH'];
  if (!ssh) die('--hook runs under run.py, which sets XENQ_SSH');
  const t0 = Date.now();
  for (let i = 0; ; i++) {
    if (spawnSync('bash', ['-c', `${ssh} true`], { timeout: 60_000 }).status === 0) break;
    if (i >= 5) die('dom0 does not answer over ssh');
  }
  say(`dom0 reachable over ssh (${((Date.now() - t0) / 1000).toFixed(1)} s for the first call)`);
  if (await sshRun(ssh, DOM0_SETUP, 120_000) !== 0) die('preparing dom0 failed');
  const bench = args.includes('--bench');
  const only = args.includes('--only') ? ['--only', args[args.indexOf('--only') + 1]!] : [];
  const rounds = args.includes('--rounds') ? ['--rounds', args[args.indexOf('--rounds') + 1]!] : [];
  const env = 'export XENVIRT_TEST_WORK=/var/lib/xenvirt-test; cd /opt/xenvirt';
  const cmd = bench
    ? `${env}; ./node dist/test/xen/bench.js --run ${rounds.join(' ')}`
    : `${env}; ./node dist/test/xen/dom0-suite.js --run ${only.join(' ')}`;
  const budget = Number(process.env['XENVIRT_XEN_TIMEOUT'] ?? 900) * 1000;
  const code = await sshRun(ssh, cmd, budget);
  say(`${bench ? 'benchmark' : 'suite'} finished with status ${code}`);
  if (code !== 0) {
    // a process that died in dom0 (a segfault, the OOM killer) leaves its trace only there
    say("dom0's kernel log on faults, and xl list:");
    await sshRun(ssh, "dmesg | grep -iE 'segfault|traps:|general protection|out of memory|killed process' | tail -n 20; xl list", 60_000);
  }
  return code;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--hook')) {
    process.exitCode = await hook(args);
    return;
  }
  if (fs.existsSync('/proc/xen/capabilities') && fs.readFileSync('/proc/xen/capabilities', 'utf8').includes('control_d')) {
    // already in dom0: run here
    const script = args.includes('--bench') ? 'bench.js' : 'dom0-suite.js';
    const r = spawnSync(process.execPath, [path.join(path.dirname(SELF), script), '--run', ...args.filter((a) => a !== '--run' && a !== '--bench')], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
    return;
  }
  ensureBuild();
  buildImage();
  const code = await boot(args.filter((a) => a !== '--run'));
  const total = ((Date.now() - T0) / 1000).toFixed(0);
  const what = args.includes('--bench') ? 'bench:xen' : 'test:xen';
  process.stdout.write(`${what}: ${code === 0 ? 'PASS' : 'FAIL'} in ${total} s (serial log: ${path.join(OVL, 'serial-tcg.log')})\n`);
  process.exitCode = code;
}

if (process.argv.includes('--run') || process.argv.includes('--hook')) {
  main().catch((e) => die((e as Error).stack ?? String(e)));
}
