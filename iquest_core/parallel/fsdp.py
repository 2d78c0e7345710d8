"""The training mesh and FSDP2 wiring.

`init_distributed()` joins the process group torchrun describes (NCCL on CUDA, gloo on CPU), or returns a
single-process world. `build_mesh(dp, cp, replicate=R)` lays the ranks out as r = d * cp + c with
d = i * (dp / R) + s: data-parallel index d (replica group i, shard s), context-parallel rank c, so the cp
ranks of one data-parallel slice are neighbours. It returns a `TrainingMesh` with two views of that layout:

- `dp_cp`, the ("dp", "cp") DeviceMesh: the dp index picks a rank's rows of the global batch, the cp
  dimension is the ring of context parallelism;
- `fsdp`, what `shard_model` gives `fully_shard`: the flat ("dp_cp",) mesh of all ranks (R = 1: every
  parameter sharded over dp x cp, as torchtitan does; parameters are replicated across cp ranks by the
  math, so sharding over them too saves memory, and the reduce-scatter sums the gradients over both
  dimensions), or for R > 1 the 2-D ("replicate", "shard_cp") mesh: FSDP2's HSDP, parameters sharded over
  the dp / R x cp ranks of a replica group and replicated over the R groups; gradients are
  reduce-scattered inside a group, then all-reduced over "replicate".

FSDP2 averages gradients over all dp x cp ranks in both layouts; the trainer scales its loss by the mesh
size so that the gradients are those of the global token mean.
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


@dataclass
class TrainingMesh:
    """Views of the job's rank layout (see the module doc)."""

    dp_cp: DeviceMesh
    fsdp: DeviceMesh
    replicate: int

    @property
    def replicate_group(self) -> dist.ProcessGroup | None:
        """The ranks that hold the same parameter shards (HSDP replicas); None when replicate = 1."""
        return self.fsdp["replicate"].get_group() if self.replicate > 1 else None


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


def build_mesh(dp: int, cp: int, device: torch.device, *, replicate: int = 1) -> TrainingMesh:
    """The mesh views over all ranks; dp * cp must equal the world size and replicate divide dp."""
    world = dist.get_world_size()
    if dp * cp != world:
        raise ValueError(f"parallel: dp={dp} x cp={cp} must equal the world size {world}")
    if replicate < 1 or dp % replicate:
        raise ValueError(f"parallel.replicate: expected a divisor of dp={dp}, got {replicate}")
    flat = init_device_mesh(device.type, (world,), mesh_dim_names=("dp_cp",))
    fsdp = flat if replicate == 1 else flat._unflatten(0, (replicate, world // replicate), ("replicate", "shard_cp"))
    return TrainingMesh(flat._unflatten(0, (dp, cp), ("dp", "cp")), fsdp, replicate)


def shard_model(model: torch.nn.Module, mesh: TrainingMesh, *, param_dtype: torch.dtype | None = None) -> None:
    """fully_shard each of model.model.layers and then the root over mesh.fsdp (FSDP, or HSDP for
    replicate > 1); param_dtype (e.g. bfloat16) is the compute dtype, gradients are reduced in float32."""
    # A decoder layer returns its loop-1 K/V (views of the projections) for the later loops, which only
    # read them; FSDP2 warns about any view output in case a caller modifies it in place.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module \(\w+\) returned a view tensor")
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype else None)
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh.fsdp, mp_policy=policy)
    fully_shard(model, mesh=mesh.fsdp, mp_policy=policy)
