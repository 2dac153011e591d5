/**
 * The in-process Connection: libvirt's public API over a XenDriver. Several connections may
 * share one driver (one per state directory per process); the driver closes with the last.
 */
import type {
  Connection, DomainInfo, DomainRef, DomainStateInfo, JobInfo, JobProgressEvent, LifecycleEvent, NodeInfo, SchedulerType,
  VcpuInfo,
} from './connection.js';
import { XmlFlags } from './connection.js';
import { LIB_VERSION, type XenDriver } from './driver.js';
import { invalidConn } from './errors.js';
import { VirtError } from '../errors.js';

export class LocalConnection implements Connection {
  private closed = false;
  private readonly unsubs = new Set<() => Promise<void> | void>();

  constructor(
    readonly driver: XenDriver,
    private readonly uri: string,
    private readonly release: () => Promise<void>,
    private readonly readOnly = false,
  ) {}

  private d(fn: string): XenDriver {
    if (this.closed) throw invalidConn(fn);
    return this.driver;
  }

  /** A state-changing call: refused on a read-only connection with libvirt's error. */
  private w(fn: string): XenDriver {
    if (this.readOnly) throw new VirtError('OPERATION_DENIED', `operation forbidden: read only access prevents ${fn}`);
    return this.d(fn);
  }

  async getUri(): Promise<string> { this.d('virConnectGetURI'); return this.uri; }
  async getHostname(): Promise<string> { return this.d('virConnectGetHostname').backend.hostname(); }
  async getVersion(): Promise<number> { return this.d('virConnectGetVersion').backend.version(); }
  async getLibVersion(): Promise<number> { this.d('virConnectGetLibVersion'); return LIB_VERSION; }
  async getType(): Promise<string> { this.d('virConnectGetType'); return 'Xen'; }
  async getCapabilities(): Promise<string> { return this.d('virConnectGetCapabilities').getCapabilities(); }
  async getSysinfo(): Promise<string> { return this.d('virConnectGetSysinfo').getSysinfo(); }
  async nodeGetInfo(): Promise<NodeInfo> { return this.d('virNodeGetInfo').nodeGetInfo(); }
  async nodeGetFreeMemory(): Promise<bigint> { return this.d('virNodeGetFreeMemory').nodeGetFreeMemory(); }
  isReadOnly(): boolean { return this.readOnly; }

  async listAllDomains(flags?: number): Promise<DomainRef[]> { return this.d('virConnectListAllDomains').listAllDomains(flags); }
  async lookupByName(name: string): Promise<DomainRef> { return this.d('virDomainLookupByName').lookupByName(name); }
  async lookupByUuid(uuid: string): Promise<DomainRef> { return this.d('virDomainLookupByUUID').lookupByUuid(uuid); }
  async lookupById(id: number): Promise<DomainRef> { return this.d('virDomainLookupByID').lookupById(id); }

  async defineXml(xml: string, flags?: number): Promise<DomainRef> { return this.w('virDomainDefineXML').defineXml(xml, flags); }
  async undefine(dom: DomainRef, flags?: number): Promise<void> { return this.w('virDomainUndefine').undefine(dom, flags); }
  async createXml(xml: string, flags?: number): Promise<DomainRef> { return this.w('virDomainCreateXML').createXml(xml, flags); }
  async create(dom: DomainRef, flags?: number): Promise<void> { return this.w('virDomainCreate').create(dom, flags); }
  async shutdown(dom: DomainRef, flags?: number): Promise<void> { return this.w('virDomainShutdown').shutdown(dom, flags); }
  async reboot(dom: DomainRef, flags?: number): Promise<void> { return this.w('virDomainReboot').reboot(dom, flags); }
  async destroy(dom: DomainRef, flags?: number): Promise<void> { return this.w('virDomainDestroy').destroy(dom, flags); }
  async suspend(dom: DomainRef): Promise<void> { return this.w('virDomainSuspend').suspend(dom); }
  async resume(dom: DomainRef): Promise<void> { return this.w('virDomainResume').resume(dom); }
  async save(dom: DomainRef, path: string, xml?: string, flags?: number): Promise<void> { return this.w('virDomainSave').save(dom, path, xml, flags); }
  async restore(path: string, xml?: string, flags?: number): Promise<void> {
    await this.w('virDomainRestore').restore(path, xml, flags);
  }
  async coreDump(dom: DomainRef, path: string, flags?: number): Promise<void> { return this.w('virDomainCoreDump').coreDump(dom, path, flags); }
  async managedSave(dom: DomainRef, flags?: number): Promise<void> { return this.w('virDomainManagedSave').managedSave(dom, flags); }
  async hasManagedSaveImage(dom: DomainRef): Promise<boolean> { return this.d('virDomainHasManagedSaveImage').hasManagedSaveImage(dom); }
  async managedSaveRemove(dom: DomainRef): Promise<void> { return this.w('virDomainManagedSaveRemove').managedSaveRemove(dom); }

  async getInfo(dom: DomainRef): Promise<DomainInfo> { return this.d('virDomainGetInfo').getInfo(dom); }
  async getState(dom: DomainRef): Promise<DomainStateInfo> { return this.d('virDomainGetState').getState(dom); }
  async getXmlDesc(dom: DomainRef, flags?: number): Promise<string> {
    // Secrets are state a read-only client may not see.
    const drv = (flags ?? 0) & XmlFlags.SECURE ? this.w('virDomainGetXMLDesc') : this.d('virDomainGetXMLDesc');
    return drv.getXmlDesc(dom, flags);
  }
  async getOsType(dom: DomainRef): Promise<string> { return this.d('virDomainGetOSType').getOsType(dom); }
  async isActive(dom: DomainRef): Promise<boolean> { return this.d('virDomainIsActive').isActive(dom); }
  async isPersistent(dom: DomainRef): Promise<boolean> { return this.d('virDomainIsPersistent').isPersistent(dom); }
  async getAutostart(dom: DomainRef): Promise<boolean> { return this.d('virDomainGetAutostart').getAutostart(dom); }
  async setAutostart(dom: DomainRef, autostart: boolean): Promise<void> { return this.w('virDomainSetAutostart').setAutostart(dom, autostart); }
  async getMaxMemory(dom: DomainRef): Promise<number> { return this.d('virDomainGetMaxMemory').getMaxMemory(dom); }
  async setMemory(dom: DomainRef, kib: number, flags?: number): Promise<void> { return this.w('virDomainSetMemoryFlags').setMemory(dom, kib, flags); }
  async setMaxMemory(dom: DomainRef, kib: number): Promise<void> { return this.w('virDomainSetMaxMemory').setMaxMemory(dom, kib); }
  async setVcpus(dom: DomainRef, count: number, flags?: number): Promise<void> { return this.w('virDomainSetVcpusFlags').setVcpus(dom, count, flags); }
  async getVcpusFlags(dom: DomainRef, flags?: number): Promise<number> { return this.d('virDomainGetVcpusFlags').getVcpusFlags(dom, flags); }
  async getMaxVcpus(dom: DomainRef): Promise<number> { return this.d('virDomainGetMaxVcpus').getMaxVcpus(dom); }
  async getVcpus(dom: DomainRef): Promise<VcpuInfo[]> { return this.d('virDomainGetVcpus').getVcpus(dom); }
  async getVcpuPinInfo(dom: DomainRef, flags?: number): Promise<number[][]> { return this.d('virDomainGetVcpuPinInfo').getVcpuPinInfo(dom, flags); }
  async pinVcpu(dom: DomainRef, vcpu: number, cpus: number[], flags?: number): Promise<void> {
    return this.w('virDomainPinVcpuFlags').pinVcpu(dom, vcpu, cpus, flags);
  }
  async getSchedulerType(dom: DomainRef): Promise<SchedulerType> { return this.d('virDomainGetSchedulerType').getSchedulerType(dom); }
  async getSchedulerParameters(dom: DomainRef, flags?: number): Promise<Record<string, number>> {
    return this.d('virDomainGetSchedulerParametersFlags').getSchedulerParameters(dom, flags);
  }
  async setSchedulerParameters(dom: DomainRef, params: Record<string, number>, flags?: number): Promise<void> {
    return this.w('virDomainSetSchedulerParametersFlags').setSchedulerParameters(dom, params, flags);
  }
  async attachDevice(dom: DomainRef, xml: string, flags?: number): Promise<void> { return this.w('virDomainAttachDeviceFlags').attachDevice(dom, xml, flags); }
  async detachDevice(dom: DomainRef, xml: string, flags?: number): Promise<void> { return this.w('virDomainDetachDeviceFlags').detachDevice(dom, xml, flags); }

  async domainXmlFromNative(format: string, config: string): Promise<string> {
    return this.w('virConnectDomainXMLFromNative').domainXmlFromNative(format, config);
  }
  async domainXmlToNative(format: string, xml: string): Promise<string> {
    return this.w('virConnectDomainXMLToNative').domainXmlToNative(format, xml);
  }

  async onLifecycle(listener: (e: LifecycleEvent) => void, dom?: DomainRef): Promise<() => Promise<void>> {
    const off = await this.d('virConnectDomainEventRegisterAny').onLifecycle(listener, dom);
    const unsub = async () => {
      this.unsubs.delete(unsub);
      await off();
    };
    this.unsubs.add(unsub);
    return unsub;
  }

  async getJobInfo(dom: DomainRef): Promise<JobInfo> { return this.d('virDomainGetJobInfo').getJobInfo(dom); }

  onJobProgress(listener: (p: JobProgressEvent) => void): () => void {
    const off = this.d('virDomainGetJobInfo').onJobProgress(listener);
    this.unsubs.add(off);
    return () => {
      this.unsubs.delete(off);
      off();
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const u of [...this.unsubs]) await u();
    await this.release();
  }
}
