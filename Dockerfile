# syntax=docker/dockerfile:1
# crdt-server: a multi-stage image. The build stage installs the package into a virtual
# environment; the runtime stage copies only that environment and runs as a non-root user
# with its data under a volume. See deploy/README.md.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/crdt-server
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY crdt_server ./crdt_server
COPY documents ./documents
COPY storage ./storage
RUN /opt/crdt-server/bin/pip install --no-compile . \
 && /opt/crdt-server/bin/python -m compileall -q /opt/crdt-server/lib

FROM python:${PYTHON_VERSION}-slim AS runtime
# A fixed uid/gid, so volumes and `runAsNonRoot` policies can name them.
RUN groupadd --system --gid 10001 crdt \
 && useradd --system --uid 10001 --gid crdt --home-dir /var/lib/crdt-server \
      --no-create-home --shell /usr/sbin/nologin crdt \
 && mkdir -p /var/lib/crdt-server \
 && chown crdt:crdt /var/lib/crdt-server \
 && chmod 0700 /var/lib/crdt-server
COPY --from=build /opt/crdt-server /opt/crdt-server
ENV PATH=/opt/crdt-server/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CRDT_SERVER_HOST=0.0.0.0 \
    CRDT_SERVER_PORT=8000 \
    CRDT_SERVER_DATA_DIR=/var/lib/crdt-server
USER 10001:10001
WORKDIR /var/lib/crdt-server
VOLUME ["/var/lib/crdt-server"]
EXPOSE 8000
# Liveness only (/healthz): a store outage shows on /readyz, which the proxy checks; the
# container itself is healthy as long as the process answers.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('CRDT_SERVER_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status == 200 else 1)"]
# SIGTERM: connections close with 1012 (clients reconnect), rooms are flushed, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["crdt-server"]
CMD ["serve"]
