# Production image: the service with TensorFlow and PyTorch (requirements.lock).
# Build from the repository root with BuildKit: `invoke build-full` (or `nox -s full_image`), which
# stages what the install steps mount under .build/ (the lock's tiers and uv for the platform).
ARG BASE_IMAGE=python:3.11-slim

# uv for the platform being built (`--platform`, else the host's): service_images/tiers.py stages
# .build/uv-<arch>, and only the target architecture's stage is built. Mounted, never in the image.
FROM scratch AS uv-amd64
COPY .build/uv-amd64 /uv
FROM scratch AS uv-arm64
COPY .build/uv-arm64 /uv
# One of the two stages above, by BuildKit's TARGETARCH: no image to tag.
# hadolint ignore=DL3006
FROM uv-${TARGETARCH} AS uv

# binutils' strip and readelf for the install steps, by the hashes debian-tools.lock pins (no
# `apt-get update`). Mounted into those steps: the image itself carries no toolchain.
FROM ${BASE_IMAGE} AS tools
RUN --mount=type=bind,source=debian-tools.lock,target=/tmp/build/debian-tools.lock \
    --mount=type=bind,source=scripts/install-tier.sh,target=/tmp/build/install-tier.sh \
    sh /tmp/build/install-tier.sh tools

FROM ${BASE_IMAGE} AS base
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin app

# Dependencies before source, one layer per tier of the lock (service_images/variants.py, TIERS):
# bumping a light package rebuilds, pushes and pulls only the last, small layer instead of 9 GB.
# Each tier is one step of its own stage, so BuildKit installs them side by side: into an empty
# venv, hash-checked, then slimmed. The image is the first tier's stage, and the others are copied
# onto it in order. uv is the task suite's own binary (for another platform, that platform's, from
# its wheel), checked against the hash its wheel recorded; it, the lock slices, the install script,
# the build backends' lock (requirements-build.lock), binutils and the CA bundle are mounted for
# these steps only and never land in a layer. Only the last tier, the one that changes often,
# keeps uv's cache between builds. Bytecode is compiled (--compile): the root filesystem may be
# read-only, and torch and TensorFlow imports are large.
FROM base AS cuda-torch
ARG TARGETARCH UV_SHA256_AMD64 UV_SHA256_ARM64
RUN --mount=type=bind,source=.build/full/cuda-torch.lock,target=/tmp/build/tier.lock \
    --mount=type=bind,from=uv,source=/uv,target=/tmp/build/uv/uv \
    --mount=type=bind,source=scripts/install-tier.sh,target=/tmp/build/install-tier.sh \
    --mount=type=bind,source=requirements-build.lock,target=/tmp/build/build-constraints.lock \
    --mount=type=bind,from=tools,target=/tmp/build/tools \
    --mount=type=secret,id=ca_bundle \
    PATH=/tmp/build/uv:$PATH sh /tmp/build/install-tier.sh install /tmp/build/tier.lock --compile

FROM base AS tensorflow
ARG TARGETARCH UV_SHA256_AMD64 UV_SHA256_ARM64
RUN --mount=type=bind,source=.build/full/tensorflow.lock,target=/tmp/build/tier.lock \
    --mount=type=bind,from=uv,source=/uv,target=/tmp/build/uv/uv \
    --mount=type=bind,source=scripts/install-tier.sh,target=/tmp/build/install-tier.sh \
    --mount=type=bind,source=requirements-build.lock,target=/tmp/build/build-constraints.lock \
    --mount=type=bind,from=tools,target=/tmp/build/tools \
    --mount=type=secret,id=ca_bundle \
    PATH=/tmp/build/uv:$PATH sh /tmp/build/install-tier.sh install /tmp/build/tier.lock --compile

FROM base AS numeric
ARG TARGETARCH UV_SHA256_AMD64 UV_SHA256_ARM64
RUN --mount=type=bind,source=.build/full/numeric.lock,target=/tmp/build/tier.lock \
    --mount=type=bind,from=uv,source=/uv,target=/tmp/build/uv/uv \
    --mount=type=bind,source=scripts/install-tier.sh,target=/tmp/build/install-tier.sh \
    --mount=type=bind,source=requirements-build.lock,target=/tmp/build/build-constraints.lock \
    --mount=type=bind,from=tools,target=/tmp/build/tools \
    --mount=type=secret,id=ca_bundle \
    PATH=/tmp/build/uv:$PATH sh /tmp/build/install-tier.sh install /tmp/build/tier.lock --compile

FROM base AS service
ARG TARGETARCH UV_SHA256_AMD64 UV_SHA256_ARM64
RUN --mount=type=cache,id=python-ai-service-uv,target=/root/.cache/uv \
    --mount=type=bind,source=.build/full/service.lock,target=/tmp/build/tier.lock \
    --mount=type=bind,from=uv,source=/uv,target=/tmp/build/uv/uv \
    --mount=type=bind,source=scripts/install-tier.sh,target=/tmp/build/install-tier.sh \
    --mount=type=bind,source=requirements-build.lock,target=/tmp/build/build-constraints.lock \
    --mount=type=bind,from=tools,target=/tmp/build/tools \
    --mount=type=secret,id=ca_bundle \
    PATH=/tmp/build/uv:$PATH sh /tmp/build/install-tier.sh install /tmp/build/tier.lock --compile

FROM cuda-torch
LABEL org.opencontainers.image.title="python-ai-service"
# Caches go to /tmp so the service also runs with a read-only root filesystem. glibc malloc: two
# arenas, and a fixed mmap threshold, so the large numpy/pandas buffers of a 5000-candle request
# are mapped and returned when freed instead of fragmenting the heap for good (glibc raises its
# default threshold after such frees; the contract's abuse suite measures the memory left over).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    KERAS_HOME=/tmp/.keras \
    TF_CPP_MIN_LOG_LEVEL=2 \
    IMAGE_VARIANT=full
# The other tiers, in order: one layer each.
COPY --from=tensorflow /opt/venv /opt/venv
COPY --from=numeric /opt/venv /opt/venv
COPY --from=service /opt/venv /opt/venv
WORKDIR /app
COPY python-ai-service/app ./app
# Numeric, so Kubernetes runAsNonRoot can verify it without the image's /etc/passwd.
USER 10001:10001
EXPOSE 8000
# Python, not curl: the image carries no HTTP client binaries.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --start-interval=0.5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
# The service's own entry point: uvicorn with header-read, keep-alive and shutdown deadlines, proxy
# headers trusted from TRUSTED_PROXIES only, and exit 0 after a clean SIGTERM.
CMD ["python", "-m", "app", "--host", "0.0.0.0", "--port", "8000"]
