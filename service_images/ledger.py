"""What this checkout made on the engine, so that `invoke clean` removes that and nothing else.

Image labels cannot say it: they are part of the image's config, and a label naming the checkout
would make two machines' builds of one commit differ. So every build and `invoke base-image`
records the tag it set and the image id it made in `.build/created.json`; `invoke clean` removes
a tag only while it still names an image this checkout made (another checkout may have built the
same tag since), and an image only once no tag names it (a tag the user added keeps it).
Containers, which are never pushed, carry CHECKOUT_LABEL instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Iterator

from service_images.variants import ROOT

LEDGER = ROOT / ".build" / "created.json"
CHECKOUT_LABEL = "io.python-ai-service.checkout"


def checkout_id() -> str:
    """This checkout on this machine: its path and the host's name, hashed."""
    return hashlib.sha256(f"{socket.gethostname()}:{ROOT}".encode()).hexdigest()[:16]


def container_labels() -> dict[str, str]:
    return {CHECKOUT_LABEL: checkout_id()}


@contextlib.contextmanager
def _locked() -> Iterator[dict[str, list[str]]]:
    """The ledger (tag -> image ids), read and rewritten under a lock: builds run side by side."""
    LEDGER.parent.mkdir(parents=True, exist_ok=True)
    with (LEDGER.parent / ".created.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entries: dict[str, list[str]] = (
                json.loads(LEDGER.read_text()) if LEDGER.exists() else {}
            )
        except ValueError:
            entries = {}  # a torn file from before the lock: start again
        yield entries
        handle, temporary = tempfile.mkstemp(dir=LEDGER.parent, prefix=".created.")
        with os.fdopen(handle, "w") as out:
            json.dump(entries, out, indent=1, sort_keys=True)
        os.replace(temporary, LEDGER)


def record_image(tag: str, image_id: str) -> None:
    with _locked() as entries:
        ids = entries.setdefault(tag, [])
        if image_id not in ids:
            ids.append(image_id)


def images() -> dict[str, list[str]]:
    """tag -> the image ids this checkout built under it."""
    with _locked() as entries:
        return {tag: list(ids) for tag, ids in entries.items()}


def forget(tag: str, image_ids: set[str]) -> None:
    with _locked() as entries:
        left = [image for image in entries.get(tag, []) if image not in image_ids]
        if left:
            entries[tag] = left
        else:
            entries.pop(tag, None)
