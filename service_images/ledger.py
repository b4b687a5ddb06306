"""What this checkout made on the engine, so that `invoke clean` removes that and nothing else.

Image labels cannot say it: they are part of the image's config, and a label naming the checkout
would make two machines' builds of one commit differ. So every build and `invoke base-image`
records, per engine, the tag it set and the image id it made in `.build/created.json`; `invoke
clean` removes
a tag only while it still names an image this checkout made (another checkout may have built
the same tag since), and an image only once no tag names it (a tag the user added keeps it).
Containers, which are never pushed, carry CHECKOUT_LABEL instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import socket
from collections.abc import Iterator

from service_images import project
from service_images.files import write_atomically
from service_images.variants import ROOT

LEDGER = ROOT / ".build" / "created.json"
CHECKOUT_LABEL = f"{project.LABELS}.checkout"


def checkout_id() -> str:
    """This checkout on this machine: its path and the host's name, hashed."""
    return hashlib.sha256(f"{socket.gethostname()}:{ROOT}".encode()).hexdigest()[:16]


def container_labels() -> dict[str, str]:
    return {CHECKOUT_LABEL: checkout_id()}


@contextlib.contextmanager
def _locked(engine_id: str) -> Iterator[dict[str, list[str]]]:
    """One engine's part of the ledger (tag -> image ids), read and rewritten under a lock."""
    LEDGER.parent.mkdir(parents=True, exist_ok=True)
    with (LEDGER.parent / ".created.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            ledger: dict[str, dict[str, list[str]]] = json.loads(LEDGER.read_text())
        except (OSError, ValueError):
            ledger = {}  # none yet, or torn by a crash before the rename
        entries = ledger.setdefault(engine_id, {})
        yield entries
        if not entries:
            del ledger[engine_id]
        write_atomically(LEDGER, json.dumps(ledger, indent=1, sort_keys=True))


def record_image(engine_id: str, tag: str, image_id: str) -> None:
    with _locked(engine_id) as entries:
        ids = entries.setdefault(tag, [])
        if image_id not in ids:
            ids.append(image_id)


def images(engine_id: str) -> dict[str, list[str]]:
    """tag -> the image ids this checkout built under it on that engine."""
    with _locked(engine_id) as entries:
        return {tag: list(ids) for tag, ids in entries.items()}


def forget(engine_id: str, tag: str, image_ids: set[str]) -> None:
    with _locked(engine_id) as entries:
        left = [image for image in entries.get(tag, []) if image not in image_ids]
        if left:
            entries[tag] = left
        else:
            entries.pop(tag, None)


def drop_engine(engine_id: str) -> None:
    """Forget an engine that is gone (a private engine, removed with all it held)."""
    with _locked(engine_id) as entries:
        entries.clear()
