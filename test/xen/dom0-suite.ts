/**
 * The real-Xen end-to-end suite, run inside dom0 of the QEMU Xen host (test/xen/harness.ts
 * puts it there). It drives `xenvirt -c xen:///system` as a user would, and checks every step
 * against what `xl` and XenStore report, not only against xenvirt's own view.
 *
 *   node dist/test/xen/dom0-suite.js --run [--only GROUP,GROUP]
 *
 * Groups: host, pv-kernel (the seed's PV direct-kernel shape on the harness's kernel and
 * busybox initramfs), pv-crash (a guest that panics), pv-bootloader (pygrub on a disk image), hvm (the seed's HVM shapes:
 * they start, or fail saying why), native (domxml-from-native on xl configs, checked by the
 * real xl's dry run).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  ROOT, Suite, check, closeShell, consoleLog, consoleSend, eq, log, parseDominfo, run, sh, shell, sleep, waitFor, xenstoreRead, xlDomain, xlInfo, xv, URI,
} from './dom0-lib.js';
import { fixtureXml } from '../../src/hypervisor/sim/fixtures.js';

const WORK = process.env['XENVIRT_TEST_WORK'] ?? '/var/lib/xenvirt-test';
const KERNEL = '/root/guest/vmlinux.gz';
const INITRD = path.join(ROOT, 'guest/initrd.gz');
const CMDLINE = 'console=hvc0 quiet rdinit=/xenvirt-init';

/** A fixture guest (the seed's examples, as test:///default has them) with these swaps made. */
function seedGuest(name: string, swaps: Array<[string | RegExp, string]>): string {
  let xml = fixtureXml(name);
  for (const [from, to] of swaps) {
    if (!xml.match(from)) throw new Error(`fixture '${name}' has no ${String(from)} to replace`);
    xml = xml.replace(from, to);
  }
  return xml;
}

const directKernel: Array<[RegExp, string]> = [
  [/<kernel>.*<\/kernel>/, `<kernel>${KERNEL}</kernel>`],
  [/<initrd>.*<\/initrd>/, `<initrd>${INITRD}</initrd>`],
  [/<cmdline>.*<\/cmdline>/, `<cmdline>${CMDLINE}</cmdline>`],
];

/** The seed's pv-direct-kernel.xml on this host's kernel, initramfs and disk image, without the vfb (no qemu here). */
const pvKernelXml = (img: string) => seedGuest('pv-kernel', [
  ...directKernel, [/<source file='[^']*'\/>/, `<source file='${img}'/>`], [/\n *<graphics [^>]*\/>/, ''],
]);

/** The seed's pv-bootloader.xml: pygrub reads the kernel from the guest's own disk. */
const pvBootloaderXml = (img: string) => seedGuest('pv-bootloader', [[/<source file='[^']*'\/>/, `<source file='${img}'/>`]]);

/** The seed's hvm-bios.xml / hvm-direct-kernel.xml, with their files made to exist here and a smaller memory. */
const hvmXml = (name: string, files: Record<string, string>, kernel: boolean) => seedGuest(name, [
  ...(kernel ? directKernel : []),
  [/<memory>\d+<\/memory>/, '<memory>131072</memory>'],
  [/\n *<emulator>.*<\/emulator>/, ''],
  [/<source file='\/var\/lib\/xen\/images\/fv[01]'\/>/, `<source file='${files['disk']}'/>`],
  [/<source file='[^']*\.iso'\/>/, `<source file='${files['iso']}'/>`],
  [/\n *<disk type='file' device='floppy'>[^]*?<\/disk>/, ''],
  [/<graphics type='vnc' port='\d+'\/>/, "<graphics type='vnc' port='-1'/>"],
]);

/** `xenvirt event --all --loop` running beside the suite: what a second client sees. */
class EventWatcher {
  lines: string[] = [];
  private child: ChildProcess;
  private buf = '';

  constructor() {
    this.child = spawn(process.execPath, [path.join(ROOT, 'bin/xenvirt'), '-c', URI, 'event', '--all', '--loop'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (s: string) => {
      this.buf += s;
      const parts = this.buf.split('\n');
      this.buf = parts.pop() ?? '';
      for (const l of parts) {
        this.lines.push(l);
        log(`event> ${l}`);
      }
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => log(`event-stderr> ${s.trim()}`));
  }

  /** Wait for `event 'lifecycle' for domain 'NAME': TEXT` after index `from`. */
  async waitFor(name: string, text: string, from: number, timeoutMs = 90_000): Promise<number> {
    const want = `event 'lifecycle' for domain '${name}': ${text}`;
    return waitFor(`"${want}" from xenvirt event`, () => {
      const i = this.lines.findIndex((l, k) => k >= from && l.includes(want));
      return i >= 0 ? i + 1 : undefined;
    }, timeoutMs, 200).catch(async (e: Error) => {
      // what Xen shows now and whether the listening client still runs: a missed event and a
      // guest that never stopped look the same from here
      const now = await xlDomain(name).catch((x: Error) => x.message);
      const { exitCode, signalCode } = this.child;
      const proc = signalCode ? `killed by ${signalCode}` : exitCode !== null ? `exited with ${exitCode}` : 'running';
      // a toolstack call that hangs holds the client's transaction: show what is still running
      const ps = (await run(['ps', '-eo', 'pid,ppid,etimes,stat,args'])).stdout.split('\n')
        .filter((l) => /\b(xl|xenvirt|node|xenstore\S*|udevadm|\/etc\/xen\/scripts\/\S+)\b/.test(l) && !/ ps -eo /.test(l));
      throw new Error(`${e.message}; xl list now: ${JSON.stringify(now ?? 'no such domain')}; the event client (pid ${this.child.pid}) is ${proc}; processes:\n${ps.join('\n')}`);
    });
  }

  get mark(): number { return this.lines.length; }

  stop(): void { this.child.kill('SIGINT'); }
}

/** The xl list row of a domain that must exist and not be shut down or dying. */
async function liveDomain(name: string) {
  const d = await xlDomain(name);
  check(d, `xl list has no domain '${name}'`);
  check(!d.shutdown && !d.dying, `xl list shows '${name}' as ${d.flags}`);
  return d;
}

async function noDomain(name: string, what = `xl list still shows '${name}'`) {
  await waitFor(what, async () => !(await xlDomain(name)), 60_000);
}

async function guestUp(name: string, count = 1, timeoutMs = 120_000) {
  await waitFor(`GUEST-UP #${count} on ${name}'s console`, () => (consoleLog(name).match(/GUEST-UP/g)?.length ?? 0) >= count, timeoutMs);
}

async function dominfo(name: string) {
  return parseDominfo(await xv(['dominfo', name]));
}

/** What `xenvirt list` shows for a name: [id, state] or undefined. */
async function listed(name: string, all = false): Promise<[string, string] | undefined> {
  const out = await xv(['list', ...(all ? ['--all'] : [])]);
  for (const line of out.split('\n')) {
    const m = /^\s*(\S+)\s+(\S+)\s+(.+?)\s*$/.exec(line);
    if (m && m[2] === name) return [m[1]!, m[3]!];
  }
  return undefined;
}

async function main(): Promise<void> {
  const only = process.argv.includes('--only') ? new Set(process.argv[process.argv.indexOf('--only') + 1]!.split(',')) : undefined;
  const want = (g: string) => !only || only.has(g);
  fs.mkdirSync(WORK, { recursive: true });
  const suite = new Suite();
  const events = new EventWatcher();
  shell();

  // Wait until the event client is listening: it reports a definition made by another process.
  await suite.step('setup', 'xenvirt event --loop is listening', async () => {
    const probe = path.join(WORK, 'probe.xml');
    fs.writeFileSync(probe, `<domain type='xen'><name>probe</name><memory>65536</memory><os><type>linux</type><kernel>${KERNEL}</kernel></os></domain>`);
    const from = events.mark;
    await sleep(1500);
    for (let i = 0; ; i++) {
      await xv(['define', probe]);
      try {
        await events.waitFor('probe', 'Defined', from, 8000);
        break;
      } catch (e) {
        if (i >= 8) throw e;
      }
      await xv(['undefine', 'probe']);
    }
    await xv(['undefine', 'probe']);
  });

  if (want('host')) {
    await suite.step('host', 'nodeinfo and version match xl info', async () => {
      const info = await xlInfo();
      const ni = parseDominfo(await xv(['nodeinfo']));
      eq(ni.get('CPU(s)'), info.get('nr_cpus'), 'nodeinfo CPU(s) vs xl info nr_cpus');
      eq(ni.get('Memory size'), `${Number(info.get('total_memory')) * 1024} KiB`, 'nodeinfo memory vs xl info total_memory');
      const v = await xv(['version']);
      check(v.includes(`Running hypervisor: Xen ${info.get('xen_version')}`), `version does not say Xen ${info.get('xen_version')}: ${v}`);
      const caps = await xv(['capabilities']);
      check(/<os_type>xen<\/os_type>[\s\S]*<arch name='x86_64'>/.test(caps), 'capabilities list no PV x86_64 guest');
      if ((info.get('xen_caps') ?? '').includes('hvm')) check(caps.includes('<os_type>hvm</os_type>'), 'xl info has hvm caps, capabilities has no hvm guest');
      const d0 = await listed('Domain-0');
      eq(d0?.[0], '0', 'Domain-0 id in xenvirt list');
      return `Xen ${info.get('xen_version')}, ${info.get('nr_cpus')} CPUs, ${info.get('total_memory')} MiB`;
    });
  }

  if (want('pv-kernel')) {
    const G = 'pv-kernel';
    const img = path.join(WORK, 'pv-kernel.img');
    const extra = path.join(WORK, 'extra.img');
    const xml = path.join(WORK, 'pv-kernel.xml');
    let domid = -1;
    await suite.step(G, 'define: shut off in xenvirt, absent from xl', async () => {
      await sh(`truncate -s 16M ${img} ${extra}`);
      fs.writeFileSync(xml, pvKernelXml(img));
      const from = events.mark;
      await xv(['define', xml]);
      eq((await listed(G, true))?.join(' '), '- shut off', 'xenvirt list --all');
      check(!(await xlDomain(G)), 'xl list shows a domain that is only defined');
      await events.waitFor(G, 'Defined Added', from);
    });
    await suite.step(G, 'start (a fresh xenvirt process): running with the domid xl reports', async () => {
      const from = events.mark;
      await xv(['start', G], { process: true });
      const d = await liveDomain(G);
      domid = d.domid;
      check(!d.paused, `xl shows ${G} paused after start (${d.flags})`);
      eq((await listed(G))?.join(' '), `${domid} running`, 'xenvirt list');
      eq((await xv(['domid', G])).trim(), String(domid), 'xenvirt domid');
      eq(await xenstoreRead(`/local/domain/${domid}/vm`), '/vm/9f3b6c1e-2d4a-4e8b-9c7d-5a1f0e2b3c41', 'xenstore vm path (uuid)');
      const nets = (await run(['xl', 'network-list', String(domid)])).stdout;
      check(nets.includes('aa:00:00:00:00:12'), `xl network-list lacks the vif: ${nets}`);
      const blks = (await run(['xl', 'block-list', String(domid)])).stdout.trim().split('\n').length - 1;
      eq(blks, 1, 'disks in xl block-list');
      await events.waitFor(G, 'Started Booted', from);
      await guestUp(G);
      return `domid ${domid}`;
    });
    await suite.step(G, 'dominfo matches xl list and xenstore', async () => {
      const di = await dominfo(G);
      const d = await liveDomain(G);
      eq(di.get('Id'), String(d.domid), 'dominfo Id');
      eq(di.get('UUID'), d.uuid, 'dominfo UUID');
      eq(di.get('State'), 'running', 'dominfo State');
      eq(di.get('CPU(s)'), String(d.vcpus), 'dominfo CPU(s) vs xl VCPUs');
      eq(di.get('Used memory'), `${d.memMiB * 1024} KiB`, 'dominfo Used memory vs xl Mem');
      eq(di.get('Max memory'), `${await xenstoreRead(`/local/domain/${d.domid}/memory/static-max`)} KiB`, 'dominfo Max memory vs xenstore static-max');
      return `${d.memMiB} MiB, ${d.vcpus} vcpu`;
    });
    await suite.step(G, 'suspend / resume: xl shows paused, then not', async () => {
      let from = events.mark;
      await xv(['suspend', G]);
      check((await liveDomain(G)).paused, 'xl does not show the domain paused after suspend');
      eq((await xv(['domstate', G])).trim(), 'paused', 'domstate after suspend');
      await events.waitFor(G, 'Suspended Paused', from);
      from = events.mark;
      await xv(['resume', G]);
      check(!(await liveDomain(G)).paused, 'xl still shows the domain paused after resume');
      await events.waitFor(G, 'Resumed Unpaused', from);
    });
    await suite.step(G, 'setmem 100 MiB: xenstore target and xl list follow', async () => {
      await xv(['setmem', G, '102400', '--live']);
      eq(await xenstoreRead(`/local/domain/${domid}/memory/target`), '102400', 'xenstore memory/target');
      await waitFor('xl list Mem 100', async () => (await liveDomain(G)).memMiB === 100, 60_000);
      eq((await dominfo(G)).get('Used memory'), '102400 KiB', 'dominfo Used memory after setmem');
    });
    await suite.step(G, 'attach / detach a disk and an interface (the guest sees them)', async () => {
      await xv(['attach-disk', G, extra, 'xvdb', '--live']);
      let blk = (await run(['xl', 'block-list', String(domid)])).stdout;
      check(/^51728\s/m.test(blk), `xl block-list lacks xvdb (51728): ${blk}`);
      await consoleSend(domid, 'xv-disks');
      await waitFor('xvdb in the guest', () => /GUEST-DISKS .*xvdb/.test(consoleLog(G)), 30_000);
      const diskXml = path.join(WORK, 'xvdb.xml');
      fs.writeFileSync(diskXml, `<disk type='file' device='disk'><source file='${extra}'/><target dev='xvdb' bus='xen'/></disk>`);
      await xv(['detach-device', G, diskXml, '--live']);
      blk = (await run(['xl', 'block-list', String(domid)])).stdout;
      check(!/^51728\s/m.test(blk), `xl block-list still has xvdb: ${blk}`);
      await xv(['attach-interface', G, 'bridge', 'xenbr0', '--mac', '00:16:3e:0a:0b:0c', '--live']);
      let nets = (await run(['xl', 'network-list', String(domid)])).stdout;
      check(nets.includes('00:16:3e:0a:0b:0c'), `xl network-list lacks the new vif: ${nets}`);
      const nicXml = path.join(WORK, 'nic.xml');
      fs.writeFileSync(nicXml, "<interface type='bridge'><mac address='00:16:3e:0a:0b:0c'/><source bridge='xenbr0'/></interface>");
      await xv(['detach-device', G, nicXml, '--live']);
      nets = (await run(['xl', 'network-list', String(domid)])).stdout;
      check(!nets.includes('00:16:3e:0a:0b:0c'), `xl network-list still has the vif: ${nets}`);
    });
    const saveFile = path.join(WORK, 'pv-kernel.save');
    await suite.step(G, 'save: gone from Xen, image on disk', async () => {
      const from = events.mark;
      await xv(['save', G, saveFile], { timeoutMs: 300_000 });
      check(!(await xlDomain(G)), 'xl list still shows the domain after save');
      eq(await xenstoreRead(`/local/domain/${domid}/name`), undefined, 'xenstore entry of the saved domain');
      const size = fs.statSync(saveFile).size;
      check(size > 64 * 1024 * 1024, `save image is only ${size} bytes`);
      eq((await xv(['domstate', G])).trim(), 'shut off', 'domstate after save');
      await events.waitFor(G, 'Stopped Saved', from);
      return `${(size / 1048576).toFixed(0)} MiB image`;
    });
    await suite.step(G, 'restore: running again under a new domid', async () => {
      const from = events.mark;
      await xv(['restore', saveFile], { timeoutMs: 300_000 });
      const d = await liveDomain(G);
      check(d.domid !== domid, `restored domain kept domid ${domid}`);
      domid = d.domid;
      eq((await listed(G))?.join(' '), `${domid} running`, 'xenvirt list after restore');
      eq(d.memMiB, 100, 'xl Mem after restore (the balloon target survives)');
      await events.waitFor(G, 'Started Restored', from);
      // the guest itself is alive: it answers on its console
      await consoleSend(domid, 'xv-mem');
      await waitFor('the restored guest answering', () => consoleLog(G).includes('GUEST-MEM'), 30_000);
      return `domid ${domid}`;
    });
    await suite.step(G, 'guest-initiated poweroff arrives as a lifecycle event', async () => {
      const from = events.mark;
      await consoleSend(domid, 'xv-poweroff');
      await events.waitFor(G, 'Stopped Shutdown', from);
      check(consoleLog(G).includes('GUEST-POWEROFF'), 'the guest did not say it powered off');
      await noDomain(G, 'xl list to drop the powered-off domain (on_poweroff destroy)');
      eq(await xenstoreRead(`/local/domain/${domid}/name`), undefined, 'xenstore entry after poweroff');
      eq((await xv(['domstate', G])).trim(), 'shut off', 'domstate after poweroff');
    });
    await suite.step(G, 'undefine', async () => {
      const from = events.mark;
      await xv(['undefine', G]);
      eq(await listed(G, true), undefined, 'xenvirt list --all after undefine');
      await events.waitFor(G, 'Undefined Removed', from);
    });
  }

  if (want('pv-crash')) {
    // the same kernel and initramfs without devices (a quicker boot), two vcpus with <cputune>;
    // the guest is tuned live, then panics
    const G = 'pv-crash';
    const sched = async () => {
      const s = (await xlInfo()).get('xen_scheduler') ?? 'credit';
      const out = (await run(['xl', s === 'credit2' ? 'sched-credit2' : 'sched-credit', '-d', G])).stdout;
      const m = new RegExp(`^${G}\\s+\\d+\\s+(\\d+)\\s+(\\d+)`, 'm').exec(out);
      check(m, `xl sched-${s} shows no row for ${G}: ${out}`);
      return `weight ${m[1]} cap ${m[2]}`;
    };
    /** Hard affinity of each vcpu, as `xl vcpu-list` prints it. */
    const affinity = async () => {
      const out = (await run(['xl', 'vcpu-list', G])).stdout;
      return out.split('\n').filter((l) => l.startsWith(G)).map((l) => /\s(\S+) \/ \S+\s*$/.exec(l)?.[1]);
    };
    await suite.step(G, 'start applies <cputune>: xl vcpu-list and xl sched-* show the pin and the weight', async () => {
      const xml = path.join(WORK, 'pv-crash.xml');
      fs.writeFileSync(xml, `<domain type='xen'><name>${G}</name><memory>131072</memory><vcpu>2</vcpu>
  <cputune><shares>300</shares><vcpupin vcpu='1' cpuset='1'/></cputune>
  <os><type>linux</type><kernel>${KERNEL}</kernel><initrd>${INITRD}</initrd><cmdline>${CMDLINE}</cmdline></os>
  <on_crash>destroy</on_crash><devices><console type='pty'/></devices></domain>`);
      await xv(['define', xml]);
      await xv(['start', G]);
      await liveDomain(G);
      eq((await affinity()).join(' '), 'all 1', 'xl vcpu-list hard affinity after start');
      eq(await sched(), 'weight 300 cap 0', 'xl scheduler parameters after start');
      await guestUp(G);
    });
    await suite.step(G, 'vcpupin / schedinfo --live: xl follows, vcpuinfo agrees, the definition keeps its own', async () => {
      await xv(['vcpupin', G, '0', '0', '--live']);
      eq((await affinity()).join(' '), '0 1', 'xl vcpu-list hard affinity after vcpupin');
      const info = await xv(['vcpuinfo', G]);
      check(/VCPU:\s+0\n[^]*?CPU Affinity:\s+y-\n/.test(info) && /VCPU:\s+1\n[^]*?CPU Affinity:\s+-y\n/.test(info), `vcpuinfo disagrees with xl: ${info}`);
      const out = await xv(['schedinfo', G, '--weight', '512', '--cap', '50']);
      check(/^weight\s+: 512\ncap\s+: 50$/m.test(out), `schedinfo did not report the new values: ${out}`);
      eq(await sched(), 'weight 512 cap 50', 'xl scheduler parameters after schedinfo');
      check(/<shares>300<\/shares>/.test(await xv(['dumpxml', '--inactive', G])), 'the persistent definition lost its weight');
      // lift the cap again: a capped guest is slow to panic under emulation
      await xv(['schedinfo', G, '--set', 'cap=0']);
      eq(await sched(), 'weight 512 cap 0', 'xl scheduler parameters after lifting the cap');
      return (await affinity()).join(' ');
    });
    await suite.step(G, 'guest crash arrives as a lifecycle event (on_crash destroy)', async () => {
      const d = await liveDomain(G);
      const from = events.mark;
      await consoleSend(d.domid, 'xv-crash');
      await events.waitFor(G, 'Stopped Crashed', from).catch((e: Error) => {
        throw new Error(`${e.message}; the guest's console ends with: ${consoleLog(G).slice(-600)}`);
      });
      check(consoleLog(G).includes('GUEST-CRASH'), 'the guest did not say it crashed');
      await noDomain(G, 'xl list to drop the crashed domain (on_crash destroy)');
      eq((await xv(['domstate', G, '--reason'])).trim(), 'shut off (crashed)', 'domstate --reason after the crash');
      await xv(['undefine', G]);
    });
  }

  if (want('pv-bootloader')) {
    const G = 'pv-bootloader';
    const img = path.join(WORK, 'pv-bootloader.img');
    const xml = path.join(WORK, 'pv-bootloader.xml');
    await suite.step(G, 'disk image with a grub.cfg pygrub reads', async () => {
      const root = path.join(WORK, 'bootroot');
      fs.mkdirSync(path.join(root, 'boot/grub'), { recursive: true });
      fs.copyFileSync(KERNEL, path.join(root, 'boot/vmlinux.gz'));
      fs.copyFileSync(INITRD, path.join(root, 'boot/initrd.gz'));
      fs.writeFileSync(path.join(root, 'boot/grub/grub.cfg'),
        `set default=0\nset timeout=0\nmenuentry 'xenvirt test guest' {\n  linux /boot/vmlinux.gz ${CMDLINE} xenvirt_boot=pygrub\n  initrd /boot/initrd.gz\n}\n`);
      const r = await sh(`rm -f ${img} && truncate -s 40M ${img} && mke2fs -q -t ext2 -d ${root} ${img}`);
      check(r.code === 0, `mke2fs failed: ${r.stderr}`);
    });
    let domid = -1;
    await suite.step(G, 'define + start: pygrub boots the kernel from the disk', async () => {
      fs.writeFileSync(xml, pvBootloaderXml(img));
      await xv(['define', xml]);
      await xv(['start', G], { timeoutMs: 300_000 });
      const d = await liveDomain(G);
      domid = d.domid;
      const loops = (await run(['losetup', '-a'])).stdout;
      check(loops.includes(img), `losetup does not show the disk image: ${loops}`);
      const conf = (await run(['xl', 'list', '-l', String(domid)])).stdout;
      check(conf.includes('"bootloader": "/usr/bin/pygrub"'), 'xl list -l shows no pygrub bootloader');
      await guestUp(G);
      // the kernel command line came from the disk's grub.cfg
      const cmd = await xenstoreRead(`/vm/9f3b6c1e-2d4a-4e8b-9c7d-5a1f0e2b3c40/image/cmdline`);
      check(cmd?.includes('xenvirt_boot=pygrub'), `the guest did not boot grub.cfg's entry (cmdline: ${cmd})`);
      eq((await listed(G))?.join(' '), `${domid} running`, 'xenvirt list');
      return `domid ${domid}`;
    });
    await suite.step(G, 'shutdown: the guest powers off, the loop device goes', async () => {
      const from = events.mark;
      await xv(['shutdown', G], { process: true });
      await events.waitFor(G, 'Stopped Shutdown', from);
      await noDomain(G);
      await waitFor('the loop device to be released', async () => !(await run(['losetup', '-a'])).stdout.includes(img), 60_000);
      eq((await xv(['domstate', G])).trim(), 'shut off', 'domstate after shutdown');
    });
    await suite.step(G, 'undefine', async () => {
      await xv(['undefine', G]);
      eq(await listed(G, true), undefined, 'xenvirt list --all after undefine');
    });
  }

  if (want('hvm')) {
    const shapes: Array<[string, boolean]> = [['hvm-bios', false], ['hvm-kernel', true]];
    for (const [name, kernel] of shapes) {
      await suite.step('hvm', `${name}: converts, and starts or says why not`, async () => {
        const files = { disk: path.join(WORK, `${name}.img`), iso: path.join(WORK, `${name}.iso`) };
        await sh(`truncate -s 8M ${files.disk} ${files.iso}`);
        const xml = path.join(WORK, `${name}.xml`);
        fs.writeFileSync(xml, hvmXml(name, files, kernel));
        const native = await xv(['domxml-to-native', 'xen-xl', xml]);
        const cfg = path.join(WORK, `${name}.cfg`);
        fs.writeFileSync(cfg, native);
        const dry = await run(['xl', 'create', '-n', cfg]);
        check(dry.code === 0, `xl create -n rejects our config: ${dry.stderr}`);
        await xv(['define', xml]);
        const r = await shell().cmd(['start', name]);
        let outcome: string;
        if (r.code === 0) {
          const d = await liveDomain(name);
          outcome = `started as domid ${d.domid}`;
          await xv(['destroy', name]);
          await noDomain(name);
        } else {
          const msg = r.stderr.trim();
          check(!/see .*log|check the log/i.test(msg), `the failure points at a log: ${msg}`);
          check(/HVM firmware|device model|no HVM support|not enough free memory|seabios|qemu/i.test(msg), `the failure does not say why: ${msg}`);
          check(!(await xlDomain(name)), 'a failed HVM start left a domain behind');
          eq((await xv(['domstate', name])).trim(), 'shut off', 'domstate after the failed start');
          outcome = `refused: ${msg.split('\n').pop()}`;
        }
        await xv(['undefine', name]);
        return outcome;
      });
    }
  }

  if (want('native')) {
    for (const file of ['/root/guest/guest.cfg', '/etc/xen/xlexample.hvm', '/etc/xen/xlexample.pvlinux', '/etc/xen/xlexample.pvhlinux']) {
      if (!fs.existsSync(file)) continue;
      await suite.step(`native ${path.basename(file)}`, `domxml-from-native xen-xl ${file}`, async () => {
        const xml = await xv(['domxml-from-native', 'xen-xl', file]);
        const name = /^\s*name\s*=\s*"([^"]+)"/m.exec(fs.readFileSync(file, 'utf8'))?.[1];
        check(xml.includes(`<name>${name}</name>`), `converted XML lacks <name>${name}</name>`);
        check(xml.startsWith("<domain type='xen'"), 'converted XML is no Xen domain');
        const out = path.join(WORK, `${path.basename(file)}.xml`);
        fs.writeFileSync(out, xml);
        const back = await xv(['domxml-to-native', 'xen-xl', out]);
        const cfg = path.join(WORK, `${path.basename(file)}.roundtrip.cfg`);
        fs.writeFileSync(cfg, back);
        const dry = await run(['xl', 'create', '-n', cfg]);
        check(dry.code === 0, `xl create -n rejects the round-tripped config: ${dry.stderr}`);
        return `${name}: ${xml.split('\n').length} lines of XML, xl accepts the round trip`;
      });
    }
    const cfg = '/root/guest/guest.cfg';
    if (fs.existsSync(cfg)) {
      await suite.step('native guest.cfg', 'import: define the converted config, start it, xl runs it', async () => {
        const name = /^\s*name\s*=\s*"([^"]+)"/m.exec(fs.readFileSync(cfg, 'utf8'))![1]!;
        const xml = path.join(WORK, 'imported.xml');
        fs.writeFileSync(xml, await xv(['domxml-from-native', 'xen-xl', cfg]));
        await xv(['define', xml]);
        const uuid = (await xv(['domuuid', name])).trim();
        await xv(['start', name]);
        const d = await liveDomain(name);
        eq(d.uuid, uuid, 'xl list uuid of the imported domain');
        eq((await listed(name))?.join(' '), `${d.domid} running`, 'xenvirt list');
        await xv(['destroy', name]);
        await noDomain(name);
        await xv(['undefine', name]);
        return `${name}: domid ${d.domid}`;
      });
    }
  }

  events.stop();
  closeShell();
  process.stdout.write(suite.summary());
  process.exitCode = suite.failed ? 1 : 0;
}

if (process.argv.includes('--run')) {
  main().catch((e) => {
    process.stdout.write(`XEN-E2E RESULT: FAIL (suite crashed: ${(e as Error).stack ?? e})\n`);
    process.exit(1);
  });
}
