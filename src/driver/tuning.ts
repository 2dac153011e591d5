/**
 * vCPU affinity and scheduler parameters as the domain definition holds them (<vcpu cpuset>,
 * <cputune><vcpupin>, <cputune><shares>): pure helpers for the driver's pin and schedinfo calls.
 */
import type { Domain } from '../domain/types.js';
import { formatCpuset, parseCpuset } from '../formats/xen-common.js';
import { cloneDomain } from './devices.js';
import { invalidArg } from './errors.js';

/** What the credit schedulers take, as virTypedParameter fields (VIR_DOMAIN_SCHEDULER_*). */
export const SCHED_FIELDS: Record<string, readonly string[]> = {
  credit: ['weight', 'cap'],
  credit2: ['weight', 'cap'],
};

/** Host CPUs 0..n-1: where an unpinned vcpu may run. */
export const allCpus = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Each vcpu's allowed host CPUs in a definition: its <vcpupin>, else <vcpu cpuset>, else all. */
export function pinsOf(def: Domain, hostCpus: number): number[][] {
  const fallback = def.vcpu.cpuset !== undefined ? parseCpuset(def.vcpu.cpuset) : allCpus(hostCpus);
  const out: number[][] = [];
  for (let v = 0; v < def.vcpu.count; v++) {
    const pin = def.cputune?.vcpupins.find((p) => p.vcpu === v);
    out.push(pin ? parseCpuset(pin.cpuset) : fallback);
  }
  return out;
}

/** A copy of `def` with vcpu `vcpu` pinned to `cpus`. */
export function withPin(def: Domain, vcpu: number, cpus: number[]): Domain {
  const next = cloneDomain(def);
  const tune = (next.cputune ??= { vcpupins: [] });
  tune.vcpupins = tune.vcpupins.filter((p) => p.vcpu !== vcpu);
  tune.vcpupins.push({ vcpu, cpuset: formatCpuset(cpus) });
  tune.vcpupins.sort((a, b) => a.vcpu - b.vcpu);
  return next;
}

/** Checks a pin request against the domain and the host, as virDomainPinVcpuFlags does. */
export function checkPin(vcpu: number, cpus: number[], vcpuCount: number, hostCpus: number): void {
  if (!Number.isSafeInteger(vcpu) || vcpu < 0 || vcpu >= vcpuCount) {
    throw invalidArg(`vcpu ${vcpu} is out of range of live cpu count ${vcpuCount}`);
  }
  if (!cpus.length) throw invalidArg('Empty cpu list for pinning');
  const over = cpus.find((c) => c >= hostCpus);
  if (over !== undefined) throw invalidArg(`cpu ${over} is not present on the host (it has ${hostCpus} CPUs)`);
}

/** Validates typed scheduler parameters against the host's scheduler; unknown fields are refused. */
export function checkSchedParams(scheduler: string, params: Record<string, number>): { weight?: number; cap?: number } {
  const fields = SCHED_FIELDS[scheduler] ?? [];
  const out: { weight?: number; cap?: number } = {};
  for (const [field, value] of Object.entries(params)) {
    if (!fields.includes(field)) {
      throw invalidArg(`parameter '${field}' is not supported by the '${scheduler}' scheduler${fields.length ? ` (it takes ${fields.join(', ')})` : ''}`);
    }
    if (!Number.isSafeInteger(value) || value < 0) throw invalidArg(`scheduler ${field} must be a non-negative integer, not ${value}`);
    if (field === 'weight') {
      if (value < 1 || value > 65535) throw invalidArg(`scheduler weight ${value} must be between 1 and 65535`);
      out.weight = value;
    } else {
      if (value > 65535) throw invalidArg(`scheduler cap ${value} must be between 0 and 65535`);
      out.cap = value;
    }
  }
  return out;
}
