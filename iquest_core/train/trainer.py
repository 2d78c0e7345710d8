"""The training loop of every stage recipe, on one process or under torchrun.

`train(recipe, output, resume=False)`: builds the model (preset, or the export of an earlier stage), the
("dp", "cp") mesh with FSDP2 over it (HSDP with parallel.replicate > 1), the loader, AdamW and the
schedule; trains `steps` optimizer steps; writes OUTPUT/metrics.jsonl, OUTPUT/loss.png,
OUTPUT/checkpoints/step-N and OUTPUT/recipe.json.

Each step the global batch (batch_tokens / seq_len packed rows, the same for any dp) is split over the
dp ranks; with cp > 1 every micro-batch (its packed documents with data.document_mask, else its rows) is
zigzag-sharded over the cp ranks of its replica and loop attention runs as a ring. Each rank's loss is its summed token cross-entropy over the global batch's target count,
so the gradients (summed over the mesh) are those of the global token-mean loss whatever the layout.

With guard.check_every = N the SDC guard (iquest_core.reliability.SDCGuard) runs every step on every
rank, comparing the HSDP replicas over the replicate group; a fault it reports is written to stderr and
OUTPUT/sdc.jsonl and the run goes back to the last verified step and trains again from there (the
loader and metrics.jsonl rewound too); a persistent fault, or a second one in the same step, stops it.

Every check that needs no computation (recipe keys, data paths, output directory, checkpoint shape)
runs before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from iquest_core.data.tokenizer import load_tokenizer
from iquest_core.model import LoopCoderForCausalLM
from iquest_core.parallel import zigzag_shard
from iquest_core.parallel.parallelize import ParallelConfig, parallelize
from iquest_core.reliability import SDCGuard, SilentDataCorruptionError
from iquest_core.parallel.fsdp import World, build_mesh, init_distributed
from iquest_core.train import checkpoint
from iquest_core.data.loader import model_inputs, rank_rows, source_texts
from iquest_core.train import mixture
from iquest_core.train.metrics import MetricsWriter, read_metrics
from iquest_core.train.recipe import RecipeError, model_config, parallel_layout
from iquest_core.train.schema import Recipe
from iquest_core.train.schedule import lr_at
from iquest_core.data.packing import IGNORE_INDEX
from iquest_core.model.loss import next_token_loss


def resolve_tokenizer(recipe: Recipe, output: Path, world: World) -> Path | None:
    """The recipe's tokenizer directory: data.tokenizer, or for "auto" OUTPUT/tokenizer, trained once on
    the text sources with model.vocab_size tokens (rank 0 trains, the others wait). None when every
    source is token shards and no tokenizer is named."""
    from iquest_core.data.tokenizer import train_tokenizer

    data = recipe.data
    if data.tokenizer != "auto":
        if not Path(data.tokenizer).is_dir():
            raise ValueError(f"data.tokenizer: no tokenizer directory at {data.tokenizer}")
        return Path(data.tokenizer)
    target = output / "tokenizer"
    texts = [t for i, s in enumerate(data.sources)
             for t in source_texts(dataclasses.asdict(s), data.template, f"data.sources[{i}].path")]
    if not texts:
        return None
    if world.rank == 0 and not (target / "tokenizer.json").is_file():
        train_tokenizer(texts, vocab_size=model_config(recipe).vocab_size).save(target)
    if world.launched:
        dist.barrier()
    return target


def _dtype(recipe: Recipe, device: torch.device) -> torch.dtype:
    name = recipe.train.dtype
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


class Trainer:
    """One training run; `run()` trains to the recipe's last step."""

    def __init__(self, recipe: Recipe, output: str | Path, *, resume: bool = False) -> None:
        self.recipe, self.output = recipe, Path(output)
        if recipe.train.threads < 0:
            raise RecipeError(f"train.threads: expected >= 0, got {recipe.train.threads}")
        if recipe.train.threads:
            torch.set_num_threads(recipe.train.threads)
        self.ckpt_dir = self.output / "checkpoints"
        existing = checkpoint.checkpoints(self.ckpt_dir)
        if existing and not resume:
            raise ValueError(f"output: {self.output} already holds checkpoints ({existing[-1].name}); pass --resume "
                             f"to continue or choose another directory")
        self.cp = recipe.parallel.cp
        if self.cp > 1 and recipe.seq_len % (2 * self.cp):
            raise RecipeError(f"seq_len: expected a multiple of 2 * cp = {2 * self.cp}, got {recipe.seq_len}")
        self.config = model_config(recipe)
        halo = self.config.loop_window_size - 1 if self.config.loop_num > 1 else 0
        if self.cp > 1 and recipe.seq_len // (2 * self.cp) < halo:
            raise RecipeError(f"seq_len: with cp={self.cp} each of a row's 2 * cp zigzag chunks must hold the "
                              f"loop_window_size - 1 = {halo} keys the next chunk's window reads: expected at least "
                              f"{2 * self.cp * halo}, got {recipe.seq_len}")
        # packed micro-batches under cp: a whole number of zigzag chunks, none shorter than the halo
        self._cp_padding = (2 * self.cp, 2 * self.cp * halo) if self.cp > 1 else (1, 0)
        if recipe.seq_len > self.config.max_position_embeddings:
            raise RecipeError(f"seq_len: {recipe.seq_len} exceeds model.max_position_embeddings="
                              f"{self.config.max_position_embeddings}")
        self.world = init_distributed()
        self.dp, _, self.replicate = parallel_layout(recipe.parallel, self.world.size)
        self.rows_per_step = recipe.batch_tokens // recipe.seq_len
        if self.rows_per_step % self.dp:
            raise RecipeError(f"batch_tokens: {self.rows_per_step} rows per step cannot be split over dp={self.dp}")
        self.resume_from = existing[-1] if resume and existing else None
        if self.resume_from is not None:
            checkpoint.check_model_config(self.resume_from, self.config.to_dict())
        data = recipe.data
        self.output.mkdir(parents=True, exist_ok=True)
        self.tokenizer_dir = resolve_tokenizer(recipe, self.output, self.world)
        self.tokenizer = load_tokenizer(self.tokenizer_dir) if self.tokenizer_dir else None
        if self.tokenizer is not None and self.tokenizer.vocab_size > self.config.vocab_size:
            raise RecipeError(f"model.vocab_size: {self.config.vocab_size} is smaller than the tokenizer's "
                              f"{self.tokenizer.vocab_size} tokens")
        self.loader = mixture.build_loader(recipe, self.tokenizer, self.config.vocab_size, self.rows_per_step)
        main_loader = getattr(self.loader, "main", self.loader)  # replay rows keep their share
        self.mixture = mixture.DynamicMixture(recipe, main_loader) if data.mixture.kind == "dynamic" else None
        self.source_names = mixture.source_names(recipe)
        self._build_model()

    def _build_model(self) -> None:
        recipe, device = self.recipe, self.world.device
        torch.manual_seed(recipe.seed)
        attn = recipe.model.attn_implementation
        if recipe.model.init_from:
            model = LoopCoderForCausalLM.from_pretrained(recipe.model.init_from, dtype=torch.float32,
                                                         attn_implementation=attn)
        else:
            model = LoopCoderForCausalLM(self.config, attn_implementation=attn)
        model.to(device)
        dtype = _dtype(recipe, device)
        self.mesh = build_mesh(self.dp, self.cp, device, replicate=self.replicate) if self.world.launched else None
        config = ParallelConfig(activation_checkpointing=recipe.train.activation_checkpointing,
                                compile=recipe.train.compile, param_dtype=dtype if dtype != torch.float32 else None)
        parallelize(model, self.mesh, config)
        optim = recipe.optim
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=(optim.beta1, optim.beta2),
                                           eps=optim.eps, weight_decay=optim.weight_decay)
        self.cp_group = self.mesh.dp_cp["cp"].get_group() if self.cp > 1 else None
        self.dp_rank = self.mesh.dp_cp["dp"].get_local_rank() if self.mesh is not None else 0
        self.guard: SDCGuard | None = None  # made by run(), after a resumed state is loaded

    # -- one step ----------------------------------------------------------------------------------

    def train_step(self, step: int) -> dict[str, float]:
        """Train optimizer step `step`; returns its global loss, grad norm and target-token count.
        Under the SDC guard the forward/backward/clip closure is what the guard runs and replays."""
        rows = self.loader.next_batch(step)
        targets = sum(int((r.labels != IGNORE_INDEX).sum()) for r in rows)
        mine = rank_rows(rows, self.dp_rank, self.dp)
        micro = self.recipe.train.micro_batch_rows or len(mine)
        scale = self.world.size / max(targets, 1)  # FSDP averages over the mesh; see the module doc
        grad_norm = []

        def forward_backward() -> torch.Tensor:
            for group in self.optimizer.param_groups:  # set here so that a guard's replay uses it too
                group["lr"] = lr_at(self.recipe, step)
            loss_sum = torch.zeros((), dtype=torch.float64, device=self.world.device)
            for start in range(0, len(mine), micro):
                inputs = model_inputs(mine[start:start + micro], self.recipe.data.document_mask,
                                      *self._cp_padding)
                labels = inputs.pop("labels")
                if self.cp_group is not None:  # cu_seqlens and max_seqlen stay those of the whole sequence
                    inputs = {k: zigzag_shard(v, self.cp_group) if k in ("input_ids", "position_ids") else v
                              for k, v in inputs.items()}
                    labels = zigzag_shard(labels, self.cp_group)
                inputs = {k: v.to(self.world.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
                loss = next_token_loss(self.model, labels=labels.to(self.world.device), reduction="sum", **inputs)
                (loss * scale).backward()
                loss_sum += loss.detach().double()
            grad_norm[:] = [self._clip()]
            if self.world.launched:  # the global loss: the same on every rank, as the guard compares it
                dist.all_reduce(loss_sum)
            return loss_sum

        if self.guard is not None:
            loss_sum = self.guard.step(forward_backward)
        else:
            loss_sum = forward_backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return {"loss": loss_sum.item() / max(targets, 1), "grad_norm": grad_norm[0], "targets": targets,
                "source_tokens": mixture.source_tokens(rows, len(self.source_names))}

    def _clip(self) -> float:
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        if self.recipe.optim.max_grad_norm > 0:
            torch.nn.utils.clip_grads_with_norm_(params, self.recipe.optim.max_grad_norm, norm)
        return norm.item()

    # -- the run -----------------------------------------------------------------------------------

    def trainer_state(self) -> dict[str, Any]:
        return {"loader": self.loader.state_dict(), "stage": self.recipe.stage,
                "model_config": self.config.to_dict(),
                "tokenizer": str(self.tokenizer_dir.resolve()) if self.tokenizer_dir else None,
                "world": {"dp": self.dp, "cp": self.cp, "replicate": self.replicate}}

    def run(self) -> list[dict[str, Any]]:
        """Train to the last step; returns the metrics records of this process's run (rank 0; [] elsewhere).

        Under the SDC guard a checkpoint is written only after the guard verified the steps before it,
        and a SilentDataCorruptionError rewinds the run to the guard's verified step (see `_recover`)."""
        recipe, rank0 = self.recipe, self.world.rank == 0
        start = 0
        if self.resume_from is not None:
            state = checkpoint.load(self.resume_from, self.model, self.optimizer, model_config=self.config.to_dict())
            self.loader.load_state_dict(state["loader"])
            start = state["step"]
        check_every = recipe.guard.check_every
        replicas = self.mesh.replicate_group if self.mesh is not None else None
        self.guard = SDCGuard(self.model, self.optimizer, check_every=check_every, group=replicas,
                              start_step=start) if check_every else None
        self._writer = MetricsWriter(self.output, truncate_after=start, title=recipe.stage) if rank0 else None
        if rank0:
            (self.output / "recipe.json").write_text(json.dumps(dataclasses.asdict(recipe), indent=1) + "\n")
        self._records: list[dict[str, Any]] = []
        self._loader_at = {start: self.loader.state_dict()}  # the loader before each step not yet verified
        self._failed: set[int] = set()
        step_tokens = self.rows_per_step * recipe.seq_len
        elapsed, done, every = 0.0, 0, recipe.checkpoint_every
        bar = tqdm(total=recipe.steps, initial=start, desc=recipe.stage, unit="step", disable=not rank0)
        step = start
        while step < recipe.steps:
            save = step + 1 == recipe.steps or (every and (step + 1) % every == 0)
            began = time.perf_counter()
            try:
                result = self.train_step(step)
                if save and self.guard is not None:
                    self.guard.verify()  # a checkpoint holds verified state only
            except SilentDataCorruptionError as error:
                step = self._recover(error)
                bar.n = step
                bar.refresh()
                continue
            elapsed += time.perf_counter() - began
            done += 1
            if not math.isfinite(result["loss"]):
                raise FloatingPointError(f"step {step + 1}: the loss is {result['loss']}")
            record = {"step": step + 1, "loss": result["loss"], "lr": self.optimizer.param_groups[0]["lr"],
                      "tokens": (step + 1) * step_tokens, "grad_norm": result["grad_norm"],
                      "target_tokens": result["targets"], "tokens_per_s": done * step_tokens / elapsed,
                      "stage": recipe.stage, "source_tokens": result["source_tokens"]}
            if self.mixture is not None and self.mixture.due(step):
                record.update(self.mixture.update(self.model, self.world.device))
            if rank0:
                self._writer.log(record)
                self._records.append(record)
                bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:,.0f}")
                if (step + 1) % max(1, recipe.train.plot_every) == 0 or step + 1 == recipe.steps:
                    self._writer.plot()
                    mixture.plot(self.output, read_metrics(self.output), self.source_names)
            if save:
                checkpoint.save(self.ckpt_dir, step + 1, self.model, self.optimizer,
                                trainer_state=self.trainer_state(), keep=recipe.keep_checkpoints)
            step += 1
            bar.update(1)
            verified = self.guard.verified_step if self.guard is not None else step
            self._loader_at = {s: v for s, v in self._loader_at.items() if s >= verified}
            self._loader_at[step] = self.loader.state_dict()
        bar.close()
        return self._records

    def _recover(self, error: SilentDataCorruptionError) -> int:
        """After the guard rolled the model back (on every rank): report the fault (stderr and a line of
        OUTPUT/sdc.jsonl), rewind the loader and metrics.jsonl to the guard's verified step and return it,
        the step to train next. A persistent fault, or a second fault in the same step, stops the run."""
        redo = self.guard.verified_step
        stop = bool(error.persistent) or error.step in self._failed
        self._failed.add(error.step)
        if self.world.rank == 0:
            event = {"step": error.step + 1, "kind": error.kind, "tensor": error.tensor, "rank": error.rank,
                     "persistent": error.persistent, "action": "stop" if stop else f"redo from step {redo + 1}",
                     "message": str(error)}
            with open(self.output / "sdc.jsonl", "a") as f:
                f.write(json.dumps(event) + "\n")
            tqdm.write(f"{error}\n-> {event['action']}", file=sys.stderr)
        if stop:
            raise error
        self.loader.load_state_dict(self._loader_at[redo])
        if self._writer is not None:
            self._writer = MetricsWriter(self.output, truncate_after=redo, title=self.recipe.stage)
            self._records = [r for r in self._records if r["step"] <= redo]
        return redo


def train(recipe: Recipe, output: str | Path, *, resume: bool = False) -> list[dict[str, Any]]:
    """Build a Trainer and run it (see the module doc)."""
    return Trainer(recipe, output, resume=resume).run()
