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
