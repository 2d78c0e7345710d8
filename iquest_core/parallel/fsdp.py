"""The training mesh and FSDP2 wiring.

`init_distributed()` joins the process group torchrun describes (NCCL on CUDA, gloo on CPU), or returns a
single-process world. `build_mesh(dp, cp)` makes the 2-D DeviceMesh ("dp", "cp"): ranks r = d * cp + c,
so the cp ranks of one data-parallel replica are neighbours. `shard_model` applies `fully_shard` to every
decoder layer and to the root over the flattened dp x cp mesh (as torchtitan does: parameters are
replicated across cp ranks by the math, so sharding over them too saves memory, and the reduce-scatter
sums the gradients over both dimensions). FSDP2 averages gradients over the mesh; the trainer scales its
loss by the mesh size so that the gradients are those of the global token mean.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard


@dataclass
class World:
    rank: int
    size: int
    device: torch.device
    launched: bool  # True when this process joined a process group (torchrun or a test's spawn)


def init_distributed() -> World:
    """Join the process group given by torchrun's environment (RANK, WORLD_SIZE, ...) if there is one and
    it is not joined yet; the device is cuda:LOCAL_RANK when CUDA is present, else the CPU."""
    cuda = torch.cuda.is_available()
    if not dist.is_initialized() and "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    if not dist.is_initialized():
        return World(0, 1, torch.device("cuda" if cuda else "cpu"), launched=False)
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    return World(dist.get_rank(), dist.get_world_size(), device, launched=True)


def build_mesh(dp: int, cp: int, device: torch.device) -> DeviceMesh:
    """The ("dp", "cp") mesh over all ranks; dp * cp must equal the world size."""
    world = dist.get_world_size()
    if dp * cp != world:
        raise ValueError(f"parallel: dp={dp} x cp={cp} must equal the world size {world}")
    return init_device_mesh(device.type, (dp, cp), mesh_dim_names=("dp", "cp"))


def shard_model(model: torch.nn.Module, mesh: DeviceMesh, *, param_dtype: torch.dtype | None = None) -> None:
    """fully_shard each of model.model.layers and then the root over the flattened dp x cp mesh;
    param_dtype (e.g. bfloat16) is the compute dtype, gradients are reduced in float32."""
    # A decoder layer returns its loop-1 K/V (views of the projections) for the later loops, which only
    # read them; FSDP2 warns about any view output in case a caller modifies it in place.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module \(\w+\) returned a view tensor")
    flat = mesh["dp", "cp"]._flatten("dp_cp") if mesh.ndim == 2 else mesh
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype else None)
    for layer in model.model.layers:
        fully_shard(layer, mesh=flat, mp_policy=policy)
    fully_shard(model, mesh=flat, mp_policy=policy)
