"""How a client reaches Chancery: the two services' URLs, the credential, the patience."""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import metadata

from .answers import RetryNotice
from .core import Config, Endpoint, base_url

DEFAULT_API_URL = "http://127.0.0.1:8002"
DEFAULT_INGEST_URL = "http://127.0.0.1:8001"
"""Where `make run` serves them."""
CONNECT_TIMEOUT_S = 10.0

logger = logging.getLogger("chancery.client")


def _log(notice: RetryNotice) -> None:
    logger.warning("%s", notice)


def _version() -> str:
    try:
        return metadata.version("chancery")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "0"


def configure(
    *,
    api_url: str | None,
    ingest_url: str | None,
    api_key: str | None,
    token: str | None,
    timeout_s: float,
    retry_for_s: float,
    position_wait_s: float,
    on_retry: Callable[[RetryNotice], None] | None,
) -> Config:
    if api_key is not None and token is not None:
        raise ValueError("give an API key or a token, not both")
    credential = api_key if api_key is not None else token
    headers = {"User-Agent": f"chancery-client/{_version()}", "Accept": "application/json"}
    if credential is not None:
        credential = credential.strip()
        if not credential:
            raise ValueError("the API key or token is empty")
        headers["Authorization"] = f"Bearer {credential}"
    if min(timeout_s, retry_for_s, position_wait_s) < 0:
        raise ValueError("timeouts and retry budgets are not negative")
    return Config(
        api=Endpoint("API", base_url(api_url or DEFAULT_API_URL)),
        ingest=Endpoint("ingest", base_url(ingest_url or DEFAULT_INGEST_URL)),
        headers=headers,
        timeout_s=timeout_s,
        connect_timeout_s=min(CONNECT_TIMEOUT_S, timeout_s) if timeout_s else CONNECT_TIMEOUT_S,
        retry_for_s=retry_for_s,
        position_wait_s=position_wait_s,
        on_retry=on_retry or _log,
    )
