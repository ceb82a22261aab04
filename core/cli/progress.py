"""Drive a job from the terminal: a tqdm bar, the job's figures, Ctrl-C = cancel.

    token = CancelToken()
    try:
        result = run_with_progress(some_job(..., cancel=token), token, desc="training")
    except Cancelled:
        ...  # the job stopped at a step boundary and left the project consistent

The first Ctrl-C sets the cancel token (the job stops at its next check); a second one interrupts at
once (KeyboardInterrupt). Only numbers (metrics) are shown, never a job's sample rows: they hold user text.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any, Callable, Iterable, Optional

from core.jobs import CancelToken, Job, Progress

__all__ = ["run_with_progress"]


def run_with_progress(
    job: Job,
    cancel: Optional[CancelToken] = None,
    desc: str = "",
    metrics: Optional[Iterable[str]] = None,
    file=None,
    disable: Optional[bool] = None,
    on_event: Optional[Callable[[Progress], Iterable[str]]] = None,
) -> Any:
    """Run `job` to the end with a progress bar and return its result (raises `Cancelled` if cancelled).

    metrics: names to show beside the bar (default: every metric the job reports, up to 4).
    disable: no bar (default: when the output is not a terminal the bar is still drawn, tqdm-style).
    on_event: called with each event; the lines it returns are printed above the bar (e.g. warnings).
    """
    from tqdm import tqdm

    wanted = list(metrics) if metrics is not None else None
    file = file or sys.stderr
    bar = tqdm(total=None, desc=desc, file=file, disable=disable, dynamic_ncols=True, leave=True)
    previous = _install_sigint(cancel, bar)
    shown: dict[str, float] = {}
    try:
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            if event.total is not None and bar.total != event.total:
                bar.total = event.total
                bar.refresh()
            if event.message and not (cancel is not None and cancel.cancelled):
                bar.set_description_str(f"{desc}: {event.message}" if desc else event.message, refresh=False)
            for name, value in event.metrics.items():
                if (wanted is None and len(shown) < 4) or (wanted is not None and name in wanted) or name in shown:
                    shown[name] = value
            if shown:
                bar.set_postfix({k: _fmt(v) for k, v in shown.items()}, refresh=False)
            bar.n = event.step
            bar.refresh()
            if on_event is not None:
                for line in on_event(event) or ():
                    bar.write(line, file=file)
    finally:
        bar.close()
        _restore_sigint(previous)


def _fmt(value: float) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _install_sigint(cancel: Optional[CancelToken], bar):
    if cancel is None or threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        bar.set_description_str("cancelling (Ctrl-C again to abort now)")
        bar.refresh()

    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not in the main interpreter
        return None


def _restore_sigint(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)
