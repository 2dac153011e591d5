/**
 * gen-protocol: reads libvirt's `src/remote/remote_protocol.x` (an rpcgen XDR definition) and
 * writes typed TypeScript codecs for every type in it, plus the table of REMOTE procedures
 * (number, name, args/ret/msg codecs, @priority, @acl, @readstream/@writestream annotations).
 *
 * Procedure names and numbers come from the libvirt 9.0 table (remote-procedures.json); the
 * .x file supplies the types. A newer .x is fine: the wire layout of an existing procedure
 * never changes, and procedures above the table's highest number are left out.
 *
 * usage: npm run gen:protocol -- [remote_protocol.x] [remote-procedures.json] [outdir]
 * (defaults: /tmp/remote_protocol.x, ../shared/design/remote-procedures.json, src/rpc/generated)
 *
 * The generator is self-contained on purpose (no imports from src/): it runs before the
 * code it generates exists.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, basename } from 'node:path';

// ---------------------------------------------------------------------------------------------
// Lexer

type Tok =
  | { k: 'id'; v: string; line: number }
  | { k: 'num'; v: number; line: number }
  | { k: 'p'; v: string; line: number }
  | { k: 'doc'; v: string; line: number };

function lex(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  let line = 1;
  const n = src.length;
  while (i < n) {
    const c = src[i]!;
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    // `%...` lines pass C through rpcgen; `#` lines are preprocessor directives.
    if ((c === '%' || c === '#') && (i === 0 || src[i - 1] === '\n')) {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end < 0) throw new Error(`line ${line}: unterminated comment`);
      const text = src.slice(i, end + 2);
      // Doc comments (`/** ... */`) carry the procedure annotations (@acl, @priority, ...).
      if (text.startsWith('/**')) toks.push({ k: 'doc', v: text, line });
      line += text.split('\n').length - 1;
      i = end + 2;
      continue;
    }
    if (c === '/' && src[i + 1] === '/') {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_]/.test(src[j]!)) j++;
      toks.push({ k: 'id', v: src.slice(i, j), line });
      i = j;
      continue;
    }
    if (/[0-9-]/.test(c)) {
      const m = /^-?(0[xX][0-9a-fA-F]+|[0-9]+)/.exec(src.slice(i, i + 24));
      if (!m) throw new Error(`line ${line}: bad number`);
      toks.push({ k: 'num', v: Number(m[0]), line });
      i += m[0].length;
      continue;
    }
    if ('{}[]<>();,=*:'.includes(c)) {
      toks.push({ k: 'p', v: c, line });
      i++;
      continue;
    }
    throw new Error(`line ${line}: unexpected character '${c}'`);
  }
  return toks;
}

// ---------------------------------------------------------------------------------------------
// AST and parser (the rpcgen subset libvirt uses)

type Prim =
  | 'int' | 'uint' | 'hyper' | 'uhyper' | 'char' | 'uchar' | 'short' | 'ushort'
  | 'bool' | 'float' | 'double' | 'string' | 'opaque' | 'void';
type Size = number | string | null; // literal, constant name, or unbounded (`<>`)
interface Decl {
  name: string;
  type: string; // a Prim or a type name
  kind: 'scalar' | 'fixed' | 'var' | 'optional' | 'void';
  size?: Size;
}
interface StructDef { kind: 'struct'; name: string; fields: Decl[] }
interface UnionCase { value: number | string; decl: Decl }
interface UnionDef { kind: 'union'; name: string; disc: Decl; cases: UnionCase[]; dflt?: Decl }
interface EnumMember { name: string; value: number | string; doc?: string }
interface EnumDef { kind: 'enum'; name: string; members: EnumMember[] }
interface TypedefDef { kind: 'typedef'; name: string; decl: Decl }
type TypeDef = StructDef | UnionDef | EnumDef | TypedefDef;
interface Spec { consts: Map<string, number | string>; types: Map<string, TypeDef>; order: string[] }

class Parser {
  private i = 0;
  private pendingDoc: string | undefined;
  constructor(private readonly toks: Tok[]) {}

  private peek(): Tok | undefined {
    for (let t = this.toks[this.i]; t?.k === 'doc'; t = this.toks[++this.i]) this.pendingDoc = t.v;
    return this.toks[this.i];
  }
  private next(): Tok {
    const t = this.peek();
    if (!t) throw new Error('unexpected end of input');
    this.i++;
    return t;
  }
  private fail(t: Tok | undefined, what: string): never {
    throw new Error(`line ${t?.line ?? '?'}: expected ${what}, got '${t ? String(t.v) : 'EOF'}'`);
  }
  private punct(p: string): void {
    const t = this.next();
    if (t.k !== 'p' || t.v !== p) this.fail(t, `'${p}'`);
  }
  private isPunct(p: string): boolean {
    const t = this.peek();
    return t?.k === 'p' && t.v === p;
  }
  private ident(): string {
    const t = this.next();
    if (t.k !== 'id') this.fail(t, 'an identifier');
    return t.v;
  }
  private value(): number | string {
    const t = this.next();
    if (t.k === 'num' || t.k === 'id') return t.v;
    this.fail(t, 'a number or constant');
  }

  parse(): Spec {
    const spec: Spec = { consts: new Map(), types: new Map(), order: [] };
    const add = (d: TypeDef) => {
      if (spec.types.has(d.name)) throw new Error(`type ${d.name} defined twice`);
      spec.types.set(d.name, d);
      spec.order.push(d.name);
    };
    while (this.peek()) {
      const kw = this.ident();
      switch (kw) {
        case 'const': {
          const name = this.ident();
          this.punct('=');
          spec.consts.set(name, this.value());
          this.punct(';');
          break;
        }
        case 'typedef': {
          const decl = this.decl();
          add({ kind: 'typedef', name: decl.name, decl });
          this.punct(';');
          break;
        }
        case 'struct': {
          const name = this.ident();
          this.punct('{');
          const fields: Decl[] = [];
          while (!this.isPunct('}')) {
            fields.push(this.decl());
            this.punct(';');
          }
          this.punct('}');
          this.punct(';');
          add({ kind: 'struct', name, fields });
          break;
        }
        case 'enum': {
          const name = this.ident();
          this.punct('{');
          const members: EnumMember[] = [];
          for (;;) {
            this.pendingDoc = undefined;
            this.peek();
            const doc = this.pendingDoc;
            const m = this.ident();
            this.punct('=');
            members.push({ name: m, value: this.value(), doc });
            if (this.isPunct(',')) {
              this.next();
              continue;
            }
            break;
          }
          this.punct('}');
          this.punct(';');
          add({ kind: 'enum', name, members });
          break;
        }
        case 'union': {
          const name = this.ident();
          if (this.ident() !== 'switch') this.fail(this.toks[this.i - 1], "'switch'");
          this.punct('(');
          const disc = this.decl();
          this.punct(')');
          this.punct('{');
          const cases: UnionCase[] = [];
          let dflt: Decl | undefined;
          while (!this.isPunct('}')) {
            const w = this.ident();
            if (w === 'case') {
              const value = this.value();
              this.punct(':');
              // Consecutive `case A: case B: decl;` share one arm.
              const values = [value];
              while (this.peek()?.k === 'id' && (this.peek() as { v: string }).v === 'case') {
                this.next();
                values.push(this.value());
                this.punct(':');
              }
              const decl = this.decl();
              this.punct(';');
              for (const v of values) cases.push({ value: v, decl });
            } else if (w === 'default') {
              this.punct(':');
              dflt = this.decl();
              this.punct(';');
            } else {
              this.fail(this.toks[this.i - 1], "'case' or 'default'");
            }
          }
          this.punct('}');
          this.punct(';');
          add({ kind: 'union', name, disc, cases, dflt });
          break;
        }
        default:
          this.fail(this.toks[this.i - 1], 'const, typedef, struct, enum or union');
      }
    }
    return spec;
  }

  private typeSpec(): string {
    const t = this.ident();
    if (t === 'unsigned') {
      const nxt = this.peek();
      if (nxt?.k === 'id' && ['int', 'hyper', 'char', 'short', 'long'].includes(nxt.v)) {
        this.next();
        return nxt.v === 'hyper' ? 'uhyper' : nxt.v === 'char' ? 'uchar' : nxt.v === 'short' ? 'ushort' : 'uint';
      }
      return 'uint';
    }
    if (t === 'struct' || t === 'enum' || t === 'union') return this.ident();
    if (t === 'long') return 'int';
    return t;
  }

  private decl(): Decl {
    const type = this.typeSpec();
    if (type === 'void') return { name: '', type: 'void', kind: 'void' };
    if (this.isPunct('*')) {
      this.next();
      return { name: this.ident(), type, kind: 'optional' };
    }
    const name = this.ident();
    if (this.isPunct('[')) {
      this.next();
      const size = this.value();
      this.punct(']');
      return { name, type, kind: 'fixed', size };
    }
    if (this.isPunct('<')) {
      this.next();
      let size: Size = null;
      if (!this.isPunct('>')) size = this.value();
      this.punct('>');
      return { name, type, kind: 'var', size };
    }
    if (type === 'string' || type === 'opaque') throw new Error(`${name}: ${type} needs [size] or <max>`);
    return { name, type, kind: 'scalar' };
  }
}

// ---------------------------------------------------------------------------------------------
// Code generation

/** Constants rpcgen takes from libvirt.h (the .x refers to them by name). */
const EXTERNAL_CONSTS: Record<string, number> = {
  VIR_UUID_BUFLEN: 16,
  VIR_SECURITY_MODEL_BUFLEN: 257,
  VIR_SECURITY_LABEL_BUFLEN: 4097,
  VIR_SECURITY_DOI_BUFLEN: 257,
  VIR_TYPED_PARAM_INT: 1,
  VIR_TYPED_PARAM_UINT: 2,
  VIR_TYPED_PARAM_LLONG: 3,
  VIR_TYPED_PARAM_ULLONG: 4,
  VIR_TYPED_PARAM_DOUBLE: 5,
  VIR_TYPED_PARAM_BOOLEAN: 6,
  VIR_TYPED_PARAM_STRING: 7,
};

const PRIMS = new Set<string>(['int', 'uint', 'hyper', 'uhyper', 'char', 'uchar', 'short', 'ushort', 'bool', 'float', 'double', 'string', 'opaque', 'void']);

/** remote_domain_get_info_ret -> RemoteDomainGetInfoRet */
function tsName(xName: string): string {
  return xName
    .split('_')
    .filter((p) => p !== '')
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join('');
}

class Gen {
  constructor(private readonly spec: Spec) {}

  num(v: number | string | null | undefined, ctx: string): number {
    if (typeof v === 'number') return v;
    if (v === null || v === undefined) return 0xffffffff;
    const c = this.spec.consts.get(v);
    if (c !== undefined) return this.num(c, ctx);
    if (v in EXTERNAL_CONSTS) return EXTERNAL_CONSTS[v]!;
    for (const t of this.spec.types.values()) {
      if (t.kind === 'enum') {
        const m = t.members.find((x) => x.name === v);
        if (m) return this.num(m.value, ctx);
      }
    }
    throw new Error(`${ctx}: unknown constant ${v}`);
  }

  def(name: string, ctx: string): TypeDef {
    const d = this.spec.types.get(name);
    if (!d) throw new Error(`${ctx}: unknown type ${name}`);
    return d;
  }

  /** The TypeScript type of a declaration. */
  tsType(d: Decl, ctx: string): string {
    switch (d.kind) {
      case 'void':
        return 'void';
      case 'optional':
        return `${this.tsScalar(d.type, ctx)} | null`;
      case 'fixed':
      case 'var':
        if (d.type === 'opaque' || d.type === 'char' || d.type === 'uchar') return 'Buffer';
        if (d.type === 'string') return 'string';
        return `${this.tsScalar(d.type, ctx)}[]`;
      case 'scalar':
        return this.tsScalar(d.type, ctx);
    }
  }

  tsScalar(type: string, ctx: string): string {
    switch (type) {
      case 'hyper':
      case 'uhyper':
        return 'bigint';
      case 'bool':
        return 'boolean';
      case 'int': case 'uint': case 'char': case 'uchar': case 'short': case 'ushort': case 'float': case 'double':
        return 'number';
      default: {
        const d = this.def(type, ctx);
        if (d.kind === 'enum') return 'number';
        // Typedefs are exported as aliases with their own (prefixed) names.
        return tsName(type);
      }
    }
  }

  /** Statement(s) encoding value expression `v` of declaration `d` into writer `w`. */
  enc(d: Decl, v: string, ctx: string): string {
    const size = () => this.num(d.size, ctx);
    switch (d.kind) {
      case 'void':
        return '';
      case 'optional':
        return `w.optional(${v}, (w, x) => { ${this.encScalar(d.type, 'x', ctx)} });`;
      case 'fixed':
        if (d.type === 'opaque') return `w.fixedOpaque(${v}, ${size()});`;
        if (d.type === 'char' || d.type === 'uchar') return `w.fixedCharArray(${v}, ${size()}, ${d.type === 'char'});`;
        if (d.type === 'string') throw new Error(`${ctx}: string[N] is not XDR`);
        return `w.fixedArray(${v}, ${size()}, (w, x) => { ${this.encScalar(d.type, 'x', ctx)} });`;
      case 'var':
        if (d.type === 'opaque') return `w.varOpaque(${v}, ${size()});`;
        if (d.type === 'string') return `w.string(${v}, ${size()});`;
        if (d.type === 'char' || d.type === 'uchar') return `w.varCharArray(${v}, ${size()}, ${d.type === 'char'});`;
        return `w.varArray(${v}, ${size()}, (w, x) => { ${this.encScalar(d.type, 'x', ctx)} });`;
      case 'scalar':
        return this.encScalar(d.type, v, ctx);
    }
  }

  encScalar(type: string, v: string, ctx: string): string {
    switch (type) {
      case 'int': return `w.int(${v});`;
      case 'uint': return `w.uint(${v});`;
      case 'hyper': return `w.hyper(${v});`;
      case 'uhyper': return `w.uhyper(${v});`;
      case 'char': return `w.char(${v});`;
      case 'uchar': return `w.uchar(${v});`;
      case 'short': return `w.short(${v});`;
      case 'ushort': return `w.ushort(${v});`;
      case 'bool': return `w.bool(${v});`;
      case 'float': return `w.float(${v});`;
      case 'double': return `w.double(${v});`;
      default: {
        const d = this.def(type, ctx);
        if (d.kind === 'enum') return `w.enum(${v});`;
        if (d.kind === 'typedef') return this.enc(d.decl, v, `${ctx} (${type})`);
        return `${tsName(type)}.enc(w, ${v});`;
      }
    }
  }

  /** An expression decoding declaration `d` from reader `r`. */
  dec(d: Decl, ctx: string): string {
    const size = () => this.num(d.size, ctx);
    switch (d.kind) {
      case 'void':
        return 'undefined';
      case 'optional':
        return `r.optional((r) => ${this.decScalar(d.type, ctx)})`;
      case 'fixed':
        if (d.type === 'opaque') return `r.fixedOpaque(${size()})`;
        if (d.type === 'char' || d.type === 'uchar') return `r.fixedCharArray(${size()})`;
        return `r.fixedArray(${size()}, (r) => ${this.decScalar(d.type, ctx)})`;
      case 'var':
        if (d.type === 'opaque') return `r.varOpaque(${size()})`;
        if (d.type === 'string') return `r.string(${size()})`;
        if (d.type === 'char' || d.type === 'uchar') return `r.varCharArray(${size()})`;
        return `r.varArray(${size()}, (r) => ${this.decScalar(d.type, ctx)})`;
      case 'scalar':
        return this.decScalar(d.type, ctx);
    }
  }

  decScalar(type: string, ctx: string): string {
    if (PRIMS.has(type)) return `r.${type}()`;
    const d = this.def(type, ctx);
    if (d.kind === 'enum') return 'r.enum()';
    if (d.kind === 'typedef') return this.dec(d.decl, `${ctx} (${type})`);
    return `${tsName(type)}.dec(r)`;
  }

  emitTypes(): string {
    const out: string[] = [];
    for (const [name, value] of this.spec.consts) {
      out.push(`export const ${name} = ${this.num(value, name)};`);
    }
    out.push('');
    for (const name of this.spec.order) {
      const d = this.spec.types.get(name)!;
      if (d.kind === 'enum' && name === 'remote_procedure') continue; // see the procedures module
      out.push(this.emitType(d), '');
    }
    return out.join('\n');
  }

  emitType(d: TypeDef): string {
    const T = tsName(d.name);
    const doc = `/** libvirt's \`${d.name}\` */`;
    switch (d.kind) {
      case 'enum': {
        const members = d.members.map((m) => `  ${m.name}: ${this.num(m.value, d.name)},`).join('\n');
        return `${doc}\nexport const ${T} = {\n${members}\n} as const;`;
      }
      case 'typedef':
        return `${doc}\nexport type ${T} = ${this.tsType(d.decl, d.name)};`;
      case 'struct': {
        const fields = d.fields.map((f) => `  ${f.name}: ${this.tsType(f, `${d.name}.${f.name}`)};`).join('\n');
        const enc = d.fields.map((f) => `    ${this.enc(f, `v.${f.name}`, `${d.name}.${f.name}`)}`).join('\n');
        const dec = d.fields.map((f) => `      ${f.name}: ${this.dec(f, `${d.name}.${f.name}`)},`).join('\n');
        return [
          doc,
          `export interface ${T} {\n${fields}\n}`,
          `export const ${T}: Codec<${T}> = {`,
          `  enc(w: XdrWriter, v: ${T}): void {\n${enc}\n  },`,
          `  dec(r: XdrReader): ${T} {\n    return {\n${dec}\n    };\n  },`,
          '};',
        ].join('\n');
      }
      case 'union':
        return this.emitUnion(d, T, doc);
    }
  }

  emitUnion(d: UnionDef, T: string, doc: string): string {
    const disc = d.disc.name;
    const arms = d.cases.map((c) => ({ v: this.num(c.value, d.name), decl: c.decl }));
    const tsArms = arms.map((a) =>
      a.decl.kind === 'void'
        ? `{ ${disc}: ${a.v} }`
        : `{ ${disc}: ${a.v}; ${a.decl.name}: ${this.tsType(a.decl, `${d.name}.${a.decl.name}`)} }`,
    );
    const encCases = arms.map((a) =>
      `      case ${a.v}: ${a.decl.kind === 'void' ? '' : this.enc(a.decl, `v.${a.decl.name}`, d.name)} return;`,
    );
    const decCases = arms.map((a) =>
      `      case ${a.v}: return ${a.decl.kind === 'void' ? `{ ${disc}: ${a.v} }` : `{ ${disc}: ${a.v}, ${a.decl.name}: ${this.dec(a.decl, d.name)} }`};`,
    );
    if (d.dflt) throw new Error(`${d.name}: default arms are not supported`);
    return [
      doc,
      `export type ${T} =\n  | ${tsArms.join('\n  | ')};`,
      `export const ${T}: Codec<${T}> = {`,
      `  enc(w: XdrWriter, v: ${T}): void {`,
      `    ${this.encScalar(d.disc.type, `v.${disc}`, d.name)}`,
      `    switch (v.${disc}) {`,
      ...encCases,
      '    }',
      `    throw new XdrError(\`${d.name}: unknown ${disc} \${(v as { ${disc}: number }).${disc}}\`);`,
      '  },',
      `  dec(r: XdrReader): ${T} {`,
      `    const ${disc} = ${this.decScalar(d.disc.type, d.name)};`,
      `    switch (${disc}) {`,
      ...decCases,
      '    }',
      `    throw new XdrError(\`${d.name}: unknown ${disc} \${${disc}}\`);`,
      '  },',
      '};',
    ].join('\n');
  }
}

// ---------------------------------------------------------------------------------------------
// Procedures

interface ProcAnn { priority: 'high' | 'low'; acl: string[]; aclFilter: string[]; readStream?: number; writeStream?: number }

/** Parse `@key: value` annotations out of a procedure's doc comment. */
function annotations(doc: string | undefined): ProcAnn {
  const ann: ProcAnn = { priority: 'low', acl: [], aclFilter: [] };
  if (!doc) return ann;
  const re = /@(\w+):\s*([^\s*@]+)/g;
  for (let m = re.exec(doc); m; m = re.exec(doc)) {
    const [, key, value] = m as unknown as [string, string, string];
    if (key === 'priority') ann.priority = value === 'high' ? 'high' : 'low';
    else if (key === 'acl') ann.acl.push(value);
    else if (key === 'aclfilter') ann.aclFilter.push(value);
    else if (key === 'readstream') ann.readStream = Number(value);
    else if (key === 'writestream') ann.writeStream = Number(value);
  }
  return ann;
}

function emitProcedures(spec: Spec, table: Record<string, string>, xFile: string): { text: string; typed: number; voidOnly: string[] } {
  const procEnum = spec.types.get('remote_procedure');
  const docs = new Map<string, string | undefined>();
  const xNumbers = new Map<string, number>();
  if (procEnum?.kind === 'enum') {
    for (const m of procEnum.members) {
      const name = m.name.replace(/^REMOTE_PROC_/, '');
      docs.set(name, m.doc);
      xNumbers.set(name, Number(m.value));
    }
  }
  const nums = Object.keys(table).map(Number).sort((a, b) => a - b);
  const lines: string[] = [];
  const typesLines: string[] = [];
  const infoLines: string[] = [];
  const voidOnly: string[] = [];
  let typed = 0;
  for (const n of nums) {
    const name = table[String(n)]!;
    const xn = xNumbers.get(name);
    if (xNumbers.size > 0 && xn !== n) {
      throw new Error(`procedure ${name}: ${xFile} numbers it ${xn ?? '(absent)'}, the 9.0 table ${n}`);
    }
    const base = `remote_${name.toLowerCase()}`;
    const has = (suffix: string) => spec.types.has(`${base}_${suffix}`);
    const args = has('args') ? tsName(`${base}_args`) : null;
    const ret = has('ret') ? tsName(`${base}_ret`) : null;
    const msg = has('msg') ? tsName(`${base}_msg`) : null;
    if (!args && !ret && !msg) voidOnly.push(name);
    typed++;
    const ann = annotations(docs.get(name));
    lines.push(`  ${name}: ${n},`);
    typesLines.push(`  ${name}: { args: ${args ?? 'void'}; ret: ${ret ?? 'void'}; msg: ${msg ?? 'void'} };`);
    const stream = ann.readStream !== undefined
      ? `, stream: { direction: 'read', param: ${ann.readStream} }`
      : ann.writeStream !== undefined
        ? `, stream: { direction: 'write', param: ${ann.writeStream} }`
        : '';
    infoLines.push(
      `  { num: ${n}, name: '${name}', args: ${args ?? 'null'}, ret: ${ret ?? 'null'}, msg: ${msg ?? 'null'}, ` +
      `priority: '${ann.priority}', acl: ${JSON.stringify(ann.acl)}, aclFilter: ${JSON.stringify(ann.aclFilter)}${stream} },`,
    );
  }
  const imports = new Set<string>();
  for (const l of typesLines) for (const m of l.matchAll(/Remote[A-Za-z0-9]+/g)) imports.add(m[0]);
  const text = [
    header(xFile),
    "import type { Codec } from '../xdr.js';",
    `import {\n  ${[...imports].sort().join(',\n  ')},\n} from './remote-types.js';`,
    '',
    '/** REMOTE_PROGRAM and its version. */',
    'export const REMOTE_PROGRAM = 0x20008086;',
    'export const REMOTE_PROTOCOL_VERSION = 1;',
    '',
    "/** Procedure numbers of the REMOTE program (libvirt 9.0: 1..443), by name without `REMOTE_PROC_`. */",
    `export const RemoteProcedure = {\n${lines.join('\n')}\n} as const;`,
    'export type RemoteProcedureName = keyof typeof RemoteProcedure;',
    '',
    '/** The XDR body of each procedure: `args` of the CALL, `ret` of the REPLY, `msg` of an event MESSAGE. */',
    `export interface RemoteProcedureTypes {\n${typesLines.join('\n')}\n}`,
    '',
    'export interface ProcedureInfo {',
    '  num: number;',
    '  name: RemoteProcedureName;',
    '  // eslint-disable-next-line @typescript-eslint/no-explicit-any',
    '  args: Codec<any> | null;',
    '  // eslint-disable-next-line @typescript-eslint/no-explicit-any',
    '  ret: Codec<any> | null;',
    '  // eslint-disable-next-line @typescript-eslint/no-explicit-any',
    '  msg: Codec<any> | null;',
    "  /** libvirtd runs 'high' priority calls on its separate worker pool: they never block on a hypervisor. */",
    "  priority: 'high' | 'low';",
    '  /** The access-control rules of the .x file, e.g. `domain:read`, `domain:save:VIR_DOMAIN_AFFECT_CONFIG`. */',
    '  acl: readonly string[];',
    '  aclFilter: readonly string[];',
    "  /** Calls that open a stream (console, upload, ...): its direction seen from the client. */",
    "  stream?: { direction: 'read' | 'write'; param: number };",
    '}',
    '',
    '/** Every REMOTE procedure in number order. */',
    `export const REMOTE_PROCEDURE_LIST: readonly ProcedureInfo[] = [\n${infoLines.join('\n')}\n];`,
    '',
    '/** Procedure info by number (undefined for numbers libvirt 9.0 does not define). */',
    'export const REMOTE_PROCEDURES: ReadonlyMap<number, ProcedureInfo> = new Map(REMOTE_PROCEDURE_LIST.map((p) => [p.num, p]));',
    '',
  ].join('\n');
  return { text, typed, voidOnly };
}

function header(xFile: string): string {
  return [
    '/*',
    ` * GENERATED by scripts/gen-protocol.ts from libvirt's remote_protocol.x (${basename(xFile)}).`,
    ' * Do not edit: change the generator and run `npm run gen:protocol`.',
    ' */',
    '/* eslint-disable */',
  ].join('\n');
}

function main(): void {
  const [xFile = '/tmp/remote_protocol.x', tableFile = '../shared/design/remote-procedures.json', outDir = 'src/rpc/generated'] =
    process.argv.slice(2);
  const spec = new Parser(lex(readFileSync(xFile, 'utf8'))).parse();
  const table = (JSON.parse(readFileSync(tableFile, 'utf8')) as { remote: Record<string, string> }).remote;
  const gen = new Gen(spec);
  const typesText = [
    header(xFile),
    "import { XdrWriter, XdrReader, XdrError, type Codec } from '../xdr.js';",
    '',
    gen.emitTypes(),
  ].join('\n');
  const procs = emitProcedures(spec, table, xFile);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'remote-types.ts'), typesText);
  writeFileSync(join(outDir, 'remote-procedures.ts'), procs.text);
  const structs = [...spec.types.values()].filter((t) => t.kind === 'struct').length;
  console.log(
    `gen-protocol: ${spec.types.size} types (${structs} structs), ${procs.typed} procedures ` +
    `(${procs.typed - procs.voidOnly.length} with XDR bodies, ${procs.voidOnly.length} void: ${procs.voidOnly.join(' ')})`,
  );
}

main();
