from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_INGRESS: _ClassVar[Direction]
    DIRECTION_EGRESS: _ClassVar[Direction]

class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_UNSPECIFIED: _ClassVar[Protocol]
    PROTOCOL_ANY: _ClassVar[Protocol]
    PROTOCOL_TCP: _ClassVar[Protocol]
    PROTOCOL_UDP: _ClassVar[Protocol]
    PROTOCOL_ICMP: _ClassVar[Protocol]
DIRECTION_UNSPECIFIED: Direction
DIRECTION_INGRESS: Direction
DIRECTION_EGRESS: Direction
PROTOCOL_UNSPECIFIED: Protocol
PROTOCOL_ANY: Protocol
PROTOCOL_TCP: Protocol
PROTOCOL_UDP: Protocol
PROTOCOL_ICMP: Protocol

class Network(_message.Message):
    __slots__ = ("id", "cidr", "gateway", "dhcp", "egress_nat", "vni", "org_id", "project_id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    CIDR_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    DHCP_FIELD_NUMBER: _ClassVar[int]
    EGRESS_NAT_FIELD_NUMBER: _ClassVar[int]
    VNI_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    cidr: str
    gateway: str
    dhcp: bool
    egress_nat: bool
    vni: int
    org_id: str
    project_id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., cidr: _Optional[str] = ..., gateway: _Optional[str] = ..., dhcp: _Optional[bool] = ..., egress_nat: _Optional[bool] = ..., vni: _Optional[int] = ..., org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class SecurityRule(_message.Message):
    __slots__ = ("direction", "protocol", "port_min", "port_max", "remote_cidr", "remote_group", "remote_ips")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_MIN_FIELD_NUMBER: _ClassVar[int]
    PORT_MAX_FIELD_NUMBER: _ClassVar[int]
    REMOTE_CIDR_FIELD_NUMBER: _ClassVar[int]
    REMOTE_GROUP_FIELD_NUMBER: _ClassVar[int]
    REMOTE_IPS_FIELD_NUMBER: _ClassVar[int]
    direction: Direction
    protocol: Protocol
    port_min: int
    port_max: int
    remote_cidr: str
    remote_group: str
    remote_ips: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, direction: _Optional[_Union[Direction, str]] = ..., protocol: _Optional[_Union[Protocol, str]] = ..., port_min: _Optional[int] = ..., port_max: _Optional[int] = ..., remote_cidr: _Optional[str] = ..., remote_group: _Optional[str] = ..., remote_ips: _Optional[_Iterable[str]] = ...) -> None: ...

class SecurityGroup(_message.Message):
    __slots__ = ("id", "rules", "name", "org_id", "project_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    rules: _containers.RepeatedCompositeFieldContainer[SecurityRule]
    name: str
    org_id: str
    project_id: str
    def __init__(self, id: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[SecurityRule, _Mapping]]] = ..., name: _Optional[str] = ..., org_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class NetworkPort(_message.Message):
    __slots__ = ("port_id", "network", "mac_address", "ip_addresses", "tap_device", "security_groups", "vm_id")
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    TAP_DEVICE_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    port_id: str
    network: Network
    mac_address: str
    ip_addresses: _containers.RepeatedScalarFieldContainer[str]
    tap_device: str
    security_groups: _containers.RepeatedCompositeFieldContainer[SecurityGroup]
    vm_id: str
    def __init__(self, port_id: _Optional[str] = ..., network: _Optional[_Union[Network, _Mapping]] = ..., mac_address: _Optional[str] = ..., ip_addresses: _Optional[_Iterable[str]] = ..., tap_device: _Optional[str] = ..., security_groups: _Optional[_Iterable[_Union[SecurityGroup, _Mapping]]] = ..., vm_id: _Optional[str] = ...) -> None: ...

class CreateNetworkRequest(_message.Message):
    __slots__ = ("org_id", "project_id", "name", "cidr", "gateway", "dhcp", "egress_nat")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CIDR_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    DHCP_FIELD_NUMBER: _ClassVar[int]
    EGRESS_NAT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    name: str
    cidr: str
    gateway: str
    dhcp: bool
    egress_nat: bool
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., name: _Optional[str] = ..., cidr: _Optional[str] = ..., gateway: _Optional[str] = ..., dhcp: _Optional[bool] = ..., egress_nat: _Optional[bool] = ...) -> None: ...

class NetworkRef(_message.Message):
    __slots__ = ("org_id", "project_id", "network")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    network: str
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., network: _Optional[str] = ...) -> None: ...

class ListNetworksRequest(_message.Message):
    __slots__ = ("org_id", "project_id")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks",)
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[Network]
    def __init__(self, networks: _Optional[_Iterable[_Union[Network, _Mapping]]] = ...) -> None: ...

class SecurityGroupRules(_message.Message):
    __slots__ = ("org_id", "project_id", "name", "rules")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    name: str
    rules: _containers.RepeatedCompositeFieldContainer[SecurityRule]
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., name: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[SecurityRule, _Mapping]]] = ...) -> None: ...

class SecurityGroupRef(_message.Message):
    __slots__ = ("org_id", "project_id", "name")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    name: str
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListSecurityGroupsRequest(_message.Message):
    __slots__ = ("org_id", "project_id")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class ListSecurityGroupsResponse(_message.Message):
    __slots__ = ("security_groups",)
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    security_groups: _containers.RepeatedCompositeFieldContainer[SecurityGroup]
    def __init__(self, security_groups: _Optional[_Iterable[_Union[SecurityGroup, _Mapping]]] = ...) -> None: ...
