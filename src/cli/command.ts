/**
 * virsh-style command definitions: each command declares its options once, and the same
 * declaration drives argument parsing, `help COMMAND` and the interactive shell.
 */
import type { Readable, Writable } from 'node:stream';
import { VirtError } from '../errors.js';

export interface OptionSpec {
  name: string;
  type: 'bool' | 'string' | 'number';
  /** May be given without `--name`, filling positional slots in declaration order. */
  positional?: boolean;
  required?: boolean;
  help: string;
}

export type ArgValues = Record<string, string | number | boolean | undefined>;

export interface CommandIo {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  /** Connection URI from -c / --connect, else undefined (the default applies). */
  uri?: string;
  /** Print machine-readable JSON instead of virsh's table layout. */
  json: boolean;
  /** True when stdout is a terminal (progress display). */
  tty: boolean;
  /** `-q`: drop virsh's informational lines (vshPrintExtra) and table headers. */
  quiet?: boolean;
  /** -r / --readonly: open the connection read-only. */
  readonly?: boolean;
}

export interface Command {
  name: string;
  aliases?: string[];
  group: string;
  summary: string;
  options: OptionSpec[];
  run(args: ArgValues, io: CommandIo): Promise<number | void>;
}

export function parseArgs(cmd: Command, argv: string[]): ArgValues {
  const out: ArgValues = {};
  const positional = cmd.options.filter((o) => o.positional);
  let nextPos = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      const spec = cmd.options.find((o) => o.name === name);
      if (!spec) throw new VirtError('INVALID_ARG', `command '${cmd.name}' doesn't support option --${name}`);
      if (spec.type === 'bool') {
        if (eq > 0) throw new VirtError('INVALID_ARG', `option --${name} takes no value`);
        out[name] = true;
        continue;
      }
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new VirtError('INVALID_ARG', `option --${name} requires an argument`);
      out[name] = convert(spec, v);
      if (spec.positional) positional.splice(positional.indexOf(spec), 1);
      continue;
    }
    // Unfilled positional slots take bare words in order.
    while (nextPos < positional.length && out[positional[nextPos]!.name] !== undefined) nextPos++;
    const spec = positional[nextPos];
    if (!spec) throw new VirtError('INVALID_ARG', `unexpected data '${a}'`);
    out[spec.name] = convert(spec, a);
    nextPos++;
  }
  for (const o of cmd.options) {
    if (o.required && out[o.name] === undefined) {
      throw new VirtError('INVALID_ARG', `command '${cmd.name}' requires <${o.name}> option`);
    }
  }
  return out;
}

function convert(spec: OptionSpec, v: string): string | number {
  if (spec.type === 'string') return v;
  if (!/^-?\d+$/.test(v)) throw new VirtError('INVALID_ARG', `Numeric value '${v}' for <${spec.name}> option is malformed or out of range`);
  return Number(v);
}
