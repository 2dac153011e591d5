/**
 * Crash safety: child processes define and redefine domains on a persistent host and are
 * SIGKILLed at random moments, including during checkpoints (the log is kept tiny so that
 * they happen often) and, with two writers on one directory, while one holds the lock or
 * waits for it. After every kill, each stored config must parse and be either the last
 * version its writer saw acknowledged or the one it had in flight.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { parseDomainXml } from '../domain/parse.js';
import { XmlFlags } from './connection.js';
import { openConnection } from './open.js';

const NAMES = 12;
const roots: string[] = [];
after(() => { for (const r of roots) fs.rmSync(r, { recursive: true, force: true }); });

/** A writer's domains are PREFIX0..PREFIX11; the prefix is one letter, part of their UUIDs. */
const uuidOf = (prefix: string, n: number) => `0c0ffee0-0000-4000-8${prefix.charCodeAt(0).toString(16).padStart(3, '0')}-${String(n).padStart(12, '0')}`;

/** The child: define version i of domain PREFIX(i mod NAMES), reporting each try and each ack synchronously. */
const CHILD = `
import fs from 'node:fs';
import { openConnection } from ${JSON.stringify(new URL('./open.js', import.meta.url).href)};
const [uri, from, to, names, prefix] = process.argv.slice(1);
const group = prefix.charCodeAt(0).toString(16).padStart(3, '0');
const say = (s) => fs.writeSync(1, s + '\\n');
const c = await openConnection(uri);
say('ready');
for (let i = Number(from); i < Number(to); i++) {
  const n = i % Number(names);
  const xml = \`<domain type='xen'><name>\${prefix}\${n}</name><uuid>0c0ffee0-0000-4000-8\${group}-\${String(n).padStart(12, '0')}</uuid>
<description>v\${i}</description><memory>\${131072 + (i % 7) * 1024}</memory><vcpu>1</vcpu>
<os><type>xen</type><kernel>/boot/vmlinuz-\${i}</kernel></os>
<devices><disk type='file'><source file='/images/\${prefix}\${n}-\${i}.img'/><target dev='xvda'/></disk></devices></domain>\`;
  say('try ' + n + ' ' + i);
  await c.defineXml(xml);
  say('ack ' + n + ' ' + i);
}
await c.close();
say('done');
`;

function versionOf(xml: string, what: string): number {
  const d = parseDomainXml(xml, { fileName: what });
  const m = /^v(\d+)$/.exec(d.description ?? '');
  assert.ok(m, `${what}: no version in ${d.description}`);
  return Number(m[1]);
}

/** One writer's progress: the next version to define, and per domain the last tried and acknowledged. */
interface Writer { prefix: string; next: number; tried: Map<number, number>; acked: Map<number, number> }

/** Run one child for `w` from w.next on; SIGKILL it after `killAfterMs` (if given). Returns whether it was killed. */
async function runChild(uri: string, w: Writer, total: number, killAfterMs: number | undefined): Promise<boolean> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, uri, String(w.next), String(total), String(NAMES), w.prefix], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, XENVIRT_WAL_MAX_BYTES: '6000' },
  });
  let buf = '';
  let killTimer: NodeJS.Timeout | undefined;
  let killed = false;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    if (!killTimer && killAfterMs !== undefined && buf.includes('ready\n')) {
      killTimer = setTimeout(() => { killed = child.kill('SIGKILL'); }, killAfterMs);
    }
  });
  const code = await exited;
  if (killTimer) clearTimeout(killTimer);
  for (const line of buf.split('\n')) {
    const [kind, n, i] = line.split(' ');
    if (kind === 'try') w.tried.set(Number(n), Number(i));
    if (kind === 'ack') w.acked.set(Number(n), Number(i));
  }
  if (code === 0) assert.ok(buf.endsWith('done\n'));
  w.next = Math.max(-1, ...[...w.tried.values()]) + 1;
  return killed && code !== 0;
}

/** After the kills: every file parses; recovery shows each domain at its acknowledged version or the one in flight. */
async function verify(dir: string, uri: string, writers: Writer[]): Promise<void> {
  const cfgDir = path.join(dir, 'config');
  const fileVersions = new Map<string, number>();
  if (fs.existsSync(cfgDir)) {
    for (const f of fs.readdirSync(cfgDir)) {
      assert.ok(!f.startsWith('.') || f.includes('.tmp-'), `unexpected file ${f}`);
      if (f.startsWith('.')) continue;
      fileVersions.set(f.replace(/\.xml$/, ''), versionOf(fs.readFileSync(path.join(cfgDir, f), 'utf8'), f));
    }
  }
  const c = await openConnection(uri);
  try {
    for (const w of writers) {
      for (const [n, t] of w.tried) {
        const name = `${w.prefix}${n}`;
        const a = w.acked.get(n);
        const allowed = new Set([a, t].filter((x) => x !== undefined));
        let v: number | undefined;
        try {
          const d = await c.lookupByName(name);
          assert.equal(d.uuid, uuidOf(w.prefix, n));
          v = versionOf(await c.getXmlDesc(d, XmlFlags.INACTIVE), name);
        } catch (e) {
          // never acknowledged and not stored: fine only if no version was ever acknowledged
          assert.equal(a, undefined, `${name}: lost after ack ${a}: ${e}`);
          continue;
        }
        assert.ok(allowed.has(v), `${name}: stored v${v}, expected one of ${[...allowed].map((x) => `v${x}`).join(', ')}`);
        const fv = fileVersions.get(name);
        if (fv !== undefined) assert.ok(fv <= v, `${name}: file v${fv} is newer than the recovered v${v}`);
        // what recovery shows is what everyone sees from now on
        w.acked.set(n, v);
        w.tried.set(n, v);
      }
    }
  } finally {
    await c.close();
  }
}

function newHost(): { dir: string; uri: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenvirt-crash-'));
  roots.push(dir);
  return { dir, uri: `test://${dir}` };
}

const newWriter = (prefix: string): Writer => ({ prefix, next: 0, tried: new Map(), acked: new Map() });

test('SIGKILL at random moments during 500 defines and redefines: every config is old or new', { timeout: 60_000 }, async () => {
  const TOTAL = 500;
  const { dir, uri } = newHost();
  const w = newWriter('c');
  let kills = 0;
  let rounds = 0;
  while (w.next < TOTAL) {
    rounds++;
    // kill most rounds somewhere in the middle of the work; let the last one finish
    if (await runChild(uri, w, TOTAL, rounds <= 12 ? 5 + Math.random() * 200 : undefined)) kills++;
    await verify(dir, uri, [w]);
  }
  console.log(`crash test: ${rounds} runs, ${kills} kills`);
  assert.ok(kills >= 3, `only ${kills} kills happened`);
  const c = await openConnection(uri);
  assert.equal((await c.listAllDomains(2)).length, NAMES);
  await c.close();
});

test('two writers on one directory, SIGKILLed at random: neither loses an acknowledged define', { timeout: 90_000 }, async () => {
  const TOTAL = 240;
  const { dir, uri } = newHost();
  const writers = [newWriter('a'), newWriter('b')];
  let kills = 0;
  let rounds = 0;
  while (writers.some((w) => w.next < TOTAL)) {
    rounds++;
    // both at once, each killed at its own random moment (the last rounds run to the end)
    const results = await Promise.all(writers.map((w) => (w.next < TOTAL
      ? runChild(uri, w, TOTAL, rounds <= 8 ? 5 + Math.random() * 150 : undefined)
      : Promise.resolve(false))));
    kills += results.filter(Boolean).length;
    await verify(dir, uri, writers);
  }
  console.log(`two-writer crash test: ${rounds} runs, ${kills} kills`);
  assert.ok(kills >= 3, `only ${kills} kills happened`);
  const c = await openConnection(uri);
  assert.equal((await c.listAllDomains(2)).length, 2 * NAMES);
  await c.close();
});
