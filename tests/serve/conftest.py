"""A tiny random LoopCoder export with a small byte-level BPE tokenizer: what `iquest serve` loads."""

from pathlib import Path

import pytest

from iquest_core.data.tokenizer import train_tokenizer
from tests.model.conftest import make_model

VOCAB = 300


def write_tiny_export(directory: Path) -> Path:
    texts = [p.read_text() for p in sorted(Path("iquest_core/data").glob("*.py"))]
    train_tokenizer(texts, vocab_size=VOCAB).save(directory)
    make_model(vocab_size=VOCAB).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    return write_tiny_export(tmp_path_factory.mktemp("tiny-export"))
