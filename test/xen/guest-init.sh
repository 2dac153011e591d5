#!/bin/busybox sh
# /xenvirt-init of the test guest (kernel cmdline rdinit=/xenvirt-init): the harness's busybox
# guest plus Xen's block and network frontends, and a console command loop so that dom0 can
# make the guest act on its own (power off, reboot, crash) by writing to its console pty.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /sbin
# Linux's Xen shutdown watch runs /sbin/poweroff and /sbin/reboot (orderly_poweroff): make them forced
printf '#!/bin/sh\nexec /bin/busybox poweroff -f\n' > /sbin/poweroff
printf '#!/bin/sh\nexec /bin/busybox reboot -f\n' > /sbin/reboot
chmod +x /sbin/poweroff /sbin/reboot
insmod /lib/xenvirt/xen-blkfront.ko 2>/dev/null
insmod /lib/xenvirt/xen-netfront.ko 2>/dev/null
echo "GUEST-UP kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)s mem=$(grep MemTotal /proc/meminfo | tr -s ' ')"
while true; do
  read -r line || { sleep 1; continue; }
  case "$line" in
    *xv-poweroff*) echo "GUEST-POWEROFF"; poweroff -f ;;
    *xv-reboot*) echo "GUEST-REBOOT"; reboot -f ;;
    *xv-crash*) echo "GUEST-CRASH"; echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger ;;
    *xv-disks*) echo "GUEST-DISKS $(ls /sys/block | tr '\n' ' ')" ;;
    *xv-nics*) echo "GUEST-NICS $(ls /sys/class/net | tr '\n' ' ')" ;;
    *xv-mem*) echo "GUEST-MEM $(grep MemTotal /proc/meminfo | tr -s ' ')" ;;
  esac
done
