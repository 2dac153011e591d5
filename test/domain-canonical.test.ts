/**
 * libvirt's canonical output is a fixed point: parsing any XML libvirt 9.0 printed for the
 * corpus and formatting it again must give the same bytes. This pins the parser, the
 * post-parse defaults and the formatter independently of the native converters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDomainXml } from '../src/domain/parse.js';
import { formatDomainXml } from '../src/domain/format.js';
import { CONFORMANCE_DIR } from './support.js';

for (const dir of ['xm/from-native', 'xl/from-native', 'sexpr/from-native']) {
  test(`libvirt's printed XML is a fixed point: ${dir}`, async (t) => {
    const files = readdirSync(join(CONFORMANCE_DIR, dir)).filter((n) => n.endsWith('.xml')).sort();
    let pass = 0;
    for (const f of files) {
      await t.test(f, () => {
        const text = readFileSync(join(CONFORMANCE_DIR, dir, f), 'utf8');
        const d = parseDomainXml(text, { fileName: f, capabilities: !dir.startsWith('sexpr') });
        assert.equal(formatDomainXml(d, { secure: true, inactive: true }), text);
        pass++;
      });
    }
    console.log(`fixed point ${dir}: ${pass}/${files.length}`);
  });
}
