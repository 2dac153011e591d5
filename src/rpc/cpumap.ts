/**
 * libvirt's wire forms for CPU affinity and scheduler parameters: cpumaps are bitmaps of
 * `maplen` bytes per vcpu, CPU n at bit n % 8 of byte n / 8 (VIR_CPU_USABLE); Xen's scheduler
 * parameters travel as unsigned-int typed parameters.
 */
import type { RemoteTypedParam } from './generated/remote-types.js';
import { VirtError, ErrorDomain } from '../errors.js';

/** VIR_CPU_MAPLEN */
export const cpuMapLen = (cpus: number) => Math.ceil(cpus / 8);

/** The CPUs set in one map (map `index` of a packed array of `maplen`-byte maps). */
export function cpusFromMap(maps: Buffer, maplen: number, index = 0): number[] {
  const out: number[] = [];
  const base = index * maplen;
  for (let b = 0; b < maplen && base + b < maps.length; b++) {
    const byte = maps[base + b]!;
    for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) out.push(b * 8 + bit);
  }
  return out;
}

/**
 * Packs one map per entry, each `maplen` bytes, in room for `count` maps (the rest zeros: what
 * a caller asked for beyond the entries); CPUs beyond the map are left out, as libvirt does.
 */
export function mapsFromCpus(sets: readonly (readonly number[])[], maplen: number, count = sets.length): Buffer {
  const buf = Buffer.alloc(Math.max(count, sets.length) * maplen);
  sets.forEach((cpus, i) => {
    for (const c of cpus) if (c >= 0 && c < maplen * 8) buf[i * maplen + (c >> 3)]! |= 1 << (c & 7);
  });
  return buf;
}

const UINT = 2;

export function typedParamsFromRecord(params: Record<string, number>): RemoteTypedParam[] {
  return Object.entries(params).map(([field, ui]) => ({ field, value: { type: UINT, ui } }));
}

/** Scheduler parameters of Xen's schedulers are unsigned ints; other types are refused, naming the field. */
export function recordFromTypedParams(params: readonly RemoteTypedParam[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of params) {
    const v = p.value;
    if (v.type === 1 || v.type === 2) out[p.field] = v.type === 1 ? v.i : v.ui;
    else if (v.type === 3 || v.type === 4) out[p.field] = Number(v.type === 3 ? v.l : v.ul);
    else throw new VirtError('INVALID_ARG', `invalid argument: parameter '${p.field}' must be an integer`, ErrorDomain.REMOTE);
  }
  return out;
}
