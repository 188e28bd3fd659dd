# syntax=docker/dockerfile:1
# The interaction, built from the workspace lockfile: docker build -f deploy/docker/interaction.Dockerfile .
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first (a layer that changes only with the lockfile), then the code.
COPY pyproject.toml uv.lock ./
COPY schemas/pyproject.toml schemas/
COPY services/collector/pyproject.toml services/collector/
COPY services/aggregator/pyproject.toml services/aggregator/
COPY services/interaction/pyproject.toml services/interaction/
COPY deploy/embedded/pyproject.toml deploy/embedded/
RUN uv sync --frozen --no-dev --no-install-workspace --package ecrm-interaction --extra postgres
COPY schemas/ schemas/
COPY services/interaction/ services/interaction/
RUN uv sync --frozen --no-dev --no-editable --package ecrm-interaction --extra postgres

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ecrm-interaction" org.opencontainers.image.source="https://github.com/ecrm/ecrm"
RUN groupadd --gid 10001 ecrm && useradd --uid 10001 --gid ecrm --no-create-home --shell /usr/sbin/nologin ecrm
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 ECRM_ENV=production
USER 10001:10001
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/livez', timeout=2)"]
ENTRYPOINT ["ecrm-interaction"]
CMD ["serve"]
