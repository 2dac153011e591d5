/**
 * Plumbing for the CLI tests: the real `bin/xenvirt` as a child process, the same commands
 * in-process through runCommand with captured streams, persistent test hosts in temporary
 * directories, and the seed's four example domains made unique. No side effects on import.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { runCommand } from '../../src/cli/main.js';
import { closeSession } from '../../src/cli/commands/util.js';
import type { CommandIo } from '../../src/cli/command.js';
import { REPO_ROOT, SEED_DIR } from '../support.js';

export const BIN = join(REPO_ROOT, 'bin', 'xenvirt');

export interface Result { code: number; stdout: string; stderr: string }

/** Run the real binary; resolves when it exits. */
export function xenvirt(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...opts.env }, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/** A long-running binary (event --loop) whose output can be watched while it runs. */
export interface Background { child: ChildProcess; output(): string; waitFor(re: RegExp, ms: number): Promise<string>; done: Promise<Result> }

export function xenvirtBackground(args: string[]): Background {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; waiters.splice(0).forEach((w) => w()); });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const done = new Promise<Result>((resolve) => child.on('close', (code) => {
    waiters.splice(0).forEach((w) => w());
    resolve({ code: code ?? -1, stdout, stderr });
  }));
  let exited = false;
  void done.then(() => { exited = true; });
  return {
    child,
    output: () => stdout,
    done,
    waitFor(re, ms) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in: ${stdout}${stderr}`)), ms);
        const check = () => {
          if (re.test(stdout)) { clearTimeout(timer); resolve(stdout); return; }
          if (exited) { clearTimeout(timer); reject(new Error(`exited before ${re}: ${stdout}${stderr}`)); return; }
          waiters.push(check);
        };
        check();
      });
    },
  };
}

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    cb();
  }
}

/** Output options of one in-process run. */
export interface RunOptions { input?: string; json?: boolean; tty?: boolean; quiet?: boolean }

/**
 * An in-process CLI session: every run() shares one CommandIo, hence one connection, as the
 * interactive shell does. close() ends the connection.
 */
export class Session {
  private io: CommandIo | undefined;
  constructor(readonly uri: string) {}

  async run(argv: string[], opts: RunOptions = {}): Promise<Result> {
    const stdout = new Capture();
    const stderr = new Capture();
    // The connection is cached per io object, so keep one and swap its streams and options.
    this.io ??= { stdout, stderr, stdin: Readable.from([]), uri: this.uri, json: false, tty: false };
    Object.assign(this.io, {
      stdout, stderr, stdin: Readable.from(opts.input === undefined ? [] : [opts.input]),
      json: opts.json ?? false, tty: opts.tty ?? false, quiet: opts.quiet ?? false,
    });
    const code = await runCommand(argv, this.io);
    return { code, stdout: stdout.text, stderr: stderr.text };
  }

  async close(): Promise<void> {
    if (this.io) await closeSession(this.io);
  }
}

/** A fresh persistent simulated host: `test:///TMPDIR`, removed by cleanup(). */
export function tempHost(prefix = 'xenvirt-cli-'): { dir: string; uri: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, uri: `test://${dir}`, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface SeedDomain { kind: string; name: string; uuid: string; file: string; xml: string }

/**
 * The seed's four examples with names and UUIDs made unique (the seed reuses `fv0`, `fc8` and
 * one UUID), written to `dir`, in the order `list` sorts them.
 */
export function seedDomains(dir: string): SeedDomain[] {
  const kinds: Array<[string, string, string]> = [
    ['pv-bootloader', 'fc8-bootloader', '8f07fe28-753f-2729-d76d-bdbd892f0001'],
    ['pv-direct-kernel', 'fc8-kernel', '8f07fe28-753f-2729-d76d-bdbd892f0002'],
    ['hvm-bios', 'fv0-bios', '4dea22b3-1d52-d8f3-2516-782e98ab0003'],
    ['hvm-direct-kernel', 'fv0-kernel', '4dea22b3-1d52-d8f3-2516-782e98ab0004'],
  ];
  return kinds.map(([kind, name, uuid]) => {
    let xml = readFileSync(join(SEED_DIR, `${kind}.xml`), 'utf8');
    xml = xml.replace(/<name>[^<]*<\/name>/, `<name>${name}</name>`);
    xml = /<uuid>/.test(xml)
      ? xml.replace(/<uuid>[^<]*<\/uuid>/, `<uuid>${uuid}</uuid>`)
      : xml.replace(/(<name>[^<]*<\/name>)/, `$1\n  <uuid>${uuid}</uuid>`);
    const file = join(dir, `${name}.xml`);
    writeFileSync(file, xml);
    return { kind, name, uuid, file, xml };
  });
}

/** A small PV guest with the given name/uuid, for tests that need a domain of their own. */
export function smallDomainXml(name: string, uuid: string, memKiB = 262144, maxMemKiB = memKiB, vcpus = 2): string {
  return `<domain type='xen'>
  <name>${name}</name>
  <uuid>${uuid}</uuid>
  <memory unit='KiB'>${maxMemKiB}</memory>
  <currentMemory unit='KiB'>${memKiB}</currentMemory>
  <vcpu placement='static'>${vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='xenpv'>linux</type>
    <kernel>/boot/vmlinuz</kernel>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/xen/images/${name}.img'/>
      <target dev='xvda' bus='xen'/>
    </disk>
  </devices>
</domain>
`;
}

/** Parse virsh's `list` table into rows of [id, name, state]. */
export function parseListTable(text: string): string[][] {
  const lines = text.split('\n').filter((l) => l !== '');
  return lines.slice(2).map((l) => l.trim().split(/\s{2,}/));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll until `check` passes (it throws until then), for asynchronous shutdowns. */
export async function eventually<T>(check: () => Promise<T>, ms = 5000, every = 50): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(every);
    }
  }
}

/** A command that must succeed silently on stderr; returns its stdout. */
export function ok(r: Result, what: string): string {
  assert.equal(r.stderr, '', `${what}: ${r.stderr}`);
  assert.equal(r.code, 0, what);
  return r.stdout;
}

/** A command that must fail with exit 1 and exactly these stderr lines. */
export function fails(r: Result, what: string, ...stderr: Array<string | RegExp>): void {
  assert.equal(r.code, 1, `${what}: expected failure, got ${r.stdout}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, stderr.length, `${what}: ${r.stderr}`);
  stderr.forEach((want, i) => {
    if (typeof want === 'string') assert.equal(lines[i], want, what);
    else assert.match(lines[i]!, want, what);
  });
}
