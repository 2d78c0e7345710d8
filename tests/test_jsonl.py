import pytest

from iquest_core.jsonl import read_jsonl, write_jsonl


def failing_records():
    yield {"a": 1}
    raise RuntimeError("disk full")


def test_write_jsonl_is_atomic(tmp_path):
    out = tmp_path / "sub" / "out.jsonl"
    assert write_jsonl(out, [{"x": "é"}, {"y": [1]}]) == 2
    assert out.read_text(encoding="utf-8") == '{"x": "é"}\n{"y": [1]}\n'
    with pytest.raises(RuntimeError, match="disk full"):
        write_jsonl(out, failing_records())
    assert out.read_text(encoding="utf-8") == '{"x": "é"}\n{"y": [1]}\n'  # the old output survives whole
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.jsonl"]


def test_read_jsonl_numbers_lines_and_skips_blank_ones(tmp_path):
    path = tmp_path / "in.jsonl"
    write_jsonl(path, [{"x": "é"}, [1, 2], "s"])
    path.write_text(path.read_text(encoding="utf-8") + "\n  \n7\n", encoding="utf-8")
    assert list(read_jsonl(path, "--input")) == [(1, {"x": "é"}), (2, [1, 2]), (3, "s"), (6, 7)]


@pytest.mark.parametrize("content,message", [(b'{"a": 1}\n{not json\n', r"line 2 of .*in.jsonl is not JSON"),
                                             (b'{"a": "\xff"}\n', r"cannot read .*in.jsonl"),
                                             (None, r"cannot read .*in.jsonl")])
def test_read_jsonl_names_the_caller_the_file_and_the_line(tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"^--input: {message}"):
        list(read_jsonl(path, "--input"))
