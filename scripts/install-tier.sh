#!/bin/sh
# The Dockerfiles' build steps (mounted under /tmp/build, never in an image):
#     install-tier.sh tools                        binutils' strip and readelf, in the `tools` stage
#     install-tier.sh venv                         the empty venv at /opt/venv, in the `base` stage
#     install-tier.sh install LOCK_SLICE [--compile]
#                                                  one tier of a lock into that venv, then
#                                                  slimmed with `tools` mounted at
#                                                  /tmp/build/tools; with --compile, bytecode
#                                                  too (the root filesystem may be read-only).
# Hash-checked, nothing resolved: the lock is complete. Wheels, but for `ta`, which PyPI has only
# as an sdist (pure Python): uv builds it here with the build backend requirements-build.lock pins
# (mounted at /tmp/build/build-constraints.lock), hash-checked too.
set -eu
venv=/opt/venv

tools() {
    # The packages debian-tools.lock pins for this architecture, by sha256 and without
    # `apt-get update` (apt-helper: apt's own downloader, proxy settings and hash check). Any
    # failure (a file Debian dropped, a hash that differs) falls back to apt-get, which checks
    # the archive's signatures.
    arch=$(dpkg --print-architecture)
    set --
    while read -r lock_arch path sha256; do
        if [ "$lock_arch" = "$arch" ]; then
            set -- "$@" "http://deb.debian.org/debian/$path" "/tmp/${path##*/}" "SHA256:$sha256"
        fi
    done <<EOF
$(grep -v '^#' /tmp/build/debian-tools.lock)
EOF
    if [ $# -gt 0 ] && /usr/lib/apt/apt-helper -qq download-file "$@" >/dev/null; then
        for deb in /tmp/*.deb; do dpkg-deb --extract "$deb" /; done
        rm -f /tmp/*.deb
    else
        echo "install-tier.sh: debian-tools.lock's binutils for $arch could not be fetched" \
            "(gone from Debian's archive? run \`invoke lock\`): installing it with apt-get." >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -qq -y --no-install-recommends binutils >/dev/null
        rm -rf /var/lib/apt/lists/*
    fi
}

check_uv() {
    # uv comes mounted from the build context; UV_SHA256_<ARCH> (build arguments) is what the wheel
    # of the target architecture's uv recorded.
    case ${TARGETARCH:?} in
        amd64) uv_sha256=${UV_SHA256_AMD64:-} ;;
        arm64) uv_sha256=${UV_SHA256_ARM64:-} ;;
        *) uv_sha256= ;;
    esac
    echo "${uv_sha256:?the build passes UV_SHA256_<ARCH> for $TARGETARCH}  $(command -v uv)" | sha256sum -c --quiet
    export UV_PYTHON_DOWNLOADS=never
}

venv() {
    # Made once, in the stage every tier starts from: the tiers' stages, built side by side, then
    # share its files, and no layer carries a copy of them or not by the timing of the build.
    # Without uv's cache: a /root/.cache/uv left here would read as the tiers' cache mount.
    check_uv
    uv venv --quiet --no-cache --python "$(command -v python)" "$venv"
}

install() {
    lock=$1
    check_uv
    if [ -f /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi
    # Patient with a slow or flaky proxy: a connection that times out is tried again (with back-off)
    # up to 8 times, not 3 (fresh-clone CI runs failed on one wheel's "client error (Connect)").
    export UV_HTTP_CONNECT_TIMEOUT=30 UV_HTTP_RETRIES=8
    if [ -d /root/.cache/uv ]; then
        # The step mounts uv's cache (the tier that changes often): kept between builds, copied from.
        export UV_CACHE_DIR=/root/.cache/uv UV_LINK_MODE=copy
    else
        # A tier that seldom changes: its wheels are unpacked once, on the venv's own filesystem,
        # hardlinked into it, and the cache removed (GBs written once, none kept by the builder).
        export UV_CACHE_DIR=/opt/uv-cache UV_LINK_MODE=hardlink
    fi
    uv pip install --quiet --python "$venv/bin/python" --require-hashes --no-deps -r "$lock" \
        --build-constraints /tmp/build/build-constraints.lock
    # uv's own lock file for the venv (mode 666): nothing the image needs, nor one to leave writable.
    rm -rf /opt/uv-cache "$venv/.lock"
}

slim() {
    compile=${1:-}
    # No bytecode but compileall's: the venv's python below imports _distutils_hack at start-up
    # (setuptools' .pth) and wrote its .pyc stamped with the build's time, which compileall then
    # took as up to date (two cold full builds differed in that one file).
    export PYTHONDONTWRITEBYTECODE=1
    cd "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    find . -depth -type d -name tests -exec rm -rf {} +
    find . -mindepth 2 -maxdepth 2 -type d -name include -exec rm -rf {} +  # torch/include, ...
    export LD_LIBRARY_PATH="$(echo /tmp/build/tools/usr/lib/*-linux-gnu)"
    set -- /tmp/build/tools/usr/bin/*-linux-gnu-readelf
    readelf=$1
    set -- /tmp/build/tools/usr/bin/*-linux-gnu-strip
    strip=$1
    # Not the libraries auditwheel vendored into <package>.libs: patchelf rewrote their program
    # headers, and strip leaves them unloadable ("ELF load command address/offset not page-aligned").
    # Only libraries with a symbol table or debug sections: strip rewrites every file it is given,
    # and the CUDA libraries come stripped (10 s of the full build's 7 GB tier to save 20 MB).
    # One strip per core. A file that is no ELF object (a linker script, say) has nothing to strip.
    find . -type f -name '*.so*' ! -path '*.libs/*' | while read -r lib; do
        "$readelf" -S -W "$lib" 2>/dev/null | grep -qE ' \.(symtab|debug_[a-z]+) ' && echo "$lib"
    done | xargs -r -d '\n' -n 16 -P "$(nproc)" "$strip" --strip-unneeded 2>/dev/null || true
    if [ "$compile" = --compile ]; then
        # Hash-based bytecode (PEP 552), unchecked: no build time in it, and the venv never
        # changes under it, so imports need not hash the sources.
        "$venv/bin/python" -m compileall -q -f -j 0 --invalidation-mode unchecked-hash . >/dev/null
    fi
}

case ${1:-} in
    tools) tools ;;
    venv) venv ;;
    install) install "${2:?install needs the lock slice}"; slim "${3:-}" ;;
    *) echo "usage: install-tier.sh tools | venv | install LOCK_SLICE [--compile]" >&2; exit 2 ;;
esac
