import math
import re
from pathlib import Path

import pytest
import torch

from iquest_core.model import LoopCoderForCausalLM
from iquest_core.jobs.demo import main, source_bytes


def test_corpus_is_the_package_source():
    corpus = source_bytes(Path(__file__).parents[2] / "iquest_core" / "model")
    assert corpus.dtype == torch.int64 and 0 <= corpus.min() and corpus.max() < 256
    assert b"class LoopCoderForCausalLM" in bytes(corpus.tolist())


def test_demo_trains_reports_and_saves(tmp_path, capsys):
    main(["--steps", "3", "--seq-len", "48", "--batch-size", "2", "--save", str(tmp_path)])
    out = capsys.readouterr().out
    match = re.search(r"loss (\d+\.\d+) -> (\d+\.\d+) .*; ([\d,]+) training tokens/s", out)
    assert match, out
    first_loss, last_loss, tokens_per_s = float(match[1]), float(match[2]), int(match[3].replace(",", ""))
    assert abs(first_loss - math.log(256)) < 0.5  # a fresh model predicts bytes about uniformly
    assert math.isfinite(last_loss) and tokens_per_s > 0
    assert "sampled completion of 'def '" in out
    model = LoopCoderForCausalLM.from_pretrained(tmp_path)
    assert model.config.vocab_size == 256 and model.config.loop_num == 2


@pytest.mark.parametrize("steps", [4, 10, 21])
def test_demo_schedule_takes_any_step_count_from_three(steps, capsys):
    main(["--steps", str(steps), "--seq-len", "16", "--batch-size", "1"])
    assert "training tokens/s" in capsys.readouterr().out


def test_demo_refuses_fewer_than_three_steps():
    with pytest.raises(SystemExit) as exit_info:
        main(["--steps", "2"])
    assert exit_info.value.code == 2
