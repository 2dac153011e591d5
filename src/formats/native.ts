/**
 * The three native formats behind one pair of functions, as virsh's domxml-from-native and
 * domxml-to-native (and the RPC procedures of the same names) expose them.
 */
import { VirtError } from '../errors.js';
import { postParse } from '../domain/defaults.js';
import type { Domain } from '../domain/types.js';
import { formatConf, parseConfIndexed } from './conf.js';
import { formatSexpr, parseSexpr } from './sexpr.js';
import { domainToXm, xmToDomain } from './xm.js';
import { domainToXl, xlToDomain } from './xl.js';
import { domainToSxpr, sxprToDomain } from './sxpr.js';

export const NATIVE_FORMATS = ['xen-xm', 'xen-xl', 'xen-sxpr'] as const;
export type NativeFormat = (typeof NATIVE_FORMATS)[number];

export function isNativeFormat(s: string): s is NativeFormat {
  return (NATIVE_FORMATS as readonly string[]).includes(s);
}

function checkFormat(format: string): asserts format is NativeFormat {
  if (!isNativeFormat(format)) {
    throw new VirtError('INVALID_ARG', `invalid argument: unsupported config type ${format} (expected one of ${NATIVE_FORMATS.join(', ')})`);
  }
}

/** Native config text -> domain model with libvirt's post-parse defaults applied. */
export function domainFromNative(format: string, text: string, fileName?: string): Domain {
  checkFormat(format);
  switch (format) {
    case 'xen-xm': return postParse(xmToDomain(parseConfIndexed(text, fileName)));
    case 'xen-xl': return postParse(xlToDomain(parseConfIndexed(text, fileName)));
    // XenD's own output is not always balanced (libvirt read it anyway), so read leniently.
    case 'xen-sxpr': return postParse(sxprToDomain(parseSexpr(text, { lenient: true })), { capabilities: false });
  }
}

/** Domain model -> native config text. */
export function domainToNative(format: string, d: Domain): string {
  checkFormat(format);
  switch (format) {
    case 'xen-xm': return formatConf(domainToXm(d));
    case 'xen-xl': return formatConf(domainToXl(d));
    case 'xen-sxpr': return formatSexpr(domainToSxpr(d)) + '\n';
  }
}
