# syntax=docker/dockerfile:1
#
# The label-studio-act ML backend: `ls-act serve` (uvicorn + our guarded ASGI front, one process).
# Build from the repository root (the build context must be the repo, see /.dockerignore):
#
#   docker build -f docker/backend.Dockerfile -t label-studio-act-backend .
#
# Configure it at run time with environment variables (docs/configuration.md): OPENAI_BASE_URL,
# OPENAI_API_KEY, ACT_* and LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY. No secret is baked in.

ARG PYTHON_VERSION=3.12

# ---------------------------------------------------------------- build: a venv with the package
FROM python:${PYTHON_VERSION}-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/act

WORKDIR /src
COPY pyproject.toml README.md ./
COPY backend/ backend/
COPY plugin/ plugin/

# Optional extras of the package, e.g. --build-arg ACT_EXTRAS=local (comma-separated).
ARG ACT_EXTRAS=""

# A regular (non-editable) install of the package and its pinned dependencies. Only /opt/act
# goes on to the runtime stage: no sources, no build dependencies, no pip cache.
RUN /opt/act/bin/pip install --no-cache-dir ".${ACT_EXTRAS:+[${ACT_EXTRAS}]}" \
    && /opt/act/bin/ls-act --help > /dev/null

# ---------------------------------------------------------------- runtime
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="label-studio-act backend" \
      org.opencontainers.image.description="ACT ML backend for Label Studio: LLM labels with critic suspicion scores" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, unprivileged uid/gid (numeric, so that runAsNonRoot-style checks can verify it).
RUN groupadd --system --gid 10001 act \
    && useradd --system --uid 10001 --gid act --home-dir /home/act --create-home \
       --shell /usr/sbin/nologin act \
    && mkdir -p /data/cache \
    && chown 10001:10001 /data/cache

COPY --from=build /opt/act /opt/act
COPY docker/healthcheck.py /opt/act/healthcheck.py

ENV PATH=/opt/act/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ACT_CACHE_DIR=/data/cache \
    ACT_HEALTH_URL=http://127.0.0.1:9090/health

# The answer cache (llm-cache.sqlite3) and the webhook log: keep them across restarts.
VOLUME ["/data/cache"]

USER 10001:10001
WORKDIR /home/act
EXPOSE 9090

# GET /health with Python's standard library (the image has no curl); sends basic auth when
# ACT_BASIC_AUTH_USER is set, since that guards every route.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/act/healthcheck.py"]

# `docker run IMAGE connect ...` or `docker compose exec backend ls-act connect ...` also work.
ENTRYPOINT ["ls-act"]
CMD ["serve", "--host", "0.0.0.0", "--port", "9090"]
