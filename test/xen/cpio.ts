/**
 * A minimal cpio "newc" writer: enough to build the small extra initramfs the Xen tests append
 * to the harness's guest initrd (Linux unpacks concatenated archives in order).
 */
import { gunzipSync, gzipSync } from 'node:zlib';

export interface CpioEntry {
  name: string;
  /** file contents; undefined for a directory */
  data?: Buffer;
  /** permission bits, e.g. 0o755 */
  mode?: number;
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');
const pad4 = (n: number) => (4 - (n % 4)) % 4;

function record(ino: number, name: string, mode: number, data: Buffer): Buffer {
  const nameBuf = Buffer.from(`${name}\0`);
  const fields = [ino, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBuf.length, 0];
  const head = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
  return Buffer.concat([
    head, nameBuf, Buffer.alloc(pad4(head.length + nameBuf.length)),
    data, Buffer.alloc(pad4(data.length)),
  ]);
}

/** The uncompressed archive (4-byte aligned, so archives can be concatenated). */
export function cpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const isDir = e.data === undefined;
    const mode = (isDir ? 0o040000 : 0o100000) | (e.mode ?? (isDir ? 0o755 : 0o644));
    parts.push(record(ino++, e.name.replace(/^\/+/, ''), mode, e.data ?? Buffer.alloc(0)));
  }
  parts.push(record(0, 'TRAILER!!!', 0, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/**
 * `base` (a gzip'd initramfs) with `extra` appended inside the same gzip stream: one member,
 * which libxc can inflate (it reports two concatenated members as an error, though Linux
 * copes), while Linux unpacks the concatenated archives in order.
 */
export function appendToInitrd(base: Buffer, extra: CpioEntry[]): Buffer {
  const raw = gunzipSync(base);
  const aligned = Buffer.concat([raw, Buffer.alloc((4 - (raw.length % 4)) % 4)]);
  return gzipSync(Buffer.concat([aligned, cpio(extra)]), { level: 6 });
}
