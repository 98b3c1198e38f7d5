#!/bin/sh
# PlasmaVMC guest /etc/init.d/rcK, run by busybox init before power-off or reboot:
# flush, remount the root disk read-only and unmount the rest so the disk is left clean.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
echo "plasmavmc: shutting down" >/dev/console
[ -f /run/acpid.pid ] && kill "$(cat /run/acpid.pid)" 2>/dev/null
sync
# Remount / first: busybox mount needs /proc/mounts, which umount -a takes away. A process
# with a file open for writing makes the remount fail (EBUSY) until it exits: retry briefly.
tries=20
until mount -o remount,ro / 2>/dev/null; do
    tries=$((tries - 1))
    [ "$tries" -le 0 ] && { echo "plasmavmc: warning: / stays read-write" >/dev/console; break; }
    usleep 100000
done
umount -a -r 2>/dev/null
sync
