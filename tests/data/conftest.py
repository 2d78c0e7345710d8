import sysconfig
from pathlib import Path

import pytest

from iquest_core.data import syntax
from iquest_core.data.tokenizer import train_tokenizer

FILES = Path(__file__).parent / "files"
STDLIB = Path(sysconfig.get_paths()["stdlib"])  # the running interpreter's standard library


def corpus() -> list[tuple[Path, str, str]]:
    """(path, language, text) of every source file of the shipped multi-language corpus."""
    out = []
    for path in sorted(FILES.rglob("*")):
        language = syntax.language_of(path.name)
        if language is not None:
            out.append((path, language, path.read_text(encoding="utf-8")))
    return out


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer([text for _, _, text in corpus()], vocab_size=1200)
