"""The SSRF guard: which destinations outbound requests may reach.

Two checks, both needed. ``EgressGuard.check_url`` vets the host as written in the URL,
in every spelling a resolver or a browser would accept (``127.1``, ``0177.0.0.1``,
``2130706433``, ``0x7f.1``, ``[::ffff:a9fe:a9fe]``, NAT64, 6to4, trailing dots), so the
caller gets a clear error before anything is sent. ``EgressGuard.resolve`` is called by
the transport at connect time: it resolves a name once, vets every address and returns
the addresses to connect to, so a name that resolves to an internal address, or that
changes between a check and the connection (DNS rebinding), cannot get through.
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence

import anyio
import httpx

from engine.errors import EgressDenied

from ._attempt import strip_url
from ._policies import DEFAULT_EGRESS_POLICY, EgressPolicy, IPAddress

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Resolves ``(host, port)`` to IP address strings; the seam tests use to name hosts."""

ALLOWED_SCHEMES = frozenset({"http", "https"})

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
# Names that mean "this machine" or "the metadata service" wherever they are resolved.
DENIED_HOSTNAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64 or address in _IPV4_TRANSLATED:
        return low32
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return low32
    return None


def classify_address(address: IPAddress) -> str | None:
    """Why ``address`` must not be reached, or None when it is a public unicast address.

    An IPv6 address that embeds an IPv4 address is judged by the IPv4 address.
    """
    if address in METADATA_ADDRESSES:
        return "cloud metadata endpoint"
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo is not None:
            return "Teredo tunnel address (embeds an obfuscated IPv4 address)"
        if address in _NAT64_LOCAL:
            return "local-use NAT64 address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = classify_address(embedded)
            return f"{reason} (embedded IPv4 {embedded})" if reason else None
    if address.is_unspecified:
        return "unspecified address"
    if address.is_loopback:
        return "loopback address"
    if address.is_link_local:
        return "link-local address"
    if address.is_multicast:
        return "multicast address"
    if address in _CGNAT:
        return "carrier-grade NAT (shared) address"
    if any(address in network for network in _PRIVATE):
        return "private network address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local address"
    if address.is_reserved:
        return "reserved address"
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return "reserved address (outside IPv6 global unicast 2000::/3)"
    if not address.is_global:
        return "special-purpose (non-global) address"
    return None


def _parse_ipv4_number(part: str) -> int | None:
    if part.startswith(("0x", "0X")):
        digits, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if digits == "":
        return 0 if base == 16 else None
    try:
        return int(digits, base)
    except ValueError:
        return None


def _looks_numeric(part: str) -> bool:
    return part.isdigit() or part.lower().startswith("0x") and all(
        c in "0123456789abcdefABCDEF" for c in part[2:]
    )


class AmbiguousNumericHost(ValueError):
    """A host that is numeric like an IPv4 address but not a valid one (``1.2.3.999``)."""


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """Parse ``host`` as an IPv4 address in every form ``inet_aton`` and browsers accept.

    Dotted parts may be decimal, octal (leading 0) or hex (0x); one to four parts, the last
    filling the remaining bytes (``127.1``, ``2130706433``, ``0x7f.1``). Returns None when
    ``host`` is a name; raises ``AmbiguousNumericHost`` (a ``ValueError``) when it looks
    numeric but is not a valid address.
    """
    parts = host.split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if not parts or not parts[-1] or not _looks_numeric(parts[-1]):
        return None
    if len(parts) > 4:
        raise AmbiguousNumericHost(f"too many parts for an IPv4 address: {host!r}")
    numbers: list[int] = []
    for part in parts:
        number = _parse_ipv4_number(part)
        if number is None:
            raise AmbiguousNumericHost(f"not a valid IPv4 address part: {part!r}")
        numbers.append(number)
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise AmbiguousNumericHost(f"IPv4 address out of range: {host!r}")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_host(host: str) -> tuple[str, IPAddress | None]:
    """Normalize a URL host: ``(name, address)``, where ``address`` is set for IP literals.

    Percent-escapes are decoded and the name is NFKC-folded, IDNA-encoded and lower-cased
    (as URL parsers do before resolving); brackets, IPv6 zone ids and trailing dots are
    removed. Raises ``AmbiguousNumericHost`` for a host that is numeric but not a valid
    address and ``ValueError`` for one that is no valid host at all.
    """
    name = unicodedata.normalize("NFKC", urllib.parse.unquote(host)).strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if ":" in name:
        literal = name.split("%", 1)[0]
        try:
            return literal, ipaddress.IPv6Address(literal)
        except ValueError as exc:
            raise ValueError(f"invalid IPv6 address {host!r}") from exc
    name = name.rstrip(".") if name.strip(".") else name
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"invalid host {host!r}: {exc}") from None
    ipv4 = parse_ipv4_loose(name)
    if ipv4 is None and not set(name) <= _NAME_CHARS:
        raise ValueError(f"invalid host {host!r}")
    return name, ipv4


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver (getaddrinfo), TCP addresses only."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


class EgressGuard:
    """Decides which destinations outbound requests may reach.

    ``policy.allow`` names hosts, addresses and blocks that are permitted despite the
    rules; ``resolver`` resolves names (default: getaddrinfo), a seam for tests.
    """

    def __init__(self, policy: EgressPolicy = DEFAULT_EGRESS_POLICY, *, resolver: Resolver | None = None):
        self.policy = policy
        self._resolver: Resolver = resolver or system_resolver

    def _denied_address(self, address: IPAddress) -> str | None:
        reason = classify_address(address)
        if reason is None:
            return None
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)):
            candidates.append(embedded)
        exact = "metadata" in reason
        if any(self.policy.allows_address(a, exact=exact) for a in candidates):
            return None
        return reason

    def check_address(self, address: str | IPAddress, *, host: str | None = None, url: str | None = None) -> None:
        """Raise ``EgressDenied`` unless ``address`` (an IP address) may be reached."""
        try:
            ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        except ValueError:
            raise EgressDenied(url, host or str(address), str(address), "not an IP address", allowable=False) from None
        reason = self._denied_address(ip)
        if reason:
            raise EgressDenied(url, host or str(ip), str(ip), reason)

    def check_host(self, host: str, *, url: str | None = None) -> IPAddress | None:
        """Vet a URL host as written; returns its address when it is an IP literal.

        Raises ``EgressDenied`` for a refused address in any spelling, a name that means
        this machine or a metadata service, or an ambiguous numeric host; ``ValueError``
        for a host that is not valid at all.
        """
        try:
            name, address = parse_host(host)
        except AmbiguousNumericHost as exc:
            raise EgressDenied(url, host, None, f"ambiguous numeric host ({exc})", allowable=False) from None
        if not name:
            raise EgressDenied(url, host, None, "empty host", allowable=False)
        if address is not None:
            if not self.policy.allows_hostname(name):
                self.check_address(address, host=host, url=url)
            return address
        if self.policy.allows_hostname(name):
            return None
        if name in DENIED_HOSTNAMES or name.endswith(".localhost"):
            reason = "cloud metadata name" if name.startswith(("metadata", "instance-data")) else "loopback name"
            raise EgressDenied(url, host, None, reason)
        return None

    def check_url(self, url: str | httpx.URL, *, display_url: str | None = None) -> httpx.URL:
        """Vet ``url`` before sending: scheme http(s) and a permitted host. Returns it parsed.

        ``display_url`` is what error messages show (default: the URL without user info,
        query and fragment, which may hold secrets). Raises ``EgressDenied``; a URL that is
        malformed but not a refused destination raises ``ValueError`` with the reason.
        """
        try:
            return self._check_url(url)
        except EgressDenied as exc:
            shown = display_url if display_url is not None else strip_url(str(url))
            raise EgressDenied(shown, exc.host, exc.address, exc.reason, allowable=exc.allowable) from None

    def _check_url(self, url: str | httpx.URL) -> httpx.URL:
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except httpx.InvalidURL as exc:
            # httpx refuses some spellings (0177.0.0.1) that resolvers accept: still say
            # "refused" for those rather than "malformed", since that is what they are.
            host = urllib.parse.urlsplit(str(url)).hostname
            if host:
                self.check_host(host)
            raise ValueError(str(exc)) from None
        if parsed.scheme not in ALLOWED_SCHEMES:
            reason = f"scheme {parsed.scheme!r} is not allowed (http, https only)"
            raise EgressDenied(None, parsed.host or "", None, reason, allowable=False)
        if not parsed.host:
            raise ValueError("URL has no host")
        self.check_host(parsed.raw_host.decode("ascii"))
        return parsed

    async def resolve(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` once and vet every address; returns the addresses to connect to.

        Refuses the whole name if any address is refused: a name with one internal address
        among public ones is an attack, not a misconfiguration. An allow-listed name is
        permitted whatever it resolves to. Raises ``EgressDenied``, or ``OSError`` when the
        name does not resolve.
        """
        address = self.check_host(host)
        if address is not None:
            return [str(address)]
        name, _ = parse_host(host)
        addresses = list(await self._resolver(name, port))
        if not addresses:
            raise OSError(f"{host!r} resolved to no address")
        if not self.policy.allows_hostname(name):
            for resolved in addresses:
                self.check_address(resolved, host=host)
        return addresses
