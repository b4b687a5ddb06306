#!/usr/bin/env bash
# Set up a Debian/Ubuntu machine (as root) to build and test the images:
#   - a running Docker engine (Debian's docker.io, started by hand where there is no init system),
#   - BuildKit for the docker client on PATH (the buildx plugin),
#   - the task suite (this repository's pyproject.toml) in the project's virtual environment .venv,
#     made with the machine's python3 (Debian's own is fine: nothing is installed into it),
#   - the base image: python:3.11-slim, pulled, or where no registry answers built from Debian
#     packages by `invoke base-image` (with mmdebstrap, installed here for that).
#   - with `--platform linux/arm64` (or linux/amd64 on an arm64 machine): QEMU user emulation for
#     that platform (Debian's qemu-user-static, registered in binfmt_misc, which is mounted where the
#     kernel allows it) and its own base image, python:3.11-slim-<arch>. Skipped, saying why, where
#     emulation cannot work (no root, binfmt_misc not mountable in an unprivileged container).
# Idempotent: every step checks first, and a machine where all of it works is left as it is.
set -euo pipefail

foreign=
while [ $# -gt 0 ]; do
    case $1 in
        --platform) foreign=${2:?--platform needs linux/amd64 or linux/arm64}; shift 2 ;;
        --platform=*) foreign=${1#--platform=}; shift ;;
        *) printf 'usage: %s [--platform linux/amd64|linux/arm64]\n' "$0" >&2; exit 2 ;;
    esac
done

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
        # shellcheck disable=SC2016 # $(REPO_URI) is apt's placeholder, not the shell's
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
# 6. Another platform: QEMU user emulation, then that platform's own base image.
if [ -n "$foreign" ]; then
    case ${foreign#linux/} in
        arm64) machine=aarch64 ;;
        amd64) machine=x86_64 ;;
        *) die "unknown platform $foreign: linux/amd64 or linux/arm64." ;;
    esac
    binfmt=/proc/sys/fs/binfmt_misc
    if [ "$machine" = "$(uname -m)" ]; then
        say "platform $foreign: this machine's own, no emulation needed"
    elif [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        say "platform $foreign: skipped, emulation needs root and apt-get (see README 'Both platforms')"
        foreign=
    else
        if [ ! -x "/usr/libexec/qemu-binfmt/$machine-binfmt-P" ] || ! command -v update-binfmts >/dev/null \
            || ! command -v arch-test >/dev/null; then
            say "installing qemu-user-static, binfmt-support and arch-test (emulation for $foreign)"
            # arch-test: mmdebstrap checks with it that the foreign architecture runs.
            apt_install qemu-user-static binfmt-support arch-test
        fi
        if ! mountpoint -q "$binfmt" && ! mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null; then
            say "platform $foreign: skipped, binfmt_misc cannot be mounted here (an unprivileged container?)"
            foreign=
        else
            # F (fix binary): the kernel opens the interpreter now, so containers use it too.
            update-binfmts --enable "qemu-$machine" 2>/dev/null || true
            if grep -qx enabled "$binfmt/qemu-$machine" 2>/dev/null; then
                say "platform $foreign: QEMU registered ($(sed -n 's/^flags: //p' "$binfmt/qemu-$machine") flags)"
            else
                say "platform $foreign: skipped, qemu-$machine could not be registered in binfmt_misc"
                foreign=
            fi
        fi
    fi
    if [ -n "$foreign" ]; then
        foreign_base=$base-${foreign#linux/}
        [ "$machine" = "$(uname -m)" ] && foreign_base=$base
        if docker image inspect "$foreign_base" >/dev/null 2>&1; then
            say "base image: $foreign_base present"
        else
            say "base image: building $foreign_base for $foreign under emulation (several minutes)"
            (cd "$here" && "$venv/bin/invoke" base-image --platform "$foreign")
        fi
    fi
fi
say "ready: run the project's commands from $venv ('. .venv/bin/activate', or prefix them with .venv/bin/)"
