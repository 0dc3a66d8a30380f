"""The Atlas as the API serves it: pages and assets of a build, signing in by link and by form,
and the session cookie (what it opens, and what it does not)."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from chancery.auth import Authenticator, KeyRing, Scope, new_api_key
from chancery.settings import ApiSettings
from services.api.app import create_app
from services.api.sessions import COOKIE, SessionSigner
from tests.twins.read_models import InMemoryReadModelReader
from tests.unit.api.conftest import NOON, ApiFactory, Keys

pytestmark = pytest.mark.unit

SHELL = (
    b'<!doctype html><html lang="en"><head><script type="module" '
    b'src="/atlas/assets/main-abc.js"></script></head><body></body></html>'
)
SCRIPT = b"console.log('the atlas');" * 40


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A build as `make atlas` leaves it: the shell, the manifest, an asset and its forms."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_bytes(SHELL)
    (tmp_path / "manifest.json").write_text(
        json.dumps({"js": "assets/main-abc.js", "css": "assets/main-abc.css"})
    )
    (tmp_path / "assets" / "main-abc.js").write_bytes(SCRIPT)
    (tmp_path / "assets" / "main-abc.js.gz").write_bytes(gzip.compress(SCRIPT))
    (tmp_path / "assets" / "main-abc.js.br").write_bytes(b"brotli-bytes")
    (tmp_path / "assets" / "main-abc.css").write_bytes(b"body{}")
    return tmp_path


def _cookie_of(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=")
    return header.split(";")[0].split("=", 1)[1]


async def test_every_page_path_answers_the_shell_with_strict_headers(
    api: ApiFactory, build: Path
) -> None:
    async with api(atlas_dir=str(build)) as client:
        for path in ("/", "/?country=CHN", "/relations/IRN/SAU", "/people/li-hui"):
            response = await client.get(path, headers={"Authorization": ""})
            assert response.status_code == 200, path
            assert response.content == SHELL
            assert response.headers["content-type"].startswith("text/html")
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert response.headers["referrer-policy"] == "same-origin"


async def test_without_a_build_every_page_says_how_to_make_one(
    api: ApiFactory, tmp_path: Path
) -> None:
    async with api(atlas_dir=str(tmp_path / "nothing")) as client:
        response = await client.get("/relations/CHN/USA")
    assert response.status_code == 503
    assert b"make atlas" in response.content


@pytest.mark.parametrize(
    ("accept", "coding", "body"),
    [
        ("gzip, deflate, br", "br", b"brotli-bytes"),
        ("gzip", "gzip", gzip.compress(SCRIPT)),
        ("br;q=0, gzip;q=0.5", "gzip", gzip.compress(SCRIPT)),
        ("identity", None, SCRIPT),
    ],
)
async def test_an_asset_comes_in_the_best_encoding_accepted(
    api: ApiFactory, build: Path, accept: str, coding: str | None, body: bytes
) -> None:
    async with api(atlas_dir=str(build)) as client:
        response = await client.get(
            "/atlas/assets/main-abc.js", headers={"Accept-Encoding": accept}
        )
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == coding
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-type"].startswith("text/javascript")
    assert "Accept-Encoding" in response.headers["vary"]
    if coding is None:
        assert response.content == body


@pytest.mark.parametrize("name", ["nothing.js", "..%2Fmanifest.json", "main-abc.js.br"])
async def test_what_is_not_an_asset_of_the_build_is_404(
    api: ApiFactory, build: Path, name: str
) -> None:
    async with api(atlas_dir=str(build)) as client:
        response = await client.get(f"/atlas/assets/{name}")
    assert response.status_code == 404


async def test_a_rebuild_is_served_without_a_restart(api: ApiFactory, build: Path) -> None:
    async with api(atlas_dir=str(build)) as client:
        assert (await client.get("/")).content == SHELL
        (build / "index.html").write_bytes(b"<!doctype html><p>rebuilt")
        (build / "manifest.json").write_text(json.dumps({"js": "assets/main-def.js"}))
        assert (await client.get("/")).content == b"<!doctype html><p>rebuilt"


# --- signing in by link ------------------------------------------------------------------------


async def test_the_link_signs_in_and_leaves_the_token_behind(
    api: ApiFactory, build: Path, keys: Keys
) -> None:
    async with api(atlas_dir=str(build)) as client:
        response = await client.get(
            "/relations/IRN/SAU",
            params={"as_of": "2023-02-28", "token": keys.read},
            headers={"Authorization": ""},
        )
    assert response.status_code == 303
    location = response.headers["location"]
    assert location == "/relations/IRN/SAU?as_of=2023-02-28"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert keys.read not in cookie
    assert keys.read not in location
    assert keys.read not in response.text
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_a_bad_link_goes_to_the_sign_in_page_without_its_token(
    api: ApiFactory, build: Path, keys: Keys
) -> None:
    bad = keys.read[:-4] + "AAAA"
    async with api(atlas_dir=str(build)) as client:
        response = await client.get(
            "/", params={"country": "CHN", "token": bad}, headers={"Authorization": ""}
        )
        page = await client.get(response.headers["location"], headers={"Authorization": ""})
    assert response.status_code == 303
    assert "set-cookie" not in response.headers
    target = urlsplit(response.headers["location"])
    assert target.path == "/login"
    assert parse_qs(target.query) == {"next": ["/?country=CHN"], "failed": ["link"]}
    assert bad not in response.headers["location"]
    assert page.status_code == 200
    assert b"sign-in link is not valid" in page.content
    assert bad.encode() not in page.content


# --- the session cookie ------------------------------------------------------------------------


async def _session(client: httpx.AsyncClient, key: str) -> str:
    response = await client.get("/", params={"token": key}, headers={"Authorization": ""})
    assert response.status_code == 303
    return _cookie_of(response)


async def test_the_cookie_reads_the_json_api_and_says_who(
    api: ApiFactory, build: Path, keys: Keys
) -> None:
    async with api(atlas_dir=str(build)) as client:
        cookie = await _session(client, keys.read)
        headers = {"Authorization": "", "Cookie": f"{COOKIE}={cookie}"}
        client.headers.pop("Authorization")
        relation = await client.get(
            "/v1/relations/IRN/SAU", headers={"Cookie": f"{COOKIE}={cookie}"}
        )
        who = await client.get("/atlas/session", headers={"Cookie": f"{COOKIE}={cookie}"})
        nobody = await client.get("/atlas/session", headers=headers | {"Cookie": ""})
    assert relation.status_code == 200
    assert relation.json()["status"] == "full"
    assert who.json() == {
        "auth_enabled": True,
        "signed_in": True,
        "subject": "reader",
        "kind": "session",
    }
    assert nobody.json()["signed_in"] is False


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {"Sec-Fetch-Site": "same-origin"}, 200),
        ("GET", {"Sec-Fetch-Site": "none"}, 200),
        ("GET", {"Sec-Fetch-Site": "cross-site"}, 401),
        ("GET", {"Sec-Fetch-Site": "same-site"}, 401),
        ("POST", {}, 405),  # the API reads only; and a POST never carries a session
    ],
)
async def test_the_cookie_counts_only_on_reads_the_page_itself_makes(
    api: ApiFactory, build: Path, keys: Keys, method: str, headers: dict[str, str], status: int
) -> None:
    async with api(atlas_dir=str(build)) as client:
        cookie = await _session(client, keys.read)
        client.headers.pop("Authorization")
        response = await client.request(
            method, "/v1/relations/IRN/SAU", headers={"Cookie": f"{COOKIE}={cookie}", **headers}
        )
    assert response.status_code == status


async def test_a_tampered_or_foreign_cookie_is_401(
    api: ApiFactory, build: Path, keys: Keys
) -> None:
    async with api(atlas_dir=str(build)) as client:
        cookie = await _session(client, keys.read)
        client.headers.pop("Authorization")
        version, key_id, expiry, mac = cookie.split(".")
        later = f"{version}.{key_id}.{int(expiry) + 86400}.{mac}"
        for forged in (later, cookie[:-2] + "xx", "v1.000000000000.9999999999.abc", "nonsense"):
            response = await client.get(
                "/v1/relations/IRN/SAU", headers={"Cookie": f"{COOKIE}={forged}"}
            )
            assert response.status_code == 401, forged


def _app(keys: KeyRing, twin: InMemoryReadModelReader, **settings: Any) -> Any:
    return create_app(
        ApiSettings(**settings),
        reader=twin,
        authenticator=Authenticator(keys, None),
        clock=lambda: NOON,
    )


@asynccontextmanager
async def _client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield c


async def test_any_process_with_the_keys_accepts_it_and_revoking_the_key_ends_it(
    twin: InMemoryReadModelReader,
) -> None:
    now = datetime.now(UTC)
    key, record = new_api_key("analyst", [Scope.EVENTS_READ], now=now)
    _, other_record = new_api_key("other", [Scope.EVENTS_READ], now=now)
    async with _client(_app(KeyRing([record, other_record]), twin)) as first:
        cookie = await _session(first, key)
    read = {"Cookie": f"{COOKIE}={cookie}"}
    async with _client(_app(KeyRing([record, other_record]), twin)) as second:
        assert (await second.get("/v1/relations/IRN/SAU", headers=read)).status_code == 200
    async with _client(_app(KeyRing([other_record]), twin)) as revoked:
        assert (await revoked.get("/v1/relations/IRN/SAU", headers=read)).status_code == 401
    async with _client(_app(KeyRing([record]), twin, session_secret="another")) as secret:
        assert (await secret.get("/v1/relations/IRN/SAU", headers=read)).status_code == 401


def test_a_session_ends_when_it_expires_or_its_key_does() -> None:
    now = datetime.now(UTC)
    key, record = new_api_key(
        "analyst", [Scope.EVENTS_READ], now=now, expires=now + timedelta(hours=1)
    )
    signer = SessionSigner(KeyRing([record]), timedelta(hours=12))
    session = signer.open(key, now=now)
    assert session.expires <= now + timedelta(hours=1)  # never outlives its key
    assert signer.verify(session.cookie, now=now).subject == "analyst"
    with pytest.raises(Exception, match="expired"):
        signer.verify(session.cookie, now=now + timedelta(hours=2))


def test_a_session_can_only_read_whatever_its_key_may_do() -> None:
    now = datetime.now(UTC)
    key, record = new_api_key("admin", list(Scope), now=now)
    signer = SessionSigner(KeyRing([record]), timedelta(hours=1))
    principal = signer.verify(signer.open(key, now=now).cookie, now=now)
    assert principal.scopes == {"events:read"}
    assert principal.kind == "session"


# --- the sign-in form --------------------------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_the_form_signs_in_and_goes_on(api: ApiFactory, build: Path, keys: Keys) -> None:
    async with api(atlas_dir=str(build)) as client:
        page = await client.get("/login", params={"next": "/people/li-hui"})
        response = await client.post(
            "/login",
            content=f"key={keys.read}&next=%2Fpeople%2Fli-hui".encode(),
            headers=FORM | {"Origin": "http://api"},
        )
    assert page.status_code == 200
    assert b'name="key"' in page.content
    assert b'value="/people/li-hui"' in page.content
    assert response.status_code == 303
    assert response.headers["location"] == "/people/li-hui"
    assert "HttpOnly" in response.headers["set-cookie"]
    assert keys.read not in response.headers["set-cookie"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (b"key=chk_000000000000_" + b"A" * 43, {}, 401, b"not valid"),
        (b"key=", {}, 401, b"not valid"),
        (b"key=WRITE", {}, 403, b"events:read"),
        (b"key=READ", {"Origin": "https://elsewhere.example"}, 403, b"this site"),
        (b"key=READ", {"Sec-Fetch-Site": "cross-site"}, 403, b"this site"),
        (b"key=READ", {"Origin": "null"}, 403, b"this site"),
        (b"key=READ", {"Content-Type": "application/json"}, 415, b"urlencoded"),
        (b"key=" + b"x" * 9000, {}, 413, b"at most"),
        (b"key=%ff%fe", {}, 400, b"UTF-8"),
    ],
)
async def test_the_form_refuses_with_a_reason_and_echoes_no_key(
    api: ApiFactory,
    build: Path,
    keys: Keys,
    body: bytes,
    headers: dict[str, str],
    status: int,
    says: bytes,
) -> None:
    body = body.replace(b"WRITE", keys.write.encode()).replace(b"READ", keys.read.encode())
    async with api(atlas_dir=str(build)) as client:
        response = await client.post("/login", content=body, headers=FORM | headers)
    assert response.status_code == status
    assert says in response.content
    assert "set-cookie" not in response.headers
    assert keys.read.encode() not in response.content
    assert keys.write.encode() not in response.content


@pytest.mark.parametrize("next_path", ["https://evil.example/", "//evil.example", "/\\evil", "x"])
async def test_the_form_goes_on_only_to_this_site(
    api: ApiFactory, build: Path, keys: Keys, next_path: str
) -> None:
    async with api(atlas_dir=str(build)) as client:
        response = await client.post(
            "/login", data={"key": keys.read, "next": next_path}, headers=FORM
        )
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_signing_out_clears_the_cookie(api: ApiFactory, build: Path) -> None:
    async with api(atlas_dir=str(build)) as client:
        response = await client.post("/logout", headers={"Origin": "http://api"})
        refused = await client.post("/logout", headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert response.headers["set-cookie"].startswith(f"{COOKIE}=;")
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert refused.status_code == 403


async def test_with_auth_disabled_the_page_just_works(
    twin: InMemoryReadModelReader, build: Path
) -> None:
    app = create_app(
        ApiSettings(atlas_dir=str(build), auth_enabled=False),
        reader=twin,
        authenticator=Authenticator(KeyRing([]), None, enabled=False),
        clock=lambda: NOON,
    )
    async with _client(app) as client:
        login = await client.get("/login", params={"next": "/relations/CHN/USA"})
        link = await client.get("/", params={"token": "anything", "country": "CHN"})
        session = await client.get("/atlas/session")
        page = await client.get("/")
        read = await client.get("/v1/countries/CHN/relations")
    assert login.status_code == 303
    assert login.headers["location"] == "/relations/CHN/USA"
    assert link.status_code == 303
    assert link.headers["location"] == "/?country=CHN"
    assert "set-cookie" not in link.headers
    assert session.json()["auth_enabled"] is False
    assert page.status_code == 200
    assert read.status_code == 200
