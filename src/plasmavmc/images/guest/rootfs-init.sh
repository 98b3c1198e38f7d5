#!/bin/sh
# PlasmaVMC guest /etc/init.d/rcS, run by busybox init (sysinit) on every boot.
# Mounts the pseudo filesystems, names the host after plasmavmc.vm_name, starts acpid (ACPI
# power button -> clean power-off) and prints the one readiness line the control plane waits for:
#   PLASMAVMC-READY name=<plasmavmc.vm_name> id=<plasmavmc.vm_id>
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts 2>/dev/null
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/plasmavmc
mount -o remount,rw / 2>/dev/null

name=
id=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        plasmavmc.vm_name=*) name="${arg#plasmavmc.vm_name=}" ;;
        plasmavmc.vm_id=*) id="${arg#plasmavmc.vm_id=}" ;;
    esac
done
printf '%s\n' "$name" > /run/plasmavmc/vm_name
printf '%s\n' "$id" > /run/plasmavmc/vm_id

hostname "${name:-plasmavmc}"
ip link set lo up 2>/dev/null

# acpid watches /dev/input/event* (the "Power Button" input device of the ACPI button driver,
# which the initramfs loaded together with evdev) and runs /etc/acpi/power-button.sh.
acpid -c /etc/acpi -a /etc/acpid.conf -l /run/acpid.log -p /run/acpid.pid

echo "PLASMAVMC-READY name=$name id=$id" >/dev/console
