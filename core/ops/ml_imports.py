"""Import transformers once, under a lock, before the first job that needs it.

transformers installs a lazy module object in sys.modules while its package initialises; a second worker
thread that imports it at that moment sees a half-built module ("cannot import name 'AutoConfig' from
'transformers'"). Python's per-module import lock does not cover that swap, so two jobs started together
(the Train page's two pre-flight checks, the Models page's memory estimate) can race. Every job the
training and model pages start goes through `ml_job`, which makes the first import happen exactly once.
"""

from __future__ import annotations

import threading
from typing import Callable

from core.jobs import CancelToken, Job

_lock = threading.Lock()
_ready = False


def ml_ready() -> None:
    global _ready
    if _ready:
        return
    with _lock:
        if not _ready:
            import transformers  # noqa: F401
            from transformers import (  # noqa: F401
                AutoConfig,
                AutoModelForCausalLM,
                AutoModelForSequenceClassification,
                AutoTokenizer,
            )

            _ready = True


def ml_job(make_job: Callable[[CancelToken], Job]) -> Callable[[CancelToken], Job]:
    """`make_job` with the import done first, on the worker thread (never on the GUI thread)."""

    def run(cancel: CancelToken) -> Job:
        ml_ready()
        return (yield from make_job(cancel))

    return run
