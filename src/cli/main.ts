/**
 * `xenvirt [OPTIONS] COMMAND [ARGS]`: virsh's command line. Errors print as virsh prints
 * them (`error: …`) with exit status 1; with no command, an interactive shell starts.
 */
import { createInterface } from 'node:readline';
import { VirtError } from '../errors.js';
import { parseArgs, type Command, type CommandIo } from './command.js';
import { COMMANDS } from './commands/index.js';
import { closeSession } from './commands/util.js';

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases?.includes(name));
}

function usage(): string {
  const lines = ['Usage: xenvirt [-c URI] [-r] [-q] [--json] COMMAND [ARGS...]', '', 'Commands:'];
  for (const c of COMMANDS) lines.push(`    ${c.name.padEnd(24)}${c.summary}`);
  lines.push('', "Run 'xenvirt help COMMAND' for a command's options.");
  return lines.join('\n') + '\n';
}

function commandHelp(c: Command): string {
  const synopsis = c.options.map((o) => {
    const v = o.type === 'bool' ? `--${o.name}` : o.positional ? `<${o.name}>` : `--${o.name} <${o.type}>`;
    return o.required ? v : `[${v}]`;
  });
  const lines = ['  NAME', `    ${c.name} - ${c.summary}`, '', '  SYNOPSIS', `    ${[c.name, ...synopsis].join(' ')}`];
  if (c.options.length) {
    lines.push('', '  OPTIONS');
    for (const o of c.options) lines.push(`    ${(o.type === 'bool' ? `--${o.name}` : `[--${o.name}] <${o.type}>`).padEnd(28)}${o.help}`);
  }
  return lines.join('\n') + '\n\n';
}

export function errorMessage(e: unknown): string {
  if (e instanceof VirtError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Run one command line; returns the exit status. */
export async function runCommand(argv: string[], io: CommandIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) return 0;
  if (name === 'help') {
    const c = rest[0] ? findCommand(rest[0]) : undefined;
    if (rest[0] && !c) { io.stderr.write(`error: command '${rest[0]}' doesn't exist\n`); return 1; }
    io.stdout.write(c ? commandHelp(c) : usage());
    return 0;
  }
  const cmd = findCommand(name);
  if (!cmd) {
    io.stderr.write(`error: unknown command: '${name}'\n`);
    return 1;
  }
  try {
    const status = await cmd.run(parseArgs(cmd, rest), io);
    return typeof status === 'number' ? status : 0;
  } catch (e) {
    io.stderr.write(`error: ${errorMessage(e)}\n`);
    return 1;
  }
}

/** Split a shell line into words, honouring quotes and backslashes as virsh's shell does. */
export function splitLine(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") { quote = ch; inWord = true; }
    else if (ch === '\\' && i + 1 < line.length) { cur += line[++i]; inWord = true; }
    else if (/\s/.test(ch)) { if (inWord) { words.push(cur); cur = ''; inWord = false; } }
    else { cur += ch; inWord = true; }
  }
  if (quote) throw new VirtError('INVALID_ARG', 'dangling quote');
  if (inWord) words.push(cur);
  return words;
}

async function shell(io: CommandIo): Promise<number> {
  const rl = createInterface({ input: io.stdin, output: io.stdout, terminal: io.tty });
  const prompt = () => { if (io.tty) io.stdout.write('xenvirt # '); };
  if (io.tty) io.stdout.write("Welcome to xenvirt, the Xen virtualization interactive terminal.\n\nType:  'help' for help with commands\n       'quit' to quit\n\n");
  prompt();
  let status = 0;
  for await (const line of rl) {
    let words: string[];
    try { words = splitLine(line); } catch (e) { io.stderr.write(`error: ${errorMessage(e)}\n`); prompt(); continue; }
    if (words[0] === 'quit' || words[0] === 'exit') break;
    if (words.length) status = await runCommand(words, io);
    prompt();
  }
  rl.close();
  return status;
}

export async function main(argv: string[]): Promise<number> {
  let uri: string | undefined;
  let json = false;
  let quiet = false;
  let readonly = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-c' || a === '--connect') {
      uri = argv[++i];
      if (uri === undefined) { process.stderr.write('error: option -c requires a URI\n'); return 1; }
    } else if (a.startsWith('--connect=')) uri = a.slice(10);
    else if (a === '--json') json = true;
    else if (a === '-q' || a === '--quiet') quiet = true;
    else if (a === '-r' || a === '--readonly') readonly = true;
    else if (a === '-h' || a === '--help') { process.stdout.write(usage()); return 0; }
    else if (a === '-v' || a === '--version') { process.stdout.write(`${await packageVersion()}\n`); return 0; }
    else if (a.startsWith('-') && a !== '-') { process.stderr.write(`error: unsupported option '${a}'. See --help.\n`); return 1; }
    else break;
  }
  const io: CommandIo = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, uri, json, quiet, readonly, tty: Boolean(process.stdout.isTTY) };
  const rest = argv.slice(i);
  // `--json` may also follow the command name, as users type it.
  const jsonAt = rest.indexOf('--json');
  if (jsonAt > 0 && !findCommand(rest[0]!)?.options.some((o) => o.name === 'json')) { io.json = true; rest.splice(jsonAt, 1); }
  try {
    return rest.length === 0 ? await shell(io) : await runCommand(rest, io);
  } finally {
    await closeSession(io);
  }
}

async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
