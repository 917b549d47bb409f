# Label Studio 1.23.2 from PyPI, for the Compose stack when heartexlabs/label-studio cannot be
# pulled (no registry): built the same way as backend.Dockerfile, from a local base image and a
# local wheelhouse. compose.offline.yaml uses it; by hand, from the repository root:
#
#   docker build -f docker/label-studio.Dockerfile -t label-studio-act-label-studio:1.23.2 \
#       --build-arg BASE_IMAGE=act-base:bookworm --build-arg WHEELHOUSE=act-wheelhouse .
#
# Like the official image: data in /label-studio/data (a volume), uid 1001, port 8080, the
# `label-studio` command on PATH (compose.yaml runs `label-studio start --enable-legacy-api-token`).

ARG BASE_IMAGE=python:3.12-slim-bookworm
ARG WHEELHOUSE=no-wheelhouse

FROM ${BASE_IMAGE} AS no-wheelhouse
RUN mkdir -p /wheels

FROM ${WHEELHOUSE} AS wheelhouse

# ---------------------------------------------------------------- build: a venv with Label Studio
FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python3 -m venv /opt/label-studio
COPY --from=wheelhouse /wheels/ /wheels/

ARG LABEL_STUDIO_VERSION=1.23.2
RUN if [ -n "$(ls -A /wheels)" ]; then set -- --no-index --find-links /wheels; fi \
    && /opt/label-studio/bin/pip install --no-cache-dir "$@" "label-studio==${LABEL_STUDIO_VERSION}" \
    && /opt/label-studio/bin/python3 -c "import label_studio"

# ---------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="Label Studio (label-studio-act build)" \
      org.opencontainers.image.description="Label Studio from PyPI, for the label-studio-act Compose stack" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 1001 labelstudio \
    && useradd --system --uid 1001 --gid labelstudio --home-dir /label-studio --create-home \
       --shell /usr/sbin/nologin labelstudio \
    && mkdir -p /label-studio/data \
    && chown -R 1001:1001 /label-studio

COPY --from=build /opt/label-studio /opt/label-studio

ENV PATH=/opt/label-studio/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LABEL_STUDIO_BASE_DATA_DIR=/label-studio/data \
    FEATURE_FLAGS_OFFLINE=true \
    SENTRY_DSN="" \
    FRONTEND_SENTRY_DSN="" \
    COLLECT_ANALYTICS=false \
    LATEST_VERSION_CHECK=false

VOLUME ["/label-studio/data"]

USER 1001:1001
WORKDIR /label-studio
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=10s --start-period=120s --retries=5 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=5)"]

CMD ["label-studio", "start", "--no-browser", "--internal-host", "0.0.0.0", "--port", "8080"]
