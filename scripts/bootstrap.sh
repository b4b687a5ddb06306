#!/usr/bin/env bash
# Set up a Debian/Ubuntu machine (as root) to build and test the images:
#   - a Docker engine, 26 or newer, on the containerd image store (Docker 29's default): an engine
#     that already answers (DOCKER_HOST, Docker Desktop, a CI runner's) is used as it is; else
#     the distribution's docker.io (Debian 13, Ubuntu 24.04), or on Debian 12, whose own is 20.10,
#     Debian 13's engine packages pinned by debian-host.lock (with Debian 12's glibc and runc),
#     started by hand where there is no init system,
#   - BuildKit for the docker client on PATH (the buildx plugin), and cosign (Sigstore's CLI),
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
major() { v=${1:-0}; v=${v%%.*}; [ -n "$v" ] && [ "$v" -eq "$v" ] 2>/dev/null && echo "$v" || echo 0; }
MIN_ENGINE=26
# shellcheck disable=SC1091 # the host's own
os=$(. /etc/os-release && echo "${ID:-}-${VERSION_CODENAME:-}")

# The machine's own Debian mirror, as apt's sources name it (deb.debian.org where none is found).
debian_mirror() {
    # shellcheck disable=SC2016 # $(REPO_URI) is apt's placeholder, not the shell's
    apt-get indextargets --format '$(REPO_URI)' 'Origin: Debian' 2>/dev/null | grep -v security \
        | head -n1 | grep . || echo http://deb.debian.org/debian/
}

# Debian 13's packages named by debian-host.lock for this architecture, fetched by sha256 with
# apt-helper (apt's downloader: the machine's proxy settings apply), then installed with apt-get,
# which takes what they depend on (runc, iptables, ...) from the host's own release.
install_pinned() {
    arch=$(dpkg --print-architecture) mirror=$(debian_mirror) debs=$(mktemp -d)
    chmod 755 "$debs"  # apt reads local packages as its own unprivileged user
    set --
    while read -r lock_arch path sha256; do
        case $lock_arch in "#"*|"") continue ;; esac
        if [ "$lock_arch" = "$arch" ] && want "${path##*/}"; then
            set -- "$@" "${mirror%/}/$path" "$debs/${path##*/}" "SHA256:$sha256"
        fi
    done <"$here/debian-host.lock"
    [ $# -gt 0 ] || die "debian-host.lock pins nothing for $arch."
    /usr/lib/apt/apt-helper -qq download-file "$@" >/dev/null \
        || die "could not fetch debian-host.lock's packages from $mirror (gone from the archive? run \`invoke lock\`)."
    apt_install "$debs"/*.deb
    rm -rf "$debs"
}
want() { for name in $wanted; do case $1 in "${name}_"*) return 0 ;; esac; done; return 1; }

# 1. Engine.
if engine_up; then
    version=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown)
    say "docker engine: $version already answers; used as it is"
    [ "$(major "$version")" -ge "$MIN_ENGINE" ] \
        || say "warning: engine $version is older than Docker $MIN_ENGINE: \`invoke doctor\` says what it cannot do"
else
    installed=
    if command -v dockerd >/dev/null; then
        installed=$(dockerd --version | sed -n 's/^Docker version \([0-9.]*\).*/\1/p')
    fi
    if [ "$(major "$installed")" -lt "$MIN_ENGINE" ]; then
        need_root "Installing the Docker engine"
        # The containerd image store, as Docker 29 has by default; a configuration of the
        # machine's own is left as it is.
        if [ ! -e /etc/docker/daemon.json ]; then
            mkdir -p /etc/docker
            echo '{"features": {"containerd-snapshotter": true}}' >/etc/docker/daemon.json
        fi
        if [ "$os" = debian-bookworm ]; then
            say "installing Debian 13's Docker engine, pinned by debian-host.lock (Debian 12's own is 20.10${installed:+; this machine has $installed})"
            wanted="docker.io containerd docker-cli docker-buildx" install_pinned
        else
            candidate=$(apt-cache policy docker.io 2>/dev/null | sed -n 's/^ *Candidate: \([0-9.]*\).*/\1/p')
            [ "$(major "$candidate")" -ge "$MIN_ENGINE" ] \
                || die "this distribution's docker.io is ${candidate:-not packaged} (Docker $MIN_ENGINE or newer is needed): install Docker Engine from docker.com, then run this again."
            say "installing docker.io $candidate (the distribution's Docker engine)"
            apt_install docker.io
        fi
    fi
    # An engine without a client on PATH (Debian 13 ships the CLI as its own package, docker-cli).
    if ! command -v docker >/dev/null; then
        need_root "Installing the docker CLI"
        say "installing the docker CLI (dockerd is here, docker is not on PATH)"
        if [ "$os" = debian-bookworm ]; then wanted="docker-cli" install_pinned; else apt_install docker-cli; fi
    fi
    if [ -z "${DOCKER_HOST:-}" ] && ! pgrep -x dockerd >/dev/null; then
        say "starting dockerd (log: $log)"
        # No init system on CI machines: start it detached and wait for it to answer.
        setsid nohup dockerd >"$log" 2>&1 </dev/null &
    fi
    for _ in $(seq 60); do engine_up && break; sleep 1; done
    engine_up || die "the Docker engine did not answer within 60 s; see $log."
    say "docker engine: $(docker version --format '{{.Server.Version}}') running"
fi

# 2. BuildKit: the buildx plugin for the client on PATH (clients from 23 on build with BuildKit only
#    through it), and cosign. Debian 12 has neither: Debian 13's, pinned like the engine.
missing=
docker buildx version >/dev/null 2>&1 || missing="docker-buildx"
command -v cosign >/dev/null || missing="$missing cosign"
if [ -n "$missing" ]; then
    need_root "Installing$(printf ' %s' $missing)"
    if [ "$os" = debian-bookworm ]; then
        say "installing Debian 13's$(printf ' %s' $missing), pinned by debian-host.lock"
        wanted=$missing install_pinned
    else
        for package in $missing; do
            if apt-cache show "$package" >/dev/null 2>&1; then
                apt_install "$package"
            else
                say "$package: not packaged by this distribution; install it yourself (README 'Set-up')"
            fi
        done
    fi
fi
docker buildx version >/dev/null 2>&1 || die "the buildx plugin is installed but 'docker buildx version' fails."
say "buildx: $(docker buildx version | head -n1)"
command -v cosign >/dev/null && say "cosign: $(command -v cosign)"

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
        # The tag python:3.11-slim holds both platforms on the containerd image store; the
        # classic store gives the other platform a tag of its own (python:3.11-slim-arm64).
        say "base image for $foreign (bootstrapped under emulation where missing: several minutes)"
        (cd "$here" && "$venv/bin/invoke" base-image --platform "$foreign" --if-missing)
    fi
fi
say "ready: run the project's commands from $venv ('. .venv/bin/activate', or prefix them with .venv/bin/)"
