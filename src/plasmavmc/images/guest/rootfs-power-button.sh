#!/bin/sh
# PlasmaVMC guest /etc/acpi/power-button.sh: run by acpid on an ACPI power-button press
# (QMP system_powerdown). Asks busybox init to power off: init runs /etc/init.d/rcK (sync,
# unmount), kills the remaining processes and powers the machine off (reboot(RB_POWER_OFF)).
echo "plasmavmc: ACPI power button pressed, powering off" >/dev/console
exec /sbin/poweroff
