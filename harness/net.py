"""What the harness and the processes it starts agree on about the network: the one loopback rule (what
counts as an address on this machine only) and the port file a child writes to say which port it bound."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals; an empty host means every interface, so False."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is a loopback address."""
    return is_loopback_host(urlsplit(url).hostname or "")


def write_port_file(path: Path, port: int) -> None:
    """The child's side of the port file: written atomically, so the parent never reads half a number."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)
