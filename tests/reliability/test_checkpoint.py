"""Fingerprinted checkpoints: a round trip restores model and optimizer exactly; any flipped byte in a
tensor, or a damaged file, is refused and nothing is loaded."""

import json
import os

import pytest
import torch
from safetensors import safe_open

from iquest_core.reliability.checkpoint import load_checkpoint, save_checkpoint
from iquest_core.reliability.errors import SilentDataCorruptionError
from tests.reliability.models import small_model, step_fn


def trained():
    model = small_model()
    model[0].weight.data = model[0].weight.data.to(torch.bfloat16).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        step_fn(model, torch.randn(8, 8))()
        optimizer.step()
    return model, optimizer


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_round_trip(tmp_path):
    model, optimizer = trained()
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, optimizer, step=7)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.safetensors"], "no temporary file is left behind"
    fresh = small_model()
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    assert load_checkpoint(path, fresh, fresh_optimizer) == 7
    assert states_equal(fresh.state_dict(), model.state_dict())
    saved, loaded = optimizer.state_dict(), fresh_optimizer.state_dict()
    assert all(states_equal(saved["state"][i], loaded["state"][i]) for i in saved["state"])
    assert loaded["param_groups"][0]["lr"] == 1e-2


def tensor_byte_range(path, name):
    """(start, end) file offsets of tensor `name`'s bytes in a safetensors file."""
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
    begin, end = header[name]["data_offsets"]
    return 8 + header_len + begin, 8 + header_len + end


@pytest.mark.parametrize("name", ["model.0.weight", "model.1.running_var", "optimizer.state.3.exp_avg_sq"])
def test_a_flipped_byte_in_a_tensor_is_refused(tmp_path, name):
    model, optimizer = trained()
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, optimizer, step=3)
    begin, end = tensor_byte_range(path, name)
    offset = torch.randint(begin, end, ()).item()
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << torch.randint(8, ()).item()
    path.write_bytes(bytes(data))
    fresh = small_model()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(SilentDataCorruptionError, match="does not match its fingerprint") as caught:
        load_checkpoint(path, fresh, torch.optim.Adam(fresh.parameters()))
    assert (caught.value.kind, caught.value.tensor) == ("checkpoint", name)
    assert states_equal(fresh.state_dict(), before), "nothing may be loaded from a refused file"


def test_a_damaged_file_is_refused(tmp_path):
    model, _ = trained()
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(SilentDataCorruptionError, match="refused"):
        load_checkpoint(path, small_model())


def test_a_plain_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "plain.safetensors"
    save_file({"model.0.weight": torch.zeros(16, 8)}, path)
    with pytest.raises(SilentDataCorruptionError, match="format"):
        load_checkpoint(path, small_model())


def test_fingerprints_are_in_the_metadata(tmp_path):
    model, _ = trained()
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model)
    with safe_open(path, framework="pt") as f:
        digests = json.loads(f.metadata()["fingerprints"])
        assert set(digests) == set(f.keys())
    assert all(len(d) == 32 for d in digests.values())


def test_tied_weights_are_saved(tmp_path):
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10, bias=False))
    model[1].weight = model[0].weight
    path = tmp_path / "tied.safetensors"
    save_checkpoint(path, model)
    fresh = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10, bias=False))
    fresh[1].weight = fresh[0].weight
    load_checkpoint(path, fresh)
    assert torch.equal(fresh[0].weight, model[0].weight)


def test_optimizer_without_saved_state_is_an_error(tmp_path):
    model, _ = trained()
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model)
    with pytest.raises(ValueError, match="optimizer"):
        load_checkpoint(path, small_model(), torch.optim.Adam(small_model().parameters()))


def test_changed_metadata_is_refused(tmp_path):
    """The optimizer's hyperparameters and the step live in the metadata, outside every tensor."""
    from safetensors.torch import load_file, save_file
    model, optimizer = trained()
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, optimizer, step=3)
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
    metadata["optimizer"] = metadata["optimizer"].replace('"lr": 0.01', '"lr": 0.03')
    assert '"lr": 0.03' in metadata["optimizer"]
    save_file(load_file(path), path, metadata=metadata)
    fresh = small_model()
    with pytest.raises(SilentDataCorruptionError, match="metadata") as caught:
        load_checkpoint(path, fresh, torch.optim.Adam(fresh.parameters()))
    assert caught.value.tensor == "<metadata>"
