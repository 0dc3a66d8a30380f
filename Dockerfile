# One image for ingest, projector and API (docker-compose.yml picks the command).
# The environment comes from uv.lock, like .venv does: `uv sync --frozen`, without dev tools.
FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY chancery ./chancery
COPY services ./services
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm AS runtime
# /var/lib/chancery holds the API keys (docker-compose.yml mounts the `keys` volume there):
# owned by the user the services run as, so that a new volume is too, and the key files its
# services write (0600) are theirs to read.
RUN useradd --system --uid 10001 --home-dir /app chancery \
    && install -d -o chancery -g chancery -m 0700 /var/lib/chancery
COPY --from=build /app/.venv /app/.venv
# `chancery load seeds` reads seeds/ from the working directory.
COPY seeds /app/seeds
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER chancery
ENTRYPOINT []
CMD ["chancery", "--help"]
