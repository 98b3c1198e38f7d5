"""The Debian 12 cloud image's root tree: `mmdebstrap` from deb.debian.org into a directory, then the
files that make it a cloud guest (fstab by filesystem UUID, GRUB's config for firmware boot on the serial
console, cloud-init limited to NoCloud, systemd-networkd enabled for cloud-init's network config, its
wait-online bounded) and a small initramfs (only the virtio and ext4 modules: 6.5 MB instead of 36 MB,
which TCG unpacks far faster), regenerated with `chroot ROOT update-initramfs`.

No recommends, no docs/man/locales, and kernel modules no VM uses (sound, GPUs, media, wireless) are
dropped at unpack time (dpkg path-exclude) to keep the image small. argv lists only.
"""

from __future__ import annotations

from pathlib import Path

from plasmavmc.images.guest.tools import GuestBuildError, run

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd-sysv", "udev", "linux-image-amd64", "cloud-init", "openssh-server", "sudo",
    "iproute2", "e2fsprogs", "cloud-guest-utils", "netbase",
)
_EXCLUDED = (
    "/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
    "/usr/lib/modules/*/kernel/sound/*", "/usr/lib/modules/*/kernel/drivers/gpu/*",
    "/usr/lib/modules/*/kernel/drivers/media/*", "/usr/lib/modules/*/kernel/drivers/net/wireless/*",
    "/usr/lib/modules/*/kernel/drivers/infiniband/*", "/usr/lib/modules/*/kernel/drivers/staging/*",
    "/usr/lib/modules/*/kernel/drivers/bluetooth/*", "/usr/lib/modules/*/kernel/net/wireless/*",
    "/usr/lib/modules/*/kernel/net/bluetooth/*", "/usr/lib/modules/*/kernel/drivers/isdn/*",
)
_KEPT = ("/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias")
NETWORKD_UNITS = ("systemd-networkd.service",)
# network-online waits for one routable link, not all, and not the default 2 minutes (a VM without a NIC)
WAIT_ONLINE_DROPIN = """\
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=30
"""


def mmdebstrap_argv(root: Path) -> list[str]:
    """The mmdebstrap command line that fills `root` (a fresh directory) with the image's packages."""
    argv = ["mmdebstrap", "--variant=minbase", "--mode=root", "--aptopt=APT::Install-Recommends \"false\"",
            f"--include={','.join(PACKAGES)}"]
    argv += [f"--dpkgopt=path-exclude={p}" for p in _EXCLUDED]
    argv += [f"--dpkgopt=path-include={p}" for p in _KEPT]
    return [*argv, SUITE, str(root), MIRROR]


INITRAMFS_CONF = "MODULES=list\nCOMPRESS=gzip\n"
INITRAMFS_MODULES = ("virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net", "ext4")


def kernel_files(root: Path) -> tuple[Path, Path, str]:
    """(vmlinuz, initrd, kernel version) installed in `root`'s /boot; GuestBuildError unless exactly one."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise GuestBuildError(f"expected one kernel in {root}/boot, found {[k.name for k in kernels]}")
    version = kernels[0].name.removeprefix("vmlinuz-")
    initrd = root / "boot" / f"initrd.img-{version}"
    if not initrd.is_file():
        raise GuestBuildError(f"the kernel package made no initrd ({initrd.name})")
    return kernels[0], initrd, version


def boot_cmdline(fs_uuid: str) -> str:
    """The kernel command line of both boots (GRUB's and a direct one)."""
    return f"root=UUID={fs_uuid} ro console=ttyS0,115200 net.ifnames=0"


def grub_cfg(fs_uuid: str, version: str) -> str:
    """GRUB's config on the root filesystem: serial console, no menu wait, this kernel."""
    return (
        "serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n"
        "set timeout=0\nset default=0\n"
        "menuentry 'Debian GNU/Linux 12' {\n"
        f"  linux /boot/vmlinuz-{version} {boot_cmdline(fs_uuid)}\n"
        f"  initrd /boot/initrd.img-{version}\n}}\n"
    )


CLOUD_CFG = """\
# PlasmaVMC: the seed is a NoCloud `cidata` disk; do not probe network datasources
datasource_list: [ NoCloud, None ]
# the image generates no locales (a minbase system has only C, C.UTF-8 and POSIX): cloud-init's default
# en_US.UTF-8 would fail update-locale and leave `cloud-init status` at "error"
locale: C.UTF-8
"""


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


async def configure(root: Path, fs_uuid: str) -> str:
    """Write the cloud-guest files into `root`; returns the kernel version."""
    _, _, version = kernel_files(root)
    _write(root, "etc/fstab", f"UUID={fs_uuid} / ext4 rw,discard,errors=remount-ro 0 1\n")
    _write(root, "boot/grub/grub.cfg", grub_cfg(fs_uuid, version))
    _write(root, "etc/cloud/cloud.cfg.d/90_plasmavmc.cfg", CLOUD_CFG)
    _write(root, "etc/systemd/system/systemd-networkd-wait-online.service.d/plasmavmc.conf", WAIT_ONLINE_DROPIN)
    _write(root, "etc/hostname", "debian\n")
    _write(root, "etc/machine-id", "")  # each VM makes its own at first boot
    await run(["systemctl", f"--root={root}", "enable", *NETWORKD_UNITS])
    _write(root, "etc/initramfs-tools/conf.d/plasmavmc.conf", INITRAMFS_CONF)
    _write(root, "etc/initramfs-tools/modules", "".join(f"{m}\n" for m in INITRAMFS_MODULES))
    await run(["chroot", str(root), "update-initramfs", "-u", "-k", version])
    return version


async def bootstrap(root: Path, fs_uuid: str) -> str:
    """mmdebstrap into `root` and configure it; returns the kernel version."""
    await run(mmdebstrap_argv(root))
    return await configure(root, fs_uuid)
