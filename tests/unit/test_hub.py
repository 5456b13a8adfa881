"""tunewise.hub: a model that cannot load is one InputError line that says where tunewise looked.

    .venv/bin/python -m pytest tests/unit/test_hub.py
"""

import pytest

from tunewise import hub
from tunewise.errors import InputError


@pytest.fixture
def folder_without_tokenizer(tmp_path):
    folder = tmp_path / "half-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    return folder


@pytest.mark.parametrize("offline, says_offline", [("1", True), ("0", False)])
def test_a_load_error_mentions_offline_only_when_offline(folder_without_tokenizer, monkeypatch, offline,
                                                         says_offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with pytest.raises(InputError) as caught:
        hub.load_tokenizer(str(folder_without_tokenizer))
    message = str(caught.value)
    assert "cannot load the tokenizer" in message and "half-model" in message
    assert ("offline: a local folder or a cached hub id" in message) is says_offline
    assert "\n" not in message
