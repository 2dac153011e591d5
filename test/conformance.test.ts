/**
 * libvirt 9.0's own Xen conversion tests, byte for byte (../shared/conformance). Every folder
 * and direction runs; a per-folder P/T line is printed; every XML we print is validated against
 * libvirt's RelaxNG schema.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseDomainXml } from '../src/domain/parse.js';
import { formatDomainXml } from '../src/domain/format.js';
import { domainFromNative, domainToNative, type NativeFormat } from '../src/formats/native.js';
import { joinBackslashNewlines } from '../src/formats/sexpr.js';
import { CONFORMANCE_DIR, requireTool, xmllintValidate } from './support.js';
import { ERA_ARTEFACTS, withoutArtefacts } from './corpus-artefacts.js';

interface Folder { dir: string; format: NativeFormat; direction: 'from-native' | 'to-native'; ext: string }

const FOLDERS: Folder[] = [
  { dir: 'xm/from-native', format: 'xen-xm', direction: 'from-native', ext: '.cfg' },
  { dir: 'xm/to-native', format: 'xen-xm', direction: 'to-native', ext: '.cfg' },
  { dir: 'xl/from-native', format: 'xen-xl', direction: 'from-native', ext: '.cfg' },
  { dir: 'xl/to-native', format: 'xen-xl', direction: 'to-native', ext: '.cfg' },
  { dir: 'sexpr/from-native', format: 'xen-sxpr', direction: 'from-native', ext: '.sexpr' },
];

const only = process.env.CONFORMANCE_ONLY;
const onlyCase = process.env.CONFORMANCE_CASE;

/** Run one case; returns the produced text (thrown errors become a message). */
function convert(f: Folder, name: string): { actual: string; expected: string } {
  const base = join(CONFORMANCE_DIR, f.dir, name);
  if (f.direction === 'from-native') {
    let input = readFileSync(base + f.ext, 'utf8');
    if (f.format === 'xen-sxpr') input = joinBackslashNewlines(input);
    const d = domainFromNative(f.format, input, name + f.ext);
    return { actual: formatDomainXml(d, { secure: true, inactive: true }), expected: readFileSync(base + '.xml', 'utf8') };
  }
  const d = parseDomainXml(readFileSync(base + '.xml', 'utf8'), { fileName: name + '.xml' });
  return { actual: domainToNative(f.format, d), expected: readFileSync(base + f.ext, 'utf8') };
}

function firstDifference(a: string, b: string): string {
  const al = a.split('\n');
  const bl = b.split('\n');
  for (let i = 0; i < Math.max(al.length, bl.length); i++) {
    if (al[i] !== bl[i]) return `line ${i + 1}:\n  expected: ${bl[i] ?? '<end>'}\n  actual:   ${al[i] ?? '<end>'}`;
  }
  return 'trailing newline';
}

const trimOne = (s: string) => (s.endsWith('\n') ? s.slice(0, -1) : s);

const producedXml: Array<{ name: string; xml: string }> = [];
const summary: string[] = [];

for (const f of FOLDERS) {
  if (only && !f.dir.startsWith(only)) continue;
  const cases = readdirSync(join(CONFORMANCE_DIR, f.dir))
    .filter((n) => n.endsWith(f.direction === 'from-native' ? f.ext : '.xml'))
    .map((n) => n.slice(0, n.lastIndexOf('.')))
    .filter((n) => !onlyCase || n === onlyCase)
    .sort();
  test(`conformance ${f.dir}`, async (t) => {
    let pass = 0;
    let known = 0;
    for (const name of cases) {
      await t.test(name, () => {
        let r: { actual: string; expected: string };
        try {
          r = convert(f, name);
        } catch (e) {
          assert.fail(`${f.dir}/${name}: ${(e as Error).message}`);
        }
        if (f.direction === 'from-native') producedXml.push({ name: `${f.dir.replace('/', '-')}-${name}.xml`, xml: r.actual });
        const artefacts = f.format === 'xen-sxpr' ? ERA_ARTEFACTS[name] : undefined;
        if (artefacts) {
          // A known corpus defect (see corpus-artefacts.ts): not counted as a pass, but
          // everything the input does describe must still match.
          assert.notEqual(trimOne(r.actual), trimOne(r.expected), `${name} now matches exactly: drop it from ERA_ARTEFACTS`);
          assert.equal(withoutArtefacts(r.actual, artefacts), withoutArtefacts(r.expected, artefacts));
          known++;
          return;
        }
        if (trimOne(r.actual) !== trimOne(r.expected)) {
          assert.fail(`${f.dir}/${name} differs at ${firstDifference(trimOne(r.actual), trimOne(r.expected))}`);
        }
        pass++;
      });
    }
    const line = `conformance ${f.dir}: ${pass}/${cases.length}` +
      (known ? ` (+${known} corpus era artefacts, matched with those removed)` : '');
    summary.push(line);
    console.log(line);
  });
}

test('every XML the converters printed validates against libvirt domain.rng', (t) => {
  if (!requireTool(t, 'xmllint')) return;
  const dir = mkdtempSync(join(tmpdir(), 'xenvirt-rng-'));
  try {
    const files = producedXml.map(({ name, xml }) => {
      const p = join(dir, name);
      writeFileSync(p, xml);
      return p;
    });
    const failures = xmllintValidate(files);
    assert.deepEqual(failures, [], `schema failures:\n${failures.join('\n')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`conformance summary: ${summary.join('; ')}`);
});
