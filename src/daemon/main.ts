/**
 * The `xenvirtd` command: parse the command line and the config file, start the daemon,
 * print a `ready` line once it accepts connections, stop cleanly on SIGTERM / SIGINT.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { VirtError } from '../errors.js';
import { loadConfigFile, resolveConfig, type ConfigOverrides, type DaemonConfig } from './config.js';
import { XenvirtDaemon } from './server.js';
import { isXenControlDomain } from '../driver/open.js';

/** bin/xenvirt of this checkout (dist/src/daemon/main.js -> bin/xenvirt). */
const XENVIRT_BIN = fileURLToPath(new URL('../../../bin/xenvirt', import.meta.url));

const USAGE = `usage: xenvirtd [options]

libvirt's remote protocol daemon for xenvirt: real virsh, python3-libvirt and xenvirt
itself manage the simulated Xen host (test:///default) and, on a Xen control domain,
Xen (xen:///system) through it.

options:
  --socket PATH       read-write socket (the read-only one is PATH-ro)
  --ro-socket PATH    read-only socket ('' for none)
  --state-dir DIR     keep state in DIR (the simulated host survives restarts);
                      without it the simulated host lives in memory
  --config FILE       settings in libvirtd.conf syntax (see src/daemon/config.ts)
  --default-uri URI   what a client opening "" gets
  -v, --verbose       log client errors to stderr
  -h, --help          this text
`;

export interface MainIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const defaultIo: MainIo = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
};

/** Parse argv into config layers; returns undefined after printing help. */
export function parseCommandLine(argv: string[], io: MainIo = defaultIo): { config: DaemonConfig; verbose: boolean } | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        socket: { type: 'string' },
        'ro-socket': { type: 'string' },
        'state-dir': { type: 'string' },
        config: { type: 'string' },
        'default-uri': { type: 'string' },
        verbose: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (e) {
    throw new VirtError('INVALID_ARG', `${(e as Error).message}\n${USAGE}`);
  }
  const v = parsed.values;
  if (v.help) {
    io.stdout(USAGE);
    return undefined;
  }
  const file: ConfigOverrides = v.config ? loadConfigFile(v.config) : {};
  const cli: ConfigOverrides = {};
  if (v.socket !== undefined) cli.socketPath = path.resolve(v.socket);
  if (v['ro-socket'] !== undefined) cli.socketRoPath = v['ro-socket'] === '' ? '' : path.resolve(v['ro-socket']);
  if (v['state-dir'] !== undefined) cli.stateDir = path.resolve(v['state-dir']);
  if (v['default-uri'] !== undefined) cli.defaultUri = v['default-uri'];
  return { config: resolveConfig(file, cli), verbose: v.verbose === true };
}

/** How to reach the daemon: printed after `ready`. */
export function reachText(c: DaemonConfig): string {
  const q = (uri: string) => `'${uri}'`;
  const rw = `test+unix:///default?socket=${c.socketPath}`;
  const lines = [
    `  read-write socket: ${c.socketPath}`,
    c.socketRoPath ? `  read-only socket:  ${c.socketRoPath}` : '  read-only socket:  (none)',
    `  state:             ${c.stateDir ? path.join(c.stateDir, 'test-default') : 'in memory (use --state-dir DIR to keep it)'}`,
    '',
    `  with xenvirt:  ${XENVIRT_BIN} -c ${q(rw)} list --all`,
    '  with virsh:    virsh -c ' + q(rw) + ' list --all',
  ];
  if (c.socketRoPath) lines.push('  read-only:     virsh -r -c ' + q(`test+unix:///default?socket=${c.socketRoPath}`) + ' list --all');
  lines.push('  python:        libvirt.open(' + q(rw) + ')', '', '  stop with Ctrl-C or SIGTERM', '');
  return lines.join('\n');
}

/** Run the daemon until a signal; resolves with the exit code. */
export async function main(argv: string[], io: MainIo = defaultIo): Promise<number> {
  let opts;
  try {
    opts = parseCommandLine(argv, io);
  } catch (e) {
    io.stderr(`xenvirtd: ${(e as Error).message}\n`);
    return 2;
  }
  if (!opts) return 0;
  const { config, verbose } = opts;
  let daemon: XenvirtDaemon;
  try {
    daemon = await XenvirtDaemon.start(config, { log: verbose ? (m) => io.stderr(`xenvirtd: ${m}\n`) : undefined });
  } catch (e) {
    io.stderr(`xenvirtd: cannot start: ${(e as Error).message}\n`);
    return 1;
  }
  const xen = isXenControlDomain() ? ' and xen:///system' : '';
  io.stdout(`xenvirtd: ready, serving test:///default (a simulated Xen host)${xen} on ${config.socketPath}\n${reachText(config)}`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) {
        io.stderr(`xenvirtd: ${sig} again, exiting now\n`);
        resolve(1);
        return;
      }
      stopping = true;
      io.stderr(`xenvirtd: ${sig}, shutting down\n`);
      daemon.stop().then(
        () => { io.stderr('xenvirtd: stopped\n'); resolve(0); },
        (e: Error) => { io.stderr(`xenvirtd: error while stopping: ${e.message}\n`); resolve(1); },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    // Tests and benchmarks run the daemon with XENVIRTD_STOP_ON_STDIN_EOF=1 and a pipe on
    // stdin: if they die without stopping it, the pipe closes and the daemon stops too.
    if (process.env['XENVIRTD_STOP_ON_STDIN_EOF'] === '1') {
      process.stdin.on('end', () => stop('end of stdin')).on('error', () => stop('end of stdin')).resume();
    }
    process.on('SIGINT', () => stop('SIGINT'));
    // libvirtd reloads its drivers on SIGHUP; xenvirtd has nothing to reload.
    process.on('SIGHUP', () => {});
  });
}
