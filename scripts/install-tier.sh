#!/bin/sh
# Install one tier of a lock into /opt/venv, inside the Dockerfile RUN that makes its layer:
#     install-tier.sh LOCK_SLICE [--compile]
# Hash-checked, nothing resolved: the lock is complete. Wheels, but for `ta`, which PyPI has only
# as an sdist (pure Python): uv builds it here, fetching its build backend unpinned. Then, for the
# entries this tier added only (a layer that rewrote an earlier tier's files would carry them
# twice): the packages' own test suites and top-level C headers go, shared libraries lose their
# debug and symbol sections (binutils' strip from the tools stage, mounted at /tmp/build/tools),
# and with --compile the bytecode is compiled, since the root filesystem may be read-only.
set -eu
lock=$1
compile=${2:-}

# uv comes mounted from the build context; UV_SHA256 (a build argument) is what its wheel recorded.
echo "${UV_SHA256:?the build passes UV_SHA256}  $(command -v uv)" | sha256sum -c --quiet

if [ -f /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi
export UV_CACHE_DIR=/root/.cache/uv UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
[ -x /opt/venv/bin/python ] || uv venv --quiet --python "$(command -v python)" /opt/venv
site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

entries() { find "$site" -mindepth 1 -maxdepth 1 -printf '%f\n'; }
before=$(entries)
uv pip install --quiet --python /opt/venv/bin/python --require-hashes --no-deps -r "$lock"
added=$(entries | grep -vxF -e "$before" || true)
[ -n "$added" ] || { echo "install-tier: $lock added nothing to $site" >&2; exit 1; }

cd "$site"
# shellcheck disable=SC2086 # one word per site-packages entry
find $added -depth -type d -name tests -exec rm -rf {} +
# shellcheck disable=SC2086 # C headers at a package's top (torch/include, tensorflow/include)
find $added -mindepth 1 -maxdepth 1 -type d -name include -exec rm -rf {} +
tools_lib=$(echo /tmp/build/tools/usr/lib/*-linux-gnu)
# Not the libraries auditwheel vendored into <package>.libs: patchelf rewrote their program headers,
# and strip leaves them unloadable ("ELF load command address/offset not page-aligned").
# strip exits non-zero on a file that is no ELF object (a linker script, say): nothing to strip.
# shellcheck disable=SC2086
find $added -type f -name '*.so*' ! -path '*.libs/*' -exec env LD_LIBRARY_PATH="$tools_lib" \
    /tmp/build/tools/usr/bin/strip --strip-unneeded {} + 2>/dev/null || true
if [ "$compile" = --compile ]; then
    # shellcheck disable=SC2086
    /opt/venv/bin/python -m compileall -q -j 0 $added >/dev/null
fi
