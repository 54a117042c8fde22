"""Per-token allow-lists: abilities and client IP/CIDR (IPv4 and IPv6)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TypeAlias

from luser_common import ValidationError

__all__ = ["IpAllowList", "Network", "parse_networks"]

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str], field: str = "allowed_ips") -> tuple[Network, ...]:
    """Parse addresses or CIDRs; a bare address is a /32 (IPv4) or /128 (IPv6)."""
    networks: list[Network] = []
    for raw in values:
        try:
            networks.append(ipaddress.ip_network(str(raw).strip(), strict=False))
        except ValueError as exc:
            raise ValidationError(f"IP 或 CIDR 格式错误: {raw}", field=field) from exc
    return tuple(networks)


class IpAllowList:
    """Membership test over a fixed set of networks; ``None`` networks = allow all."""

    __slots__ = ("_v4", "_v6", "allow_all")

    def __init__(self, networks: Iterable[Network] | None) -> None:
        self.allow_all = networks is None
        nets = tuple(networks or ())
        self._v4 = tuple(n for n in nets if n.version == 4)
        self._v6 = tuple(n for n in nets if n.version == 6)

    @classmethod
    def parse(cls, values: Iterable[str] | None) -> IpAllowList:
        return cls(None if values is None else parse_networks(values))

    def allows(self, client_ip: str | None) -> bool:
        if self.allow_all:
            return True
        if not client_ip:
            return False
        try:
            addr = ipaddress.ip_address(client_ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            # ::ffff:10.0.0.1 from a dual-stack socket is the IPv4 client 10.0.0.1.
            addr = addr.ipv4_mapped
        nets: tuple[Network, ...] = self._v4 if addr.version == 4 else self._v6
        return any(addr in net for net in nets)
