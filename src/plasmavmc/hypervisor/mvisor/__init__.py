"""The mvisor backend: a KVM virtual machine monitor driven through a YAML configuration (spec §4.2)."""
