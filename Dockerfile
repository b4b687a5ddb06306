# Production image: the service with TensorFlow and PyTorch (requirements.lock).
# Build from the repository root with BuildKit: `invoke build-full`.
ARG BASE_IMAGE=python:3.11-slim

# uv only installs the lock; it is mounted into the install step and never part of the image.
FROM ${BASE_IMAGE} AS uv
ARG UV_VERSION=0.13.9
# The optional CA bundle secret lets pip/uv through a TLS-inspecting proxy; it is mounted for
# the installing RUNs only and never lands in a layer.
RUN --mount=type=cache,id=python-ai-service-pip,target=/root/.cache/pip \
    --mount=type=secret,id=ca_bundle \
    if [ -f /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
    && python -m venv /opt/uv \
    && /opt/uv/bin/pip install --disable-pip-version-check --quiet "uv==${UV_VERSION}"

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="python-ai-service"
# Caches go to /tmp so the service also runs with a read-only root filesystem.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    KERAS_HOME=/tmp/.keras \
    TF_CPP_MIN_LOG_LEVEL=2 \
    IMAGE_VARIANT=full
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin app
# Dependencies before source: a code change rebuilds only the last layers. Installed in place
# rather than in a stage of their own: copying ~9 GB of venv between stages costs a minute.
# Every package is a manylinux wheel (UV_NO_BUILD): no compiler, ever. The packages' test suites
# and C headers never run in production; bytecode is compiled (by uv, in parallel) because the
# root filesystem may be read-only and torch/TensorFlow imports are large.
COPY requirements.lock /tmp/requirements.lock
RUN --mount=type=cache,id=python-ai-service-uv,target=/root/.cache/uv \
    --mount=type=bind,from=uv,source=/opt/uv,target=/opt/uv \
    --mount=type=secret,id=ca_bundle \
    if [ -f /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi \
    && export UV_CACHE_DIR=/root/.cache/uv UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_NO_BUILD=1 \
    && /opt/uv/bin/uv venv --quiet --python "$(command -v python)" /opt/venv \
    && /opt/uv/bin/uv pip install --quiet --python /opt/venv/bin/python --compile-bytecode \
        --require-hashes --no-deps -r /tmp/requirements.lock \
    && site=/opt/venv/lib/python3.11/site-packages \
    && find "$site" -depth -type d -name tests -exec rm -rf {} + \
    && rm -rf "$site"/torch/include "$site"/tensorflow/include /tmp/requirements.lock
WORKDIR /app
COPY python-ai-service/app ./app
# Numeric, so Kubernetes runAsNonRoot can verify it without the image's /etc/passwd.
USER 10001:10001
EXPOSE 8000
# Python, not curl: the image carries no HTTP client binaries.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]
