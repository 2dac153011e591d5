/**
 * The save image header libvirt's libxl driver writes before libxenlight's own stream:
 * a 16-byte magic, a version, the length of the domain XML (with its NUL), ten unused words,
 * then the XML. We add the desired state at restore in the first unused word.
 */
import fs from 'node:fs';
import { internalError, invalidArg, opFailed, systemError } from './errors.js';

export const SAVE_MAGIC = Buffer.from('libvirt-xml\n \0 \r', 'latin1');
export const SAVE_VERSION = 2;
const HEADER_SIZE = 16 + 4 + 4 + 40;

/** What a restored domain should do: 0 as saved, 1 running, 2 paused (VIR_DOMAIN_SAVE_RUNNING/PAUSED). */
export type SavedRunState = 0 | 1 | 2;

export function writeSaveHeader(fd: number, xml: string, runState: SavedRunState = 0): void {
  const body = Buffer.from(xml + '\0', 'utf8');
  const hdr = Buffer.alloc(HEADER_SIZE);
  SAVE_MAGIC.copy(hdr, 0);
  hdr.writeUInt32LE(SAVE_VERSION, 16);
  hdr.writeUInt32LE(body.length, 20);
  hdr.writeUInt32LE(runState, 24);
  fs.writeSync(fd, hdr);
  fs.writeSync(fd, body);
}

export interface SaveHeader { version: number; xml: string; runState: SavedRunState }

/** Read the header and XML, leaving fd positioned at the backend's image. */
export function readSaveHeader(fd: number, file: string): SaveHeader {
  const hdr = Buffer.alloc(HEADER_SIZE);
  let n: number;
  try {
    n = fs.readSync(fd, hdr, 0, HEADER_SIZE, null);
  } catch (e) {
    throw systemError(`Failed to read domain image file '${file}'`, e);
  }
  if (n !== HEADER_SIZE) throw opFailed('failed to read libxl header');
  if (!hdr.subarray(0, 16).equals(SAVE_MAGIC)) throw invalidArg('image magic is incorrect');
  const version = hdr.readUInt32LE(16);
  if (version > SAVE_VERSION) throw opFailed(`image version is not supported (${version} > ${SAVE_VERSION})`);
  const xmlLen = hdr.readUInt32LE(20);
  if (xmlLen <= 0 || xmlLen > 64 * 1024 * 1024) throw opFailed(`invalid XML length: ${xmlLen}`);
  const body = Buffer.alloc(xmlLen);
  if (fs.readSync(fd, body, 0, xmlLen, null) !== xmlLen) throw opFailed('failed to read XML');
  const end = body.indexOf(0);
  const xml = body.toString('utf8', 0, end < 0 ? xmlLen : end);
  const rs = hdr.readUInt32LE(24);
  if (rs > 2) throw internalError(`save image '${file}' asks for unknown run state ${rs}`);
  return { version, xml, runState: rs as SavedRunState };
}
