/**
 * vcpu affinity and scheduler parameters on the wire: real virsh, python3-libvirt and our own
 * RemoteConnection against bin/xenvirtd (GET_VCPUS, GET_VCPU_PIN_INFO, PIN_VCPU[_FLAGS],
 * NODE_GET_CPU_MAP, GET_SCHEDULER_TYPE, GET/SET_SCHEDULER_PARAMETERS[_FLAGS]).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { requireTool } from '../../test/support.js';
import { openRemote } from '../rpc/client.js';
import { ModFlags } from '../driver/connection.js';
import { PYTHON, run, startDaemonProcess, virsh } from './harness.js';

const PY = `
import sys, libvirt
c = libvirt.open(sys.argv[1])
d = c.lookupByName('pv-bootloader')
info, maps = d.vcpus()
print('vcpus', [(n, s, cpu) for (n, s, t, cpu) in info], [''.join('y' if b else '-' for b in m) for m in maps])
print('type', d.schedulerType())
d.setSchedulerParameters({'weight': 700})
print('params', sorted(d.schedulerParameters().items()))
d.pinVcpu(0, (False, True))
print('pin', [''.join('y' if b else '-' for b in m)[:2] for m in d.vcpuPinInfo(libvirt.VIR_DOMAIN_AFFECT_LIVE)])
print('cpumap', c.getCPUMap()[0])
`;

test('vcpuinfo, vcpupin and schedinfo over the RPC protocol', async (t) => {
  if (!requireTool(t, 'virsh')) return;
  const d = await startDaemonProcess();
  const conn = await openRemote(d.uri, { keepalive: false });
  t.after(async () => { await conn.close(); await d.stop(); fs.rmSync(d.dir, { recursive: true, force: true }); });
  const v = async (...args: string[]) => {
    const r = await virsh(d.uri, args);
    assert.equal(r.code, 0, `virsh ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const cpus = (await conn.nodeGetInfo()).cpus;

  await t.test('real virsh', async () => {
    assert.equal(await v('vcpupin', 'pv-bootloader'), ` VCPU   CPU Affinity\n----------------------\n 0      0-${cpus - 1}\n\n`);
    await v('vcpupin', 'pv-bootloader', '0', '1-2');
    assert.match(await v('vcpuinfo', 'pv-bootloader'), new RegExp(`^VCPU:           0\\nCPU:            [12]\\nState:          running\\n(CPU time:.*\\n)?CPU Affinity:   -yy${'-'.repeat(cpus - 3)}\\n\\n$`));
    assert.equal(await v('schedinfo', 'pv-bootloader', '--set', 'weight=300'), 'Scheduler      : credit\nweight         : 300\ncap            : 0\n\n');
    assert.equal(await v('schedinfo', 'pv-bootloader', '--live', '--cap', '20'), 'Scheduler      : credit\nweight         : 300\ncap            : 20\n\n');
    await v('vcpupin', 'hvm-bios', '0', '3', '--config');
    assert.match(await v('vcpuinfo', 'hvm-bios'), new RegExp(`CPU:            N/A\\n[^]*CPU Affinity:   ---y${'-'.repeat(cpus - 4)}\\n`));
    assert.match(await v('dumpxml', 'hvm-bios'), /<vcpupin vcpu='0' cpuset='3'\/>/);
    const denied = await virsh(d.roUri, ['schedinfo', 'pv-bootloader', '--weight', '5'], { readonly: true });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /read only access prevents virDomainSetSchedulerParameters\n/);
  });

  await t.test('our client', async () => {
    const dom = await conn.lookupByName('pv-bootloader');
    await conn.pinVcpu(dom, 0, [0, 3], ModFlags.LIVE);
    assert.deepEqual((await conn.getVcpus(dom)).map((x) => x.affinity), [[0, 3]]);
    assert.deepEqual(await conn.getVcpuPinInfo(dom, ModFlags.LIVE), [[0, 3]]);
    assert.deepEqual(await conn.getSchedulerType(dom), { type: 'credit', nparams: 2 });
    await conn.setSchedulerParameters(dom, { weight: 1000 });
    assert.deepEqual(await conn.getSchedulerParameters(dom), { weight: 1000, cap: 20 });
  });

  await t.test('python3-libvirt', async (tt) => {
    if (spawnSync(PYTHON, ['-c', 'import libvirt'], { stdio: 'ignore' }).status !== 0) {
      if (process.env.CI === 'true') throw new Error('python3-libvirt is required in CI');
      tt.skip('python3-libvirt not installed');
      return;
    }
    const r = await run(PYTHON, ['-c', PY, d.uri], { timeoutMs: 30000 });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^vcpus \[\(0, 1, [03]\)\] \['y--y-*'\]$/);
    assert.equal(lines[1], "type ('credit', 2)");
    assert.equal(lines[2], "params [('cap', 20), ('weight', 700)]");
    assert.equal(lines[3], "pin ['-y']");
    assert.equal(lines[4], `cpumap ${cpus}`);
  });
});
