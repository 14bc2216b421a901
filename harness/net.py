"""What the harness and the processes it starts agree on about the network: the one loopback rule (what
counts as an address on this machine only), the port file a child writes to say which port it bound, and
whether a port is taken."""

from __future__ import annotations

import ipaddress
import os
import socket
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
    """The child's side of the port file: written atomically, so the parent never reads half a number.

    A child that binds port 0 itself and reports it cannot lose its port to another process, as a child
    given a port chosen earlier can: the OS may hand that port to anyone in between."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)


def port_in_use(host: str, port: int) -> bool:
    """Whether another socket holds ``host:port`` now, so a server could not bind it (TIME_WAIT does not
    count: servers bind with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free on ``host`` now, for a program that must be told its port before it
    binds (a user's ``{port}`` command, Locust's master): it may be taken by then, so its user must be ready
    to start again on another."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
