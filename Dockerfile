# The valueloop platform: one image for the control plane (`valueloop server`, the default), the
# serving replicas (`valueloop serve`), stream consumers and batch jobs. No state is baked in:
# settings come from VALUELOOP_* variables, the metadata from PostgreSQL, files from the home
# volume (or object storage). deploy/compose.yaml runs the whole topology from it.
FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_PROJECT_ENVIRONMENT=/opt/valueloop UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project --no-editable
COPY src ./src
COPY examples ./examples
RUN uv sync --frozen --no-editable

FROM python:3.11-slim-bookworm
# libgomp1: LightGBM's OpenMP runtime, which the slim image lacks; Debian's current one
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 valueloop \
    && mkdir -p /var/lib/valueloop \
    && chown valueloop:valueloop /var/lib/valueloop
COPY --from=build /opt/valueloop /opt/valueloop
ENV PATH=/opt/valueloop/bin:$PATH \
    VALUELOOP_HOME=/var/lib/valueloop \
    VALUELOOP_HEALTH_URL=http://127.0.0.1:8700/health
USER 10001
WORKDIR /var/lib/valueloop
EXPOSE 8700 8080
# a serving replica sets VALUELOOP_HEALTH_URL to its /v2/health/ready
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['VALUELOOP_HEALTH_URL'], timeout=3)"]
CMD ["valueloop", "server", "--host", "0.0.0.0", "--port", "8700"]
