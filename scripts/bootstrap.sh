#!/usr/bin/env bash
# Set up a Debian/Ubuntu machine (as root) to build and test the images:
#   - a running Docker engine (Debian's docker.io, started by hand where there is no init system),
#   - BuildKit for the docker client on PATH (the buildx plugin),
#   - the task suite (this repository's pyproject.toml) in the project's virtual environment .venv,
#     made with the machine's python3 (Debian's own is fine: nothing is installed into it),
#   - the base image: python:3.11-slim, pulled, or where no registry answers built from Debian
#     packages by `invoke base-image` (with mmdebstrap, installed here for that).
# Idempotent: every step checks first, and a machine where all of it works is left as it is.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$here/.venv
log=${DOCKERD_LOG:-/var/log/dockerd.log}
say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "$1 needs root (run as root, or do it yourself: see README 'Set-up')."
    command -v apt-get >/dev/null || die "$1 needs apt-get (Debian/Ubuntu); install it yourself: see README 'Set-up'."
}

apt_updated=
apt_install() {
    [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

engine_up() { timeout 10 docker info >/dev/null 2>&1; }

# 1. Engine.
if engine_up; then
    say "docker engine: already running"
else
    if ! command -v dockerd >/dev/null; then
        need_root "Installing the Docker engine"
        say "installing docker.io (Debian's Docker engine)"
        apt_install docker.io
    fi
    if [ -z "${DOCKER_HOST:-}" ] && ! pgrep -x dockerd >/dev/null; then
        say "starting dockerd (log: $log)"
        # No init system on CI machines: start it detached and wait for it to answer.
        setsid nohup dockerd >"$log" 2>&1 </dev/null &
    fi
    for _ in $(seq 60); do engine_up && break; sleep 1; done
    engine_up || die "the Docker engine did not answer within 60 s; see $log."
    say "docker engine: running"
fi

# 2. BuildKit: the buildx plugin for the client on PATH (28.x clients build with BuildKit only through it).
if docker buildx version >/dev/null 2>&1; then
    say "buildx: $(docker buildx version | head -n1)"
else
    need_root "Installing the buildx plugin"
    say "installing the buildx plugin"
    apt_updated=; apt-get update -qq; apt_updated=1
    if apt-cache show docker-buildx >/dev/null 2>&1; then
        apt_install docker-buildx          # Ubuntu, Debian 13+
    else
        # Debian 12 has no package; Debian 13's binary needs only libc. Fetch that one .deb from the
        # machine's own Debian mirror through a throw-away apt configuration (system sources untouched).
        mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Origin: Debian' 'Codename: bookworm' 2>/dev/null \
                 | grep -v security | head -n1)
        [ -n "$mirror" ] || die "no Debian mirror found in apt's sources to fetch docker-buildx from; install the buildx plugin yourself."
        tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
        mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
        echo "deb $mirror trixie main" >"$tmp/sources.list"
        opts=(-o Dir::Etc::sourcelist="$tmp/sources.list" -o Dir::Etc::sourceparts=- \
              -o Dir::State::lists="$tmp/lists" -o Dir::Cache="$tmp/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
        apt-get "${opts[@]}" update -qq
        (cd "$tmp" && apt-get "${opts[@]}" download docker-buildx >/dev/null)
        dpkg-deb -x "$tmp"/docker-buildx_*.deb "$tmp/root"
        install -D -m 0755 "$tmp"/root/usr/libexec/docker/cli-plugins/docker-buildx \
            /usr/local/lib/docker/cli-plugins/docker-buildx
    fi
    docker buildx version >/dev/null 2>&1 || die "the buildx plugin is installed but 'docker buildx version' fails."
    say "buildx: $(docker buildx version | head -n1)"
fi

# 3. mmdebstrap, for the offline base image (only where apt exists; elsewhere python:3.11-slim is pulled).
if ! command -v mmdebstrap >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
    say "installing mmdebstrap"
    apt_install mmdebstrap
fi

# 4. The task suite (nox, invoke, docker SDK, pytest, testinfra, ...) and our package, editable, in
#    .venv: a distribution's python3 is "externally managed" (PEP 668) and must stay untouched.
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "the task suite needs Python 3.11 or newer as python3 (found: $(python3 --version 2>&1))."
if [ ! -x "$venv/bin/python" ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    need_root "Installing python3-venv"
    say "installing python3-venv (Debian's python3 makes no virtual environments without it)"
    apt_install python3-venv
fi
if [ ! -x "$venv/bin/python" ]; then
    say "creating the project's virtual environment: $venv"
    python3 -m venv "$venv"
fi
say "installing the task suite into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$here"
# 5. The base image: pulled where a registry answers, else bootstrapped from Debian packages.
base=python:3.11-slim
if docker image inspect "$base" >/dev/null 2>&1; then
    say "base image: $base present"
elif docker pull --quiet "$base" >/dev/null 2>&1; then
    say "base image: pulled $base"
else
    say "base image: $base cannot be pulled here; building an equivalent (invoke base-image)"
    (cd "$here" && "$venv/bin/invoke" base-image)
fi
say "ready: run the project's commands from $venv ('. .venv/bin/activate', or prefix them with .venv/bin/)"
