"""GPU tests: skipped with a clear reason where CUDA is absent."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The bundled tiny model every GPU test trains."""
    from tunewise.assets import tiny_model_path

    return Path(tiny_model_path())


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "tests/gpu" in str(item.fspath):
            item.add_marker(skip)
