/**
 * The Python-like assignment syntax of Xen's xm (/etc/xen/*) and xl (xl.cfg(5)) domain
 * configuration files.
 *
 * The reference is libvirt's virconf.c (what libvirt's xen-xm/xen-xl converters read and
 * write). Where this parser deliberately differs from it:
 *  - backslashes inside strings are literal characters, exactly as in libvirt (which has no
 *    escape processing); so "C:\new" keeps its backslash and the writer never escapes;
 *  - comments are also allowed inside lists (Python and xl allow them; libvirt does not);
 *  - '''...''' is accepted besides """...""" (libvirt only knows the double-quote form);
 *  - hex (0x1F) and C/Python-2 octal (017) numbers are accepted as xl.cfg(5) documents them;
 *    libvirt would misread 017 as 17 and refuse 0x1F;
 *  - duplicate keys are an error (libvirt silently uses the first, Python the last: refusing
 *    is the only answer that cannot pick the wrong one);
 *  - comments are not kept: the model is just the assignments, and libvirt's converters never
 *    write a comment either.
 */
import { ErrorDomain, LocatedError, VirtError } from '../errors.js';

export type ConfValue =
  | { type: 'string'; value: string }
  | { type: 'number'; value: number }
  | { type: 'list'; value: ConfValue[] };

export interface ConfEntry {
  key: string;
  value: ConfValue;
  /** 1-based line of the key in the parsed text; 0 for entries built in code. */
  line: number;
}

export interface ConfFile {
  /** Name used in error messages ('<config>' when unknown). */
  fileName?: string;
  entries: ConfEntry[];
}

/** Deepest list nesting accepted (xl's vnuma needs 2); bounds recursion on hostile input. */
export const CONF_MAX_DEPTH = 64;

const DEFAULT_NAME = '<config>';

const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
/** [A-Za-z0-9_] as a table: keys are most of what is read character by character. */
const KEY_CHARS = new Uint8Array(128);
for (let c = 0; c < 128; c++) if (isAlpha(c) || isDigit(c) || c === 0x5f) KEY_CHARS[c] = 1;
const isKeyChar = (c: number) => c < 128 && KEY_CHARS[c] === 1;
// Characters a number token may run over, so that "1.5" or "12ab" is reported whole.
const isNumberChar = (c: number) => isKeyChar(c) || c === 0x2e;

/** /^[A-Za-z][A-Za-z0-9_]*$/, without the regex call every written key would cost. */
function isKey(s: string): boolean {
  if (s.length === 0 || !isAlpha(s.charCodeAt(0))) return false;
  for (let i = 1; i < s.length; i++) if (!isKeyChar(s.charCodeAt(i))) return false;
  return true;
}

/** Printable description of the character at pos, for error messages. */
function describeChar(text: string, pos: number): string {
  if (pos >= text.length) return 'end of input';
  const cp = text.codePointAt(pos)!;
  if (cp === 0x0a) return 'end of line';
  if (cp === 0x27) return `"'"`;
  if (cp >= 0x20 && cp < 0x7f) return `'${String.fromCodePoint(cp)}'`;
  if (cp < 0x100) return `'\\x${cp.toString(16).padStart(2, '0')}'`;
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Shortens user text quoted in a message so a 10 MB token does not become a 10 MB message. */
function clip(s: string, max = 40): string {
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

/** A chain of entries whose keys share a slot of the KeyIndex table. */
interface KeyNode {
  entry: ConfEntry;
  next: KeyNode | undefined;
}

/** Slots of a KeyIndex table: a power of two, a few times the keys of a typical file. */
const KEY_SLOTS = 64;

/**
 * A key's slot, from its length and first and last characters: that much tells the keys of
 * one file apart nearly always, and costs three reads. Keys read from the text are never the
 * identical string to the program's, so each comparison of two keys reads characters.
 */
const keySlot = (key: string) => (key.length * 7 + key.charCodeAt(0) * 3 + key.charCodeAt(key.length - 1)) & (KEY_SLOTS - 1);

/**
 * Entries by key, keeping the first of each. A file has a few dozen keys: a small table by
 * keySlot() leaves a lookup about one comparison, and costs less than hashing every key read
 * into a Map. Past that (only generated or hostile input) a Map keeps lookups from growing
 * linear.
 */
class KeyIndex {
  // Fields are `declare`d and set in the constructor: V8 (as in Node 20) does not inline `new`
  // for a class with field initialisers.
  private declare readonly slots: Array<KeyNode | undefined>;
  private declare count: number;
  private declare map: Map<string, ConfEntry> | undefined;

  constructor() {
    // Filled as keys come: the slots of a file without keys are not worth making.
    this.slots = [];
    this.count = 0;
    this.map = undefined;
  }

  get(key: string): ConfEntry | undefined {
    if (this.map) return this.map.get(key);
    for (let n = this.slots[keySlot(key)]; n !== undefined; n = n.next) if (n.entry.key === key) return n.entry;
    return undefined;
  }

  /** Adds `e` unless its key is present already: then answers with the entry that has it. */
  addFirst(e: ConfEntry): ConfEntry | undefined {
    if (this.map) {
      const first = this.map.get(e.key);
      if (first === undefined) this.map.set(e.key, e);
      return first;
    }
    const slot = keySlot(e.key);
    for (let n = this.slots[slot]; n !== undefined; n = n.next) if (n.entry.key === e.key) return n.entry;
    this.slots[slot] = { entry: e, next: this.slots[slot] };
    if (++this.count > 64) {
      this.map = new Map();
      for (let n of this.slots) for (; n !== undefined; n = n.next) this.map.set(n.entry.key, n.entry);
    }
    return undefined;
  }
}

class ConfParser {
  // Fields are set in the constructor for the reason KeyIndex gives.
  private declare pos: number;
  /**
   * The line of `pos`, counted as newlines are passed: only skipSpaceAndComments() and
   * triple-quoted strings ever step over one.
   */
  private declare line: number;
  /** Position of the first CR in the text (-1: none; -2: not looked for yet). */
  private declare firstCR: number;
  /** The first LF after the last string read (-1: none; -2: not looked for yet). */
  private declare nextLF: number;
  /** The entries so far by key, for the duplicate check (and parseConfIndexed's index). */
  declare readonly keys: KeyIndex;
  private declare readonly text: string;
  private declare readonly what: string;

  constructor(text: string, what: string) {
    this.pos = 0;
    this.line = 1;
    this.firstCR = -2;
    this.nextLF = -2;
    this.keys = new KeyIndex();
    this.text = text;
    this.what = what;
  }

  private fail(pos: number, detail: string): never {
    let line = 1;
    let lineStart = 0;
    for (let i = this.text.indexOf('\n'); i !== -1 && i < pos; i = this.text.indexOf('\n', i + 1)) {
      line++;
      lineStart = i + 1;
    }
    // Columns count code points, as an editor would show them.
    let column = 1;
    for (let i = lineStart; i < pos && i < this.text.length; i++) {
      const c = this.text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < pos) i++;
      column++;
    }
    throw new LocatedError('CONF_SYNTAX', this.what, line, column, detail);
  }

  /** The first LF or CR after `pos`, or -1. */
  private lineEndAfter(pos: number): number {
    const t = this.text;
    // Strings are read in order, so the LF found for one usually ends the next one's line too.
    if (this.nextLF !== -1 && this.nextLF <= pos) this.nextLF = t.indexOf('\n', pos + 1);
    const lf = this.nextLF;
    // CRs are rare: look for them only in a text that has one.
    if (this.firstCR === -2) this.firstCR = t.indexOf('\r');
    if (this.firstCR === -1) return lf;
    const cr = t.indexOf('\r', pos + 1);
    return cr === -1 || (lf !== -1 && lf < cr) ? lf : cr;
  }

  private code(): number {
    return this.pos < this.text.length ? this.text.charCodeAt(this.pos) : -1;
  }

  /** Spaces and tabs (and stray CR, which ends a line in libvirt's view but we treat as blank). */
  private skipBlanks(): void {
    const t = this.text;
    let p = this.pos;
    while (p < t.length) {
      const c = t.charCodeAt(p);
      if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0c) p++;
      else break;
    }
    this.pos = p;
  }

  private skipComment(): void {
    const nl = this.text.indexOf('\n', this.pos);
    this.pos = nl === -1 ? this.text.length : nl;
  }

  /** Blanks, newlines and comments: what may sit between statements and inside lists. */
  private skipSpaceAndComments(): void {
    for (;;) {
      this.skipBlanks();
      const c = this.code();
      if (c === 0x0a) {
        this.pos++;
        this.line++;
      } else if (c === 0x23) this.skipComment();
      else return;
    }
  }

  parse(): ConfEntry[] {
    const t = this.text;
    const entries: ConfEntry[] = [];
    // A UTF-8 BOM written by some editors is not content.
    if (t.charCodeAt(0) === 0xfeff) this.pos = 1;
    for (;;) {
      this.skipSpaceAndComments();
      if (this.pos >= t.length) break;
      const keyPos = this.pos;
      if (!isAlpha(this.code())) {
        this.fail(keyPos, `unexpected character ${describeChar(t, keyPos)}: expected a key name`);
      }
      let keyEnd = keyPos + 1;
      while (keyEnd < t.length && isKeyChar(t.charCodeAt(keyEnd))) keyEnd++;
      this.pos = keyEnd;
      const key = t.slice(keyPos, keyEnd);
      const line = this.line;

      this.skipBlanks();
      if (this.code() !== 0x3d) {
        this.fail(this.pos, `expected '=' after '${clip(key)}', found ${describeChar(t, this.pos)}`);
      }
      this.pos++;
      this.skipBlanks();
      const value = this.parseValue(key, 0);

      this.skipBlanks();
      const c = this.code();
      if (c === 0x23) this.skipComment();
      else if (c === 0x3b) this.pos++;
      else if (c !== 0x0a && c !== -1) {
        this.fail(this.pos, `unexpected character ${describeChar(t, this.pos)} after the value of '${clip(key)}': expected end of line or ';'`);
      }

      const entry = { key, value, line };
      const first = this.keys.addFirst(entry);
      if (first !== undefined) {
        this.fail(keyPos, `duplicate key '${clip(key)}': set on line ${first.line} and again on line ${line}`);
      }
      entries.push(entry);
    }
    return entries;
  }

  private parseValue(key: string, depth: number): ConfValue {
    const c = this.code();
    if (c === 0x22 || c === 0x27) return { type: 'string', value: this.parseString() };
    if (c === 0x5b) return this.parseList(key, depth);
    if (isDigit(c) || c === 0x2d || c === 0x2b) return { type: 'number', value: this.parseNumber() };
    if (isAlpha(c) || c === 0x5f) {
      const start = this.pos;
      let end = start;
      while (end < this.text.length && isKeyChar(this.text.charCodeAt(end))) end++;
      this.fail(start, `unquoted word '${clip(this.text.slice(start, end))}' as value of '${clip(key)}': strings must be quoted`);
    }
    this.fail(this.pos, `expected a value for '${clip(key)}', found ${describeChar(this.text, this.pos)}`);
  }

  private parseString(): string {
    const t = this.text;
    const start = this.pos;
    const qc = t.charCodeAt(start);
    if (t.charCodeAt(start + 1) === qc && t.charCodeAt(start + 2) === qc) {
      const triple = t.slice(start, start + 3);
      const close = t.indexOf(triple, start + 3);
      if (close === -1) this.fail(start, `unterminated string: no closing ${triple}`);
      for (let nl = t.indexOf('\n', start + 3); nl !== -1 && nl < close; nl = t.indexOf('\n', nl + 1)) this.line++;
      this.pos = close + 3;
      return t.slice(start + 3, close);
    }
    // Only triple-quoted strings may span lines (a CR counts as a line end, as in libvirt).
    // Searching for the quote and the line end natively beats walking the characters here.
    const close = t.indexOf(qc === 0x22 ? '"' : "'", start + 1);
    const lineEnd = this.lineEndAfter(start);
    if (close === -1 || (lineEnd !== -1 && lineEnd < close)) {
      this.fail(start, `unterminated string: no closing ${t[start]} on the same line`);
    }
    this.pos = close + 1;
    return t.slice(start + 1, close);
  }

  private parseNumber(): number {
    const t = this.text;
    const start = this.pos;
    let p = start;
    let neg = false;
    if (t[p] === '-' || t[p] === '+') {
      neg = t[p] === '-';
      p++;
    }
    const digitsStart = p;
    // Plain decimals, nearly every number, are added up while the token is read: no regex,
    // no slice.
    let n = 0;
    let decimal = true;
    for (; p < t.length; p++) {
      const c = t.charCodeAt(p);
      if (isDigit(c)) n = n * 10 + (c - 0x30);
      else if (isNumberChar(c)) decimal = false;
      else break;
    }
    // /^(0|[1-9][0-9]*)$/: a leading 0 makes it octal.
    if (!decimal || p === digitsStart || (t.charCodeAt(digitsStart) === 0x30 && p - digitsStart > 1)) {
      const tok = t.slice(digitsStart, p);
      if (/^0[xX][0-9a-fA-F]+$/.test(tok)) n = parseInt(tok.slice(2), 16);
      else if (/^0[0-7]+$/.test(tok)) n = parseInt(tok.slice(1), 8);
      else {
        const shown = clip(t.slice(start, p));
        if (tok === '') this.fail(start, `invalid number '${shown}': no digits`);
        this.fail(start, `invalid number '${shown}': expected decimal, 0x hexadecimal or 0 octal digits`);
      }
    }
    if (!Number.isSafeInteger(n)) this.fail(start, `number '${clip(t.slice(start, p))}' is out of range`);
    this.pos = p;
    // -0 is 0 for every consumer and must not print as "-0".
    return neg && n !== 0 ? -n : n;
  }

  private parseList(key: string, depth: number): ConfValue {
    const open = this.pos;
    if (depth >= CONF_MAX_DEPTH) {
      this.fail(open, `lists nested deeper than ${CONF_MAX_DEPTH} levels in the value of '${clip(key)}'`);
    }
    this.pos++;
    const items: ConfValue[] = [];
    for (;;) {
      this.skipSpaceAndComments();
      const c = this.code();
      if (c === 0x5d) break;
      if (c === -1) this.fail(open, `unterminated list: '[' is never closed with ']'`);
      items.push(this.parseValue(key, depth + 1));
      this.skipSpaceAndComments();
      const d = this.code();
      if (d === 0x2c) {
        this.pos++;
        continue;
      }
      if (d === 0x5d) break;
      if (d === -1) this.fail(open, `unterminated list: '[' is never closed with ']'`);
      this.fail(this.pos, `expected ',' or ']' in list, found ${describeChar(this.text, this.pos)}`);
    }
    this.pos++;
    return { type: 'list', value: items };
  }
}

/**
 * Parses xm/xl configuration text. Throws LocatedError (CONF_SYNTAX) with the line and column
 * of the offending character; never anything else.
 */
export function parseConf(text: string, fileName?: string): ConfFile {
  return parseText(text, fileName).file;
}

/**
 * parseConf() and indexConf() in one: the parser's index of the keys, built for its
 * duplicate check, is the index, instead of indexing the entries a second time.
 */
export function parseConfIndexed(text: string, fileName?: string): ConfFile {
  const { file, keys } = parseText(text, fileName);
  return new IndexedConfFile(file, keys);
}

/** The parsed file and the parser's index of its keys. */
function parseText(text: string, fileName: string | undefined): { file: ConfFile; keys: KeyIndex } {
  const what = fileName ?? DEFAULT_NAME;
  if (typeof text !== 'string') {
    throw new VirtError('INVALID_ARG', `${what}: configuration text must be a string`, ErrorDomain.CONF);
  }
  const parser = new ConfParser(text, what);
  const entries = parser.parse();
  return { file: fileName === undefined ? { entries } : { fileName, entries }, keys: parser.keys };
}

function writeError(key: string, detail: string): VirtError {
  return new VirtError('CONF_SYNTAX', `cannot write '${clip(key)}': ${detail}`, ErrorDomain.CONF);
}

const QUOTE_OR_LINE_END = /["'\n\r]/;

/**
 * libvirt's choice of quotes. The cases libvirt would write but could not read back
 * (CR in a one-line string, a """ inside or a " at the end of a triple-quoted one) are
 * refused instead of producing a file no parser accepts.
 */
function formatString(key: string, s: string): string {
  // Nearly every string has no quote and no line end: plain double quotes, nothing to check.
  if (!QUOTE_OR_LINE_END.test(s)) return `"${s}"`;
  let out: string;
  if (s.includes('\n')) out = `"""${s}"""`;
  else if (!s.includes('"')) out = `"${s}"`;
  else if (!s.includes("'")) out = `'${s}'`;
  else out = `"""${s}"""`;
  if (out.startsWith('"""')) {
    if (s.includes('"""') || s.endsWith('"')) {
      throw writeError(key, 'a string containing """ or ending in " cannot be written with """ quotes');
    }
  } else if (s.includes('\r')) {
    throw writeError(key, 'a string containing a carriage return but no newline cannot be quoted');
  }
  return out;
}

function formatValue(key: string, v: ConfValue, depth: number): string {
  if (depth > CONF_MAX_DEPTH) throw writeError(key, `lists nested deeper than ${CONF_MAX_DEPTH} levels`);
  switch (v.type) {
    case 'string':
      if (typeof v.value !== 'string') throw writeError(key, 'string value is not a string');
      return formatString(key, v.value);
    case 'number':
      if (!Number.isSafeInteger(v.value)) throw writeError(key, `${String(v.value)} is not an integer in range`);
      return String(v.value === 0 ? 0 : v.value);
    case 'list': {
      if (!Array.isArray(v.value)) throw writeError(key, 'list value is not an array');
      // libvirt: "[ " + items joined by ", " + " ]", so an empty list is "[  ]".
      let out = '[ ';
      for (let i = 0; i < v.value.length; i++) out += (i === 0 ? '' : ', ') + formatValue(key, v.value[i]!, depth + 1);
      return out + ' ]';
    }
    default:
      throw writeError(key, `unknown value type '${String((v as { type: unknown }).type)}'`);
  }
}

/** Writes entries the way libvirt 9.0's virConfWriteMem does: one `key = value` line each. */
export function formatConf(file: ConfFile): string {
  let out = '';
  for (const e of file.entries) {
    if (typeof e.key !== 'string' || !isKey(e.key)) {
      throw new VirtError('CONF_SYNTAX', `cannot write key '${clip(String(e.key))}': not a valid name`, ErrorDomain.CONF);
    }
    out += e.key + ' = ' + formatValue(e.key, e.value, 0) + '\n';
  }
  return out;
}

// ---- building and looking up -------------------------------------------------------------

export const confString = (value: string): ConfValue => ({ type: 'string', value });
export const confNumber = (value: number): ConfValue => ({ type: 'number', value });
export const confList = (value: ConfValue[]): ConfValue => ({ type: 'list', value });

/** Replaces the value of key, or appends a new entry (libvirt's virConfSetValue). */
export function confSet(file: ConfFile, key: string, value: ConfValue): void {
  const e = file.entries.find((x) => x.key === key);
  if (e) e.value = value;
  else file.entries.push({ key, value, line: 0 });
}

export function confGet(file: ConfFile, key: string): ConfValue | undefined {
  if (file instanceof IndexedConfFile) return file.byKey.get(key)?.value;
  for (const e of file.entries) if (e.key === key) return e.value;
  return undefined;
}

/** A ConfFile with its keys indexed; see indexConf(). */
class IndexedConfFile implements ConfFile {
  // Fields are set in the constructor for the reason KeyIndex gives.
  declare readonly entries: ConfEntry[];
  declare readonly fileName?: string;
  declare readonly byKey: KeyIndex;

  /** `index`: the keys of `file` already indexed (by the parser, which refuses duplicates). */
  constructor(file: ConfFile, index?: KeyIndex) {
    this.entries = file.entries;
    if (file.fileName !== undefined) this.fileName = file.fileName;
    if (index) this.byKey = index;
    else {
      this.byKey = new KeyIndex();
      // The first entry of a key is the one confGet answers with.
      for (const e of file.entries) this.byKey.addFirst(e);
    }
  }
}

/**
 * The same file with a key index, for a reader that looks up many keys (a converter asks
 * for some 60). Without it each lookup compares the key with every entry's key, and those,
 * sliced from the parsed text, are never the identical string, so every comparison reads
 * characters: that was the largest single cost of converting a file.
 *
 * The index is a snapshot of which keys exist: use it for one read-only pass over the file
 * (values replaced in the entries stay visible, added or removed entries do not).
 */
export function indexConf(file: ConfFile): ConfFile {
  return file instanceof IndexedConfFile ? file : new IndexedConfFile(file);
}

function typeError(file: ConfFile, key: string, expected: string): VirtError {
  return new VirtError(
    'CONF_SYNTAX',
    `${file.fileName ?? DEFAULT_NAME}: expected ${expected} for '${key}' parameter`,
    ErrorDomain.CONF,
  );
}

/** The string value of key; undefined when absent; throws when it is not a string. */
export function confGetString(file: ConfFile, key: string): string | undefined {
  const v = confGet(file, key);
  if (v === undefined) return undefined;
  if (v.type !== 'string') throw typeError(file, key, 'a string');
  return v.value;
}

/** The number value of key; undefined when absent; throws when it is not a number. */
export function confGetNumber(file: ConfFile, key: string): number | undefined {
  const v = confGet(file, key);
  if (v === undefined) return undefined;
  if (v.type !== 'number') throw typeError(file, key, 'a number');
  return v.value;
}

/** The list items of key; undefined when absent; throws when it is not a list. */
export function confGetList(file: ConfFile, key: string): ConfValue[] | undefined {
  const v = confGet(file, key);
  if (v === undefined) return undefined;
  if (v.type !== 'list') throw typeError(file, key, 'a list');
  return v.value;
}

/**
 * A list of strings. With compatString a lone string counts as a one-item list, as xm
 * files often write `disk = "phy:..."` (libvirt's virConfGetValueStringList).
 */
export function confGetStringList(file: ConfFile, key: string, compatString = false): string[] | undefined {
  const v = confGet(file, key);
  if (v === undefined) return undefined;
  if (v.type === 'string' && compatString) return [v.value];
  const what = compatString ? 'a string or string list' : 'a string list';
  if (v.type !== 'list') throw typeError(file, key, what);
  return v.value.map((item) => {
    if (item.type !== 'string') throw typeError(file, key, what);
    return item.value;
  });
}

/**
 * A boolean as libvirt's Xen code reads it (xenConfigGetBool): a non-negative number is true
 * when non-zero, a string is true only when it is "1"; anything else is malformed.
 */
export function confGetBool(file: ConfFile, key: string): boolean | undefined {
  const v = confGet(file, key);
  if (v === undefined) return undefined;
  if (v.type === 'number' && v.value >= 0) return v.value !== 0;
  if (v.type === 'string') return v.value === '1';
  throw new VirtError('CONF_SYNTAX', `${file.fileName ?? DEFAULT_NAME}: config value ${key} was malformed`, ErrorDomain.CONF);
}
