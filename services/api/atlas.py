"""The Atlas as the API serves it: the built front end (atlas/dist), its headers, and the
sign-in page.

`make atlas` builds atlas/ into atlas/dist: `index.html` (the shell every page path answers
with), `manifest.json` (the hashed names of the script, the style sheet and the world's
shapes) and `assets/`, each asset beside its brotli and gzip forms. The build is read when
first asked for and again whenever its manifest changes, so a rebuild needs no restart; an
asset is answered in the best encoding the browser accepts, and, its name carrying a hash of
its content, may be cached for good. Without a build, every page says how to make one.
"""

from __future__ import annotations

import html
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

REPOSITORY_BUILD = Path(__file__).resolve().parents[2] / "atlas" / "dist"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # No address leaves the site in a Referer (the sign-in link's, which carries a key, is
    # answered by a redirect with no-referrer); same-origin requests keep theirs, and so their
    # Origin, which the sign-in form's check reads.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
IMMUTABLE = "public, max-age=31536000, immutable"
ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".map": "application/json",
}
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


def build_dir(setting: str) -> Path:
    """The build to serve: CHANCERY_ATLAS_DIR, else the repository's atlas/dist."""
    return Path(setting) if setting.strip() else REPOSITORY_BUILD


@dataclass(frozen=True)
class Asset:
    media_type: str
    forms: dict[str, bytes]  # content coding ("identity", "br", "gzip") -> bytes

    def pick(self, accept_encoding: str | None) -> tuple[str, bytes]:
        """The smallest form the client accepts (identity always)."""
        accepted = _codings(accept_encoding)
        for coding, _ in ENCODINGS:
            if coding in accepted and coding in self.forms:
                return coding, self.forms[coding]
        return "identity", self.forms["identity"]


def _codings(header: str | None) -> set[str]:
    """Content codings an Accept-Encoding header accepts (q=0 refuses)."""
    accepted = set()
    for item in (header or "").split(","):
        name, _, params = item.strip().partition(";")
        q = params.strip().removeprefix("q=").strip() if params.strip().startswith("q=") else "1"
        try:
            if float(q) > 0:
                accepted.add(name.strip().lower())
        except ValueError:
            continue
    return accepted


@dataclass(frozen=True)
class Build:
    shell: bytes
    stylesheet: str | None  # its URL path, for the sign-in page
    icon: str | None  # likewise
    assets: dict[str, Asset]


class AtlasFiles:
    """The build in `root`, read when first asked for and again when its manifest changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._build: Build | None = None

    def current(self) -> Build | None:
        manifest = self.root / "manifest.json"
        try:
            stat = manifest.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._build = _read(self.root, manifest)
                self._stamp = stamp
            return self._build


def _read(root: Path, manifest: Path) -> Build | None:
    try:
        names = json.loads(manifest.read_text(encoding="utf-8"))
        shell = (root / "index.html").read_bytes()
    except (OSError, ValueError):
        return None
    assets: dict[str, Asset] = {}
    folder = root / "assets"
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        media_type = MEDIA_TYPES.get(path.suffix)
        if media_type is None or not ASSET_NAME.match(path.name):
            continue
        forms = {"identity": path.read_bytes()}
        for coding, suffix in ENCODINGS:
            encoded = path.with_name(path.name + suffix)
            if encoded.is_file():
                forms[coding] = encoded.read_bytes()
        assets[path.name] = Asset(media_type, forms)

    def url(name: str) -> str | None:
        value = names.get(name) if isinstance(names, dict) else None
        return f"/atlas/{value}" if isinstance(value, str) else None

    return Build(shell, url("css"), url("icon"), assets)


NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The Atlas is not built</title></head>
<body><main><h1>The Atlas is not built</h1>
<p>The API serves the Atlas from <code>{where}</code>, which holds no build.
Run <code>make atlas</code> (or <code>make run</code>, which builds it) and reload.</p>
<p>The JSON API is at <a href="/docs">/docs</a>.</p></main></body></html>
"""


def not_built_page(root: Path) -> bytes:
    return NOT_BUILT.format(where=html.escape(str(root))).encode()


LOGIN = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Chancery Atlas</title>
<link rel="icon" href="{icon}">
{stylesheet}
</head>
<body class="login-page">
<main class="login" aria-labelledby="login-title">
  <p class="brand"><span class="brand-mark" aria-hidden="true"></span>Chancery <b>Atlas</b></p>
  <h1 id="login-title">Sign in</h1>
  {message}
  <form method="post" action="/login" class="login-form">
    <label for="key">API key</label>
    <input id="key" name="key" type="password" autocomplete="off" spellcheck="false"
           required minlength="8" maxlength="200" aria-describedby="key-help" autofocus>
    <p id="key-help" class="hint">A key with the scope <code>events:read</code>
    (<code>chancery keys create NAME -s events:read</code>). <code>make run</code> prints a
    link that signs you in. The key is not kept by the browser: it gets a session instead.</p>
    <input type="hidden" name="next" value="{next}">
    <button type="submit">Sign in</button>
  </form>
</main>
</body>
</html>
"""


def login_page(
    *, stylesheet: str | None, icon: str | None, next_path: str, message: str | None
) -> bytes:
    return LOGIN.format(
        icon=html.escape(icon or "data:,"),
        stylesheet=f'<link rel="stylesheet" href="{html.escape(stylesheet)}">'
        if stylesheet
        else "",
        message=f'<p class="problem" role="alert">{html.escape(message)}</p>' if message else "",
        next=html.escape(next_path),
    ).encode()


def safe_next(value: str | None) -> str:
    """A path on this site to go to after signing in (anything else: the world view)."""
    if (
        not value
        or len(value) > 2000
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or not value.isprintable()
    ):
        return "/"
    return value
