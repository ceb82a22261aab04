"""The one long-running-work protocol.

A job is a generator function. It yields `Progress` events and returns its result; between steps it
calls `cancel.raise_if_cancelled()`. The GUI drives a job on a worker thread and turns events into
signals; the CLI drives the same generator with a terminal progress bar. Nothing else is needed:

    def import_file(project, path, *, cancel=NEVER) -> Iterator[Progress]:  # returns ImportReport
        for i, row in enumerate(rows):
            cancel.raise_if_cancelled()
            ...
            yield Progress(i + 1, len(rows), "importing")
        return report

    result = run_job(import_file(project, path, cancel=token), on_progress=print)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Optional

__all__ = [
    "Progress",
    "CancelToken",
    "Cancelled",
    "NEVER",
    "Job",
    "run_job",
    "call_job",
    "UserActivity",
    "USER_ACTIVITY",
]


@dataclass
class Progress:
    """One event from a job."""

    step: int
    """Units of work done so far."""
    total: Optional[int] = None
    """Units of work in all, or None when unknown."""
    message: str = ""
    """Short status for the user; never contains user text."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Namespaced figures for this step (`loss/policy`, `reward/mean`, ...), for charts."""
    samples: list[dict[str, Any]] = field(default_factory=list)
    """Optional table rows to show (e.g. generated samples); shown in the GUI, never logged."""
    timestamp: float = field(default_factory=time.monotonic)

    @property
    def fraction(self) -> Optional[float]:
        if not self.total:
            return None
        return min(1.0, self.step / self.total)


class Cancelled(Exception):
    """Raised inside a job when its cancel token is set; the job leaves the project consistent."""


class CancelToken:
    """Set from any thread; checked by the job between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class _Never(CancelToken):
    def cancel(self) -> None:  # a shared default must not be cancellable
        raise RuntimeError("NEVER cannot be cancelled; pass your own CancelToken")


NEVER = _Never()

Job = Generator[Progress, None, Any]


def run_job(job: Job, on_progress: Optional[Callable[[Progress], None]] = None) -> Any:
    """Drive a job to the end and return its result. Raises `Cancelled` if it was cancelled."""
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(event)


def call_job(fn: Callable[..., Any], *args: Any, message: str = "", **kwargs: Any) -> Job:
    """A one-step job around a blocking call (Project.open's Argon2id), so a worker runs it like any other."""
    yield Progress(0, None, message)
    return fn(*args, **kwargs)


class UserActivity:
    """When the person last pressed a key or clicked, so that a job that only prepares something for
    later (the informative queue, quality scans) can step aside while they work.

    Pure-Python work in a background thread holds the GIL: the GUI thread then waits for it on every
    handover, and a submit that takes 12 ms of CPU takes 30-70 ms on the clock. A courteous job calls
    `step_aside()` between small pieces of work; it sleeps (GIL released) while the person is active
    and goes on when they pause (reading the next item), so such a job finishes in the reading time.
    The GUI calls `touch()` on input; without a GUI nothing touches it and `step_aside` costs nothing.
    """

    def __init__(self, quiet: float = 0.3) -> None:
        self.quiet = quiet
        """Seconds without input after which background work resumes: longer than the gap between the
        keys of one judgment, shorter than reading the next item."""
        self._last = float("-inf")
        self._input_thread: Optional[int] = None

    def touch(self) -> None:
        """Record input now, from the thread that handles it (the GUI thread)."""
        self._input_thread = threading.get_ident()
        self._last = time.monotonic()

    def active(self) -> bool:
        return time.monotonic() - self._last < self.quiet

    def step_aside(self, cancel: CancelToken = NEVER) -> None:
        """Sleep until the person has been quiet for `quiet` seconds (at once if they are), then hand
        the GIL over once anyway so a waiting thread runs first. On the input thread itself (the same
        code run in the foreground) it never waits: that would freeze the window it makes way for."""
        while threading.get_ident() != self._input_thread:
            wait = self._last + self.quiet - time.monotonic()
            if wait <= 0:
                break
            cancel.raise_if_cancelled()
            time.sleep(min(wait, 0.05))
        time.sleep(0)


USER_ACTIVITY = UserActivity()
"""The process's one record of input: the GUI touches it, courteous background jobs read it."""
