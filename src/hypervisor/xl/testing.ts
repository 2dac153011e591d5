/**
 * A fake Xen host for the xl backend's tests, on any machine:
 *
 * - `xl` (and `xenstore-read`, `xenstore-list`, `xenstore-watch`) are small Node scripts in a
 *   temporary bin directory put first on $PATH. They record their argv, keep the host's state
 *   in a JSON file, and answer in xl 4.17's formats (`xl list -v`, `xl list -l`, `xl info`,
 *   `xl vcpu-list`, `xl sched-credit2`), including its error lines and exit codes
 *   (`xl pause` of a missing domain prints an error and exits 0, as the real one does).
 * - a fake xenstored listens on a UNIX socket and serves /local/domain from the same state,
 *   firing `@releaseDomain` / `@introduceDomain` watches when domains stop or appear.
 *
 * Tests drive the "guest" side through the helpers: guestShutdown(domid, 'poweroff'|'crash').
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  XS_DIRECTORY, XS_ERROR, XS_READ, XS_UNWATCH, XS_WATCH, XS_WATCH_EVENT, decodeMessages, encodeMessage, splitStrings,
} from './xenstore.js';

export interface FakeDomain {
  domid: number;
  name: string;
  uuid: string;
  type: 'pv' | 'hvm' | 'pvh';
  memKiB: number;
  maxMemKiB: number;
  vcpus: number;
  maxVcpus: number;
  paused: boolean;
  shutdown: boolean;
  /** libxl_shutdown_reason number */
  reason: number;
  cpuSeconds: number;
  disks: string[];
  nics: string[];
  pins: Record<string, string>;
  weight: number;
  cap: number;
  config: string;
}

export interface FakeState {
  version: number;
  nextDomid: number;
  totalMiB: number;
  nrCpus: number;
  domains: FakeDomain[];
  /** Make the next matching command fail: its stderr and exit code. */
  failures: Array<{ cmd: string; stderr: string; code: number; leaveDomain?: boolean }>;
}

/** The fake `xl`: a self-contained Node script (no imports from this project). */
const FAKE_XL = String.raw`
const fs = require('fs');
const dir = process.env.FAKE_XEN_DIR;
const stateFile = dir + '/state.json';
const argv = process.argv.slice(2);
fs.appendFileSync(dir + '/argv.log', JSON.stringify(['xl', ...argv]) + '\n');
const st = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
const save = () => { st.version++; fs.writeFileSync(stateFile + '.tmp', JSON.stringify(st, null, 1)); fs.renameSync(stateFile + '.tmp', stateFile); };
const out = (s) => process.stdout.write(s);
const err = (s) => process.stderr.write(s);
const die = (s, code = 1) => { err(s); process.exit(code); };
const cmd = argv[0];
const fi = st.failures.findIndex((f) => f.cmd === cmd);
if (fi >= 0) {
  const f = st.failures[fi];
  st.failures.splice(fi, 1);
  if (f.leaveDomain && cmd === 'create') {
    const text = fs.readFileSync(argv[argv.length - 1], 'utf8');
    const d = fromConfig(text);
    d.paused = true;
    st.domains.push(d);
  }
  save();
  die(f.stderr, f.code);
}
function kv(text, key) {
  const m = new RegExp('^' + key + '\\s*=\\s*(?:"([^"]*)"|(\\S+))', 'm').exec(text);
  return m ? (m[1] !== undefined ? m[1] : m[2]) : undefined;
}
function fromConfig(text) {
  const mem = Number(kv(text, 'memory') || 128);
  const maxmem = Number(kv(text, 'maxmem') || mem);
  const vcpus = Number(kv(text, 'vcpus') || 1);
  const maxv = Number(kv(text, 'maxvcpus') || vcpus);
  const builder = kv(text, 'type') || kv(text, 'builder') || 'pv';
  const disks = [...text.matchAll(/vdev=(\w+)/g)].map((m) => m[1]);
  const nics = [...text.matchAll(/mac=([0-9a-f:]+)/g)].map((m) => m[1]);
  return { domid: st.nextDomid++, name: kv(text, 'name'), uuid: (kv(text, 'uuid') || require('crypto').randomUUID()).toLowerCase(),
    type: builder === 'hvm' ? 'hvm' : builder, memKiB: mem * 1024, maxMemKiB: maxmem * 1024, vcpus, maxVcpus: maxv, paused: false,
    shutdown: false, reason: 0, cpuSeconds: 0, disks, nics, pins: {}, weight: 256, cap: 0, config: text };
}
function find(spec) {
  const d = /^\d+$/.test(spec) ? st.domains.find((x) => x.domid === Number(spec)) : st.domains.find((x) => x.name === spec);
  return d;
}
function need(spec) {
  if (spec === '0' || spec === 'Domain-0') return dom0();
  const d = find(spec);
  if (!d) die(spec + ' is an invalid domain identifier (rc=-6)\n');
  return d;
}
function dom0() { return { domid: 0, name: 'Domain-0', uuid: '00000000-0000-0000-0000-000000000000', type: 'pv', memKiB: 1048576, maxMemKiB: 1048576,
  vcpus: 1, maxVcpus: 1, paused: false, shutdown: false, reason: 0, cpuSeconds: 42.5, disks: [], nics: [], pins: {}, weight: 256, cap: 0 }; }
function usedMiB() { return 1024 + st.domains.reduce((a, d) => a + Math.ceil(d.memKiB / 1024), 0); }
function freeMiB() { return st.totalMiB - usedMiB(); }
function flags(d) {
  return (d.domid === 0 ? 'r' : '-') + (!d.paused && !d.shutdown && d.domid !== 0 ? 'b' : '-') + (d.paused ? 'p' : '-') + (d.shutdown ? 's' : '-') +
    (d.shutdown ? '-rscwS'[d.reason] : '-') + '-';
}
function pad(s, n) { s = String(s); return s.length >= n ? s : ' '.repeat(n - s.length) + s; }
function row(d, verbose) {
  let s = d.name.padEnd(40) + ' ' + pad(d.domid, 5) + ' ' + pad(Math.floor(d.memKiB / 1024), 5) + ' ' + pad(d.vcpus, 5) + '     ' + flags(d) + '  ' + pad(d.cpuSeconds.toFixed(1), 8);
  if (verbose) s += ' ' + d.uuid + ' ' + pad(d.shutdown ? d.reason.toString(16) : '-', 8) + ' ' + pad('-', 16);
  return s + '\n';
}
const args = argv.slice(1).filter((a) => !/^-[a-zA-Z]$/.test(a));
const opts = new Set(argv.slice(1).filter((a) => /^-[a-zA-Z]$/.test(a)));
switch (cmd) {
  case 'list': {
    const all = [dom0(), ...st.domains];
    let doms = all;
    if (args[0] !== undefined) {
      const d = args[0] === '0' ? dom0() : find(args[0]);
      if (!d) die("Error: Domain '" + args[0] + "' does not exist.\n");
      doms = [d];
    }
    if (opts.has('-l')) {
      out(JSON.stringify(doms.map((d) => ({ domid: d.domid, config: { c_info: { type: d.type, name: d.name, ...(d.domid ? { uuid: d.uuid } : {}) },
        b_info: { max_memkb: d.maxMemKiB, target_memkb: d.memKiB, ...(d.domid ? { max_vcpus: d.maxVcpus, avail_vcpus: Array.from({ length: d.vcpus }, (_, i) => i) } : {}) } } })), null, 4) + '\n');
      break;
    }
    const v = opts.has('-v');
    out('Name                                        ID   Mem VCPUs\tState\tTime(s)' + (v ? '   UUID                            Reason-Code\tSecurity Label' : '') + '\n');
    for (const d of doms) out(row(d, v));
    break;
  }
  case 'info':
    for (const [k, v] of [['host', 'fakedom0'], ['release', '6.1.0-fake'], ['machine', 'x86_64'], ['nr_cpus', st.nrCpus], ['max_cpu_id', st.nrCpus - 1],
      ['nr_nodes', 1], ['cores_per_socket', st.nrCpus], ['threads_per_core', 1], ['cpu_mhz', '2445.424'], ['virt_caps', 'pv hvm hap gnttab-v1 gnttab-v2'],
      ['total_memory', st.totalMiB], ['free_memory', freeMiB()], ['xen_major', 4], ['xen_minor', 17], ['xen_extra', '.7'], ['xen_version', '4.17.7'],
      ['xen_caps', 'xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 '], ['xen_scheduler', 'credit2'],
      ['xen_commandline', 'dom0_mem=1024M'], ['xend_config_format', 4]]) out(k.padEnd(23) + ': ' + v + '\n');
    break;
  case 'create': {
    const file = args[0];
    err('Parsing config from ' + file + '\n');
    const d = fromConfig(fs.readFileSync(file, 'utf8'));
    if (st.domains.some((x) => x.name === d.name)) {
      die('libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain ' + d.domid + ':Domain with name "' + d.name + '" already exists.\n' +
        'libxl: error: libxl_create.c:1296:initiate_domain_create: Domain ' + d.domid + ':cannot make domain: -6\n', 3);
    }
    if (Math.ceil(d.memKiB / 1024) > freeMiB()) {
      save();
      die('xc: error: panic: xg_dom_boot.c:119: xc_dom_boot_mem_init: can\'t allocate low memory for domain: Out of memory\n' +
        'libxl: error: libxl_dom.c:586:libxl__build_dom: xc_dom_boot_mem_init failed: Cannot allocate memory\n' +
        'libxl: error: libxl_create.c:1640:domcreate_rebuild_done: Domain ' + d.domid + ':cannot (re-)build domain: -3\n' +
        'libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain ' + d.domid + ':Non-existant domain\n', 3);
    }
    const k = kv(d.config, 'kernel');
    if (k && !fs.existsSync(k)) {
      save();
      die("xc: error: panic: xg_dom_core.c:205: failed to open file '" + k + "': No such file or directory: Internal error\n" +
        'libxl: error: libxl_dom.c:646:libxl__build_pv: xc_dom_kernel_file failed: No such file or directory\n', 3);
    }
    d.paused = opts.has('-p');
    st.domains.push(d);
    save();
    break;
  }
  case 'domid': { const d = find(args[0]); if (!d) die("Can't get domid of domain name '" + args[0] + "', maybe this domain does not exist.\n"); out(d.domid + '\n'); break; }
  case 'pause': case 'unpause': {
    const d = find(args[0]);
    if (!d) { err('libxl: error: libxl_domain.c:587:libxl_domain_' + cmd + ': Domain ' + args[0] + ':' + (cmd === 'pause' ? 'Pausing' : 'Unpausing') + ' domain: No such process\n'); break; }
    d.paused = cmd === 'pause'; save(); break;
  }
  case 'destroy': {
    const d = find(args[0]);
    if (!d) die('libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain ' + args[0] + ':Non-existant domain\n' +
      'libxl: error: libxl_domain.c:1137:domain_destroy_callback: Domain ' + args[0] + ':Unable to destroy guest\ndestroy failed (rc=-21)\n');
    st.domains = st.domains.filter((x) => x !== d); save(); break;
  }
  case 'shutdown': case 'reboot': {
    const d = need(args[0]);
    err((cmd === 'shutdown' ? 'Shutting down' : 'Rebooting') + ' domain ' + d.domid + '\n');
    if (process.env.FAKE_XL_GUEST_IGNORES_SHUTDOWN) break;
    d.shutdown = true; d.reason = cmd === 'shutdown' ? 0 : 1; save();
    if (opts.has('-w')) err('Domain ' + d.domid + ' has been shut down, reason code ' + d.reason + '\n');
    break;
  }
  case 'save': {
    const d = need(args[0]);
    const fd = fs.openSync(args[1], 'w');
    err('Saving to ' + args[1] + ' new xl format (info 0x3/0x0/803)\n');
    const img = Buffer.from('FAKE-XL-IMAGE\n' + JSON.stringify(d) + '\n');
    fs.writeSync(fd, img);
    const pages = d.memKiB / 4;
    for (let i = 1; i <= 4; i++) { fs.writeSync(fd, Buffer.alloc(64 * 1024, i)); err('xc: progress: Frames: ' + (pages * i / 4) + '/' + pages + '  ' + (25 * i) + '%\n'); }
    fs.closeSync(fd);
    st.domains = st.domains.filter((x) => x !== d); save(); break;
  }
  case 'restore': {
    const file = args[args.length - 1];
    const data = fs.readFileSync(file);
    const text = data.toString('latin1');
    if (!text.startsWith('FAKE-XL-IMAGE\n')) die('File has wrong magic number - corrupt or for a different tool?\n', 3);
    err('Loading new save file ' + file + ' (new xl fmt info 0x3/0x0/803)\n');
    const d = JSON.parse(text.slice(14, text.indexOf('\n', 14)));
    const expected = 14 + text.indexOf('\n', 14) - 14 + 1 + 4 * 64 * 1024;
    if (data.length !== expected) die('xc: error: Failed to read Record Header from stream (' + data.length + ' of ' + expected + ' bytes)\n', 3);
    d.domid = st.nextDomid++; d.paused = opts.has('-p'); d.shutdown = false;
    if (st.domains.some((x) => x.name === d.name)) die('libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain ' + d.domid + ':Domain with name "' + d.name + '" already exists.\n', 3);
    st.domains.push(d); save(); break;
  }
  case 'dump-core': { const d = need(args[0]); fs.writeFileSync(args[1], 'FAKE-CORE ' + d.name + '\n'); break; }
  case 'mem-set': case 'mem-max': {
    const d = need(args[0]);
    const kib = Number(/^(\d+)k$/.exec(args[1])[1]);
    if (cmd === 'mem-max') {
      if (kib < d.memKiB) die('libxl: error: libxl_mem.c:59:libxl_domain_setmaxmem: Domain ' + d.domid + ':memory_static_max must be greater than or or equal to memory_dynamic_max: Success\ncannot set domid ' + d.domid + ' static max memory to : ' + args[1] + '\n');
      d.maxMemKiB = kib;
    } else {
      if (kib > d.maxMemKiB) die('libxl: error: libxl_mem.c:341:libxl_set_memory_target: Domain ' + d.domid + ':memory_dynamic_max must be less than or equal to memory_static_max\n');
      d.memKiB = kib;
    }
    save(); break;
  }
  case 'vcpu-set': {
    const d = need(args[0]); const n = Number(args[1]);
    if (n > d.maxVcpus) die('libxl: error: libxl_domain.c:1869:libxl_set_vcpuonline: Domain ' + d.domid + ':Requested ' + n + ' VCPUs, however maxcpus is ' + d.maxVcpus + '!: Function not implemented\n');
    d.vcpus = n; save(); break;
  }
  case 'vcpu-list': {
    out('Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)\n');
    const doms = args[0] !== undefined ? [need(args[0])] : [dom0(), ...st.domains];
    for (const d of doms) for (let v = 0; v < d.maxVcpus; v++) {
      const on = v < d.vcpus;
      out(d.name.padEnd(32) + ' ' + pad(d.domid, 5) + ' ' + pad(v, 5) + ' ' + pad(on ? v % st.nrCpus : '-', 5) + '   ' + (on ? (d.paused ? '--p' : '-b-') : '--p') + ' ' + pad((on ? d.cpuSeconds : 0).toFixed(1), 9) + '  ' + ((d.pins || {})[v] || 'all') + ' / all\n');
    }
    break;
  }
  case 'vcpu-pin': { const d = need(args[0]); d.pins[args[1]] = args[2]; save(); break; }
  case 'sched-credit2': case 'sched-credit': {
    if (cmd === 'sched-credit') die('libxl: error: libxl_sched.c:232:sched_credit_domain_set: Domain ' + args[0] + ':Getting domain sched credit: Invalid argument\nlibxl_domain_sched_params_set failed.\n');
    const i = argv.indexOf('-d'); const d = need(argv[i + 1]);
    const w = argv.indexOf('-w'); const c = argv.indexOf('-c');
    if (w < 0 && c < 0) { out('Name                                ID Weight  Cap\n' + d.name.padEnd(32) + ' ' + pad(d.domid, 5) + ' ' + pad(d.weight, 6) + ' ' + pad(d.cap, 4) + '\n'); break; }
    if (w >= 0) d.weight = Number(argv[w + 1]);
    if (c >= 0) d.cap = Number(argv[c + 1]);
    save(); break;
  }
  case 'block-attach': { const d = need(args[0]); const m = /vdev=(\w+)/.exec(args[1]); d.disks.push(m[1]); save(); break; }
  case 'block-detach': {
    const d = need(args[0]);
    if (!d.disks.includes(args[1])) die('Error: Device ' + args[1] + ' not connected.\n');
    d.disks = d.disks.filter((x) => x !== args[1]); save(); break;
  }
  case 'network-attach': { const d = need(args[0]); const m = args.slice(1).find((a) => a.startsWith('mac=')); d.nics.push(m ? m.slice(4) : '00:16:3e:00:00:00'); save(); break; }
  case 'network-detach': {
    const d = need(args[0]);
    if (!d.nics.includes(args[1])) die('Unknown device ' + args[1] + '.\n');
    d.nics = d.nics.filter((x) => x !== args[1]); save(); break;
  }
  case 'cd-insert': case 'cd-eject': need(args[0]); break;
  default: die('command not implemented\n', 1);
}
`;

type XenstoreNode = { value?: string; children?: string[] };

/**
 * The part of XenStore the fake host has: Domain-0 and its guests under /local/domain. Both the
 * xenstored socket and the xenstore-* tools serve it (the tools get this function's source).
 */
function xenstoreNode(domains: FakeDomain[], p: string): XenstoreNode | undefined {
  const dom0 = { domid: 0, name: 'Domain-0', uuid: '00000000-0000-0000-0000-000000000000', maxMemKiB: 1048576, maxVcpus: 1 };
  const doms = [dom0, ...domains];
  if (p === '/local/domain') return { children: doms.map((d) => String(d.domid)) };
  const m = /^\/local\/domain\/(\d+)(\/.*)?$/.exec(p);
  if (!m) return undefined;
  const d = doms.find((x) => x.domid === Number(m[1]));
  if (!d) return undefined;
  const rest = m[2] ?? '';
  if (rest === '') return { value: '' };
  if (rest === '/vm') return { value: `/vm/${d.uuid}` };
  if (rest === '/name') return { value: d.name };
  if (rest === '/memory/static-max') return { value: String(d.maxMemKiB) };
  if (rest === '/cpu' && d.domid !== 0) return { children: Array.from({ length: d.maxVcpus }, (_, i) => String(i)) };
  return undefined;
}

/** The fake xenstore-* tools, for the command line path (no xenstored socket). */
const FAKE_XENSTORE_TOOL = String.raw`
const fs = require('fs');
const path = require('path');
const dir = process.env.FAKE_XEN_DIR;
const tool = path.basename(process.argv[1]);
const p = process.argv[2];
fs.appendFileSync(dir + '/argv.log', JSON.stringify([tool, ...process.argv.slice(2)]) + '\n');
const load = () => JSON.parse(fs.readFileSync(dir + '/state.json', 'utf8'));
${xenstoreNode.toString()}
if (tool === 'xenstore-read') { const n = xenstoreNode(load().domains, p); if (!n || n.value === undefined) { process.stderr.write('xenstore-read: couldn\'t read path ' + p + '\n'); process.exit(1); } process.stdout.write(n.value + '\n'); }
else if (tool === 'xenstore-list') { const n = xenstoreNode(load().domains, p); if (!n) { process.stderr.write('xenstore-list: couldn\'t list path ' + p + '\n'); process.exit(1); } process.stdout.write((n.children || []).map((c) => c + '\n').join('')); }
else if (tool === 'xenstore-watch') {
  let last = '';
  const key = (st) => String(st.version);
  const tick = () => { const k = key(load()); if (k !== last) { last = k; process.stdout.write(p + '\n'); } };
  tick();
  setInterval(tick, 25);
}
`;

export interface FakeXenHostOptions {
  /** Serve XenStore on a socket (default) or only through the xenstore-* tools. */
  socket?: boolean;
  totalMiB?: number;
  nrCpus?: number;
}

export class FakeXenHost {
  readonly dir: string;
  readonly binDir: string;
  readonly socketPath: string | undefined;
  private server: net.Server | undefined;
  private conns = new Set<net.Socket>();
  private watches: Array<{ sock: net.Socket; path: string; token: string }> = [];
  private poll: NodeJS.Timeout | undefined;
  private lastKey = '';

  private constructor(dir: string, socketPath: string | undefined) {
    this.dir = dir;
    this.binDir = path.join(dir, 'bin');
    this.socketPath = socketPath;
  }

  static async create(opts: FakeXenHostOptions = {}): Promise<FakeXenHost> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-fakexen-'));
    const h = new FakeXenHost(dir, opts.socket === false ? undefined : path.join(dir, 'xenstored.sock'));
    fs.mkdirSync(h.binDir);
    const state: FakeState = { version: 0, nextDomid: 1, totalMiB: opts.totalMiB ?? 2047, nrCpus: opts.nrCpus ?? 2, domains: [], failures: [] };
    fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify(state));
    fs.writeFileSync(path.join(dir, 'argv.log'), '');
    const script = (name: string, body: string) => {
      const file = path.join(h.binDir, name);
      fs.writeFileSync(file, `#!${process.execPath}\nprocess.env.FAKE_XEN_DIR = process.env.FAKE_XEN_DIR || ${JSON.stringify(dir)};\n${body}`, { mode: 0o755 });
    };
    script('xl', FAKE_XL);
    for (const t of ['xenstore-read', 'xenstore-list', 'xenstore-watch']) script(t, FAKE_XENSTORE_TOOL);
    if (h.socketPath) await h.listen();
    return h;
  }

  // ---- state

  state(): FakeState {
    return JSON.parse(fs.readFileSync(path.join(this.dir, 'state.json'), 'utf8')) as FakeState;
  }

  private write(st: FakeState): void {
    st.version++;
    const file = path.join(this.dir, 'state.json');
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(st));
    fs.renameSync(`${file}.tmp`, file);
    this.check();
  }

  update(fn: (st: FakeState) => void): void {
    const st = this.state();
    fn(st);
    this.write(st);
  }

  domain(domid: number): FakeDomain | undefined {
    return this.state().domains.find((d) => d.domid === domid);
  }

  /** The guest stops on its own: 'poweroff', 'reboot', 'crash' (Xen keeps it, shut down). */
  guestShutdown(domid: number, reason: 'poweroff' | 'reboot' | 'suspend' | 'crash'): void {
    const code = ['poweroff', 'reboot', 'suspend', 'crash'].indexOf(reason);
    this.update((st) => {
      const d = st.domains.find((x) => x.domid === domid);
      if (!d) throw new Error(`fake xen: no domain ${domid}`);
      d.shutdown = true;
      d.reason = code;
    });
  }

  /** Someone else ran `xl destroy`. */
  vanish(domid: number): void {
    this.update((st) => { st.domains = st.domains.filter((d) => d.domid !== domid); });
  }

  /** Start a domain behind xenvirt's back (as `xl create` by hand would). */
  addDomain(d: Partial<FakeDomain> & { name: string }): FakeDomain {
    let made!: FakeDomain;
    this.update((st) => {
      made = {
        domid: st.nextDomid++, uuid: randomUUID(), type: 'pv', memKiB: 131072, maxMemKiB: 131072, vcpus: 1, maxVcpus: 1, paused: false,
        shutdown: false, reason: 0, cpuSeconds: 1.5, disks: [], nics: [], pins: {}, weight: 256, cap: 0, config: '', ...d,
      };
      st.domains.push(made);
    });
    return made;
  }

  failNext(cmd: string, stderr: string, code = 1, leaveDomain = false): void {
    this.update((st) => { st.failures.push({ cmd, stderr, code, leaveDomain }); });
  }

  /** Every command the fakes ran, as argv arrays. */
  calls(): string[][] {
    return fs.readFileSync(path.join(this.dir, 'argv.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]);
  }

  clearCalls(): void {
    fs.writeFileSync(path.join(this.dir, 'argv.log'), '');
  }

  // ---- fake xenstored

  private listen(): Promise<void> {
    this.server = net.createServer((sock) => this.serve(sock));
    this.poll = setInterval(() => this.check(), 20);
    this.poll.unref();
    return new Promise((resolve) => this.server!.listen(this.socketPath!, () => resolve()));
  }

  private node(p: string): XenstoreNode | undefined {
    return xenstoreNode(this.state().domains, p);
  }

  private serve(sock: net.Socket): void {
    this.conns.add(sock);
    let buf = Buffer.alloc(0);
    sock.on('close', () => {
      this.conns.delete(sock);
      this.watches = this.watches.filter((w) => w.sock !== sock);
    });
    sock.on('error', () => {});
    sock.on('data', (chunk: Buffer) => {
      const { messages, rest } = decodeMessages(Buffer.concat([buf, chunk]));
      buf = Buffer.from(rest);
      for (const m of messages) {
        const [p = '', token = ''] = splitStrings(m.payload);
        const reply = (type: number, payload: Buffer) => sock.write(encodeMessage(type, m.reqId, payload));
        const error = (e: string) => reply(XS_ERROR, Buffer.from(`${e}\0`));
        if (m.type === XS_READ) {
          const n = this.node(p);
          if (!n || n.value === undefined) error('ENOENT');
          else reply(XS_READ, Buffer.from(n.value));
        } else if (m.type === XS_DIRECTORY) {
          const n = this.node(p);
          if (!n) error('ENOENT');
          else reply(XS_DIRECTORY, Buffer.from((n.children ?? []).map((c) => `${c}\0`).join('')));
        } else if (m.type === XS_WATCH) {
          this.watches.push({ sock, path: p, token });
          reply(XS_WATCH, Buffer.from('OK\0'));
          // xenstored fires a new watch once at once
          sock.write(encodeMessage(XS_WATCH_EVENT, 0, Buffer.from(`${p}\0${token}\0`)));
        } else if (m.type === XS_UNWATCH) {
          this.watches = this.watches.filter((w) => !(w.sock === sock && w.token === token));
          reply(XS_UNWATCH, Buffer.from('OK\0'));
        } else error('ENOSYS');
      }
    });
  }

  /**
   * Fire the domain watches whenever the state changed (any version: a domain may have come
   * and gone between two looks, which real Xen would still have announced twice).
   */
  private check(): void {
    if (!this.server) return;
    let st: FakeState;
    try { st = this.state(); } catch { return; }
    const key = String(st.version);
    if (key === this.lastKey) return;
    const before = this.lastKey;
    this.lastKey = key;
    if (before === '') return;
    for (const w of this.watches) {
      if (w.path === '@releaseDomain' || w.path === '@introduceDomain') {
        w.sock.write(encodeMessage(XS_WATCH_EVENT, 0, Buffer.from(`${w.path}\0${w.token}\0`)));
      }
    }
  }

  /** Number of watches clients hold on the fake xenstored. */
  watchCount(): number { return this.watches.length; }

  async close(): Promise<void> {
    if (this.poll) clearInterval(this.poll);
    for (const c of this.conns) c.destroy();
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
