"""Every documented limit on counts and sizes of what a caller or an agent may send, in one place.

`validation.py` enforces these field by field (INVALID_ARGUMENT naming the field); `wire/guard.py`
enforces the two floors under all of them (`MAX_FIELD_BYTES`, `MAX_REPEATED`) on every gRPC port before
any servicer runs. The README's "Limits" table lists the same numbers: change both together.
"""

from __future__ import annotations

#: resource names, scope ids (org, project), label keys, node ids: [A-Za-z0-9._-], starting alphanumeric
NAME_MAX = 63
#: disk, NIC and snapshot ids: [a-z0-9._-]
DEVICE_ID_MAX = 63
MAX_VCPUS = 256
MIN_MEMORY_MIB = 64
MAX_MEMORY_MIB = 1024 * 1024
MAX_DISK_GIB = 16 * 1024
MAX_DISKS_PER_VM = 16
MAX_NICS_PER_VM = 8
#: labels and metadata maps (VMs, images, nodes, node selectors)
MAX_LABELS = 64
LABEL_VALUE_MAX = 255
#: a VM's `spec.boot.kernel_args` and an image's `kernel_cmdline` metadata, each
KERNEL_ARGS_MAX = 512
MAX_TOLERATIONS = 16
MAX_TAINTS = 32
MAX_NODE_CONDITIONS = 32
#: free text an agent reports (condition reasons and messages, agent version)
TEXT_MAX = 1024
#: what one node may report as its capacity
MAX_NODE_VCPUS = 65_536
MAX_NODE_MEMORY_MIB = 1 << 32
MAX_NODE_STORAGE_GIB = 1 << 30
#: cloud-init (`spec.cloud_init`): user-data bytes (a secret; EC2 allows 16 KiB too), keys and key length
USER_DATA_MAX = 16 * 1024
MAX_SSH_KEYS = 16
SSH_KEY_MAX = 8 * 1024
#: VMs one node may report in a heartbeat (its `vms` and `gone_vm_ids` lists)
MAX_NODE_VMS = 16_384
#: floors on every gRPC port (see wire/guard.py)
MAX_FIELD_BYTES = 64 * 1024
MAX_REPEATED = 1024
