/**
 * A small strict XML reader and the escaping rules libvirt's writer uses.
 *
 * It refuses DOCTYPE declarations and every entity reference except the five predefined ones and
 * numeric character references: a domain document never needs them, and refusing them closes
 * the door on entity-expansion and external-entity attacks without any configuration.
 */
import { LocatedError } from '../errors.js';

/**
 * An element's attributes in document order. Elements carry a handful, so looking a name up
 * by comparing it with each is cheaper than hashing every freshly read name into a Map; past
 * a few dozen (only hostile input has that many) a Map keeps the duplicate check linear.
 */
export class XmlAttrs {
  // Fields are `declare`d and set in the constructor rather than given initialisers: V8 (as
  // in Node 20) does not inline `new` for a class with field initialisers, and the reader
  // makes one per element.
  /** name0, value0, name1, value1, ...; allocated with the first attribute (many elements have none). */
  private declare pairs: string[] | undefined;
  private declare index: Map<string, string> | undefined;

  constructor() {
    this.pairs = undefined;
    this.index = undefined;
  }

  get size(): number { return this.pairs ? this.pairs.length >> 1 : 0; }

  get(name: string): string | undefined {
    if (this.index) return this.index.get(name);
    const p = this.pairs;
    if (p) for (let i = 0; i < p.length; i += 2) if (p[i] === name) return p[i + 1];
    return undefined;
  }

  has(name: string): boolean { return this.get(name) !== undefined; }

  /** Used by the reader, which has checked that the name is new. */
  add(name: string, value: string): void {
    if (!this.pairs) {
      this.pairs = [name, value];
      return;
    }
    this.pairs.push(name, value);
    if (this.index) this.index.set(name, value);
    else if (this.pairs.length > 64) this.index = new Map(this.entries());
  }

  *entries(): IterableIterator<[string, string]> {
    const p = this.pairs;
    if (p) for (let i = 0; i < p.length; i += 2) yield [p[i]!, p[i + 1]!];
  }

  [Symbol.iterator](): IterableIterator<[string, string]> { return this.entries(); }
}

export interface XmlElement {
  name: string;
  attrs: XmlAttrs;
  children: XmlElement[];
  /** Concatenated character data directly inside this element. */
  text: string;
  line: number;
}

const MAX_DEPTH = 256;

/** The children of every element that has none: shared, as leaves are most elements (never mutated). */
const NO_CHILDREN: Element[] = [];

/**
 * An element as the reader returns it. Its text and line are worked out when asked for: a
 * domain reader asks for the text of a few leaves and for lines only in error messages, and
 * collecting every element's text (the indentation between children) and counting lines as
 * it went was a good part of reading a document.
 */
class Element extends XmlAttrs implements XmlElement {
  // Fields are set in the constructor, not declared as parameter properties, for the reason
  // XmlAttrs gives.
  declare readonly name: string;
  declare children: Element[];
  private declare readonly src: string;
  /** Position of the '<' of the start tag. */
  private declare readonly open: number;
  /** The content: after the start tag up to the end tag's '<' (-1, -1: an empty-element tag). */
  private declare contentStart: number;
  private declare contentEnd: number;
  /** The content is one run of characters without references: the text as it stands. */
  private declare plain: boolean;
  /** Position after the element's last '>'. */
  declare end: number;

  constructor(name: string, src: string, open: number) {
    super();
    this.name = name;
    this.children = NO_CHILDREN;
    this.src = src;
    this.open = open;
    this.contentStart = -1;
    this.contentEnd = -1;
    this.plain = true;
    this.end = -1;
  }

  /** An element is its own attribute list: one object per element instead of two. */
  get attrs(): XmlAttrs { return this; }

  /** Called once by the reader when the element's end is found. */
  close(children: Element[], contentStart: number, contentEnd: number, plain: boolean, end: number): this {
    this.children = children;
    this.contentStart = contentStart;
    this.contentEnd = contentEnd;
    this.plain = plain;
    this.end = end;
    return this;
  }

  get line(): number {
    let line = 1;
    for (let i = this.src.indexOf('\n'); i !== -1 && i < this.open; i = this.src.indexOf('\n', i + 1)) line++;
    return line;
  }

  get text(): string {
    if (this.contentStart === -1) return '';
    if (this.plain) return this.src.slice(this.contentStart, this.contentEnd);
    // Read the content again, stepping over the children: it is known to be well-formed, so
    // this meets no error.
    const s = this.src;
    let text = '';
    let child = 0;
    let pos = this.contentStart;
    for (;;) {
      const lt = s.indexOf('<', pos);
      if (lt > pos) text += decodeRefs(s, pos, lt);
      if (lt === this.contentEnd) return text;
      if (s.startsWith('<!--', lt)) pos = s.indexOf('-->', lt + 4) + 3;
      else if (s.startsWith('<![CDATA[', lt)) {
        const close = s.indexOf(']]>', lt + 9);
        text += s.slice(lt + 9, close);
        pos = close + 3;
      } else if (s.charCodeAt(lt + 1) === 63) pos = s.indexOf('?>', lt + 2) + 2;
      else pos = this.children[child++]!.end;
    }
  }
}

/** s from start to stop with its references, already checked by the reader, resolved. */
function decodeRefs(s: string, start: number, stop: number): string {
  let amp = s.indexOf('&', start);
  if (amp === -1 || amp >= stop) return s.slice(start, stop);
  let out = '';
  let from = start;
  while (amp !== -1 && amp < stop) {
    const semi = s.indexOf(';', amp);
    out += s.slice(from, amp) + resolveRef(s.slice(amp + 1, semi));
    from = semi + 1;
    amp = s.indexOf('&', from);
  }
  return out + s.slice(from, stop);
}

class Reader {
  // Fields are set in the constructor for the reason XmlAttrs gives.
  declare pos: number;
  /** Position of the first '&' at or after the last decode start (-1: none left). */
  private declare nextAmp: number;
  declare readonly src: string;
  declare readonly file: string;

  constructor(src: string, file: string) {
    this.pos = 0;
    this.nextAmp = -2;
    this.src = src;
    this.file = file;
  }

  fail(msg: string, at = this.pos): never {
    let line = 1;
    let col = 1;
    for (let i = 0; i < at && i < this.src.length; i++) {
      if (this.src.charCodeAt(i) === 10) { line++; col = 1; } else col++;
    }
    throw new LocatedError('XML_ERROR', this.file, line, col, msg);
  }

  skipSpace(): void {
    const s = this.src;
    let p = this.pos;
    while (p < s.length) {
      const c = s.charCodeAt(p);
      if (c === 32 || c === 9 || c === 10 || c === 13) p++;
      else break;
    }
    this.pos = p;
  }

  /** Skip comments, processing instructions and whitespace outside the root element. */
  skipMisc(): void {
    for (;;) {
      this.skipSpace();
      if (this.src.startsWith('<!--', this.pos)) this.skipComment();
      else if (this.src.startsWith('<?', this.pos)) this.skipPi();
      else if (this.src.startsWith('<!DOCTYPE', this.pos) || this.src.startsWith('<!doctype', this.pos)) {
        this.fail('DOCTYPE declarations are not allowed in domain XML');
      } else return;
    }
  }

  skipComment(): void {
    const end = this.src.indexOf('-->', this.pos + 4);
    if (end < 0) this.fail('unterminated comment');
    this.pos = end + 3;
  }

  skipPi(): void {
    const end = this.src.indexOf('?>', this.pos + 2);
    if (end < 0) this.fail('unterminated processing instruction');
    this.pos = end + 2;
  }

  name(): string {
    const s = this.src;
    const start = this.pos;
    let p = start;
    if (p < s.length && isNameStart(s.charCodeAt(p))) {
      p++;
      while (p < s.length && isNameChar(s.charCodeAt(p))) p++;
    }
    if (p === start) this.fail(`expected a name, found ${describe(s[p])}`);
    this.pos = p;
    return s.slice(start, p);
  }

  /**
   * The first '&' at or after `from`. Decoding only moves forward through the document, so
   * one remembered search result serves every later call until it is passed: searching
   * afresh each time would scan to the end of the document per attribute or text run.
   */
  private ampFrom(from: number): number {
    if (this.nextAmp === -2 || (this.nextAmp !== -1 && this.nextAmp < from)) this.nextAmp = this.src.indexOf('&', from);
    return this.nextAmp;
  }

  /** Decode character data up to `stop` (exclusive), resolving references. */
  decode(start: number, stop: number): string {
    const s = this.src;
    let amp = this.ampFrom(start);
    if (amp < 0 || amp >= stop) return s.slice(start, stop);
    let out = '';
    let from = start;
    while (amp >= 0 && amp < stop) {
      out += s.slice(from, amp);
      // A reference is at most 12 characters up to its ';' (and never runs past `stop`).
      const limit = Math.min(amp + 12, stop);
      let semi = amp + 1;
      while (semi <= limit && s.charCodeAt(semi) !== 59) semi++;
      if (semi > limit) this.fail('unterminated character reference', amp);
      const ref = s.slice(amp + 1, semi);
      out += this.resolve(ref, amp);
      from = semi + 1;
      amp = this.ampFrom(from);
    }
    return out + s.slice(from, stop);
  }

  resolve(ref: string, at: number): string {
    const c = resolveRef(ref);
    if (c !== undefined) return c;
    if (/^#[0-9]+$/.test(ref) || /^#x[0-9a-fA-F]+$/.test(ref)) {
      this.fail(`character reference '&${ref};' is not a valid XML character`, at);
    }
    this.fail(`entity '&${ref};' is not allowed (only the predefined XML entities are)`, at);
  }

  /** One attribute value, the reader on its opening quote; leaves the reader after the closing one. */
  attrValue(an: string, name: string, attrs: XmlAttrs): string {
    const s = this.src;
    const q = s.charCodeAt(this.pos);
    // One pass finds the closing quote and what the value needs: '<' is an error, '&' needs
    // decoding, and literal tabs and line ends need normalising.
    let amp = false;
    let ws = false;
    let end = this.pos + 1;
    for (; end < s.length; end++) {
      const c = s.charCodeAt(end);
      if (c === q) break;
      if (c === 60) {
        // A value that is never closed is reported as such, before any '<' inside it.
        if (s.indexOf(q === 34 ? '"' : "'", end) < 0) this.fail(`unterminated value of attribute '${an}'`);
        this.fail(`'<' in value of attribute '${an}'`, end);
      } else if (c === 38) amp = true;
      else if (c === 9 || c === 10 || c === 13) ws = true;
    }
    if (end >= s.length) this.fail(`unterminated value of attribute '${an}'`);
    if (attrs.has(an)) this.fail(`duplicate attribute '${an}' in <${name}>`);
    let v: string;
    // A decoded character reference may itself be a tab or line end, which is normalised too.
    if (amp) v = normalizeAttr(this.decode(this.pos + 1, end));
    else if (ws) v = normalizeAttr(s.slice(this.pos + 1, end));
    else v = s.slice(this.pos + 1, end);
    this.pos = end + 1;
    return v;
  }

  element(depth: number): Element {
    if (depth > MAX_DEPTH) this.fail(`elements nested deeper than ${MAX_DEPTH}`);
    const s = this.src;
    const open = this.pos;
    this.pos++; // '<'
    const name = this.name();
    const el = new Element(name, s, open);
    for (;;) {
      const before = this.pos;
      this.skipSpace();
      const c = s.charCodeAt(this.pos);
      if (c === 47) { // '/'
        if (s.charCodeAt(this.pos + 1) !== 62) this.fail("expected '>' after '/'");
        this.pos += 2;
        return el.close(NO_CHILDREN, -1, -1, true, this.pos);
      }
      if (c === 62) { this.pos++; break; } // '>'
      if (this.pos >= s.length) this.fail(`unterminated start tag <${name}>`);
      if (before === this.pos) this.fail(`expected whitespace before attribute in <${name}>`);
      const an = this.name();
      this.skipSpace();
      if (s.charCodeAt(this.pos) !== 61) this.fail(`expected '=' after attribute '${an}' in <${name}>`);
      this.pos++;
      this.skipSpace();
      const q = s.charCodeAt(this.pos);
      if (q !== 34 && q !== 39) this.fail(`attribute '${an}' in <${name}> must be quoted`);
      el.add(an, this.attrValue(an, name, el));
    }
    let children: Element[] | undefined;
    const contentStart = this.pos;
    let plain = true;
    for (;;) {
      const lt = s.indexOf('<', this.pos);
      if (lt < 0) this.fail(`element <${name}> is not closed`, open);
      // References are checked here; the text itself is read when asked for.
      const amp = this.ampFrom(this.pos);
      if (amp !== -1 && amp < lt) {
        plain = false;
        this.decode(this.pos, lt);
      }
      this.pos = lt;
      const c1 = s.charCodeAt(lt + 1);
      if (c1 === 47) { // '</'
        this.pos += 2;
        // The usual case, the matching name, is recognised without reading it into a string.
        const after = this.pos + name.length;
        if (s.startsWith(name, this.pos) && !(after < s.length && isNameChar(s.charCodeAt(after)))) {
          this.pos = after;
        } else {
          const closing = this.name();
          if (closing !== name) this.fail(`closing tag </${closing}> does not match <${name}>`, lt);
        }
        this.skipSpace();
        if (s.charCodeAt(this.pos) !== 62) this.fail(`expected '>' in closing tag </${name}>`);
        this.pos++;
        return el.close(children ?? NO_CHILDREN, contentStart, lt, plain, this.pos);
      }
      plain = false;
      if (c1 === 33) { // '<!'
        if (s.startsWith('<!--', lt)) { this.skipComment(); continue; }
        if (s.startsWith('<![CDATA[', lt)) {
          const end = s.indexOf(']]>', lt + 9);
          if (end < 0) this.fail('unterminated CDATA section');
          this.pos = end + 3;
          continue;
        }
        this.fail('DOCTYPE and other declarations are not allowed in domain XML');
      }
      if (c1 === 63) { this.skipPi(); continue; } // '<?'
      const child = this.element(depth + 1);
      if (children) children.push(child);
      else children = [child];
    }
  }
}

/** Letters, '_', ':' and anything beyond ASCII start a name. */
function isNameStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58 || c > 127;
}

/**
 * isNameChar for ASCII as a table: names are most of what the reader reads character by
 * character, and one lookup is cheaper than the chain of range tests.
 */
const ASCII_NAME_CHARS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  if (isNameStart(c) || (c >= 48 && c <= 57) || c === 45 || c === 46) ASCII_NAME_CHARS[c] = 1;
}

/** After the first character, digits, '-' and '.' too. */
function isNameChar(c: number): boolean {
  return c < 128 ? ASCII_NAME_CHARS[c] === 1 : true;
}

function describe(c: string | undefined): string {
  return c === undefined ? 'end of input' : `'${c}'`;
}

/** A predefined entity or a character reference (without '&' and ';'); undefined if not allowed. */
function resolveRef(ref: string): string | undefined {
  switch (ref) {
    case 'lt': return '<';
    case 'gt': return '>';
    case 'amp': return '&';
    case 'apos': return "'";
    case 'quot': return '"';
  }
  let code: number;
  if (/^#[0-9]+$/.test(ref)) code = parseInt(ref.slice(1), 10);
  else if (/^#x[0-9a-fA-F]+$/.test(ref)) code = parseInt(ref.slice(2), 16);
  else return undefined;
  if (!(code === 9 || code === 10 || code === 13 || (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff))) {
    return undefined;
  }
  return String.fromCodePoint(code);
}

/** XML attribute-value normalisation: literal whitespace characters become spaces. */
function normalizeAttr(v: string): string {
  return /[\t\n\r]/.test(v) ? v.replace(/\r\n|[\t\n\r]/g, ' ') : v;
}

/** Parse one XML document; returns its root element. */
export function parseXml(text: string, file = '<xml>'): XmlElement {
  const r = new Reader(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, file);
  r.skipMisc();
  if (r.src[r.pos] !== '<') r.fail(r.pos >= r.src.length ? 'document is empty' : 'expected an element at the start of the document');
  const root = r.element(0);
  r.skipMisc();
  if (r.pos < r.src.length) r.fail('extra content after the root element');
  return root;
}

/** Escape as libvirt's virBufferEscapeString does for attribute values and text. */
export function escapeXml(s: string): string {
  // Almost every value needs no escaping. The regex engine's native scan answers that
  // sooner than a loop over the characters (NEEDS_ESCAPE is needsEscape's set).
  if (!NEEDS_ESCAPE.test(s)) return s;
  let out = '';
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // NUL never triggers escaping (libvirt's check skips it) but is dropped with the others.
    if (!needsEscape(c) && c !== 0) continue;
    out += s.slice(from, i);
    from = i + 1;
    switch (c) {
      case 60: out += '&lt;'; break;
      case 62: out += '&gt;'; break;
      case 38: out += '&amp;'; break;
      case 39: out += '&apos;'; break;
      case 34: out += '&quot;'; break;
      // Otherwise a C0 control character XML 1.0 cannot carry: libvirt drops it.
    }
  }
  return out + s.slice(from);
}

const NEEDS_ESCAPE = /[<>&'"\x01-\x08\x0b\x0c\x0e-\x1f]/;

/** < > & ' " and the C0 controls other than NUL, tab, LF and CR. */
function needsEscape(c: number): boolean {
  return c < 0x20 ? c !== 0 && c !== 9 && c !== 10 && c !== 13 : c === 60 || c === 62 || c === 38 || c === 39 || c === 34;
}
