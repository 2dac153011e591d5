/** Every CLI command, in the order `help` lists them. */
import type { Command } from '../command.js';
import { domxmlFromNative, domxmlToNative } from './domxml.js';

export const COMMANDS: Command[] = [
  domxmlFromNative,
  domxmlToNative,
];
