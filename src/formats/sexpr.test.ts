import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { LocatedError, VirtError } from '../errors.js';
import {
  SEXPR_MAX_DEPTH,
  type SExpr,
  formatSexpr,
  joinBackslashNewlines,
  parseSexpr,
  sexprChildren,
  sexprHas,
  sexprHead,
  sexprInt,
  sexprLookup,
  sexprLookupKey,
  sexprNode,
  strtolPrefix,
} from './sexpr.js';

// Tests run as dist/src/formats/*.test.js: three levels up is the repo root (/work/main),
// and the shared corpus sits next to it.
const DIR = new URL('../../../../shared/conformance/sexpr/from-native/', import.meta.url);
// Four upstream inputs have unbalanced parentheses that libvirt's reader tolerated.
const UNBALANCED = ['bridge-ipaddr.sexpr', 'net-routed.sexpr', 'pv-vfb-new.sexpr', 'pv-vfb-new-vncdisplay.sexpr'];
const corpus = readdirSync(DIR)
  .filter((f) => f.endsWith('.sexpr'))
  .sort()
  .map((f) => ({ name: f, raw: readFileSync(new URL(f, DIR), 'utf8') }));

function parseError(text: string): LocatedError {
  try {
    parseSexpr(text);
  } catch (e) {
    assert.ok(e instanceof LocatedError, `expected LocatedError, got ${String(e)}`);
    assert.equal(e.codeName, 'PARSE_FAILED');
    return e;
  }
  assert.fail(`expected a parse error for ${JSON.stringify(text)}`);
}

function assertErrorAt(text: string, line: number, column: number, pattern: RegExp): void {
  const e = parseError(text);
  assert.equal(`${e.line}:${e.column}`, `${line}:${column}`, `location for ${JSON.stringify(text)}: ${e.message}`);
  assert.match(e.message, pattern);
}

test('the corpus has the files this test expects', () => {
  assert.ok(corpus.length >= 50, `only ${corpus.length} .sexpr files in ${DIR.href}`);
});

test('every corpus .sexpr parses after joining continuation lines', () => {
  for (const { name, raw } of corpus) {
    const text = joinBackslashNewlines(raw);
    if (UNBALANCED.includes(name)) {
      assert.throws(() => parseSexpr(text), /unbalanced parenthesis/, name);
    } else {
      assert.deepEqual(parseSexpr(text, { lenient: true }), parseSexpr(text), name);
    }
    const e = parseSexpr(text, { lenient: true });
    assert.equal(sexprHead(e), 'domain', name);
    assert.ok(sexprNode(e, 'domain/name'), `${name}: no name`);
    assert.ok(sexprNode(e, 'domain/uuid'), `${name}: no uuid`);
  }
});

test('every corpus .sexpr survives format -> parse, and formatting is stable', () => {
  for (const { name, raw } of corpus) {
    const e = parseSexpr(joinBackslashNewlines(raw), { lenient: true });
    const text = formatSexpr(e);
    assert.deepEqual(parseSexpr(text), e, name);
    assert.equal(formatSexpr(parseSexpr(text)), text, name);
  }
});

test('fv.sexpr: lookups in the style of libvirt', () => {
  const raw = corpus.find((c) => c.name === 'fv.sexpr')!.raw;
  const d = parseSexpr(joinBackslashNewlines(raw));
  assert.equal(sexprNode(d, 'domain/name'), 'fvtest');
  assert.equal(sexprNode(d, 'domain/memory'), '400');
  assert.equal(sexprInt(d, 'domain/memory'), 400);
  assert.equal(sexprInt(d, 'domain/nothing'), undefined);
  assert.equal(sexprNode(d, 'domain/image/hvm/kernel'), '/usr/lib/xen/boot/hvmloader');
  assert.equal(sexprNode(d, 'domain/image/hvm/keymap'), 'ja');
  assert.equal(sexprNode(d, 'domain/image/linux/kernel'), undefined);
  assert.equal(sexprNode(d, 'image/hvm/kernel'), undefined, 'the path starts at the root name');
  assert.equal(sexprNode(d, 'domain/image'), undefined, 'a list value is not an atom');
  assert.ok(sexprHas(d, 'domain/image/hvm'));
  assert.ok(!sexprHas(d, 'domain/image/linux'));
  assert.equal(sexprHead(sexprLookup(d, 'domain/image')?.[0]), 'hvm');
  assert.equal(sexprLookupKey(d, 'domain/image/hvm/boot')?.[0], 'boot');
  const devices = sexprChildren(d, 'device');
  assert.equal(devices.length, 2);
  assert.equal(sexprNode(devices[0], 'device/vbd/uname'), 'file:/root/foo.img');
  assert.equal(sexprNode(devices[1], 'device/vif/mac'), '00:16:3e:1b:b1:47');
  assert.equal(sexprChildren(d).length, 12);
  assert.deepEqual(sexprChildren('atom', 'x'), []);
});

test('curmem.sexpr: empty values exist but have no value', () => {
  const d = parseSexpr(corpus.find((c) => c.name === 'curmem.sexpr')!.raw);
  assert.ok(sexprHas(d, 'domain/features'));
  assert.equal(sexprLookup(d, 'domain/features'), undefined);
  assert.equal(sexprNode(d, 'domain/features'), undefined);
  assert.equal(sexprNode(d, 'domain/image/linux/args'), 'ro root=/dev/VolGroup00/LogVol00 rhgb quiet');
  assert.equal(sexprNode(d, 'domain/state'), '-b----');
  assert.equal(sexprChildren(d, 'device').length, 2);
});

test('joinBackslashNewlines removes each pair, inside quotes too', () => {
  assert.equal(joinBackslashNewlines("(a 'x\\\ny')\\\n"), "(a 'xy')");
  assert.equal(joinBackslashNewlines('a\\b\\\\\nc'), 'a\\b\\c');
  const raw = corpus.find((c) => c.name === 'pv-vfb-new.sexpr')!.raw;
  const d = parseSexpr(joinBackslashNewlines(raw), { lenient: true });
  assert.equal(
    sexprNode(d, 'domain/image/linux/args'),
    ' method=http://download.fedora.devel.redhat.com/pub/fedora/linux/core/test/5.91/x86_64/os  ',
  );
});

test('atoms: bare, single- and double-quoted, escapes', () => {
  assert.deepEqual(parseSexpr("(a 400 ja 'fv test' \"dq 'x'\" '' \"\")"), ['a', '400', 'ja', 'fv test', "dq 'x'", '', '']);
  assert.deepEqual(parseSexpr(String.raw`('a\'b' "c\"d" '\\' '\n\t\r\a\b\v\f' '\x41\x4a2' '\101\0z' '\q\x' 'it"s')`), [
    "a'b",
    'c"d',
    '\\',
    '\n\t\r\x07\b\v\f',
    'AJ2',
    'A\0z',
    '\\q\\x',
    'it"s',
  ]);
  // Quoted atoms may span lines; bare atoms keep quotes and backslashes inside them.
  assert.deepEqual(parseSexpr("(a 'x\ny' it's a\\b)"), ['a', 'x\ny', "it's", 'a\\b']);
  assert.deepEqual(parseSexpr('(a(b)c()(d e))'), ['a', ['b'], 'c', [], ['d', 'e']]);
  assert.deepEqual(parseSexpr('  \r\n\t(x)\n\n'), ['x']);
  assert.equal(parseSexpr('atom'), 'atom');
  assert.equal(parseSexpr("'quoted atom'"), 'quoted atom');
  assert.deepEqual(parseSexpr('()'), []);
});

test('errors: unbalanced, unterminated, trailing, empty, with line:column', () => {
  assertErrorAt('(domain (name x)', 1, 1, /unbalanced parenthesis: '\(' is never closed/);
  assertErrorAt('(domain\n  (name x)\n  (image (linux)', 3, 3, /unbalanced parenthesis/);
  assertErrorAt('(a))', 1, 4, /unbalanced parenthesis: '\)' without matching '\('/);
  assertErrorAt(')', 1, 1, /unbalanced parenthesis/);
  assertErrorAt("(a\n  'abc)", 2, 3, /unterminated string: no closing "'"/);
  assertErrorAt('(a "abc\\")', 1, 4, /unterminated string/);
  assertErrorAt("(a 'abc\\", 1, 4, /unterminated string/);
  assertErrorAt('(a) (b)', 1, 5, /unexpected '\(' after the end of the S-expression/);
  assertErrorAt('(a)\n\n  x', 3, 3, /unexpected 'x' after the end/);
  assertErrorAt('a b', 1, 3, /unexpected 'b'/);
  assertErrorAt('', 1, 1, /empty input/);
  assertErrorAt(' \n ', 2, 2, /empty input/);
  assertErrorAt("('\\777')", 1, 3, /octal escape '\\777' is out of range/);
  assertErrorAt('(\u{1F600} "x) y', 1, 4, /unterminated string/);
  const e = parseError('(a');
  assert.equal(e.message, "<sexpr>:1:1: unbalanced parenthesis: '(' is never closed");
  assert.ok(e instanceof VirtError);
});

test('lenient mode: open lists close at the end, trailing data is ignored', () => {
  assert.deepEqual(parseSexpr('(domain (name x)(device (vif (ip 1))', { lenient: true }), [
    'domain',
    ['name', 'x'],
    ['device', ['vif', ['ip', '1']]],
  ]);
  assert.deepEqual(parseSexpr('(a (b)))) junk (', { lenient: true }), ['a', ['b']]);
  assert.deepEqual(parseSexpr('(', { lenient: true }), []);
  assertErrorAt('(a (b)))', 1, 8, /unbalanced parenthesis/);
  for (const bad of ['', '  ', ')', "(a 'x", '('.repeat(SEXPR_MAX_DEPTH + 1)]) {
    assert.throws(() => parseSexpr(bad, { lenient: true }), LocatedError, JSON.stringify(bad));
  }
  const bridge = corpus.find((c) => c.name === 'bridge-ipaddr.sexpr')!.raw;
  const d = parseSexpr(joinBackslashNewlines(bridge), { lenient: true });
  assert.equal(sexprNode(sexprChildren(d, 'device')[1], 'device/vif/ip'), '192.0.2.1');
});

test('nesting is capped with a clear error', () => {
  const ok = '('.repeat(SEXPR_MAX_DEPTH) + ')'.repeat(SEXPR_MAX_DEPTH);
  assert.equal(formatSexpr(parseSexpr(ok)), ok);
  assertErrorAt('('.repeat(SEXPR_MAX_DEPTH + 1), 1, SEXPR_MAX_DEPTH + 1, /nested deeper than 256/);
  let deep: SExpr = [];
  for (let i = 0; i < SEXPR_MAX_DEPTH + 1; i++) deep = [deep];
  assert.throws(() => formatSexpr(deep), VirtError);
  const cyclic: SExpr[] = ['a'];
  cyclic.push(cyclic);
  assert.throws(() => formatSexpr(cyclic), VirtError);
  assert.throws(() => formatSexpr([1 as unknown as SExpr]), VirtError);
});

test('writer: compact siblings, quotes only where needed, escaped', () => {
  assert.equal(formatSexpr(['domain', ['name', 'x'], ['memory', '400']]), '(domain (name x)(memory 400))');
  assert.equal(formatSexpr(['a', 'b', ['c'], 'd', [], []]), '(a b (c) d ()())');
  assert.equal(formatSexpr(['args', 'ro root=/dev/sda quiet']), "(args 'ro root=/dev/sda quiet')");
  assert.equal(
    formatSexpr(['x', "it's here", 'a\\b c', "it's", '', "'q", '"q', 'a(b', 'x;y', 'tab\there']),
    "(x 'it\\'s here' 'a\\\\b c' it's '' '\\'q' '\"q' 'a(b' 'x;y' 'tab\there')",
  );
  assert.equal(formatSexpr('atom'), 'atom');
  assert.equal(formatSexpr([]), '()');
  assert.equal(formatSexpr(['device', ['vbd', ['dev', 'ioemu:hda'], ['mode', 'w']]]), '(device (vbd (dev ioemu:hda)(mode w)))');
});

test('strtolPrefix reads like strtol(s, NULL, 0)', () => {
  const cases: [string, number][] = [
    ['400', 400],
    ['  -12', -12],
    ['+7', 7],
    ['0x1f', 31],
    ['010', 8],
    ['0', 0],
    ['0x', 0],
    ['12abc', 12],
    ['abc', 0],
    ['', 0],
    ['1.5', 1],
    ['-0', 0],
    ['09', 0],
  ];
  for (const [input, want] of cases) assert.equal(strtolPrefix(input), want, input);
});

test('pathological inputs fail fast', () => {
  const big = 10 * 1024 * 1024;
  const rnd = fc.sample(fc.string({ minLength: 1000, maxLength: 1000, unit: 'binary' }), { numRuns: 1, seed: 11 })[0]!;
  const inputs = [
    rnd.repeat(big / rnd.length),
    '('.repeat(big),
    '(a ' + "'".repeat(1) + 'x'.repeat(big),
    '(' + 'x '.repeat(big / 20),
    '(a)' + ')'.repeat(big),
    '(' + '()'.repeat(big / 20),
    "('" + '\\x4'.repeat(big / 4),
  ];
  for (const text of inputs) {
    const t0 = performance.now();
    assert.throws(() => parseSexpr(text), LocatedError);
    try {
      parseSexpr(text, { lenient: true });
    } catch (e) {
      assert.ok(e instanceof LocatedError);
    }
    const ms = performance.now() - t0;
    assert.ok(ms < 3000, `took ${ms.toFixed(0)} ms on ${JSON.stringify(text.slice(0, 20))}...`);
  }
});

// ---- property-based -----------------------------------------------------------------------

function parsesOrVirtError(text: string): void {
  for (const lenient of [false, true]) {
    try {
      const e = parseSexpr(text, { lenient });
      const out = formatSexpr(e);
      assert.deepEqual(parseSexpr(out), e);
    } catch (err) {
      if (!(err instanceof VirtError)) throw err;
      if (err instanceof LocatedError) assert.ok(err.line >= 1 && err.column >= 1);
    }
  }
}

const sexprAlphabet = fc.constantFrom(...'()()  \n\t\'"\\axn07;#'.split(''), 'domain', '\\x', '\\1', '\u{1F600}', '\u00e9');

test('fuzz: random text never throws anything but VirtError', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), parsesOrVirtError), { numRuns: 4000 });
  fc.assert(fc.property(fc.array(sexprAlphabet, { maxLength: 80 }).map((a) => a.join('')), parsesOrVirtError), {
    numRuns: 4000,
  });
});

test('fuzz: mutated corpus files never throw anything but VirtError', () => {
  const texts = corpus.map((c) => joinBackslashNewlines(c.raw));
  const mutation = fc.tuple(
    fc.nat(),
    fc.constantFrom('insert', 'delete', 'replace'),
    fc.oneof(sexprAlphabet, fc.string({ unit: 'binary', minLength: 1, maxLength: 3 })),
  );
  const mutated = fc.tuple(fc.nat({ max: texts.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([i, ms]) => {
    let t = texts[i]!;
    for (const [at, op, str] of ms) {
      const p = t.length === 0 ? 0 : at % t.length;
      if (op === 'insert') t = t.slice(0, p) + str + t.slice(p);
      else if (op === 'delete') t = t.slice(0, p) + t.slice(p + str.length);
      else t = t.slice(0, p) + str + t.slice(p + str.length);
    }
    return t;
  });
  fc.assert(fc.property(mutated, parsesOrVirtError), { numRuns: 4000 });
});

test('fuzz: generated trees round-trip through the writer', () => {
  const atom = fc.string({ unit: fc.constantFrom(...'ab (\')"\\\n\t;#x0'.split('')), maxLength: 8 });
  const { tree } = fc.letrec<{ tree: SExpr }>((tie) => ({
    tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, atom, fc.array(tie('tree'), { maxLength: 5 })),
  }));
  fc.assert(
    fc.property(tree, (t) => {
      const text = formatSexpr(t);
      assert.deepEqual(parseSexpr(text), t);
      assert.equal(formatSexpr(parseSexpr(text)), text);
    }),
    { numRuns: 2000 },
  );
});
