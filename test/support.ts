/** Shared test plumbing: where the team's shared files are, and external tools. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** Repository root (tests run from dist/test/). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SHARED_DIR = process.env.XENVIRT_SHARED ?? join(REPO_ROOT, '..', 'shared');
export const CONFORMANCE_DIR = join(SHARED_DIR, 'conformance');
export const SEED_DIR = join(SHARED_DIR, 'seed');
export const DOMAIN_RNG = '/usr/share/libvirt/schemas/domain.rng';

export function haveTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/**
 * A test that needs an external tool skips visibly on a laptop, and fails in CI, where a
 * missing tool means the pipeline's install step is broken.
 */
export function requireTool(t: TestContext, name: string): boolean {
  if (haveTool(name)) return true;
  if (process.env.CI === 'true') throw new Error(`${name} is required in CI but is not installed`);
  console.log(`SKIP: ${name} is not installed; install it to run this test`);
  t.skip(`${name} not installed`);
  return false;
}

/** Validate files against libvirt's domain schema; returns one line per failing file. */
export function xmllintValidate(files: string[]): string[] {
  const failures: string[] = [];
  for (let i = 0; i < files.length; i += 200) {
    const batch = files.slice(i, i + 200);
    const r = spawnSync('xmllint', ['--noout', '--relaxng', DOMAIN_RNG, ...batch], { encoding: 'utf8' });
    if (r.status !== 0) {
      for (const line of r.stderr.split('\n')) if (line && !line.endsWith(' validates')) failures.push(line);
    }
  }
  return failures;
}
