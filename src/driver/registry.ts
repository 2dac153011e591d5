/**
 * The driver's view of its domains, rebuilt from the store's keys:
 *
 *   config/NAME.xml      the persistent definition (present = persistent domain)
 *   autostart/NAME.xml   autostart marker (its value names the config it points to)
 *   run/NAME.json        runtime record: the live definition while active, else the last
 *                        shut-off reason of a persistent domain
 *
 * Names are escaped in keys so that any legal domain name makes a safe file name.
 * Definitions are parsed lazily: a host with thousands of defined domains lists them without
 * parsing any.
 */
import { parseDomainXml } from '../domain/parse.js';
import type { Domain } from '../domain/types.js';
import { DomainState, type DomainStateCode } from './connection.js';

export const encodeName = (name: string): string => name.replace(/%/g, '%25').replace(/^\./, '%2E');
export const decodeName = (s: string): string => (s.includes('%') ? s.replace(/%2E/g, '.').replace(/%25/g, '%') : s);

export const configKey = (name: string) => `config/${encodeName(name)}.xml`;
export const autostartKey = (name: string) => `autostart/${encodeName(name)}.xml`;
export const runKey = (name: string) => `run/${encodeName(name)}.json`;
export const managedSaveBlob = (name: string) => `save/${encodeName(name)}.save`;

export const DOM0_UUID = '00000000-0000-0000-0000-000000000000';
export const DOM0_NAME = 'Domain-0';

export interface RunRecord {
  name: string;
  uuid: string;
  /** domid while active, -1 when shut off */
  id: number;
  state: DomainStateCode;
  reason: number;
  /** live definition (with secrets) while active */
  xml?: string;
}

/** The name and UUID of a stored definition without parsing the document. */
export function peekIdentity(xml: string): { name?: string; uuid?: string } {
  const name = /<name>([^<]*)<\/name>/.exec(xml)?.[1];
  const uuid = /<uuid>([^<]*)<\/uuid>/.exec(xml)?.[1];
  const out: { name?: string; uuid?: string } = {};
  if (name !== undefined) out.name = unescapeText(name);
  if (uuid !== undefined) out.uuid = uuid.trim().toLowerCase();
  return out;
}

function unescapeText(s: string): string {
  return s.replace(/&(lt|gt|amp|apos|quot);/g, (_, e: string) => ({ lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' })[e]!);
}

export class DomainObj {
  configXml: string | undefined;
  private configParsed: Domain | undefined;
  run: RunRecord | undefined;
  private liveParsed: Domain | undefined;
  /** Domain-0: always running, persistent, never stored. */
  readonly dom0: boolean;

  constructor(public name: string, public uuid: string, dom0 = false) {
    this.dom0 = dom0;
  }

  get persistent(): boolean { return this.dom0 || this.configXml !== undefined; }
  get active(): boolean { return this.dom0 || (this.run !== undefined && this.run.id >= 0); }
  get id(): number { return this.dom0 ? 0 : this.active ? this.run!.id : -1; }

  stateInfo(): { state: DomainStateCode; reason: number } {
    if (this.dom0) return { state: DomainState.RUNNING, reason: 1 };
    if (this.run) return { state: this.run.state, reason: this.run.reason };
    return { state: DomainState.SHUTOFF, reason: 0 };
  }

  setConfig(xml: string | undefined, parsed?: Domain): void {
    if (xml !== this.configXml) this.configParsed = undefined;
    this.configXml = xml;
    if (parsed) this.configParsed = parsed;
  }

  setRun(run: RunRecord | undefined, parsedLive?: Domain): void {
    if (run?.xml !== this.run?.xml) this.liveParsed = undefined;
    this.run = run;
    if (parsedLive) this.liveParsed = parsedLive;
  }

  /** The persistent definition (shared: clone before changing it). */
  configDef(): Domain {
    if (this.configXml === undefined) throw new Error(`domain '${this.name}' has no persistent definition`);
    this.configParsed ??= parseDomainXml(this.configXml, { fileName: `config of domain '${this.name}'` });
    return this.configParsed;
  }

  /** The live definition of an active domain (shared: clone before changing it). */
  liveDef(): Domain {
    if (!this.run?.xml) throw new Error(`domain '${this.name}' is not running`);
    if (!this.liveParsed) {
      this.liveParsed = parseDomainXml(this.run.xml, { fileName: `live state of domain '${this.name}'` });
      this.liveParsed.id = this.run.id;
    }
    return this.liveParsed;
  }

  /** What virDomainGetXMLDesc shows by default: the live definition if active. */
  currentDef(): Domain { return this.active && !this.dom0 ? this.liveDef() : this.configDef(); }
}

export class Registry {
  readonly byName = new Map<string, DomainObj>();
  readonly byUuid = new Map<string, DomainObj>();
  readonly byId = new Map<number, DomainObj>();

  add(obj: DomainObj): void {
    this.byName.set(obj.name, obj);
    this.byUuid.set(obj.uuid, obj);
    if (obj.active) this.byId.set(obj.id, obj);
  }

  remove(obj: DomainObj): void {
    if (this.byName.get(obj.name) === obj) this.byName.delete(obj.name);
    if (this.byUuid.get(obj.uuid) === obj) this.byUuid.delete(obj.uuid);
    for (const [id, o] of this.byId) if (o === obj) this.byId.delete(id);
  }

  reindexId(obj: DomainObj, oldId: number): void {
    if (oldId >= 0 && this.byId.get(oldId) === obj) this.byId.delete(oldId);
    if (obj.active) this.byId.set(obj.id, obj);
  }

  /** Change an object's UUID (a redefinition after another process undefined it). */
  reindexUuid(obj: DomainObj, uuid: string): void {
    if (this.byUuid.get(obj.uuid) === obj) this.byUuid.delete(obj.uuid);
    obj.uuid = uuid;
    this.byUuid.set(uuid, obj);
  }

  /** Drop an object that is neither persistent nor active. */
  prune(obj: DomainObj): void {
    if (!obj.persistent && !obj.active) this.remove(obj);
  }
}
