import os

import pytest

from iquest_core.atomic_io import atomic_path, public_mode, save_figure, write_atomic


def test_write_atomic_text_bytes_and_permissions(tmp_path):
    write_atomic(tmp_path / "a.txt", "é")
    write_atomic(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "a.txt").read_bytes() == "é".encode() and (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    for name in ("a.txt", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == public_mode() != 0o600
    with pytest.raises(TypeError, match="^data:"):
        write_atomic(tmp_path / "c.txt", 42)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "t.png"
    target.write_bytes(b"old")
    with pytest.raises(OSError):
        with atomic_path(target, suffix=".png") as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp.exists()
            tmp.write_bytes(b"half")
            raise OSError("device full")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["t.png"]


def test_save_figure_writes_the_suffix_format_and_closes_the_figure(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert save_figure(fig, tmp_path / "a.svg") == tmp_path / "a.svg"
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")
    assert not plt.fignum_exists(fig.number) and os.listdir(tmp_path) == ["a.svg"]

    (tmp_path / "b.png").write_bytes(b"old")
    fig, _ = plt.subplots()
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "b.png", dpi=-1)
    assert (tmp_path / "b.png").read_bytes() == b"old" and not plt.fignum_exists(fig.number)
    assert sorted(os.listdir(tmp_path)) == ["a.svg", "b.png"]
