/**
 * What xl.cfg(5) says about CPU placement and the credit scheduler, added to the config a start
 * hands to xl: libvirt's xen-xl conversion leaves <cputune> out, but a started domain must get
 * its pins and weight from the first instruction, not a moment after.
 */
import type { Domain } from '../../domain/types.js';
import { confList, confNumber, confSet, confString, type ConfFile } from '../../formats/conf.js';

/** Sets the xl keys for the domain's <cputune> in `file` (our xl formatter's output). */
export function applyCpuTuning(file: ConfFile, def: Domain): void {
  const tune = def.cputune;
  if (!tune) return;
  if (tune.vcpupins.length) {
    // one CPU list per vcpu, in place of <vcpu cpuset>'s single list; vcpus without a pin keep
    // that cpuset or may run anywhere
    const lists: string[] = [];
    for (let v = 0; v < def.vcpu.count; v++) {
      lists.push(tune.vcpupins.find((p) => p.vcpu === v)?.cpuset ?? def.vcpu.cpuset ?? 'all');
    }
    confSet(file, 'cpus', confList(lists.map(confString)));
  }
  if (tune.weight !== undefined) confSet(file, 'cpu_weight', confNumber(tune.weight));
  if (tune.cap !== undefined) confSet(file, 'cap', confNumber(tune.cap));
}
