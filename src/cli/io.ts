import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { VirtError } from '../errors.js';

/** Read a whole input file; `-` is standard input, as virsh's FILE arguments allow. */
export async function readInput(file: string, stdin: Readable): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new VirtError('READ_FAILED', `Failed to open file '${file}': ${err.code === 'ENOENT' ? 'No such file or directory' : err.message}`);
  }
}
