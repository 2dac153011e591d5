/**
 * A small strict XML reader and the escaping rules libvirt's writer uses.
 *
 * It refuses DOCTYPE declarations and every entity reference except the five predefined ones and
 * numeric character references: a domain document never needs them, and refusing them closes
 * the door on entity-expansion and external-entity attacks without any configuration.
 */
import { LocatedError } from '../errors.js';

export interface XmlElement {
  name: string;
  attrs: Map<string, string>;
  children: XmlElement[];
  /** Concatenated character data directly inside this element. */
  text: string;
  line: number;
}

const MAX_DEPTH = 256;

class Reader {
  pos = 0;
  constructor(readonly src: string, readonly file: string) {}

  fail(msg: string, at = this.pos): never {
    let line = 1;
    let col = 1;
    for (let i = 0; i < at && i < this.src.length; i++) {
      if (this.src.charCodeAt(i) === 10) { line++; col = 1; } else col++;
    }
    throw new LocatedError('XML_ERROR', this.file, line, col, msg);
  }

  private lineStarts: number[] | undefined;
  lineAt(at: number): number {
    if (!this.lineStarts) {
      this.lineStarts = [0];
      for (let i = this.src.indexOf('\n'); i !== -1; i = this.src.indexOf('\n', i + 1)) this.lineStarts.push(i + 1);
    }
    const ls = this.lineStarts;
    let lo = 0;
    let hi = ls.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (ls[mid]! <= at) lo = mid; else hi = mid - 1;
    }
    return lo + 1;
  }

  skipSpace(): void {
    const s = this.src;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.pos++;
      else break;
    }
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
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      const ok = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58 ||
        (this.pos > start && ((c >= 48 && c <= 57) || c === 45 || c === 46)) || c > 127;
      if (!ok) break;
      this.pos++;
    }
    if (this.pos === start) this.fail(`expected a name, found ${describe(s[this.pos])}`);
    return s.slice(start, this.pos);
  }

  /** Decode character data up to `stop` (exclusive), resolving references. */
  decode(start: number, stop: number): string {
    const s = this.src;
    let amp = s.indexOf('&', start);
    if (amp < 0 || amp >= stop) return s.slice(start, stop);
    let out = '';
    let from = start;
    while (amp >= 0 && amp < stop) {
      out += s.slice(from, amp);
      const semi = s.indexOf(';', amp);
      if (semi < 0 || semi > stop || semi - amp > 12) this.fail('unterminated character reference', amp);
      const ref = s.slice(amp + 1, semi);
      out += this.resolve(ref, amp);
      from = semi + 1;
      amp = s.indexOf('&', from);
    }
    return out + s.slice(from, stop);
  }

  resolve(ref: string, at: number): string {
    switch (ref) {
      case 'lt': return '<';
      case 'gt': return '>';
      case 'amp': return '&';
      case 'apos': return "'";
      case 'quot': return '"';
    }
    let code = NaN;
    if (/^#[0-9]+$/.test(ref)) code = parseInt(ref.slice(1), 10);
    else if (/^#x[0-9a-fA-F]+$/.test(ref)) code = parseInt(ref.slice(2), 16);
    else this.fail(`entity '&${ref};' is not allowed (only the predefined XML entities are)`, at);
    if (!(code === 9 || code === 10 || code === 13 || (code >= 0x20 && code <= 0xd7ff) ||
      (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff))) {
      this.fail(`character reference '&${ref};' is not a valid XML character`, at);
    }
    return String.fromCodePoint(code);
  }

  element(depth: number): XmlElement {
    if (depth > MAX_DEPTH) this.fail(`elements nested deeper than ${MAX_DEPTH}`);
    const s = this.src;
    const open = this.pos;
    this.pos++; // '<'
    const name = this.name();
    const attrs = new Map<string, string>();
    for (;;) {
      const before = this.pos;
      this.skipSpace();
      const c = s[this.pos];
      if (c === '/') {
        if (s[this.pos + 1] !== '>') this.fail("expected '>' after '/'");
        this.pos += 2;
        return { name, attrs, children: [], text: '', line: this.lineAt(open) };
      }
      if (c === '>') { this.pos++; break; }
      if (c === undefined) this.fail(`unterminated start tag <${name}>`);
      if (before === this.pos) this.fail(`expected whitespace before attribute in <${name}>`);
      const an = this.name();
      this.skipSpace();
      if (s[this.pos] !== '=') this.fail(`expected '=' after attribute '${an}' in <${name}>`);
      this.pos++;
      this.skipSpace();
      const q = s[this.pos];
      if (q !== '"' && q !== "'") this.fail(`attribute '${an}' in <${name}> must be quoted`);
      const end = s.indexOf(q, this.pos + 1);
      if (end < 0) this.fail(`unterminated value of attribute '${an}'`);
      const lt = s.indexOf('<', this.pos + 1);
      if (lt >= 0 && lt < end) this.fail(`'<' in value of attribute '${an}'`, lt);
      if (attrs.has(an)) this.fail(`duplicate attribute '${an}' in <${name}>`);
      attrs.set(an, normalizeAttr(this.decode(this.pos + 1, end)));
      this.pos = end + 1;
    }
    const children: XmlElement[] = [];
    let text = '';
    for (;;) {
      const lt = s.indexOf('<', this.pos);
      if (lt < 0) this.fail(`element <${name}> is not closed`, open);
      if (lt > this.pos) text += this.decode(this.pos, lt);
      this.pos = lt;
      if (s.startsWith('</', lt)) {
        this.pos += 2;
        const closing = this.name();
        if (closing !== name) this.fail(`closing tag </${closing}> does not match <${name}>`, lt);
        this.skipSpace();
        if (s[this.pos] !== '>') this.fail(`expected '>' in closing tag </${name}>`);
        this.pos++;
        return { name, attrs, children, text, line: this.lineAt(open) };
      }
      if (s.startsWith('<!--', lt)) { this.skipComment(); continue; }
      if (s.startsWith('<![CDATA[', lt)) {
        const end = s.indexOf(']]>', lt + 9);
        if (end < 0) this.fail('unterminated CDATA section');
        text += s.slice(lt + 9, end);
        this.pos = end + 3;
        continue;
      }
      if (s.startsWith('<?', lt)) { this.skipPi(); continue; }
      if (s.startsWith('<!', lt)) this.fail('DOCTYPE and other declarations are not allowed in domain XML');
      children.push(this.element(depth + 1));
    }
  }
}

function describe(c: string | undefined): string {
  return c === undefined ? 'end of input' : `'${c}'`;
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
  if (!/[<>&'"\x01-\x08\x0b\x0c\x0e-\x1f]/.test(s)) return s;
  let out = '';
  for (const ch of s) {
    switch (ch) {
      case '<': out += '&lt;'; break;
      case '>': out += '&gt;'; break;
      case '&': out += '&amp;'; break;
      case "'": out += '&apos;'; break;
      case '"': out += '&quot;'; break;
      default:
        // libvirt drops the C0 control characters XML 1.0 cannot carry.
        if (ch.charCodeAt(0) >= 0x20 || ch === '\t' || ch === '\n' || ch === '\r') out += ch;
    }
  }
  return out;
}
