"""Files a reader never sees half-written: the content goes to a temporary file in the target's folder,
which is renamed over the target only once complete and removed if writing fails. Files get the
permissions open() would give (the umask's), not mkstemp's private 0600."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def public_mode(directory: bool = False) -> int:
    """The permissions open() / mkdir() would give (mkstemp and mkdtemp make private files)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a temporary path next to `path`; write it inside the block. On a normal exit it replaces
    `path`; on an exception it is deleted and `path` is left as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, public_mode())
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write data (str as UTF-8, or bytes) to path atomically."""
    if not isinstance(data, (str, bytes)):
        raise TypeError(f"data: expected str or bytes, got {type(data).__name__}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def save_figure(fig, path: str | Path, *, dpi: int = 90) -> Path:
    """Save a matplotlib figure to `path` atomically (format from the suffix) and close it, also on error."""
    path = Path(path)
    try:
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)
    return path
