/**
 * bench:xen, inside dom0: how long xenvirt takes to start a guest, against a bare `xl create`
 * of the same guest (the xl config xenvirt itself renders), in one run, alternating.
 *
 *   node dist/test/xen/bench.js --run [--rounds N]
 *
 * Measured, each as the median of N rounds:
 * - xl_create:          `xl create FILE` (what a user of xl types)
 * - xenvirt_api_start:  virDomainCreate through an open connection (what a client of the
 *                       driver, or xenvirtd on behalf of a remote client, pays)
 * - xenvirt_cli_start:  `xenvirt -c xen:///system start NAME`, a new process each time
 *                       (Node's start-up and module loading included)
 * Prints `bench: NAME VALUE UNIT` lines and the overheads in percent (target: <= 5 %).
 */
import fs from 'node:fs';
import path from 'node:path';
import { openConnection, driverOf } from '../../src/driver/open.js';
import { XlBackend } from '../../src/hypervisor/xl/backend.js';
import { ROOT, log, run, sh, sleep, waitFor, xlDomain, xenvirt } from './dom0-lib.js';

const WORK = process.env['XENVIRT_TEST_WORK'] ?? '/var/lib/xenvirt-test';
const NAME = 'benchguest';
const UUID = '6b0c9a57-0d4e-4a5b-8f1e-2c3d4e5f6a7b';

const benchXml = () => `<domain type='xen'>
  <name>${NAME}</name>
  <uuid>${UUID}</uuid>
  <os>
    <type>linux</type>
    <kernel>/root/guest/vmlinux.gz</kernel>
    <initrd>${path.join(ROOT, 'guest/initrd.gz')}</initrd>
    <cmdline>console=hvc0 quiet rdinit=/xenvirt-init</cmdline>
  </os>
  <memory>131072</memory>
  <vcpu>1</vcpu>
  <devices><console type='pty'/></devices>
</domain>
`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (ms: number) => (ms / 1000).toFixed(3);
const out = (name: string, value: string, unit: string) => process.stdout.write(`bench: ${name} ${value} ${unit}\n`);

async function gone(): Promise<void> {
  await waitFor(`${NAME} to leave xl list`, async () => !(await xlDomain(NAME)), 60_000, 200);
}

async function main(): Promise<void> {
  const rounds = process.argv.includes('--rounds') ? Number(process.argv[process.argv.indexOf('--rounds') + 1]) : Number(process.env['XENVIRT_BENCH_ROUNDS'] ?? 3);
  fs.mkdirSync(WORK, { recursive: true });
  const xmlFile = path.join(WORK, `${NAME}.xml`);
  fs.writeFileSync(xmlFile, benchXml());

  const conn = await openConnection('xen:///system');
  try {
    const dom = await conn.defineXml(benchXml()).catch(async () => conn.lookupByName(NAME));
    const backend = driverOf(conn)?.backend;
    if (!(backend instanceof XlBackend)) throw new Error('xen:///system did not open the xl backend');
    // the very config xenvirt hands to xl
    const cfg = path.join(WORK, `${NAME}.cfg`);
    fs.writeFileSync(cfg, await conn.domainXmlToNative('xen-xl', benchXml()));

    // warm the page cache (kernel, initrd, xl's libraries) once, untimed
    let r = await run(['xl', 'create', cfg]);
    if (r.code !== 0) throw new Error(`xl create ${cfg} failed: ${r.stderr}`);
    await run(['xl', 'destroy', NAME]);
    await gone();

    // the same guest through a driver that starts with one `xl create` (create=direct)
    const directConn = await openConnection(`xen:///system?create=direct&state=${encodeURIComponent(path.join(WORK, 'bench-direct-state'))}`);
    const directDom = await directConn.defineXml(benchXml()).catch(async () => directConn.lookupByName(NAME));
    const xl: number[] = [];
    const api: number[] = [];
    const direct: number[] = [];
    const cli: number[] = [];
    const phases: Array<Record<string, number>> = [];
    for (let i = 0; i < rounds; i++) {
      r = await run(['xl', 'create', cfg]);
      if (r.code !== 0) throw new Error(`xl create failed: ${r.stderr}`);
      xl.push(r.ms);
      await run(['xl', 'destroy', NAME]);
      await gone();

      const t = Date.now();
      await conn.create(dom);
      api.push(Date.now() - t);
      if (backend.lastStart) phases.push(backend.lastStart.phases);
      await conn.destroy(await conn.lookupByName(NAME));
      await gone();

      const td = Date.now();
      await directConn.create(directDom);
      direct.push(Date.now() - td);
      await directConn.destroy(await directConn.lookupByName(NAME));
      await gone();

      const c = await xenvirt(['start', NAME]);
      if (c.code !== 0) throw new Error(`xenvirt start failed: ${c.stderr}`);
      cli.push(c.ms);
      await conn.destroy(await conn.lookupByName(NAME));
      await gone();
      log(`round ${i + 1}/${rounds}: xl create ${fmt(r.ms)} s, xenvirt api ${fmt(api[i]!)} s, api create=direct ${fmt(direct[i]!)} s, xenvirt cli ${fmt(c.ms)} s`);
      await sleep(200);
    }

    // what a bare Node process costs here, to explain the CLI figure
    const nodeOnly = (await run([process.execPath, '-e', '0'])).ms;
    const imports = (await run([process.execPath, '--input-type=module', '-e', `await import(${JSON.stringify(path.join(ROOT, 'dist/src/cli/main.js'))})`])).ms;

    const mx = median(xl);
    const ma = median(api);
    const mc = median(cli);
    const md = median(direct);
    out('rounds', String(rounds), 'n');
    out('xl_create', fmt(mx), 's');
    out('xenvirt_api_start', fmt(ma), 's');
    out('xenvirt_api_start_direct', fmt(md), 's');
    out('xenvirt_cli_start', fmt(mc), 's');
    out('xenvirt_api_overhead', (((ma - mx) / mx) * 100).toFixed(1), '%');
    out('xenvirt_api_direct_overhead', (((md - mx) / mx) * 100).toFixed(1), '%');
    out('xenvirt_cli_overhead', (((mc - mx) / mx) * 100).toFixed(1), '%');
    out('node_startup', fmt(nodeOnly), 's');
    out('node_cli_module_load', fmt(imports - nodeOnly), 's');
    const keys = [...new Set(phases.flatMap((p) => Object.keys(p)))];
    for (const k of keys) out(`api_phase_${k.replace(/\W+/g, '_')}`, fmt(median(phases.map((p) => p[k] ?? 0))), 's');
    const verdict = ma <= mx * 1.05 ? 'PASS' : 'FAIL';
    out('target_api_overhead_le_5pct', verdict, '-');
    process.stdout.write(`BENCH-XEN RESULT: ${verdict} (xenvirt start through the API: ${(((ma - mx) / mx) * 100).toFixed(1)} % over xl create; ` +
      `a fresh CLI process: ${(((mc - mx) / mx) * 100).toFixed(1)} %)\n`);
    await conn.undefine(await conn.lookupByName(NAME)).catch(() => undefined);
    await directConn.undefine(await directConn.lookupByName(NAME)).catch(() => undefined);
    await directConn.close();
  } finally {
    await sh(`xl destroy ${NAME} 2>/dev/null`);
    await conn.close();
  }
}

if (process.argv.includes('--run')) {
  main().catch((e) => {
    process.stdout.write(`BENCH-XEN RESULT: FAIL (${(e as Error).stack ?? e})\n`);
    process.exit(1);
  });
}
