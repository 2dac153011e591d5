import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { LocatedError, VirtError } from '../errors.js';
import {
  CONF_MAX_DEPTH,
  type ConfFile,
  type ConfValue,
  confGetBool,
  confGetList,
  confGetNumber,
  confGetString,
  confGetStringList,
  confList,
  confNumber,
  confSet,
  confString,
  formatConf,
  parseConf,
} from './conf.js';

// Tests run as dist/src/formats/*.test.js: three levels up is the repo root (/work/main),
// and the shared corpus sits next to it.
const CORPUS = new URL('../../../../shared/conformance/', import.meta.url);
const CFG_DIRS = ['xm/from-native', 'xm/to-native', 'xl/from-native', 'xl/to-native'];

function corpusFiles(dir: string, ext: string): { name: string; text: string }[] {
  const url = new URL(`${dir}/`, CORPUS);
  return readdirSync(url)
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => ({ name: `${dir}/${f}`, text: readFileSync(new URL(f, url), 'utf8') }));
}

const allCfgs = CFG_DIRS.flatMap((d) => corpusFiles(d, '.cfg'));

/** The entries without line numbers, for comparing models of different texts. */
const plain = (f: ConfFile) => f.entries.map((e) => [e.key, e.value] as const);

function syntaxError(text: string, fileName?: string): LocatedError {
  try {
    parseConf(text, fileName);
  } catch (e) {
    assert.ok(e instanceof LocatedError, `expected LocatedError, got ${String(e)}`);
    assert.equal(e.codeName, 'CONF_SYNTAX');
    return e;
  }
  assert.fail(`expected a syntax error for ${JSON.stringify(text)}`);
}

function assertErrorAt(text: string, line: number, column: number, pattern: RegExp): void {
  const e = syntaxError(text);
  assert.equal(`${e.line}:${e.column}`, `${line}:${column}`, `location for ${JSON.stringify(text)}: ${e.message}`);
  assert.match(e.message, pattern);
}

const s = confString;
const n = confNumber;
const l = confList;

test('the corpus has the files this test expects', () => {
  assert.ok(allCfgs.length >= 150, `only ${allCfgs.length} .cfg files found under ${CORPUS.href}`);
});

test('every corpus .cfg parses, and each key has a line', () => {
  for (const { name, text } of allCfgs) {
    const f = parseConf(text, name);
    assert.ok(f.entries.length > 0, name);
    for (const e of f.entries) assert.ok(e.line >= 1, `${name}: ${e.key}`);
    assert.equal(f.fileName, name);
  }
});

test('every corpus .cfg survives parse -> format -> parse', () => {
  for (const { name, text } of allCfgs) {
    const first = parseConf(text, name);
    const again = parseConf(formatConf(first), name);
    assert.deepEqual(plain(again), plain(first), name);
  }
});

test("every to-native .cfg (libvirt 9.0's own output) is re-formatted byte for byte", () => {
  const outputs = [...corpusFiles('xm/to-native', '.cfg'), ...corpusFiles('xl/to-native', '.cfg')];
  assert.ok(outputs.length >= 70);
  for (const { name, text } of outputs) {
    assert.equal(formatConf(parseConf(text, name)), text, name);
  }
});

test('escape-paths: quoting as libvirt chooses it', () => {
  const [f] = corpusFiles('xm/to-native', 'escape-paths.cfg');
  const conf = parseConf(f!.text);
  assert.deepEqual(confGetStringList(conf, 'disk'), [
    'phy:/dev/HostVG/XenGuest2,hda,w',
    `phy:/dev/HostVG/XenGuest'",hdb,w`,
    'file:/root/boot.iso&test,hdc:cdrom,r',
  ]);
});

test('basic assignments and line numbers', () => {
  const f = parseConf('name = "x"\n\n  memory=512\n# c\nvcpus\t=\t2\n');
  assert.deepEqual(f.entries, [
    { key: 'name', value: s('x'), line: 1 },
    { key: 'memory', value: n(512), line: 3 },
    { key: 'vcpus', value: n(2), line: 5 },
  ]);
  assert.equal(f.fileName, undefined);
  assert.deepEqual(parseConf('').entries, []);
  assert.deepEqual(parseConf('\n \n# only a comment').entries, []);
  assert.deepEqual(plain(parseConf('\ufeffa = 1')), [['a', n(1)]]);
  assert.deepEqual(plain(parseConf('a = 1\r\nb = "x"\r\n')), [['a', n(1)], ['b', s('x')]]);
  assert.deepEqual(plain(parseConf('on_crash_2_x = 1')), [['on_crash_2_x', n(1)]]);
});

test('both quote styles and triple quotes', () => {
  const f = parseConf(
    [
      `a = "it's"`,
      `b = 'say "hi"'`,
      `c = """both ' and " here"""`,
      `d = '''also ' and " here'''`,
      `e = """line one`,
      `line two"""`,
      `f = ""`,
      `g = ''`,
      `h = """"""`,
      `i = """"quoted" inside"""`,
      `j = "# not a comment"`,
    ].join('\n'),
  );
  assert.deepEqual(plain(f), [
    ['a', s("it's")],
    ['b', s('say "hi"')],
    ['c', s(`both ' and " here`)],
    ['d', s(`also ' and " here`)],
    ['e', s('line one\nline two')],
    ['f', s('')],
    ['g', s('')],
    ['h', s('')],
    ['i', s('"quoted" inside')],
    ['j', s('# not a comment')],
  ]);
  // Lines after a multi-line string are still right.
  assert.equal(f.entries.find((e) => e.key === 'f')!.line, 7);
});

test('backslashes are literal, as in libvirt', () => {
  const f = parseConf(String.raw`a = "C:\new\table\\x"` + '\n' + String.raw`b = 'it\'` + '\n');
  assert.equal(confGetString(f, 'a'), String.raw`C:\new\table\\x`);
  assert.equal(confGetString(f, 'b'), 'it\\');
  assert.equal(formatConf(f), 'a = "C:\\new\\table\\\\x"\nb = "it\\"\n');
});

test('numbers: decimal, signed, hex, octal', () => {
  const f = parseConf('a = 0\nb = 42\nc = -7\nd = +7\ne = 0x1F\nf = 0XfF\ng = 017\nh = -0x10\ni = 00\nj = -0\nk = 9007199254740991');
  assert.deepEqual(plain(f), [
    ['a', n(0)],
    ['b', n(42)],
    ['c', n(-7)],
    ['d', n(7)],
    ['e', n(31)],
    ['f', n(255)],
    ['g', n(15)],
    ['h', n(-16)],
    ['i', n(0)],
    ['j', n(0)],
    ['k', n(9007199254740991)],
  ]);
  assert.ok(Object.is(confGetNumber(f, 'j'), 0));
  assertErrorAt('a = 09', 1, 5, /invalid number '09'/);
  assertErrorAt('a = 1.5', 1, 5, /invalid number '1\.5'/);
  assertErrorAt('a = 0x', 1, 5, /invalid number '0x'/);
  assertErrorAt('a = 12ab', 1, 5, /invalid number '12ab'/);
  assertErrorAt('a = -', 1, 5, /invalid number '-': no digits/);
  assertErrorAt('a = - 5', 1, 5, /invalid number/);
  assertErrorAt('a = 9007199254740992', 1, 5, /out of range/);
  assertErrorAt('a = 1e3', 1, 5, /invalid number '1e3'/);
});

test('lists: trailing comma, multi-line, nesting, comments inside', () => {
  const f = parseConf(
    [
      'disk = [ "phy:/dev/a,hda,w",',
      '         # the second disk',
      "         'file:/b,hdb,r', # trailing comment",
      '       ]',
      'empty = []',
      'empty2 = [ # nothing',
      ']',
      'mixed = [1, "two", [3, [ ]], -4,]',
      'vnuma = [ [ "pnode=0", "size=2048" ],',
      '          [ "pnode=1", "size=2048" ] ]',
      'after = 1 # comment after a value',
    ].join('\n'),
  );
  assert.deepEqual(plain(f), [
    ['disk', l([s('phy:/dev/a,hda,w'), s('file:/b,hdb,r')])],
    ['empty', l([])],
    ['empty2', l([])],
    ['mixed', l([n(1), s('two'), l([n(3), l([])]), n(-4)])],
    ['vnuma', l([l([s('pnode=0'), s('size=2048')]), l([s('pnode=1'), s('size=2048')])])],
    ['after', n(1)],
  ]);
  assert.deepEqual(
    f.entries.map((e) => e.line),
    [1, 5, 6, 8, 9, 11],
  );
  assertErrorAt('a = [1 2]', 1, 8, /expected ',' or '\]' in list, found '2'/);
  assertErrorAt('a = [1,,2]', 1, 8, /expected a value for 'a', found ','/);
  assertErrorAt('a = [,]', 1, 6, /expected a value/);
  assertErrorAt('x = 1\na = [1,\n2', 2, 5, /unterminated list/);
  assertErrorAt('a = [1, ] ]', 1, 11, /unexpected character '\]' after the value of 'a'/);
});

test('list nesting is capped with a clear error', () => {
  const ok = `a = ${'['.repeat(CONF_MAX_DEPTH)}${']'.repeat(CONF_MAX_DEPTH)}`;
  let v = parseConf(ok).entries[0]!.value;
  for (let i = 1; i < CONF_MAX_DEPTH; i++) {
    assert.equal(v.type, 'list');
    v = (v.value as ConfValue[])[0]!;
  }
  assert.deepEqual(v, l([]));
  assertErrorAt(`a = ${'['.repeat(CONF_MAX_DEPTH + 1)}`, 1, 5 + CONF_MAX_DEPTH, /nested deeper than 64/);
});

test('; separates statements', () => {
  const f = parseConf('a = 1; b = "x";c=[1];\nd = 2 ;   \ne = 3;# comment\n');
  assert.deepEqual(plain(f), [
    ['a', n(1)],
    ['b', s('x')],
    ['c', l([n(1)])],
    ['d', n(2)],
    ['e', n(3)],
  ]);
  assertErrorAt('a = 1;; b = 2', 1, 7, /unexpected character ';': expected a key name/);
});

test('duplicate keys are refused, naming the key and both lines', () => {
  const e = syntaxError('memory = 1\nname = "x"\n\nmemory = 2\n', 'dom.cfg');
  assert.equal(e.line, 4);
  assert.equal(e.column, 1);
  assert.match(e.message, /^dom\.cfg:4:1: duplicate key 'memory': set on line 1 and again on line 4$/);
});

test('errors carry file name, line and column of the offending character', () => {
  const e = syntaxError('name = "x"\nmemory 512\n', '/etc/xen/dom');
  assert.equal(e.message, "/etc/xen/dom:2:8: expected '=' after 'memory', found '5'");
  assert.equal(e.line, 2);
  assert.equal(e.column, 8);
  assert.ok(e instanceof VirtError);
  assert.equal(syntaxError('a = @').message, "<config>:1:5: expected a value for 'a', found '@'");
  assertErrorAt('@ = 1', 1, 1, /unexpected character '@': expected a key name/);
  assertErrorAt('a = 1\n  _x = 1', 2, 3, /unexpected character '_'/);
  assertErrorAt('a = 1\n  9 = 1', 2, 3, /unexpected character '9'/);
  assertErrorAt('a.b = 1', 1, 2, /expected '=' after 'a', found '\.'/);
  assertErrorAt('a = "abc', 1, 5, /unterminated string/);
  assertErrorAt('a = "abc\n"', 1, 5, /unterminated string/);
  assertErrorAt("a = 'abc", 1, 5, /unterminated string/);
  assertErrorAt('a = 1\nb = """abc\n\ndef', 2, 5, /unterminated string: no closing """/);
  assertErrorAt('a = 1 2', 1, 7, /unexpected character '2' after the value of 'a'/);
  assertErrorAt('a = "x" "y"', 1, 9, /unexpected character '"'/);
  assertErrorAt('a =\n5', 1, 4, /expected a value for 'a', found end of line/);
  assertErrorAt('a = ', 1, 5, /found end of input/);
  assertErrorAt('a', 1, 2, /expected '=' after 'a', found end of input/);
  assertErrorAt('a = destroy', 1, 5, /unquoted word 'destroy' as value of 'a': strings must be quoted/);
  assertErrorAt('a = {}', 1, 5, /found '\{'/);
  assertErrorAt('a = 1\n\u00e9t\u00e9 = 1', 2, 1, /unexpected character '\\xe9'/);
  assertErrorAt('a = "\u{1F600}" @', 1, 9, /unexpected character '@'/);
  assertErrorAt('a = 1\n\u{1F600} = 1', 2, 1, /U\+1F600/);
  assertErrorAt('a = 1\0', 1, 6, /'\\x00'/);
});

test('writer: libvirt 9.0 layout and quoting', () => {
  const f: ConfFile = {
    entries: [
      { key: 'name', value: s('plain'), line: 0 },
      { key: 'dq', value: s('has "double"'), line: 0 },
      { key: 'both', value: s(`it's "both"x`), line: 0 },
      { key: 'nl', value: s('two\nlines'), line: 0 },
      { key: 'sq', value: s("it's"), line: 0 },
      { key: 'num', value: n(-5), line: 0 },
      { key: 'empty', value: l([]), line: 0 },
      { key: 'nested', value: l([l([s('x'), s('y')]), l([n(1)])]), line: 0 },
    ],
  };
  const text = formatConf(f);
  assert.equal(
    text,
    [
      'name = "plain"',
      `dq = 'has "double"'`,
      `both = """it's "both"x"""`,
      'nl = """two\nlines"""',
      `sq = "it's"`,
      'num = -5',
      'empty = [  ]',
      'nested = [ [ "x", "y" ], [ 1 ] ]',
      '',
    ].join('\n'),
  );
  assert.deepEqual(plain(parseConf(text)), plain(f));
  assert.equal(formatConf({ entries: [] }), '');
});

test('writer refuses what could not be read back', () => {
  const bad: [string, ConfValue][] = [
    ['k', s(`ends with quote ' "`)],
    ['k', s(`has """ and '`)],
    ['k', s('cr\ronly')],
    ['k', n(1.5)],
    ['k', n(Number.NaN)],
    ['k', n(2 ** 60)],
  ];
  for (const [key, value] of bad) {
    assert.throws(() => formatConf({ entries: [{ key, value, line: 0 }] }), VirtError, JSON.stringify(value));
  }
  for (const key of ['', '9a', 'a b', '_a', 'a=b']) {
    assert.throws(() => formatConf({ entries: [{ key, value: n(1), line: 0 }] }), VirtError, key);
  }
  assert.throws(() => formatConf({ entries: [{ key: 'k', value: { type: 'bogus' } as unknown as ConfValue, line: 0 }] }), VirtError);
  const cyclic: ConfValue = { type: 'list', value: [] };
  (cyclic.value as ConfValue[]).push(cyclic);
  assert.throws(() => formatConf({ entries: [{ key: 'k', value: cyclic, line: 0 }] }), VirtError);
});

test('lookups and setters', () => {
  const f = parseConf('name = "x"\nmemory = 512\nvif = [ "a", "b" ]\nacpi = 1\napic = 0\npae = "1"\nhap = "yes"\nneg = -1\nmix = [ "a", 1 ]', 'g.cfg');
  assert.equal(confGetString(f, 'name'), 'x');
  assert.equal(confGetString(f, 'nope'), undefined);
  assert.equal(confGetNumber(f, 'memory'), 512);
  assert.deepEqual(confGetList(f, 'vif'), [s('a'), s('b')]);
  assert.deepEqual(confGetStringList(f, 'vif'), ['a', 'b']);
  assert.deepEqual(confGetStringList(f, 'name', true), ['x']);
  assert.equal(confGetStringList(f, 'nope'), undefined);
  assert.equal(confGetBool(f, 'acpi'), true);
  assert.equal(confGetBool(f, 'apic'), false);
  assert.equal(confGetBool(f, 'pae'), true);
  assert.equal(confGetBool(f, 'hap'), false);
  assert.equal(confGetBool(f, 'nope'), undefined);
  assert.throws(() => confGetBool(f, 'neg'), /config value neg was malformed/);
  assert.throws(() => confGetBool(f, 'vif'), VirtError);
  assert.throws(() => confGetString(f, 'memory'), /g\.cfg: expected a string for 'memory' parameter/);
  assert.throws(() => confGetNumber(f, 'name'), VirtError);
  assert.throws(() => confGetList(f, 'name'), VirtError);
  assert.throws(() => confGetStringList(f, 'name'), /expected a string list/);
  assert.throws(() => confGetStringList(f, 'mix'), /expected a string list/);

  const g: ConfFile = { entries: [] };
  confSet(g, 'name', s('a'));
  confSet(g, 'memory', n(1));
  confSet(g, 'name', s('b'));
  assert.equal(formatConf(g), 'name = "b"\nmemory = 1\n');
});

test('pathological inputs fail fast', () => {
  const big = 10 * 1024 * 1024;
  const rnd = fc.sample(fc.string({ minLength: 1000, maxLength: 1000, unit: 'binary' }), { numRuns: 1, seed: 7 })[0]!;
  const inputs = [
    rnd.repeat(big / rnd.length),
    'a = ' + '['.repeat(big),
    'a = "' + 'x'.repeat(big),
    'a = """' + '"'.repeat(big),
    'a = ' + '9'.repeat(big),
    '#'.repeat(big) + '\n@',
    'a' + '1'.repeat(big) + ' @',
    'a = ' + '[1,'.repeat(40) + ']'.repeat(40) + ' ' + ' '.repeat(big) + '@',
  ];
  for (const text of inputs) {
    const t0 = performance.now();
    assert.throws(() => parseConf(text), LocatedError);
    const ms = performance.now() - t0;
    assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms on ${JSON.stringify(text.slice(0, 20))}...`);
  }
  // Large valid input, including many statements on one line, parses in linear time.
  const many = Array.from({ length: 200_000 }, (_, i) => `k${i} = ${i}`);
  for (const text of [many.join('\n'), many.join(';')]) {
    const t0 = performance.now();
    const f = parseConf(text);
    assert.equal(f.entries.length, 200_000);
    assert.ok(performance.now() - t0 < 3000);
  }
});

// ---- property-based -----------------------------------------------------------------------

/** Only VirtError may escape the parser. */
function parsesOrVirtError(text: string): void {
  try {
    const f = parseConf(text);
    // Anything accepted must also survive a round trip when it is representable.
    let out: string;
    try {
      out = formatConf(f);
    } catch (e) {
      if (!(e instanceof VirtError)) throw e;
      return;
    }
    assert.deepEqual(plain(parseConf(out)), plain(f));
  } catch (e) {
    if (!(e instanceof VirtError)) throw e;
    if (e instanceof LocatedError) {
      assert.ok(e.line >= 1 && e.column >= 1);
    }
  }
}

const confAlphabet = fc.constantFrom(
  ...'abz_09 \t\n\r=;#[],"\'\\-+x.'.split(''),
  '"""',
  "'''",
  '0x',
  'memory',
  ' = ',
  '\u00e9',
  '\u{1F600}',
);

test('fuzz: random text never throws anything but VirtError', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), parsesOrVirtError), { numRuns: 4000 });
  fc.assert(fc.property(fc.array(confAlphabet, { maxLength: 80 }).map((a) => a.join('')), parsesOrVirtError), {
    numRuns: 4000,
  });
});

test('fuzz: mutated corpus files never throw anything but VirtError', () => {
  const texts = allCfgs.map((c) => c.text);
  const mutation = fc.tuple(
    fc.nat(),
    fc.constantFrom('insert', 'delete', 'replace'),
    fc.oneof(confAlphabet, fc.string({ unit: 'binary', minLength: 1, maxLength: 3 })),
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

test('fuzz: generated models round-trip through the writer', () => {
  // Strings the syntax can carry: libvirt's writer has no escapes, so exclude what no quoting
  // can express (a CR outside a newline string, """ or a trailing " in a triple-quoted one).
  const writable = (x: string) => {
    const triple = x.includes('\n') || (x.includes('"') && x.includes("'"));
    return triple ? !x.includes('"""') && !x.endsWith('"') : !x.includes('\r');
  };
  const str = fc.string({ unit: fc.constantFrom(...'ab "\'\n\r\\#[],;= \u00e9'.split('')), maxLength: 12 }).filter(writable);
  const { value } = fc.letrec<{ value: ConfValue }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      str.map(s),
      fc.maxSafeInteger().map((x) => n(x === 0 ? 0 : x)),
      fc.array(tie('value'), { maxLength: 4 }).map(l),
    ),
  }));
  const key = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,8}$/);
  const file = fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k, maxLength: 8 });
  fc.assert(
    fc.property(file, (pairs) => {
      const f: ConfFile = { entries: pairs.map(([k, v]) => ({ key: k, value: v, line: 0 })) };
      const text = formatConf(f);
      const back = parseConf(text);
      assert.deepEqual(plain(back), plain(f));
      assert.equal(formatConf(back), text);
    }),
    { numRuns: 2000 },
  );
});
