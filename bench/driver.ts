/**
 * Driver benchmarks on a persistent simulated host (test:///TMPDIR), where every define and
 * undefine is durable (fdatasync'd) before it returns:
 *
 *   define_undefine_pairs      durable define+undefine pairs per second, 64 clients at once
 *                              (as a daemon serves them: concurrent calls share each flush)
 *   define_undefine_pairs_16_clients, define_undefine_pairs_1_client
 *                              the same with fewer clients (one client waits for every flush)
 *   define_10000               time to define 10,000 domains
 *   list_all_10000             listAllDomains(ACTIVE|INACTIVE) with 10,000 defined (median of 20)
 *   reopen_10000               opening that host again in a fresh driver (load + replay)
 *
 * Targets: >= 2,400 pairs/s; list of 10,000 <= 100 ms in-process.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { openConnection } from '../src/driver/open.js';
import { ListFlags, type Connection } from '../src/driver/connection.js';

const report = (name: string, value: number, unit: string) => console.log(`bench: ${name} ${value} ${unit}`);

function xml(name: string, uuid: string): string {
  return `<domain type='xen'>
  <name>${name}</name>
  <uuid>${uuid}</uuid>
  <memory unit='KiB'>262144</memory>
  <vcpu>2</vcpu>
  <os>
    <type>xen</type>
    <kernel>/boot/vmlinuz</kernel>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/xen/images/${name}.img'/>
      <target dev='xvda' bus='xen'/>
    </disk>
    <interface type='bridge'>
      <mac address='00:16:3e:12:34:56'/>
      <source bridge='xenbr0'/>
    </interface>
  </devices>
</domain>
`;
}

async function pairs(c: Connection, workers: number, total: number, tag: string): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: workers }, async (_, w) => {
    while (next < total) {
      const i = next++;
      const d = await c.defineXml(xml(`${tag}-${w}-${i}`, randomUUID()));
      await c.undefine(d);
    }
  }));
  return total / ((performance.now() - t0) / 1000);
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-bench-'));
  try {
    const uri = `test://${dir}`;
    const c = await openConnection(uri);
    await pairs(c, 16, 1000, 'warm');
    report('define_undefine_pairs', Math.round(await pairs(c, 64, 8000, 'p')), 'pairs/s');
    report('define_undefine_pairs_16_clients', Math.round(await pairs(c, 16, 4000, 'q')), 'pairs/s');
    report('define_undefine_pairs_1_client', Math.round(await pairs(c, 1, 600, 's')), 'pairs/s');

    const N = 10_000;
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < N) {
        const i = next++;
        await c.defineXml(xml(`dom-${String(i).padStart(5, '0')}`, randomUUID()));
      }
    }));
    report('define_10000', Math.round(performance.now() - t0), 'ms');

    const times: number[] = [];
    let count = 0;
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      count = (await c.listAllDomains(ListFlags.ACTIVE | ListFlags.INACTIVE)).length;
      times.push(performance.now() - t);
    }
    if (count !== N + 1) throw new Error(`listed ${count} domains, expected ${N + 1}`);
    times.sort((a, b) => a - b);
    report('list_all_10000', Number(times[10]!.toFixed(2)), 'ms');
    await c.close();

    const t1 = performance.now();
    const c2 = await openConnection(uri);
    const n2 = (await c2.listAllDomains()).length;
    report('reopen_10000', Math.round(performance.now() - t1), 'ms');
    if (n2 !== N + 1) throw new Error(`reopened host lists ${n2} domains`);
    await c2.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
