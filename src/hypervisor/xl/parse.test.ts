import test from 'node:test';
import assert from 'node:assert/strict';
import {
  expandCpuList, parseProgress, parseSchedRow, parseVcpuList, parseXlInfo, parseXlList, parseXlListLong, runState,
} from './parse.js';
import { errorLines, xlError, xlFailed } from './errors.js';
import type { ExecResult } from './exec.js';

// Output captured from Debian's xl 4.17.7 (the QEMU Xen host of ../shared/xen-in-qemu).
const LIST_V = `Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label
Domain-0                                     0  1024     1     r-----     500.4 00000000-0000-0000-0000-000000000000        -                -
g4                                           5   100     1     ---sr-      11.3 a58b24ca-63bb-498e-8d9e-2b075501edfd        1                -
pg                                          12   128     1     -b----      26.5 e2c220f9-3b87-4412-90cf-8a967469d7c4        -                -
g1                                           1   128     1     --p---       0.0 87ecca69-d06e-4fbe-8c2e-6fea7669214a        -                -
cr                                           7   128     2     ---sc-       3.0 11111111-2222-3333-4444-555555555555        3                -
`;

test('xl list -v: states, shutdown reasons, memory, vcpus, cpu time', () => {
  const l = parseXlList(LIST_V);
  assert.equal(l.length, 5);
  assert.deepEqual(l.map((e) => [e.name, e.domid, e.memMiB, e.vcpus, runState(e)]), [
    ['Domain-0', 0, 1024, 1, 'running'],
    ['g4', 5, 100, 1, 'shutdown'],
    ['pg', 12, 128, 1, 'blocked'],
    ['g1', 1, 128, 1, 'paused'],
    ['cr', 7, 128, 2, 'crashed'],
  ]);
  assert.equal(l[1]!.shutdownReason, 'reboot');
  assert.equal(l[4]!.shutdownReason, 'crash');
  assert.equal(l[2]!.uuid, 'e2c220f9-3b87-4412-90cf-8a967469d7c4');
  assert.equal(l[0]!.cpuSeconds, 500.4);
  assert.equal(l[2]!.shutdownReason, undefined);
});

test('plain xl list: the reason letter stands in for the code', () => {
  const l = parseXlList(`Name                                        ID   Mem VCPUs\tState\tTime(s)
Domain-0                                     0  1024     1     r-----     137.9
a name with spaces                           3   128     1     ---s--       1.0
dying                                        4    12     1     -----d       1.0
`);
  assert.equal(l[1]!.name, 'a name with spaces');
  assert.equal(l[1]!.shutdownReason, 'poweroff');
  assert.equal(l[1]!.uuid, undefined);
  assert.equal(runState(l[2]!), 'dying');
});

test('xl info', () => {
  const i = parseXlInfo(`host                   : dom0
nr_cpus                : 2
xen_caps               : xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 
xen_extra              : .7
xen_changeset          : 
xen_commandline        : console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M
`);
  assert.equal(i.get('nr_cpus'), '2');
  assert.equal(i.get('xen_caps'), 'xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64');
  assert.equal(i.get('xen_changeset'), '');
  assert.equal(i.get('xen_commandline'), 'console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M');
});

test('xl vcpu-list, including an offline vcpu and a pinned one', () => {
  const v = parseVcpuList(`Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)
Domain-0                             0     0    0   r--     533.3  all / all
v2                                  13     0    1   r--       0.8  1 / all
v2                                  13     1    -   --p       0.0  all / all
`);
  assert.equal(v.length, 3);
  assert.deepEqual([v[1]!.online, v[1]!.cpu, v[1]!.hardAffinity], [true, 1, '1']);
  assert.deepEqual([v[2]!.online, v[2]!.cpu], [false, -1]);
  assert.deepEqual(expandCpuList('all', 4), [0, 1, 2, 3]);
  assert.deepEqual(expandCpuList('0-2,5', 8), [0, 1, 2, 5]);
  assert.deepEqual(expandCpuList('^1', 3), [0, 2]);
});

test('xl list -l JSON and sched-credit2 rows', () => {
  const c = parseXlListLong(`[
    { "domid": 0, "config": { "c_info": { "type": "pv", "name": "Domain-0" }, "b_info": { "max_memkb": 1048576, "target_memkb": 1048575 } } },
    { "domid": 13, "config": { "c_info": { "type": "pv", "name": "v2", "uuid": "C7506FD9-F39A-4412-8EC7-017BCB02A4B5" },
      "b_info": { "max_vcpus": 2, "avail_vcpus": [0], "max_memkb": 204800, "target_memkb": 131072 } } }
  ]`);
  assert.deepEqual(c[1], { domid: 13, name: 'v2', uuid: 'c7506fd9-f39a-4412-8ec7-017bcb02a4b5', type: 'pv', maxMemKiB: 204800, targetMemKiB: 131072, maxVcpus: 2, availVcpus: 1 });
  assert.deepEqual(parseXlListLong('not json'), []);
  assert.deepEqual(parseSchedRow('Name                                ID Weight  Cap\ng4                                   5    512   50\n'), { weight: 512, cap: 50 });
  assert.deepEqual(parseProgress('xc: progress: Frames: 2048/32768    6%'), { done: 2048, total: 32768 });
});

const fail = (stderr: string, code = 3): ExecResult => ({ code, signal: null, stdout: '', stderr, ms: 5 });

test('xl failures become messages that say what to do', () => {
  const oom = fail(`Parsing config from guest.cfg
xc: error: panic: xg_dom_boot.c:119: xc_dom_boot_mem_init: can't allocate low memory for domain: Out of memory
libxl: error: libxl_dom.c:586:libxl__build_dom: xc_dom_boot_mem_init failed: Cannot allocate memory
libxl: error: libxl_create.c:1640:domcreate_rebuild_done: Domain 6:cannot (re-)build domain: -3
libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain 6:Non-existant domain
`);
  const e = xlError(oom, { op: 'start', name: 'big', command: 'xl create big.cfg', needMiB: 2000, freeMiB: 999 });
  assert.equal(e.codeName, 'OPERATION_FAILED');
  assert.match(e.message, /^operation failed: not enough free memory: domain 'big' needs 2000 MiB, the host has 999 MiB free\. /);
  assert.doesNotMatch(e.message, /log/);

  const dup = xlError(fail(`libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain 7:Domain with name "g4" already exists.
libxl: error: libxl_create.c:1296:initiate_domain_create: Domain 7:cannot make domain: -6
`), { op: 'start', name: 'g4', command: 'xl create x' });
  assert.match(dup.message, /a domain named 'g4' is already running on this host/);

  const kernel = xlError(fail(`xc: error: panic: xg_dom_core.c:205: failed to open file '/nonexist': No such file or directory: Internal error
libxl: error: libxl_dom.c:646:libxl__build_pv: xc_dom_kernel_file failed: No such file or directory
`), { op: 'start', name: 'nk', command: 'xl create x' });
  assert.match(kernel.message, /'\/nonexist' does not exist in dom0/);

  const bios = xlError(fail(`libxl: error: libxl_dom.c:818:libxl__load_hvm_firmware_module: failed to read BIOS file: No such file or directory
libxl: error: libxl_dom.c:1075:libxl__build_hvm: initializing domain firmware failed
`), { op: 'start', name: 'h1', command: 'xl create x' });
  assert.equal(bios.codeName, 'CONFIG_UNSUPPORTED');
  assert.match(bios.message, /HVM firmware .* not installed in dom0\. Install the 'seabios' package/);

  const hotplug = xlError(fail(`libxl: error: libxl_aoutils.c:539:async_exec_timeout: killing execution of /etc/xen/scripts/block add because of timeout
libxl: error: libxl_create.c:1672:domcreate_launch_dm: Domain 11:unable to add disk devices
`), { op: 'start', name: 'pg', command: 'xl create x' });
  assert.match(hotplug.message, /'block' hotplug script .* timed out .*modprobe loop xen-blkback/);

  const unknown = xlError(fail('libxl: error: libxl_foo.c:1:bar: Domain 3:something odd happened\n'), { op: 'pause', domid: 3, command: 'xl pause 3' });
  assert.equal(unknown.message, 'internal error: cannot pause domain 3: xl pause 3 failed: something odd happened');
});

test('xl pause exits 0 on failure: stderr decides', () => {
  const r: ExecResult = { code: 0, signal: null, stdout: '', stderr: 'libxl: error: libxl_domain.c:587:libxl_domain_pause: Domain 99:Pausing domain: No such process\n', ms: 1 };
  assert.equal(xlFailed(r), true);
  assert.equal(xlError(r, { op: 'pause', domid: 99, command: 'xl pause 99' }).codeName, 'NO_DOMAIN');
  assert.equal(xlFailed({ code: 0, signal: null, stdout: '', stderr: 'Parsing config from x\n', ms: 1 }), false);
  assert.deepEqual(errorLines('libxl: error: a.c:1:f: Domain 9:Non-existant domain\nlibxl: error: b.c:2:g: Domain 9:real cause\n').map((l) => l.text),
    ['real cause', 'Non-existant domain']);
  const missing = xlError({ code: null, signal: null, stdout: '', stderr: '', ms: 1, spawnError: Object.assign(new Error('spawn xl ENOENT'), { code: 'ENOENT' }) },
    { op: 'list the domains with', command: 'xl list -v' });
  assert.match(missing.message, /'xl' is not installed/);
});
