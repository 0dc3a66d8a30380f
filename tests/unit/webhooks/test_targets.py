"""Where a webhook may go: the addresses refused unless allowed, and the URL's shape."""

from __future__ import annotations

import ipaddress

import pytest

from services.webhooks.targets import TargetPolicy, TargetRefusedError

pytestmark = pytest.mark.unit

REFUSED = [
    "127.0.0.1",
    "::1",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "fe80::1",
    "fd00::1",
    "0.0.0.0",
    "::",
    "100.64.0.1",
    "224.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
]


@pytest.mark.parametrize("address", REFUSED)
def test_internal_addresses_are_refused_by_default(address: str) -> None:
    assert TargetPolicy().refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert TargetPolicy().refusal(ipaddress.ip_address(address)) is None


def test_the_allow_list_opens_only_what_it_names() -> None:
    policy = TargetPolicy.of(["127.0.0.0/8"])
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("10.0.0.1")) is not None
    assert "link-local" in str(policy.refusal(ipaddress.ip_address("169.254.169.254")))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/",
        "file:///etc/passwd",
        "http:///nohost",
        "http://user:pass@example.org/",
        "http://example.org:99999/",
        "http://example.org/#frag",
        "http://" + "a" * 2100 + ".org/",
    ],
)
def test_urls_of_the_wrong_shape_are_refused(url: str) -> None:
    with pytest.raises(TargetRefusedError):
        TargetPolicy().check_url(url)


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/", "http://10.0.0.1/", "http://[::1]:8080/"]
)
async def test_checking_a_url_refuses_internal_hosts(url: str) -> None:
    with pytest.raises(TargetRefusedError, match="refused"):
        await TargetPolicy().check(url)


async def test_a_name_is_judged_by_what_it_resolves_to() -> None:
    with pytest.raises(TargetRefusedError, match="localhost -> "):
        await TargetPolicy().check("http://localhost:8080/hook")
    await TargetPolicy.of(["127.0.0.0/8", "::1/128"]).check("http://localhost:8080/hook")
