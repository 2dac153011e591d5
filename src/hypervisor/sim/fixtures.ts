/**
 * The guests test:///default starts with: the seed's four example domains (Xen's driver
 * documentation), each given its own name, UUID and MAC address (the examples share them).
 * `pv-bootloader` is marked autostart, so it is running once the simulated host is up.
 */

export interface FixtureGuest {
  xml: string;
  autostart?: boolean;
}

/** hvm-bios.xml: a fully virtualized guest booting from its disk through hvmloader. */
const HVM_BIOS = `<domain type='xen'>
  <name>hvm-bios</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <os>
    <type>hvm</type>
    <loader>/usr/lib/xen/boot/hvmloader</loader>
    <boot dev='hd'/>
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
      <mac address='00:16:3e:5d:c7:9e'/>
      <script path='vif-bridge'/>
    </interface>
    <disk type='file'>
      <source file='/var/lib/xen/images/fv0'/>
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
    <graphics type='vnc' port='5904'/>
  </devices>
</domain>
`;

/** hvm-direct-kernel.xml: fully virtualized, booting a kernel given by the host. */
const HVM_KERNEL = `<domain type='xen'>
  <name>hvm-kernel</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa1</uuid>
  <os>
    <type>hvm</type>
    <loader>/usr/lib/xen/boot/hvmloader</loader>
    <kernel>/var/lib/xen/install/vmlinuz-fedora8-x86_64</kernel>
    <initrd>/var/lib/xen/install/initrd-vmlinuz-fedora8-x86_64</initrd>
    <cmdline> kickstart=http://example.com/myguest.ks </cmdline>
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
      <mac address='00:16:3e:5d:c7:9f'/>
      <script path='vif-bridge'/>
    </interface>
    <disk type='file'>
      <source file='/var/lib/xen/images/fv1'/>
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
    <graphics type='vnc' port='5905'/>
  </devices>
</domain>
`;

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

export const DEFAULT_GUESTS: readonly FixtureGuest[] = [
  { xml: HVM_BIOS },
  { xml: HVM_KERNEL },
  { xml: PV_BOOTLOADER, autostart: true },
  { xml: PV_KERNEL },
];
