/**
 * What xl.cfg(5) says about CPU placement and the credit scheduler, added to the config a start
 * hands to xl: libvirt's xen-xl conversion leaves <cputune> out, but a started domain must get
 * its pins and weight from the first instruction, not a moment after.
 */
import type { Domain } from '../../domain/types.js';

const quote = (s: string) => `"${s}"`;

/** `config` (our xl formatter's text) with the domain's <cputune> applied. */
export function withCpuTuning(config: string, def: Domain): string {
  const tune = def.cputune;
  if (!tune) return config;
  let out = config;
  if (tune.vcpupins.length) {
    // one CPU list per vcpu; vcpus without a pin keep <vcpu cpuset> or may run anywhere
    const lists: string[] = [];
    for (let v = 0; v < def.vcpu.count; v++) {
      lists.push(tune.vcpupins.find((p) => p.vcpu === v)?.cpuset ?? def.vcpu.cpuset ?? 'all');
    }
    out = out.split('\n').filter((l) => !/^cpus\s*=/.test(l)).join('\n');
    out = appendLine(out, `cpus = [ ${lists.map(quote).join(', ')} ]`);
  }
  if (tune.weight !== undefined) out = appendLine(out, `cpu_weight = ${tune.weight}`);
  if (tune.cap !== undefined) out = appendLine(out, `cap = ${tune.cap}`);
  return out;
}

const appendLine = (text: string, line: string) => `${text.replace(/\n*$/, '')}\n${line}\n`;
