"""Shared test setup: everything offline, deterministic, quiet.

Run everything:   make test
Unit only:        .venv/bin/python -m pytest tests/unit
"""

import os
import tempfile

# Set before transformers/datasets/lm_eval are imported anywhere (they read these at import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# The local run history (advisor/run_history.py) stays out of tests: nothing reads or
# writes a developer's ~/.cache/tunewise; tests of the history turn it on in a tmp folder.
os.environ.setdefault("TUNEWISE_NO_HISTORY", "1")
os.environ.setdefault("TUNEWISE_HOME", os.path.join(tempfile.gettempdir(), f"tunewise-test-home-{os.getpid()}"))
