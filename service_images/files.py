"""Writing the project's files: whole or not at all, and a failure as one line.

A reader (a concurrent build, a crash halfway) never sees a half-written file: each is written
beside its target and renamed over it. A directory that cannot be written is found before the
work that would fill it (`ensure_writable`), so a long run does not end on a traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from service_images.errors import OutOfDate, WriteFailed


def write_atomically(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write `data` to `path` in one rename; WriteFailed names the path and the reason."""
    payload = data.encode() if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(payload)
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise WriteFailed(f"cannot write {path}: {error.strerror or error}.") from None
    return path


def ensure_writable(directory: Path) -> Path:
    """`directory` exists and a file can be made in it, or WriteFailed now."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise WriteFailed(
            f"cannot write to {directory}: {error.strerror or error}; make it writable, or "
            "run from a checkout you can write to."
        ) from None
    return directory


def replace_block(text: str, markers: tuple[str, str], body: str, where: str) -> str:
    """`text` with what stands between the marker lines replaced by `body` (a generated block of
    README or a Dockerfile); OutOfDate saying `where` they belong unless there is one of each, in
    order."""
    start, end = markers
    if text.count(start) != 1 or text.count(end) != 1 or text.index(end) < text.index(start):
        raise OutOfDate(f"{where} needs exactly one line `{start}` and, below it, one `{end}`.")
    return f"{text[: text.index(start) + len(start)]}\n{body}\n{text[text.index(end) :]}"
