#!/bin/sh
# PlasmaVMC guest initramfs /init (busybox sh).
# Loads the kernel modules listed in /lib/modules/load-order (dependency order, written by the
# image builder), waits for the root disk, mounts it and switch_roots into the root disk's init.
# Kernel cmdline knobs: root=/dev/XXX (default /dev/vda), rootfstype= (default ext4),
# init= (default /sbin/init), plasmavmc.rootwait=SECONDS (default 30).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

root=/dev/vda
fstype=ext4
init=/sbin/init
rootwait=30
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        root=/dev/*) root="${arg#root=}" ;;
        rootfstype=*) fstype="${arg#rootfstype=}" ;;
        init=*) init="${arg#init=}" ;;
        plasmavmc.rootwait=*) rootwait="${arg#plasmavmc.rootwait=}" ;;
    esac
done

while read -r mod; do
    insmod "/lib/modules/$mod.ko" 2>/dev/null || echo "initramfs: warning: could not load module $mod" >/dev/console
done < /lib/modules/load-order

rescue() {
    echo "PLASMAVMC-ERROR: $1" >/dev/console
    echo "initramfs: block devices: $(ls /sys/class/block 2>/dev/null | tr '\n' ' ')" >/dev/console
    echo "initramfs: starting a rescue shell" >/dev/console
    exec sh </dev/console >/dev/console 2>&1
}

ticks=$((rootwait * 10))
while [ ! -b "$root" ]; do
    [ "$ticks" -le 0 ] && rescue "root disk $root did not appear within ${rootwait}s (is a virtio-blk disk attached?)"
    ticks=$((ticks - 1))
    usleep 100000
done

mount -t "$fstype" -o rw "$root" /newroot || rescue "could not mount $root ($fstype) on /newroot"
[ -x "/newroot$init" ] || [ -L "/newroot$init" ] || rescue "$init not found on root disk $root"

for fs in dev proc sys; do
    mkdir -p "/newroot/$fs"
    mount --move "/$fs" "/newroot/$fs"
done
exec switch_root /newroot "$init"
