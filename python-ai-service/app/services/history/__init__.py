"""History of served requests: a store (memory or MongoDB) fed by a background recorder.

Routes hand entries to :class:`HistoryRecorder`, which never waits on the store; the choice of
store is made in ``app.main``.
"""

from app.services.history.memory import MemoryHistory
from app.services.history.recorder import HistoryRecorder, make_entry
from app.services.history.store import HistoryKind, HistoryStore, HistoryUnavailableError

__all__ = [
    "HistoryKind",
    "HistoryRecorder",
    "HistoryStore",
    "HistoryUnavailableError",
    "MemoryHistory",
    "make_entry",
]
