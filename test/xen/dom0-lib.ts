/**
 * Helpers for the parts of the real-Xen tests that run inside dom0: running commands, the
 * xenvirt CLI and xl, waiting for conditions, and a small step runner that prints a PASS/FAIL
 * line per step and a summary at the end.
 *
 * These modules live under test/ but are no `node --test` files: they only act when run with
 * `--run` (node --test runs every file under a test/ directory without arguments).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseXlList, type XlListEntry } from '../../src/hypervisor/xl/parse.js';

/** The project root as installed in dom0 (…/dist/test/xen/ -> …/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const URI = 'xen:///system';

export interface Result { code: number | null; stdout: string; stderr: string; ms: number }

const T0 = Date.now();
export const elapsed = () => ((Date.now() - T0) / 1000).toFixed(1).padStart(6);
export const log = (s: string) => process.stdout.write(`[${elapsed()}s] ${s}\n`);

/** Run argv (no shell) and collect its output. */
export function run(argv: string[], opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Result> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 180_000);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => err.push(Buffer.from(String(e))));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: Date.now() - started });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

export const sh = (script: string, opts: { timeoutMs?: number } = {}) => run(['bash', '-c', script], opts);

/** `xenvirt -c xen:///system ARGS…` through the installed CLI, as a user runs it. */
export function xenvirt(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<Result> {
  return run([process.execPath, path.join(ROOT, 'bin/xenvirt'), '-c', URI, ...args], opts);
}

/** Like xenvirt(), but a non-zero status is a failure naming the command and its stderr. */
export async function xv(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  const r = await xenvirt(args, opts);
  if (r.code !== 0) throw new Error(`xenvirt ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** `xl list -v` as records. */
export async function xlList(): Promise<XlListEntry[]> {
  const r = await run(['xl', 'list', '-v']);
  if (r.code !== 0) throw new Error(`xl list -v failed: ${r.stderr}`);
  return parseXlList(r.stdout);
}

export async function xlDomain(name: string): Promise<XlListEntry | undefined> {
  return (await xlList()).find((e) => e.name === name);
}

export async function xenstoreRead(p: string): Promise<string | undefined> {
  const r = await run(['xenstore-read', p]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll until fn returns a truthy value; fail naming `what` after timeoutMs. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 90_000, everyMs = 500): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}

export function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

export function eq<T>(actual: T, expected: T, what: string): void {
  if (actual !== expected) throw new Error(`${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}

/** The guest's console log as xenconsoled writes it. */
export function consoleLog(name: string): string {
  try {
    return fs.readFileSync(`/var/log/xen/console/guest-${name}.log`, 'utf8');
  } catch {
    return '';
  }
}

/** Type a line on the guest's console (its pty), as `xl console` would. */
export async function consoleSend(domid: number, line: string): Promise<void> {
  const tty = await xenstoreRead(`/local/domain/${domid}/console/tty`);
  check(tty, `domain ${domid} has no console tty in xenstore`);
  fs.writeFileSync(tty, `${line}\n`);
}

/** `xenvirt dominfo` as key -> value. */
export function parseDominfo(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return m;
}

type StepState = 'PASS' | 'FAIL' | 'SKIP';

/** Steps grouped by shape: a failed step skips the rest of its group. */
export class Suite {
  readonly results: Array<{ group: string; name: string; state: StepState; ms: number; detail?: string }> = [];
  private failedGroups = new Set<string>();

  async step(group: string, name: string, fn: () => Promise<string | void>): Promise<boolean> {
    const label = `${group}: ${name}`;
    if (this.failedGroups.has(group)) {
      this.results.push({ group, name, state: 'SKIP', ms: 0 });
      log(`SKIP  ${label}`);
      return false;
    }
    const t = Date.now();
    try {
      const note = await fn();
      const ms = Date.now() - t;
      this.results.push({ group, name, state: 'PASS', ms, ...(note ? { detail: note } : {}) });
      log(`PASS  ${label} (${(ms / 1000).toFixed(1)} s)${note ? ` — ${note}` : ''}`);
      return true;
    } catch (e) {
      const ms = Date.now() - t;
      const detail = (e as Error).message;
      this.results.push({ group, name, state: 'FAIL', ms, detail });
      this.failedGroups.add(group);
      log(`FAIL  ${label} (${(ms / 1000).toFixed(1)} s)\n        ${detail.split('\n').join('\n        ')}`);
      return false;
    }
  }

  get failed(): number { return this.results.filter((r) => r.state === 'FAIL').length; }

  summary(): string {
    const n = (s: StepState) => this.results.filter((r) => r.state === s).length;
    const lines = ['', '==== xen e2e summary ===='];
    for (const r of this.results) lines.push(`${r.state.padEnd(4)}  ${r.group}: ${r.name}${r.state === 'FAIL' ? `\n        ${r.detail}` : ''}`);
    lines.push(`XEN-E2E RESULT: ${this.failed ? 'FAIL' : 'PASS'} (${n('PASS')} passed, ${n('FAIL')} failed, ${n('SKIP')} skipped) in ${elapsed().trim()} s`);
    return lines.join('\n') + '\n';
  }
}
