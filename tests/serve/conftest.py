"""A tiny random LoopCoder export with a small byte-level BPE tokenizer: what `iquest serve` loads."""

from pathlib import Path

import pytest

from iquest_core.data.tokenizer import train_tokenizer
from tests.model.conftest import make_model

VOCAB = 300


def write_tiny_export(directory: Path, preset: str = "tiny") -> Path:
    """A random LoopCoder of `preset` (vocab VOCAB) and a BPE tokenizer trained on the package's data/ sources."""
    texts = [p.read_text() for p in sorted((Path(__file__).parents[2] / "iquest_core" / "data").glob("*.py"))]
    train_tokenizer(texts, vocab_size=VOCAB).save(directory)
    make_model(preset, vocab_size=VOCAB).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    return write_tiny_export(tmp_path_factory.mktemp("tiny-export"))
