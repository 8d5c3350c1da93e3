"""The SSRF guard on its own: every spelling of a refused address, names, the allow-list,
resolution through the resolver seam. No sockets here; tests/test_http_client.py sends
real requests through the guard."""

from __future__ import annotations

import ipaddress

import pytest

from engine.errors import EgressDenied, EngineError
from engine.http import EgressGuard, EgressPolicy, classify_address, parse_host
from engine.http._egress import parse_ipv4_loose

REFUSED_URLS = [
    # loopback, every spelling
    ("http://127.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://0x7F.0.0.1/", "loopback"),
    ("http://127.0.0.1./", "loopback"),
    ("http://%31%32%37.0.0.1/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[0:0:0:0:0:ffff:7f00:1]/", "loopback"),
    ("http://[::127.0.0.1]/", "loopback"),  # IPv4-compatible
    ("http://[::ffff:0:127.0.0.1]/", "loopback"),  # IPv4-translated (SIIT)
    ("http://[64:ff9b::127.0.0.1]/", "loopback"),  # NAT64
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4
    ("http://localhost/", "loopback name"),
    ("http://LOCALHOST./", "loopback name"),
    ("http://api.localhost/", "loopback name"),
    ("http://localhost:8080/path", "loopback name"),
    # cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://[::ffff:a9fe:a9fe]/", "metadata"),
    ("http://[64:ff9b::a9fe:a9fe]/", "metadata"),
    ("http://[64:ff9b::169.254.169.254]/", "metadata"),
    ("http://[2002:a9fe:a9fe::]/", "metadata"),
    ("http://2852039166/", "metadata"),
    ("http://0xa9fea9fe/", "metadata"),
    ("http://0251.0376.0251.0376/", "metadata"),
    ("http://169.254.43518/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://100.100.100.200/", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http://metadata.google.internal./", "metadata"),
    # private, link-local, CGNAT, multicast, unspecified, reserved
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://[fc00::1]/", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://169.254.1.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"),
    ("http://192.0.2.1/", "non-global"),  # TEST-NET-1
    ("http://[2001:db8::1]/", "non-global"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
    ("http://[fec0::1]/", "site-local"),
    # neither a name nor a valid address: refused, not guessed at
    ("http://1.2.3.999/", "ambiguous numeric host"),
    ("http://1.2.3.4.5/", "ambiguous numeric host"),
    ("http://08.0.0.1/", "ambiguous numeric host"),
    ("http://foo.123/", "ambiguous numeric host"),
    # not HTTP
    ("file:///etc/passwd", "scheme"),
    ("ftp://example.com/", "scheme"),
    ("gopher://example.com/", "scheme"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED_URLS)
def test_refused_in_every_spelling(url: str, why: str) -> None:
    guard = EgressGuard()
    with pytest.raises(EgressDenied) as info:
        guard.check_url(url)
    err = info.value
    assert why.lower() in err.reason.lower(), err.reason
    assert err.code == "egress_denied" and err.http_status == 403
    assert isinstance(err, EngineError)
    # the message names the host and the reason
    assert repr(err.host) in str(err) and err.reason in str(err)


def test_mapped_metadata_address_names_the_embedded_ipv4() -> None:
    with pytest.raises(EgressDenied) as info:
        EgressGuard().check_url("http://[::ffff:169.254.169.254]/latest/meta-data/")
    assert "169.254.169.254" in info.value.reason
    assert info.value.address == "::ffff:a9fe:a9fe"


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/",
        "http://8.8.8.8:53/",
        "https://[2606:4700:4700::1111]/",
        "https://[::ffff:8.8.8.8]/",  # mapped, but a public address
        "https://[64:ff9b::808:808]/",  # NAT64 of 8.8.8.8
        "https://api.hubapi.com/crm/v3/objects/contacts?limit=10",
        "https://inventory.dearsystems.com/ExternalApi/v2/customer",
        "http://example.com./",
        "http://xn--bcher-kva.example/",
        "http://100.128.0.1/",  # just outside 100.64/10
        "http://172.32.0.1/",  # just outside 172.16/12
    ],
)
def test_public_destinations_pass(url: str) -> None:
    EgressGuard().check_url(url)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0X7F.0X0.0.01", "127.0.0.1"),
        ("10.0x10.0377.1", "10.16.255.1"),
        ("0", "0.0.0.0"),
        ("8.8.8.8.", "8.8.8.8"),
        ("example.com", None),
        ("1-2-3-4.example", None),
    ],
)
def test_parse_ipv4_loose(host: str, expected: str | None) -> None:
    parsed = parse_ipv4_loose(host.lower().rstrip(".") if host.endswith(".") else host)
    assert (str(parsed) if parsed else None) == expected


@pytest.mark.parametrize("host", ["256.0.0.1", "1.2.3.256", "1.2.65536", "4294967296", "09", "1.2.3.4.5", "x.0x"])
def test_parse_ipv4_loose_rejects_out_of_range(host: str) -> None:
    with pytest.raises(ValueError):
        parse_ipv4_loose(host)


def test_parse_host_normalizes() -> None:
    assert parse_host("[::FFFF:A9FE:A9FE]") == ("::ffff:a9fe:a9fe", ipaddress.ip_address("::ffff:169.254.169.254"))
    assert parse_host("Example.COM.") == ("example.com", None)
    assert parse_host("%6c%6fcalhost") == ("localhost", None)
    with pytest.raises(ValueError):
        parse_host("[::gg]")


def test_classify_address() -> None:
    assert classify_address(ipaddress.ip_address("8.8.8.8")) is None
    assert classify_address(ipaddress.ip_address("2606:4700::1111")) is None
    assert classify_address(ipaddress.ip_address("169.254.169.254")) == "cloud metadata endpoint"
    assert "loopback" in classify_address(ipaddress.ip_address("::ffff:127.0.0.1"))


# -- allow-list --------------------------------------------------------------------------


def test_allow_list_permits_named_addresses_only() -> None:
    guard = EgressGuard(EgressPolicy(allow=("127.0.0.1", "10.1.0.0/16", "sandbox.internal", "*.svc.local")))
    guard.check_url("http://127.0.0.1:8080/")
    guard.check_url("http://127.1:8080/")  # same address, other spelling
    guard.check_url("http://[::ffff:127.0.0.1]/")  # same address, IPv6-mapped
    guard.check_url("http://10.1.200.3/")
    guard.check_url("http://sandbox.internal/")
    guard.check_url("http://hubspot.svc.local/")
    for url in ("http://127.0.0.2/", "http://10.2.0.1/", "http://[::1]/", "http://localhost/", "http://169.254.169.254/"):
        with pytest.raises(EgressDenied):
            guard.check_url(url)


def test_allow_listed_hostname_localhost() -> None:
    EgressGuard(EgressPolicy(allow=("localhost",))).check_url("http://localhost:9000/")


def test_metadata_address_needs_an_exact_entry() -> None:
    wide = EgressGuard(EgressPolicy(allow=("169.254.0.0/16", "100.64.0.0/10")))
    wide.check_url("http://169.254.1.1/")
    for url in ("http://169.254.169.254/", "http://100.100.100.200/"):
        with pytest.raises(EgressDenied):
            wide.check_url(url)
    EgressGuard(EgressPolicy(allow=("169.254.169.254",))).check_url("http://169.254.169.254/")


@pytest.mark.parametrize("allow", [("",), ("not a host!",), ("http://example.com/",), ("10.0.0.0/33",), ("a..b",)])
def test_invalid_allow_list_entries_are_refused_early(allow: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        EgressPolicy(allow=allow)


def test_allow_must_be_a_sequence() -> None:
    with pytest.raises(ValueError):
        EgressPolicy(allow="127.0.0.1")  # type: ignore[arg-type]


def test_malformed_url_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        EgressGuard().check_url("http://exa mple.com/")
    with pytest.raises(ValueError):
        EgressGuard().check_url("http:///nohost")


# -- resolution (the connect-time check) -------------------------------------------------


def fixed_resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


async def test_resolve_vets_every_address() -> None:
    calls: list[str] = []
    guard = EgressGuard(
        resolver=fixed_resolver(
            {
                "api.example.com": ["93.184.216.34", "2606:2800:220:1::1"],
                "internal.example.com": ["127.0.0.1"],
                "mixed.example.com": ["93.184.216.34", "10.0.0.7"],
                "meta.example.com": ["::ffff:169.254.169.254"],
            },
            calls,
        )
    )
    assert await guard.resolve("api.example.com", 443) == ["93.184.216.34", "2606:2800:220:1::1"]
    with pytest.raises(EgressDenied) as info:
        await guard.resolve("internal.example.com", 443)
    assert info.value.address == "127.0.0.1" and info.value.host == "internal.example.com"
    assert "loopback" in str(info.value)
    with pytest.raises(EgressDenied) as info:
        await guard.resolve("mixed.example.com", 443)
    assert info.value.address == "10.0.0.7"
    with pytest.raises(EgressDenied):
        await guard.resolve("meta.example.com", 80)
    # literals are never looked up; refused names are refused before any lookup
    assert await guard.resolve("8.8.8.8", 53) == ["8.8.8.8"]
    with pytest.raises(EgressDenied):
        await guard.resolve("0x7f.1", 80)
    with pytest.raises(EgressDenied):
        await guard.resolve("localhost", 80)
    assert calls == ["api.example.com", "internal.example.com", "mixed.example.com", "meta.example.com"]
    with pytest.raises(OSError):
        await guard.resolve("nowhere.example.com", 80)


async def test_allow_listed_name_may_resolve_anywhere() -> None:
    guard = EgressGuard(EgressPolicy(allow=("sandbox.test",)), resolver=fixed_resolver({"sandbox.test": ["127.0.0.1"]}))
    assert await guard.resolve("sandbox.test", 80) == ["127.0.0.1"]


async def test_system_resolver_result_for_localhost_is_refused() -> None:
    # The real getaddrinfo: localhost is loopback, whatever the name check says.
    from engine.http import system_resolver

    addresses = await system_resolver("localhost", 80)
    assert addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    guard = EgressGuard(EgressPolicy(allow=()))
    for address in addresses:
        with pytest.raises(EgressDenied):
            guard.check_address(address, host="localhost")


def test_errors_do_not_show_query_secrets() -> None:
    with pytest.raises(EgressDenied) as info:
        EgressGuard().check_url("http://user:pw@10.0.0.1/x?api_key=s3cret")
    assert "s3cret" not in str(info.value) and "pw" not in str(info.value)
    assert info.value.url == "http://10.0.0.1/x"
    with pytest.raises(EgressDenied) as info:
        EgressGuard().check_url("http://10.0.0.1/x?api_key=s3cret", display_url="shown")
    assert info.value.url == "shown"
