"""The typed recipe: one schema of dataclasses. Every field has a default and a doc (`field_doc`); choices
are `Literal`s taken from the registries that implement them (attention implementations, model presets,
schedules, chat templates, source kinds). `iquest train --explain [KEY]` prints it; `recipe.load_recipe`
fills it from TOML and `--set` and `validate` checks it, in one place.

`RunRecipe` holds what every training job has (stage, steps, seed, checkpoints, model, optimizer);
`Recipe` (the trainer's stages) and the RL recipe (`iquest_core.rl.recipe.RLRecipe`) extend it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, is_dataclass
from typing import Any, Literal

from iquest_core.data.chat import TEMPLATES
from iquest_core.data.loader import SOURCE_KINDS
from iquest_core.model.backends import LOOP_ATTENTION
from iquest_core.model.config import PRESETS
from iquest_core.train.schedule import KINDS

AttnImplementation = Literal[tuple(LOOP_ATTENTION)]
Preset = Literal[tuple(PRESETS)]
ScheduleKind = Literal[KINDS]
Template = Literal[TEMPLATES]
SourceKind = Literal[("auto", *SOURCE_KINDS)]
DType = Literal["auto", "float32", "bfloat16"]
LossOn = Literal["all", "assistant"]


def knob(default: Any, doc: str) -> Any:
    """A field with a default and its doc (lists and tables are copied per recipe)."""
    if isinstance(default, (list, dict)) or is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def field_doc(f) -> str:
    return f.metadata.get("doc", "")


@dataclass
class ModelSection:
    preset: Preset = knob("tiny", "a LoopCoderConfig preset (when init_from is empty)")
    init_from: str = knob("", "a Hugging Face directory (export of an earlier stage) to continue from")
    attn_implementation: AttnImplementation = knob("fused", "loop attention of loops >= 2 (model.backends)")
    config: dict = knob({}, "LoopCoderConfig fields set on top of the preset or init_from (written as "
                            "model.<field>, e.g. model.hidden_size = 96)")


@dataclass
class Optim:
    lr: float = knob(3e-4, "peak learning rate (AdamW)")
    weight_decay: float = knob(0.1, "AdamW weight decay")
    beta1: float = knob(0.9, "AdamW beta1")
    beta2: float = knob(0.95, "AdamW beta2")
    eps: float = knob(1e-8, "AdamW eps")
    max_grad_norm: float = knob(1.0, "clip the global gradient norm to this (0: no clipping)")


@dataclass
class RunRecipe:
    stage: str = knob("pretrain", "a label written to metrics and checkpoints")
    steps: int = knob(100, "optimizer steps")
    seed: int = knob(0, "seed of the model init and the data order")
    checkpoint_every: int = knob(0, "steps between checkpoints (0: only the last step)")
    keep_checkpoints: int = knob(2, "newest checkpoints kept (0: all)")
    model: ModelSection = knob(ModelSection(), "the model")
    optim: Optim = knob(Optim(), "the optimizer")


@dataclass
class Source:
    path: str = knob("package", "token shards (`iquest data tokenize`), a JSONL file, or \"package\"")
    weight: float = knob(1.0, "mixture weight (> 0)")
    kind: SourceKind = knob("auto", "shards, jsonl (text or messages records), package; auto guesses")
    name: str = knob("", "a label in metrics.jsonl and mixture.png (empty: the path)")


@dataclass
class Component:
    path: str = knob("", "a component TOML file: `name` and a `sources` list (data/mixture.py)")
    scale: float = knob(1.0, "multiplies the component's source weights (> 0)")


@dataclass
class Replay:
    sources: list[Source] = knob([], "earlier stages' sources (tables {path, weight, kind, name})")
    share: float = knob(0.0, "share of every step's rows drawn from them, in [0, 1); 0: no replay")
    weight: float = knob(1.0, "RL only: weight of the auxiliary next-token loss on the replay rows")


@dataclass
class Mixture:
    kind: Literal["static", "dynamic"] = knob("static", "static weights, or dynamic: DoReMi multiplicative "
                                                         "weights on per-source held-out excess loss")
    unit: Literal["documents", "tokens"] = knob("documents", "a weight is a document share or a token share")
    every: int = knob(0, "dynamic: steps between weight updates (>= 1)")
    eta: float = knob(1.0, "dynamic: step size of the update")
    smoothing: float = knob(1e-3, "dynamic: w = (1 - smoothing) w + smoothing / sources after each update "
                                  "(DoReMi's c)")
    floor: float = knob(0.05, "dynamic: minimum weight per source (floor x sources < 1)")
    reference: list = knob([], "dynamic: one reference loss per source ([]: zeros)")
    heldout: int = knob(4, "dynamic: held-out documents per source (never trained on)")


@dataclass
class Curriculum:
    boundaries: list = knob([], "difficulty < boundaries[0]: stage 1, < boundaries[1]: stage 2, else 3")
    stage_steps: list = knob([], "stage k is drawn from step stage_steps[k-1] (stage 1 from step 0); "
                                 "empty lists: no curriculum")


@dataclass
class Data:
    sources: list[Source] = knob([Source()], "the sources of the mixture: tables {path, weight, kind}")
    tokenizer: str = knob("auto", "a tokenizer directory, or auto: train one (model.vocab_size) on the text "
                                  "sources into OUTPUT/tokenizer (reused on resume)")
    document_mask: bool = knob(True, "packed rows attend within documents only (needs cp = 1)")
    template: Template = knob("instruct", "chat rendering (data.chat); thinking keeps reasoning traces")
    loss_on: LossOn = knob("all", "all tokens, or assistant tokens only (SFT)")
    curriculum: Curriculum = knob(Curriculum(), "three-stage difficulty curriculum")
    components: list[Component] = knob([], "TOML components whose sources join data.sources, weights x scale")
    replay: Replay = knob(Replay(), "rows replayed from earlier stages' sources")
    mixture: Mixture = knob(Mixture(), "how the source weights are used and updated")
    seed: int = knob(-1, "seed of the data order and mixture sampling (-1: the run's seed)")


@dataclass
class Schedule:
    kind: ScheduleKind = knob("cosine", "lr schedule (train.schedule): cosine, wsd (warm-up, stable, decay) "
                                        "or constant")
    warmup_steps: int = knob(10, "linear warm-up steps")
    min_lr_ratio: float = knob(0.1, "final lr / peak lr")
    tail_fraction: float = knob(0.0, "cosine: share of steps in the extended low-LR tail")
    decay_fraction: float = knob(0.2, "wsd: share of steps in the final decay")


@dataclass
class Parallel:
    dp: int = knob(0, "data-parallel degree (0: world size / cp)")
    cp: int = knob(1, "context-parallel degree (ring attention over the sequence)")
    replicate: int = knob(1, "HSDP replica groups R (a divisor of dp): parameters sharded over dp / R x cp "
                             "ranks, replicated R times; 1: plain FSDP")


@dataclass
class Guard:
    check_every: int = knob(0, "SDC guard (0: off): always-on checks every step, a replay of the last N "
                               "steps every N steps")


@dataclass
class TrainSection:
    dtype: DType = knob("auto", "auto: bfloat16 on CUDA, float32 on CPU")
    compile: bool = knob(False, "torch.compile each decoder layer")
    activation_checkpointing: bool = knob(False, "recompute each decoder layer's activations in backward")
    micro_batch_rows: int = knob(0, "rows per forward on each rank (0: all of the rank's rows at once)")
    plot_every: int = knob(10, "steps between refreshes of OUTPUT/loss.png (and at the last step)")
    threads: int = knob(0, "torch CPU threads of each process (0: torch's default)")


@dataclass
class Recipe(RunRecipe):
    seq_len: int = knob(1024, "tokens per packed row")
    batch_tokens: int = knob(8192, "global tokens per optimizer step (a multiple of seq_len * dp)")
    data: Data = knob(Data(), "the data mixture")
    schedule: Schedule = knob(Schedule(), "the learning-rate schedule")
    parallel: Parallel = knob(Parallel(), "the parallel layout")
    guard: Guard = knob(Guard(), "silent-data-corruption guard")
    train: TrainSection = knob(TrainSection(), "execution: dtype, compile, checkpointing, micro-batches")
