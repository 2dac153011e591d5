/**
 * Helpers for the parts of the real-Xen tests that run inside dom0: running commands, the
 * xenvirt CLI and xl, waiting for conditions, and a small step runner that prints a PASS/FAIL
 * line per step and a summary at the end.
 *
 * These modules live under test/ but are no `node --test` files: they only act when run with
 * `--run` (node --test runs every file under a test/ directory without arguments).
 */
import { spawn, type ChildProcess } from 'node:child_process';
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

/**
 * One `xenvirt -c xen:///system` interactive session (virsh's shell): many commands, one
 * process. Under emulation a Node start costs seconds, so most steps go through here. Each
 * command is followed by `uri` (a known line on stdout) and `help MARK` (a known error on
 * stderr), which delimit its output on both streams; an `error:` line means it failed.
 */
export class XenvirtShell {
  private readonly child: ChildProcess;
  private out = '';
  private err = '';
  private n = 0;
  private waiters: Array<() => void> = [];
  private exited = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor() {
    this.child = spawn(process.execPath, [path.join(ROOT, 'bin/xenvirt'), '-c', URI], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (s: string) => { this.out += s; this.wake(); });
    this.child.stderr!.on('data', (s: string) => { this.err += s; this.wake(); });
    this.child.on('close', () => { this.exited = true; this.wake(); });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Run one command; resolves with its own stdout/stderr and 0/1 as status. */
  cmd(args: string[], timeoutMs = 300_000): Promise<Result> {
    const next = this.queue.then(() => this.exec(args, timeoutMs));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async exec(args: string[], timeoutMs: number): Promise<Result> {
    const id = ++this.n;
    const started = Date.now();
    const mark = `__xenvirt_test_mark_${id}__`;
    const errMark = `error: command '${mark}' doesn't exist\n`;
    const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a}'`);
    this.child.stdin!.write(`${args.map(quote).join(' ')}\nuri\nhelp ${mark}\n`);
    const outMark = `${URI}\n`;
    const findOut = () => (this.out.startsWith(outMark) ? 0 : (() => { const i = this.out.indexOf(`\n${outMark}`); return i < 0 ? -1 : i + 1; })());
    const end = Date.now() + timeoutMs;
    while (findOut() < 0 || !this.err.includes(errMark)) {
      if (this.exited) throw new Error(`the xenvirt shell exited during: ${args.join(' ')}`);
      if (Date.now() > end) throw new Error(`xenvirt ${args.join(' ')} did not finish in ${timeoutMs / 1000} s`);
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 1000); });
    }
    const o = findOut();
    const stdout = this.out.slice(0, o);
    this.out = this.out.slice(o + outMark.length);
    const e = this.err.indexOf(errMark);
    const stderr = this.err.slice(0, e);
    this.err = this.err.slice(e + errMark.length);
    return { code: /^error: /m.test(stderr) ? 1 : 0, stdout, stderr, ms: Date.now() - started };
  }

  close(): void {
    this.child.stdin!.end('quit\n');
  }
}

let shared: XenvirtShell | undefined;
/** The suite's shell session, started on first use. */
export function shell(): XenvirtShell {
  shared ??= new XenvirtShell();
  return shared;
}
export function closeShell(): void {
  shared?.close();
  shared = undefined;
}

/**
 * A xenvirt command in the shared session (or, with `process: true`, as a process of its
 * own); a failure names the command and what xenvirt said.
 */
export async function xv(args: string[], opts: { timeoutMs?: number; process?: boolean } = {}): Promise<string> {
  const r = opts.process ? await xenvirt(args, opts) : await shell().cmd(args, opts.timeoutMs);
  if (r.code !== 0) throw new Error(`xenvirt ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
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

/** `xl info` as key -> value. */
export async function xlInfo(): Promise<Map<string, string>> {
  return new Map((await run(['xl', 'info'])).stdout.split('\n').map((l) => l.split(/\s*:\s*/, 2) as [string, string]));
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
