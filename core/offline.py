"""Runtime is offline: no hub, no telemetry."""

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def enforce_offline_env() -> None:
    """Set before transformers/huggingface_hub are imported; they read these at import time."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value


enforce_offline_env()
