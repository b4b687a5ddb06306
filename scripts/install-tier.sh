#!/bin/sh
# One tier of a lock, in the Dockerfile stage that builds it (an empty venv at /opt/venv):
#     install-tier.sh install LOCK_SLICE    uv installs the slice (network; uv and the CA mounted)
#     install-tier.sh slim [--compile]      then, with binutils mounted at /tmp/build/tools: the
#                                           packages' own test suites and top-level C headers go,
#                                           shared libraries lose their debug and symbol sections,
#                                           and with --compile the bytecode is compiled, since the
#                                           root filesystem may be read-only.
# Hash-checked, nothing resolved: the lock is complete. Wheels, but for `ta`, which PyPI has only
# as an sdist (pure Python): uv builds it here with the build backend requirements-build.lock pins
# (mounted at /tmp/build/build-constraints.lock), hash-checked too.
set -eu
venv=/opt/venv

install() {
    lock=$1
    # uv comes mounted from the build context; UV_SHA256 (a build argument) is what its wheel recorded.
    echo "${UV_SHA256:?the build passes UV_SHA256}  $(command -v uv)" | sha256sum -c --quiet
    if [ -f /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi
    export UV_CACHE_DIR=/root/.cache/uv UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
    uv venv --quiet --python "$(command -v python)" "$venv"
    uv pip install --quiet --python "$venv/bin/python" --require-hashes --no-deps -r "$lock" \
        --build-constraints /tmp/build/build-constraints.lock
}

slim() {
    cd "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    find . -depth -type d -name tests -exec rm -rf {} +
    find . -mindepth 2 -maxdepth 2 -type d -name include -exec rm -rf {} +  # torch/include, ...
    export LD_LIBRARY_PATH="$(echo /tmp/build/tools/usr/lib/*-linux-gnu)"
    tools=/tmp/build/tools/usr/bin
    # Not the libraries auditwheel vendored into <package>.libs: patchelf rewrote their program
    # headers, and strip leaves them unloadable ("ELF load command address/offset not page-aligned").
    # Only libraries with a symbol table or debug sections: strip rewrites every file it is given,
    # and the CUDA libraries come stripped (10 s of the full build's 7 GB tier to save 20 MB).
    # One strip per core. A file that is no ELF object (a linker script, say) has nothing to strip.
    find . -type f -name '*.so*' ! -path '*.libs/*' | while read -r lib; do
        "$tools/readelf" -S -W "$lib" 2>/dev/null | grep -qE ' \.(symtab|debug_[a-z]+) ' && echo "$lib"
    done | xargs -r -d '\n' -n 16 -P "$(nproc)" "$tools/strip" --strip-unneeded 2>/dev/null || true
    if [ "${1:-}" = --compile ]; then
        "$venv/bin/python" -m compileall -q -j 0 . >/dev/null
    fi
}

case ${1:-} in
    install) install "${2:?install needs the lock slice}" ;;
    slim) slim "${2:-}" ;;
    *) echo "usage: install-tier.sh install LOCK_SLICE | slim [--compile]" >&2; exit 2 ;;
esac
