/**
 * How the xl backend runs Xen's command line tools (`xl`, `xenstore-*`).
 *
 * Everything the backend asks of the toolstack goes through the `Exec` interface, so the same
 * backend code runs in dom0 against the real tools, and in tests against fake executables put
 * first on $PATH. `LocalExec` runs the tools as child processes of this one, with the sbin
 * directories added to $PATH (xl lives in /usr/sbin, which a non-login shell may not have).
 *
 * Under emulation a process start costs a large part of a second, so callers batch and cache;
 * this layer only runs, times and collects.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import path from 'node:path';

export interface ExecResult {
  /** Exit status, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time of the call, ms. */
  ms: number;
  /** The process could not be started at all (ENOENT, EACCES, ...). */
  spawnError?: NodeJS.ErrnoException;
  /** The call was killed because it ran past its timeout. */
  timedOut?: boolean;
}

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. */
  input?: string | Buffer;
  /** Kill the child (SIGKILL) after this long. */
  timeoutMs?: number;
  /** Kill the child (SIGKILL) when this aborts. */
  signal?: AbortSignal;
}

export interface SpawnOptions {
  stdio?: StdioOptions;
}

export interface Exec {
  /** Run a command to completion and collect its output. Never rejects. */
  run(argv: string[], opts?: RunOptions): Promise<ExecResult>;
  /** Start a command whose streams the caller drives (save/restore pipes, xenstore-watch). */
  spawn(argv: string[], opts?: SpawnOptions): ChildProcess;
  /** A readable one-line rendering of a command, for messages. */
  describe(argv: string[]): string;
}

export interface LocalExecOptions {
  /** Directories searched before $PATH (tests put their fake `xl` here). */
  prependPath?: string[];
  /** Extra environment for every child. */
  env?: Record<string, string>;
  /** Called after every `run` (for tracing and tests). */
  trace?: (argv: string[], r: ExecResult) => void;
}

const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Quote a word for display the way a shell user would type it. */
function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

export class LocalExec implements Exec {
  private readonly env: NodeJS.ProcessEnv;

  private readonly opts: LocalExecOptions;

  constructor(opts: LocalExecOptions = {}) {
    this.opts = opts;
    if (!opts.trace && process.env['XENVIRT_XL_TRACE']) {
      // XENVIRT_XL_TRACE=1: every toolstack call on stderr, with its time and status
      // (XENVIRT_XL_TRACE=stack adds where each call came from)
      const stacks = process.env['XENVIRT_XL_TRACE'] === 'stack';
      this.opts = {
        ...opts,
        trace: (argv, r) => process.stderr.write(`xl-trace: ${this.describe(argv)} -> ${r.code ?? r.signal} in ${r.ms} ms\n` +
          (stacks ? `${(r as { stack?: string }).stack ?? ''}\n` : '')),
      };
    }
    const current = (process.env['PATH'] ?? '/usr/bin:/bin').split(path.delimiter).filter(Boolean);
    const dirs = [...(opts.prependPath ?? []), ...current];
    for (const d of SBIN_DIRS) if (!dirs.includes(d)) dirs.push(d);
    // LC_ALL=C: xl's messages and number formats are what the parsers expect.
    this.env = { ...process.env, ...opts.env, PATH: dirs.join(path.delimiter), LC_ALL: 'C' };
  }

  describe(argv: string[]): string {
    return argv.map(shellWord).join(' ');
  }

  spawn(argv: string[], opts: SpawnOptions = {}): ChildProcess {
    const [cmd, ...args] = argv;
    return spawn(cmd!, args, { env: this.env, stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'] });
  }

  run(argv: string[], opts: RunOptions = {}): Promise<ExecResult> {
    const started = Date.now();
    const stack = process.env['XENVIRT_XL_TRACE'] === 'stack' ? new Error('called from').stack : undefined;
    return new Promise<ExecResult>((resolve) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      let settled = false;
      const child = this.spawn(argv, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      const timer = opts.timeoutMs ? setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs) : undefined;
      const onAbort = () => child.kill('SIGKILL');
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const finish = (r: Omit<ExecResult, 'ms' | 'stdout' | 'stderr'>) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        const result: ExecResult = {
          ...r,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          ms: Date.now() - started,
        };
        if (timedOut) result.timedOut = true;
        this.opts.trace?.(argv, stack ? Object.assign({ stack }, result) : result);
        resolve(result);
      };
      child.stdout?.on('data', (b: Buffer) => out.push(b));
      child.stderr?.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e: NodeJS.ErrnoException) => finish({ code: null, signal: null, spawnError: e }));
      child.on('close', (code, signal) => finish({ code, signal }));
      if (opts.input !== undefined && child.stdin) {
        child.stdin.on('error', () => { /* the child may exit without reading: its status says why */ });
        child.stdin.end(opts.input);
      }
    });
  }
}
