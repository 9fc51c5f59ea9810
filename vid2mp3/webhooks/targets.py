"""Where a webhook may be sent: SSRF rules, checked on the addresses a host name resolves to.

A callback URL is `http` or `https`, with a host, without credentials, at most 2048 characters. Its host
must resolve only to public addresses (no loopback, private, shared, link-local - the cloud metadata
service - multicast, reserved or unspecified ones, nor IPv4 hidden in IPv6), unless the host name or
the address is allowed by WEBHOOK_ALLOWED_HOSTS (host names and CIDRs). The check is made on every
delivery, on the addresses resolved then, and the connection goes to the checked address (no second
lookup a rebinding DNS server could answer differently); redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL_CHARS = 2048


class ForbiddenTarget(ValueError):
    """The URL may not be called: the message says why, for the user."""


class Unresolvable(ForbiddenTarget):
    """The host does not resolve (now): a later try may succeed."""


@dataclass(frozen=True)
class AllowedHosts:
    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def allows_name(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.names

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def parse_allowed_hosts(value: str) -> AllowedHosts:
    """WEBHOOK_ALLOWED_HOSTS: comma-separated host names, addresses and CIDRs; ValueError naming a bad one."""
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        host = entry.lower().rstrip(".")
        if not host or any(c in host for c in "/:@ ") or not host.isascii():
            raise ValueError(f"{entry!r} is neither a host name nor an address or CIDR")
        names.add(host)
    return AllowedHosts(frozenset(names), tuple(networks))


def is_public(address: IPAddress) -> bool:
    """Routable on the internet: not loopback, private, shared, link-local, multicast, reserved or unspecified."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # as in the URL (IDNA-encoded), without brackets
    port: int
    path: str  # path and query, for the request line


def parse_callback_url(url: str) -> Target:
    """The parts of a callback URL; ForbiddenTarget when it is not one we would call."""
    if not isinstance(url, str) or not url.strip():
        raise ForbiddenTarget("`callback_url` is empty.")
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise ForbiddenTarget(f"`callback_url` is longer than {MAX_URL_CHARS} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ForbiddenTarget("`callback_url` is not a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise ForbiddenTarget("`callback_url` must start with https:// (or http://).")
    if not parts.hostname:
        raise ForbiddenTarget("`callback_url` has no host.")
    if parts.username is not None or parts.password is not None:
        raise ForbiddenTarget("`callback_url` must not carry a user name or password.")
    if any(ord(c) < 33 for c in url):
        raise ForbiddenTarget("`callback_url` must not contain spaces or control characters.")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise ForbiddenTarget("`callback_url` has a host name that cannot be encoded.") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url=url, scheme=parts.scheme, host=host, port=port or (443 if parts.scheme == "https" else 80),
                  path=path)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve_target(target: Target, allowed: AllowedHosts, resolver: Resolver = system_resolver) -> list[str]:
    """The addresses to connect to, every one of them allowed; ForbiddenTarget otherwise.

    Every address the name resolves to must be allowed, not just one: a name with a public and a private
    address would otherwise reach the private one whenever the client picks it.
    """
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = list(dict.fromkeys(resolver(target.host, target.port)))
        except (OSError, UnicodeError):
            raise Unresolvable(f"The host {target.host} of `callback_url` does not resolve.") from None
        if not addresses:
            raise Unresolvable(f"The host {target.host} of `callback_url` does not resolve.")
    if literal is None and allowed.allows_name(target.host):
        return addresses
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not (is_public(address) or allowed.allows_address(address)):
            raise ForbiddenTarget(f"`callback_url` points at a non-public address ({address}); webhooks go to "
                                  "public addresses only.")
    return addresses


def check_callback_url(url: str, allowed: AllowedHosts, resolver: Resolver = system_resolver) -> str:
    """The URL as given, once it parses and its host resolves to allowed addresses (ForbiddenTarget)."""
    target = parse_callback_url(url)
    resolve_target(target, allowed, resolver)
    return target.url
