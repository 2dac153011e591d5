/**
 * The real-Xen suite (test/xen/, also `npm run test:xen`) as part of `npm test`: Debian's Xen
 * 4.17 booted under QEMU by ../shared/xen-in-qemu, xenvirt driving `xen:///system` in its dom0,
 * every step checked against what `xl` and XenStore report (test/xen/README.md lists them).
 *
 * It needs root (building the Xen host image) and QEMU; .ci/run installs QEMU and the build's
 * tools. On a laptop without them, or with XENVIRT_SKIP_XEN=1, it skips and says so; in CI
 * (CI=true) nothing makes it skip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const HARNESS = fileURLToPath(new URL('./xen/harness.js', import.meta.url));

function missing(): string | undefined {
  if (process.env['XENVIRT_SKIP_XEN'] === '1') return 'XENVIRT_SKIP_XEN=1';
  if (process.getuid?.() !== 0) return 'building the QEMU Xen host needs root';
  if (spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { stdio: 'ignore' }).status !== 0) {
    return 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)';
  }
  return undefined;
}

test('real Xen 4.17 under QEMU: the xl backend end to end (test/xen)', { timeout: 30 * 60_000 }, async (t) => {
  const why = missing();
  if (why) {
    if (process.env['CI'] === 'true') throw new Error(`the real-Xen suite must run in CI, but ${why}`);
    console.log(`SKIP: real-Xen suite not run: ${why}`);
    t.skip(why);
    return;
  }
  const child = spawn(process.execPath, [HARNESS, '--run'], { cwd: path.resolve(path.dirname(HARNESS), '../../..'), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (chunk: Buffer, to: NodeJS.WriteStream) => {
    out += chunk.toString();
    // progress stays visible in the CI log while the suite runs
    to.write(chunk);
  };
  child.stdout.on('data', (c: Buffer) => keep(c, process.stdout));
  child.stderr.on('data', (c: Buffer) => keep(c, process.stderr));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const result = /XEN-E2E RESULT: (PASS|FAIL) \((\d+) passed, (\d+) failed, (\d+) skipped\)/.exec(out);
  assert.ok(result, 'the suite printed no XEN-E2E RESULT line');
  assert.equal(result[3], '0', `${result[3]} real-Xen steps failed`);
  assert.equal(result[4], '0', `${result[4]} real-Xen steps were skipped`);
  assert.ok(Number(result[2]) >= 20, `only ${result[2]} real-Xen steps ran`);
  assert.equal(code, 0, 'the real-Xen harness exited non-zero');
});
