"""Cross-replica checks with 3 gloo ranks on the CPU (loopback): after the gradient all-reduce some
rank's gradient (or parameter) is corrupted; every rank raises the same error naming that rank."""

import pytest
import torch
import torch.distributed as dist

from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.faults import flip_bit
from iquest_core.reliability.replicas import check_replicas, compare_across_ranks
from tests.ranks import run_on_ranks
from tests.reliability.models import small_model, step_fn

WORLD = 3
# scenario: ({rank: (target, bit)} corrupted after the all-reduce, what every rank must report)
SCENARIOS = {
    "clean": ({}, None),
    "rank 1 grad": ({1: ("grad", 20)}, (5, "4.weight.grad", 1, "replica", None)),
    "rank 2 param": ({2: ("param", 3)}, (5, "0.bias", 2, "replica", None)),
    "rank 0 grad": ({0: ("grad", 31)}, (5, "4.weight.grad", 0, "replica", None)),
    "no majority": ({0: ("grad", 1), 2: ("grad", 2)}, (5, "4.weight.grad", None, "replica", None)),
}


def scenario_reports() -> dict:
    """scenario -> what check_replicas raised on this rank (as a tuple) or None."""
    reports = {}
    for scenario, (faults, _) in SCENARIOS.items():
        torch.manual_seed(0)
        model = small_model()  # the same initial weights everywhere
        torch.manual_seed(100 + dist.get_rank())
        step_fn(model, torch.randn(8, 8))()  # different data on every rank
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= WORLD
        if dist.get_rank() in faults:
            target, bit = faults[dist.get_rank()]
            flip_bit(model[4].weight.grad if target == "grad" else model[0].bias.detach(), 1, bit)
        try:
            check_replicas(model, step=5, params=True)
            reports[scenario] = None
        except SilentDataCorruptionError as e:
            reports[scenario] = (e.step, e.tensor, e.rank, e.kind, e.persistent)
    return reports


@pytest.fixture(scope="module")
def reports():
    return {(scenario, rank): report for rank, per_rank in run_on_ranks(WORLD, scenario_reports).items()
            for scenario, report in per_rank.items()}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_rank_reports_the_same_verdict(reports, scenario):
    expected = SCENARIOS[scenario][1]
    assert [reports[scenario, r] for r in range(WORLD)] == [expected] * WORLD


def test_compare_checks_its_arguments():
    with pytest.raises(ValueError, match="group"):
        compare_across_ranks(["a"], torch.zeros(1, 2, dtype=torch.int64))
