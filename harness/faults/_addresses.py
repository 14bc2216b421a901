"""``host:port`` parsing, resolving and binding with Go's ``net`` semantics and messages (Toxiproxy echoes
bound addresses and puts Go's wording in its errors), plus the loopback-only policy."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
from dataclasses import dataclass

from harness.net import is_loopback_host

LISTEN_BACKLOG = 1024


class AddressError(Exception):
    """An address could not be parsed, resolved or bound; the message is Go's."""


def split_host_port(address: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``: ``[::1]:80`` -> (``::1``, ``80``); raises AddressError like Go does."""

    def fail(why: str) -> AddressError:
        return AddressError(f"address {address}: {why}")

    colon = address.rfind(":")
    if colon < 0:
        raise fail("missing port in address")
    start, end = 0, 0
    if address.startswith("["):
        close = address.find("]")
        if close < 0:
            raise fail("missing ']' in address")
        if close + 1 == len(address):
            raise fail("missing port in address")
        if close + 1 != colon:
            raise fail(
                "too many colons in address" if address[close + 1] == ":" else "missing port in address"
            )
        host = address[1:close]
        start, end = 1, close + 1
    else:
        host = address[:colon]
        if ":" in host:
            raise fail("too many colons in address")
    if "[" in address[start:]:
        raise fail("unexpected '[' in address")
    if "]" in address[end:]:
        raise fail("unexpected ']' in address")
    return host, address[colon + 1 :]


def join_host_port(host: str, port: int | str) -> str:
    """Go's ``net.JoinHostPort``: brackets around hosts that contain a colon."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_port(port: str) -> int:
    if port == "":
        return 0
    if port.isdigit():
        number = int(port)
        if number > 65535:
            raise AddressError(f"address {port}: invalid port")
        return number
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        raise AddressError(f"lookup tcp/{port}: unknown port") from None


def _ip_text(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Go's ``IP.String()``: IPv4-mapped IPv6 addresses print as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return ip.compressed


@dataclass(frozen=True)
class TcpAddress:
    """A resolved TCP address; ``str()`` is Go's ``TCPAddr.String()`` (``:8080`` when the host is empty)."""

    ip: str | None
    port: int
    zone: str = ""

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if self.ip is not None and ":" in self.ip else socket.AF_INET

    def __str__(self) -> str:
        host = self.ip or ""
        if self.zone:
            host = f"{host}%{self.zone}"
        return join_host_port(host, self.port)


async def resolve_tcp(address: str) -> TcpAddress:
    """Go's ``net.ResolveTCPAddr("tcp", address)``: a host name resolves to its first IPv4 address if any."""
    if address == "":
        return TcpAddress(None, 0)  # Go: every interface, any port
    host, port_text = split_host_port(address)
    port = _parse_port(port_text)
    if host == "":
        return TcpAddress(None, port)
    literal, _, zone = host.partition("%")
    try:
        return TcpAddress(_ip_text(ipaddress.ip_address(literal)), port, zone)
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise AddressError(f"lookup {host}: no such host") from None
    ips = [str(info[4][0]) for info in infos]
    ipv4 = [ip for ip in ips if ":" not in ip]
    return TcpAddress((ipv4 or ips)[0], port)


def _bind(address: TcpAddress) -> socket.socket:
    if address.ip is None:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # Go listens dual-stack on [::]
            target: tuple[str, int] = ("::", address.port)
        except OSError:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = ("0.0.0.0", address.port)
    else:
        sock = socket.socket(address.family, socket.SOCK_STREAM)
        target = (f"{address.ip}%{address.zone}" if address.zone else address.ip, address.port)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go does on every listener
        sock.bind(target)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise AddressError(f"listen tcp {address}: bind: {reason[:1].lower()}{reason[1:]}") from None
    return sock


async def bind_listener(listen: str) -> tuple[socket.socket, str]:
    """Bind and listen like Go's ``net.Listen("tcp", listen)``; returns the socket and its bound address."""
    try:
        address = await resolve_tcp(listen)
    except AddressError as exc:
        raise AddressError(f"listen tcp: {exc}") from None
    sock = _bind(address)
    return sock, sockname_text(sock.getsockname())


def sockname_text(sockname: tuple[object, ...] | str) -> str:
    """A socket address as Go prints ``listener.Addr()``: ``127.0.0.1:8080``, ``[::]:8080``."""
    if isinstance(sockname, str):
        return sockname
    host = str(sockname[0])
    with contextlib.suppress(ValueError):
        host = _ip_text(ipaddress.ip_address(host.partition("%")[0]))
    return join_host_port(host, str(sockname[1]))


def remote_address_refusal(address: str, what: str) -> str | None:
    """Why ``address`` is refused under the loopback-only policy, or None when it is allowed.

    An address that cannot be parsed is allowed through: it can reach nothing, and binding or dialling it
    fails later with the same error the real server gives.
    """
    try:
        host, _ = split_host_port(address) if address else ("", "")
    except AddressError:
        return None
    if what == "upstream" and host == "":
        return None  # Go dials the local system for an empty host
    if is_loopback_host(host):
        return None
    return (
        f"{what} address {address} is not a loopback address; "
        "start the server with --allow-remote to allow non-loopback addresses"
    )
