"""The pipeline's own data builders (the stages themselves are the trainer and the data jobs, tested
elsewhere): documented functions become SFT and agent records that render with the chat template."""

import json

from iquest_core.data.chat import chat_text
from iquest_core.jobs.pipeline import build_chat_data, functions_of

SOURCE = '''def add(a, b):
    """Add two numbers."""
    return a + b


def undocumented():
    return 1


class Box:
    def size(self):
        """The size of the box.

        More text."""
        return len(self.items)
'''


def test_documented_functions_become_sft_and_agent_records(tmp_path):
    docs = tmp_path / "repo.jsonl"
    docs.write_text(json.dumps({"path": "pkg/mod.py", "content": SOURCE, "repo": "r"}) + "\n"
                    + json.dumps({"path": "README.md", "content": "def no(): pass", "repo": "r"}) + "\n")
    found = functions_of(docs)
    assert [(p, n, d) for p, n, d, _ in found] == [("pkg/mod.py", "add", "Add two numbers."),
                                                   ("pkg/mod.py", "size", "The size of the box.")]
    (tmp_path / "data").mkdir()
    agent, sft = build_chat_data(tmp_path, {"repo": docs, "stdlib": docs})
    sft_records = [json.loads(line) for line in sft.read_text().splitlines()]
    assert len(sft_records) == 4 and all(0 <= r["difficulty"] <= 1 for r in sft_records)
    add = next(r for r in sft_records if "`add`" in r["messages"][0]["content"])
    assert add["messages"][1]["content"] == f"```python\n{found[0][3]}\n```"
    trajectory = json.loads(agent.read_text().splitlines()[0])["messages"]
    assert [m["role"] for m in trajectory] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert "no such file" in trajectory[2]["content"]
    assert trajectory[3]["tool_calls"][0]["arguments"]["path"] == "pkg/mod.py"
    assert "<tool_call>" in chat_text(trajectory)
