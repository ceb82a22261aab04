"""Suite-wide settings: offscreen Qt, offline Hugging Face, no stray network."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from core.offline import enforce_offline_env  # noqa: E402

enforce_offline_env()
