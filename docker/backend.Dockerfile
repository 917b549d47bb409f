# The label-studio-act ML backend: `ls-act serve` (uvicorn + our guarded ASGI front, one process).
# Build from the repository root (the build context must be the repo, see /.dockerignore):
#
#   docker build -f docker/backend.Dockerfile -t label-studio-act-backend .
#   docker build -f docker/backend.Dockerfile --build-arg ACT_EXTRAS= -t label-studio-act-backend:slim .
#
# The first is the full image (the offline default engine: torch, transformers, all-MiniLM-L6-v2);
# the second the slim one, for LLM endpoints only (OpenAI, vLLM, Ollama, ...).
#
# Offline builds (no package index, no registry; docker/README.md, "Building offline"):
#   --build-arg BASE_IMAGE=<a local image with python3 and python3-venv>
#   --build-arg WHEELHOUSE=<an image holding every wheel in /wheels, see wheelhouse.Dockerfile>
#
# Configure it at run time with environment variables (docs/configuration.md): OPENAI_BASE_URL,
# OPENAI_API_KEY, ACT_* and LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY. No secret is baked in.

# Any Debian-like image with python3 (and its venv module); build and runtime use the same one.
ARG BASE_IMAGE=python:3.12-slim-bookworm
# An image with wheels in /wheels: pip then installs from them alone (--no-index). The default,
# the empty stage below, means: download from the package index.
ARG WHEELHOUSE=no-wheelhouse

# ---------------------------------------------------------------- an empty wheelhouse
FROM ${BASE_IMAGE} AS no-wheelhouse
RUN mkdir -p /wheels

FROM ${WHEELHOUSE} AS wheelhouse

# ---------------------------------------------------------------- build: a venv with the package
FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python3 -m venv /opt/act

WORKDIR /src
COPY --from=wheelhouse /wheels/ /wheels/
COPY pyproject.toml README.md ./
COPY docker/slim-requirements.txt docker/
COPY backend/ backend/
COPY plugin/ plugin/

# Extras of the package, comma-separated. "offline" (the default) is the offline default engine;
# empty gives the slim image; e.g. "offline,local" adds local open-weights models.
ARG ACT_EXTRAS=offline
# Without a wheelhouse: torch's CPU build (the PyPI one pulls GBs of CUDA libraries).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# A regular (non-editable) install of the package and its pinned dependencies, from the
# wheelhouse alone when there is one. Only /opt/act goes on to the runtime stage: no sources,
# no wheels, no build dependencies, no pip cache.
#
# The slim image (no extras) installs docker/slim-requirements.txt, then the package and its
# label-studio-sdk pin with --no-deps: what the server and the Label Studio commands import,
# without the SDK's converter dependencies (opencv, nltk, Pillow, ...), pyarrow and matplotlib
# (0.36 GB instead of 0.85). Bytecode: compiled for every module except those of the large
# packages the backend uses a small part of, which get it for what the smoke test imports.
RUN if [ -n "$(ls -A /wheels)" ]; then \
        set -- --no-index --find-links /wheels; \
    else \
        set -- --extra-index-url "${TORCH_INDEX_URL}"; \
    fi \
    && if [ -n "${ACT_EXTRAS}" ]; then \
        /opt/act/bin/pip install --no-cache-dir "$@" ".[${ACT_EXTRAS}]"; \
    else \
        /opt/act/bin/pip install --no-cache-dir --no-compile "$@" -r docker/slim-requirements.txt \
        && /opt/act/bin/pip install --no-cache-dir --no-compile --no-deps "$@" . \
        && sdk=$(/opt/act/bin/python -c "from importlib.metadata import requires; print(next(r for r in requires('label-studio-act') if r.startswith('label-studio-sdk')))") \
        && /opt/act/bin/pip install --no-cache-dir --no-compile --no-deps "$@" "${sdk}" \
        && /opt/act/bin/python -m compileall -q \
            -x "/site-packages/(pandas|numpy|faker|label_studio_sdk|pygments)/" /opt/act/lib > /dev/null \
        && env -u PYTHONDONTWRITEBYTECODE /opt/act/bin/python -c "import act_backend.server, act_plugin.cli, act_plugin.connect, act_plugin.annotate, act_plugin.review, act_plugin.sync; from label_studio_sdk import LabelStudio"; \
    fi \
    && /opt/act/bin/ls-act --help > /dev/null

# ---------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime

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
# ACT_BASIC_AUTH_USER is set, since that guards every route. python3: the venv's, on PATH.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "/opt/act/healthcheck.py"]

# `docker run IMAGE connect ...` or `docker compose exec backend ls-act connect ...` also work.
ENTRYPOINT ["ls-act"]
CMD ["serve", "--host", "0.0.0.0", "--port", "9090"]
