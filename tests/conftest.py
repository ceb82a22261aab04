"""Suite-wide settings: offscreen Qt, offline Hugging Face, one BLAS/torch thread.

Tiny models gain nothing from a second thread, and on a busy 2-core machine threads waiting on each
other made some tests 30x slower; one thread keeps timings stable. Set before torch is imported.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
from core.offline import enforce_offline_env  # noqa: E402

enforce_offline_env()


LONGEST_FIRST = ("tests/test_policy_demo_loop.py",)
"""Files that take most of the suite's time (the learning test: ~10 minutes on one thread). Collected
first, so `make test`'s first xdist worker starts them at once while the other works through the rest:
started last, the suite waited for them with one core idle."""


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))  # stable: the rest keep their order
