/** domxml-from-native / domxml-to-native: conversions that need no connection. */
import type { Command } from '../command.js';
import { readInput } from '../io.js';
import { domainFromNative, domainToNative } from '../../formats/native.js';
import { parseDomainXml } from '../../domain/parse.js';
import { formatDomainXml } from '../../domain/format.js';

const formatOption = { name: 'format', type: 'string', positional: true, required: true, help: 'source config data format: xen-xm, xen-xl or xen-sxpr' } as const;

export const domxmlFromNative: Command = {
  name: 'domxml-from-native',
  group: 'Domain',
  summary: 'Convert native config to domain XML',
  options: [
    formatOption,
    { name: 'config', type: 'string', positional: true, required: true, help: 'config data file to import from (- for stdin)' },
    { name: 'security-info', type: 'bool', help: 'include security sensitive information (graphics passwords)' },
  ],
  async run(args, io) {
    const file = args.config as string;
    const text = await readInput(file, io.stdin);
    const d = domainFromNative(args.format as string, text, file === '-' ? '<stdin>' : file);
    io.stdout.write(formatDomainXml(d, { inactive: true, secure: args['security-info'] === true }));
  },
};

export const domxmlToNative: Command = {
  name: 'domxml-to-native',
  group: 'Domain',
  summary: 'Convert domain XML to native config',
  options: [
    formatOption,
    { name: 'xml', type: 'string', positional: true, required: true, help: 'domain XML file to export from (- for stdin)' },
  ],
  async run(args, io) {
    const file = args.xml as string;
    const text = await readInput(file, io.stdin);
    const d = parseDomainXml(text, { fileName: file === '-' ? '<stdin>' : file });
    io.stdout.write(domainToNative(args.format as string, d));
  },
};
