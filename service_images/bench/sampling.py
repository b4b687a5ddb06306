"""A reading taken in a thread of its own while a ``with`` block runs: once on entry, then every
``interval`` seconds (the bench's build memory and its disk)."""

from __future__ import annotations

import threading
from typing import Self


class Sampling:
    """Calls ``sample()`` on entry and then every ``interval`` s until the block ends; a
    subclass keeps what it needs of the readings. Not ``enabled``: no reading at all."""

    def __init__(self, name: str, interval: float, enabled: bool = True) -> None:
        self.interval = interval
        self.enabled = enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        if self.enabled:
            self.sample()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
