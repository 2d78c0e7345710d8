"""The one checkpoint format (fingerprinted DCP directories): a round trip restores model, optimizer and
trainer state exactly; a flipped bit in any of its files, a missing or an unlisted file is refused naming
the file, and nothing is loaded."""

import pytest
import torch

from iquest_core.reliability import checkpoint
from iquest_core.reliability.errors import SilentDataCorruptionError
from tests.reliability.models import small_model, step_fn


def trained():
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        step_fn(model, torch.randn(8, 8))()
        optimizer.step()
    return model, optimizer


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def saved(tmp_path):
    model, optimizer = trained()
    path = checkpoint.save(tmp_path, 7, model, optimizer, trainer_state={"loader": {"cursor": 3}})
    return model, optimizer, path


def test_round_trip(tmp_path):
    model, optimizer, path = saved(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["step-7"], "no temporary directory is left behind"
    assert {p.name for p in path.iterdir()} >= {".metadata", "trainer.json", "fingerprints.json", "rng-rank-0.pt"}
    fresh = small_model()
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    step_fn(fresh, torch.randn(8, 8))()
    fresh_optimizer.step()  # the optimizer state exists, with other values
    assert checkpoint.load(path, fresh, fresh_optimizer) == {"step": 7, "loader": {"cursor": 3}}
    assert states_equal(fresh.state_dict(), model.state_dict())
    saved_state, loaded = optimizer.state_dict(), fresh_optimizer.state_dict()
    assert all(states_equal(saved_state["state"][i], loaded["state"][i]) for i in saved_state["state"])
    assert checkpoint.checkpoints(tmp_path) == [path]


@pytest.mark.parametrize("pick", [".distcp", ".metadata", "trainer.json", "rng-rank-0.pt"])
def test_a_flipped_bit_in_any_file_is_refused(tmp_path, pick):
    _, _, path = saved(tmp_path)
    target = next(p for p in path.iterdir() if p.name.endswith(pick))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 1 << 3
    target.write_bytes(bytes(data))
    fresh = small_model()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(SilentDataCorruptionError, match="does not match its fingerprint") as caught:
        checkpoint.load(path, fresh, torch.optim.Adam(fresh.parameters()))
    assert (caught.value.kind, caught.value.tensor) == ("checkpoint", target.name)
    assert states_equal(fresh.state_dict(), before), "nothing may be loaded from a refused checkpoint"


@pytest.mark.parametrize("damage", ["missing", "unlisted", "no fingerprints", "fingerprints do not parse"])
def test_missing_unlisted_and_unfingerprinted_files_are_refused(tmp_path, damage):
    _, _, path = saved(tmp_path)
    if damage == "missing":
        (path / "trainer.json").unlink()
    elif damage == "unlisted":
        (path / "extra.bin").write_bytes(b"x")
    elif damage == "no fingerprints":
        (path / "fingerprints.json").unlink()
    else:
        (path / "fingerprints.json").write_bytes(b'{"trainer.json": "\xff')
    with pytest.raises(SilentDataCorruptionError, match="refused"):
        checkpoint.verify(path)
