/**
 * vcpuinfo, vcpupin and schedinfo on a persistent simulated host: live and --config changes,
 * what a start applies from the definition, virsh's layouts, and refusals that leave the
 * definition as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session, fails, ok, smallDomainXml, tempHost, xenvirt } from './harness.js';

const UUID = 'c0ffee00-0000-4000-8000-0000000000c1';

test('vcpu pinning and the credit scheduler through the CLI', async (t) => {
  const host = tempHost('xenvirt-cli-tuning-');
  const s = new Session(host.uri);
  const run = (...argv: string[]) => s.run(argv);
  t.after(async () => { await s.close(); host.cleanup(); });
  const file = join(host.dir, 'tune.xml');
  writeFileSync(file, smallDomainXml('tune', UUID, 262144, 262144, 2));
  ok(await run('define', file), 'define');
  const hostCpus = Number(/CPU\(s\):\s+(\d+)/.exec(ok(await run('nodeinfo'), 'nodeinfo'))![1]);
  const all = 'y'.repeat(hostCpus);

  await t.test('a shut-off domain shows its configured affinity, N/A for the rest', async () => {
    assert.equal(ok(await run('vcpuinfo', 'tune'), 'vcpuinfo'),
      `VCPU:           0\nCPU:            N/A\nState:          N/A\nCPU time        N/A\nCPU Affinity:   ${all}\n\n` +
      `VCPU:           1\nCPU:            N/A\nState:          N/A\nCPU time        N/A\nCPU Affinity:   ${all}\n`);
    assert.equal(ok(await run('vcpupin', 'tune'), 'vcpupin query'),
      ` VCPU   CPU Affinity\n----------------------\n 0      0-${hostCpus - 1}\n 1      0-${hostCpus - 1}\n`);
  });

  await t.test('--config pins and the weight are kept in the definition and applied at start', async () => {
    ok(await run('vcpupin', 'tune', '1', '2-3', '--config'), 'vcpupin --config');
    assert.equal(ok(await run('schedinfo', 'tune', '--weight', '512', '--config'), 'schedinfo --config'),
      'Scheduler      : credit\nweight         : 512\ncap            : 0\n');
    const xml = ok(await run('dumpxml', 'tune'), 'dumpxml');
    assert.match(xml, /<cputune>\n {4}<shares>512<\/shares>\n {4}<vcpupin vcpu='1' cpuset='2-3'\/>\n {2}<\/cputune>/);
    ok(await run('start', 'tune'), 'start');
    const info = ok(await run('vcpuinfo', 'tune', '--pretty'), 'vcpuinfo --pretty');
    assert.match(info, new RegExp(`VCPU:           1\\nCPU:            [23]\\nState:          running\\n(CPU time:.*\\n)?CPU Affinity:   2-3 \\(out of ${hostCpus}\\)\\n$`));
    assert.match(ok(await run('schedinfo', 'tune'), 'schedinfo'), /^weight {9}: 512$/m);
  });

  await t.test('live changes reach the hypervisor; without flags vcpupin is live only', async () => {
    ok(await run('vcpupin', 'tune', '0', '1'), 'vcpupin live');
    assert.equal(ok(await run('vcpupin', 'tune', '0'), 'vcpupin query one'), ` VCPU   CPU Affinity\n----------------------\n 0      1\n`);
    const info = ok(await run('vcpuinfo', 'tune'), 'vcpuinfo');
    assert.match(info, new RegExp(`^VCPU:           0\\nCPU:            1\\n`));
    assert.match(info, new RegExp(`CPU Affinity:   -y${'-'.repeat(hostCpus - 2)}\\n\\nVCPU`));
    // the persistent definition did not change
    assert.match(ok(await run('vcpupin', 'tune', '--config'), 'vcpupin --config'), / 0 {6}0-\d+\n 1 {6}2-3\n/);
    assert.equal(ok(await run('schedinfo', 'tune', '--set', 'weight=128', '--cap', '50'), 'schedinfo --set'),
      'Scheduler      : credit\nweight         : 128\ncap            : 50\n');
    assert.match(ok(await run('schedinfo', 'tune', '--config'), 'schedinfo --config'), /^weight {9}: 512\ncap {12}: 0$/m);
    ok(await run('vcpupin', 'tune', '0', 'r'), 'vcpupin reset');
    assert.match(ok(await run('vcpupin', 'tune', '--live'), 'vcpupin --live'), new RegExp(` 0      0-${hostCpus - 1}\n`));
  });

  await t.test('refusals name the problem and change nothing', async () => {
    const before = ok(await run('dumpxml', '--inactive', 'tune'), 'dumpxml before');
    fails(await run('vcpupin', 'tune', '5', '1', '--config'), 'vcpu out of range', 'error: invalid argument: vcpu 5 is out of range of live cpu count 2');
    fails(await run('vcpupin', 'tune', '0', String(hostCpus), '--config'), 'cpu out of range', `error: Physical CPU ${hostCpus} doesn't exist.`);
    fails(await run('vcpupin', 'tune', '0', '1-x'), 'bad cpulist', "error: cpulist: Invalid format '1-x'");
    fails(await run('schedinfo', 'tune', '--set', 'credit=5'), 'unknown field',
      "error: invalid argument: parameter 'credit' is not supported by the 'credit' scheduler (it takes weight, cap)");
    fails(await run('schedinfo', 'tune', '--weight', '0'), 'weight 0', 'error: invalid argument: scheduler weight 0 must be between 1 and 65535');
    fails(await run('schedinfo', 'tune', '--cap', '10', '--config'), 'cap in config',
      'error: argument unsupported: the scheduler cap can only be changed on the running domain (--live)');
    fails(await run('schedinfo', 'tune', '--live', '--config'), 'query both', 'error: cannot query both live and config at once');
    assert.equal(ok(await run('dumpxml', '--inactive', 'tune'), 'dumpxml after'), before);
    ok(await run('destroy', 'tune'), 'destroy');
    fails(await run('vcpupin', 'tune', '0', '1', '--live'), 'live on a shut-off domain', 'error: Requested operation is not valid: domain is not running');
  });

  await t.test('a read-only connection may look but not change', async () => {
    const r = await xenvirt(['-c', host.uri, '-r', 'schedinfo', 'tune']);
    assert.equal(r.code, 0, r.stderr);
    fails(await xenvirt(['-c', host.uri, '-r', 'vcpupin', 'tune', '0', '1', '--config']), 'ro vcpupin',
      'error: operation forbidden: read only access prevents virDomainPinVcpuFlags');
    fails(await xenvirt(['-c', host.uri, '-r', 'schedinfo', 'tune', '--weight', '9']), 'ro schedinfo',
      'error: operation forbidden: read only access prevents virDomainSetSchedulerParametersFlags');
  });
});
