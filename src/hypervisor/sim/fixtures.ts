/**
 * The guests test:///default starts with: the seed's four example domains (Xen's driver
 * documentation), each given its own name, UUID and MAC address (the examples share them).
 * `pv-bootloader` is marked autostart, so it is running once the simulated host is up.
 */

export interface FixtureGuest {
  xml: string;
  autostart?: boolean;
}

/**
 * The seed's two HVM examples differ only in how they boot: hvm-bios.xml from its disk through
 * hvmloader, hvm-direct-kernel.xml from a kernel given by the host.
 */
const hvmGuest = (name: string, uuid: string, boot: string, mac: string, disk: string, vncPort: number) => `<domain type='xen'>
  <name>${name}</name>
  <uuid>${uuid}</uuid>
  <os>
    <type>hvm</type>
    <loader>/usr/lib/xen/boot/hvmloader</loader>
    ${boot}
  </os>
  <memory>524288</memory>
  <vcpu>1</vcpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>restart</on_crash>
  <features>
     <pae/>
     <acpi/>
     <apic/>
  </features>
  <clock sync="localtime"/>
  <devices>
    <emulator>/usr/lib/xen/bin/qemu-dm</emulator>
    <interface type='bridge'>
      <source bridge='xenbr0'/>
      <mac address='${mac}'/>
      <script path='vif-bridge'/>
    </interface>
    <disk type='file'>
      <source file='${disk}'/>
      <target dev='hda'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/var/lib/xen/images/fc5-x86_64-boot.iso'/>
      <target dev='hdc'/>
      <readonly/>
    </disk>
    <disk type='file' device='floppy'>
      <source file='/root/fd.img'/>
      <target dev='fda'/>
    </disk>
    <graphics type='vnc' port='${vncPort}'/>
  </devices>
</domain>
`;

const HVM_BIOS = hvmGuest('hvm-bios', '4dea22b3-1d52-d8f3-2516-782e98ab3fa0', "<boot dev='hd'/>", '00:16:3e:5d:c7:9e', '/var/lib/xen/images/fv0', 5904);

const HVM_KERNEL = hvmGuest('hvm-kernel', '4dea22b3-1d52-d8f3-2516-782e98ab3fa1',
  `<kernel>/var/lib/xen/install/vmlinuz-fedora8-x86_64</kernel>
    <initrd>/var/lib/xen/install/initrd-vmlinuz-fedora8-x86_64</initrd>
    <cmdline> kickstart=http://example.com/myguest.ks </cmdline>`, '00:16:3e:5d:c7:9f', '/var/lib/xen/images/fv1', 5905);

/** pv-bootloader.xml: paravirtualized, kernel loaded from its own disk by pygrub. */
const PV_BOOTLOADER = `<domain type='xen'>
  <name>pv-bootloader</name>
  <uuid>9f3b6c1e-2d4a-4e8b-9c7d-5a1f0e2b3c40</uuid>
  <bootloader>/usr/bin/pygrub</bootloader>
  <os>
    <type>linux</type>
  </os>
  <memory>131072</memory>
  <vcpu>1</vcpu>
  <devices>
    <disk type='file'>
      <source file='/var/lib/xen/images/fc4.img'/>
      <target dev='sda1'/>
    </disk>
    <interface type='bridge'>
      <source bridge='xenbr0'/>
      <mac address='aa:00:00:00:00:11'/>
      <script path='/etc/xen/scripts/vif-bridge'/>
    </interface>
    <console tty='/dev/pts/5'/>
  </devices>
</domain>
`;

/** pv-direct-kernel.xml: paravirtualized, booting a kernel given by the host. */
const PV_KERNEL = `<domain type='xen'>
  <name>pv-kernel</name>
  <uuid>9f3b6c1e-2d4a-4e8b-9c7d-5a1f0e2b3c41</uuid>
  <os>
    <type>linux</type>
    <kernel>/var/lib/xen/install/vmlinuz-fedora8-x86_64</kernel>
    <initrd>/var/lib/xen/install/initrd-vmlinuz-fedora8-x86_64</initrd>
    <cmdline> kickstart=http://example.com/myguest.ks </cmdline>
  </os>
  <memory>131072</memory>
  <vcpu>1</vcpu>
  <devices>
    <disk type='file'>
      <source file='/var/lib/xen/images/fc8.img'/>
      <target dev='sda1'/>
    </disk>
    <interface type='bridge'>
      <source bridge='xenbr0'/>
      <mac address='aa:00:00:00:00:12'/>
      <script path='/etc/xen/scripts/vif-bridge'/>
    </interface>
    <graphics type='vnc' port='-1'/>
    <console tty='/dev/pts/6'/>
  </devices>
</domain>
`;

/** One of the fixture guests' XML by name (the real-Xen suite adapts them to its host). */
export function fixtureXml(name: string): string {
  const g = DEFAULT_GUESTS.find((x) => x.xml.includes(`<name>${name}</name>`));
  if (!g) throw new Error(`no fixture guest named '${name}'`);
  return g.xml;
}

export const DEFAULT_GUESTS: readonly FixtureGuest[] = [
  { xml: HVM_BIOS },
  { xml: HVM_KERNEL },
  { xml: PV_BOOTLOADER, autostart: true },
  { xml: PV_KERNEL },
];
