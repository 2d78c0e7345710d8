"""Stage recipes: TOML files of nested keys, checked against one schema, overridable by dotted paths.

A recipe is the bundled name (``iquest_core/train/recipes/NAME.toml``) or a path to a TOML file. Every
key has a default in `DEFAULTS`; a recipe file and ``--set key=value`` may only name keys that exist
there (``model.*`` also takes any `LoopCoderConfig` field). ``--set`` values are parsed as TOML values
(``--set optim.lr=1e-3``, ``--set data.sources=[{path="x.jsonl"}]``) and fall back to plain strings
(``--set model.preset=tiny``). See ``recipes/tiny.toml`` for every key with a comment.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from iquest_core.data.mixture import SOURCE_KEYS, expand_components
from iquest_core.model import LoopCoderConfig
from iquest_core.model.backends import LOOP_ATTENTION
from iquest_core.train.schedule import lr_at

BUNDLED = ("pretrain", "anneal", "midtrain-32k", "midtrain-128k", "sft-thinking", "sft-instruct", "tiny")

DEFAULTS: dict[str, Any] = {
    "stage": "pretrain",          # a label written to metrics and checkpoints
    "steps": 100,                 # optimizer steps
    "seed": 0,
    "seq_len": 1024,              # tokens per packed row
    "batch_tokens": 8192,         # global tokens per optimizer step (a multiple of seq_len * dp)
    "checkpoint_every": 0,        # steps between checkpoints (0: only the last step)
    "keep_checkpoints": 2,        # newest checkpoints kept (0: all)
    "model": {
        "preset": "tiny",         # a LoopCoderConfig preset, or ...
        "init_from": "",          # ... a Hugging Face directory (export of an earlier stage) to continue from
        "attn_implementation": "fused",  # loop attention of loops >= 2: "fused", "reference" or "banded"
    },
    "data": {
        # Each source: {path, weight, kind}. kind "shards": a directory from `iquest data tokenize`;
        # "jsonl": records with "text" or "messages" (chat/agent/reasoning, see train/chat.py) and an
        # optional "difficulty"; "package": this package's own source files as text. "auto" guesses.
        "sources": [{"path": "package", "weight": 1.0, "kind": "package"}],
        "tokenizer": "auto",      # a tokenizer directory, or "auto": train one (model.vocab_size) on the
                                  # text sources into OUTPUT/tokenizer (reused on resume)
        "document_mask": True,    # packed rows attend within documents only (needs cp = 1)
        "template": "instruct",   # chat rendering: "instruct" or "thinking" (reasoning traces kept)
        "loss_on": "all",         # "all" tokens, or "assistant" tokens only (SFT)
        # Three-stage difficulty curriculum: documents with difficulty < boundaries[0] are stage 1,
        # < boundaries[1] stage 2, the rest stage 3; stage k is drawn from from step stage_steps[k-1]
        # (stage 1 from step 0). Empty lists: no curriculum.
        "curriculum": {"boundaries": [], "stage_steps": []},
        # Compositional recipes, replay and dynamic mixtures: see data/mixture.py.
        # components: [{path = "COMPONENT.toml", scale = S}]: the component's sources join `sources`, weights x S.
        "components": [],
        # replay: a `share` of every step's rows drawn from earlier stages' `sources` (same table format);
        # `weight`: RL only, the weight of the auxiliary next-token loss on the replay rows.
        "replay": {"sources": [], "share": 0.0, "weight": 1.0},
        # mixture: unit "documents" (a weight is a document share) or "tokens" (a token share); kind
        # "static", or "dynamic": every `every` steps DoReMi's update on the per-source loss of the last
        # `heldout` documents of each source (never trained on) over `reference` (one loss per source,
        # [] = zeros), step size `eta`, each weight kept >= `floor`.
        "mixture": {"kind": "static", "unit": "documents", "every": 0, "eta": 1.0, "floor": 0.05,
                    "reference": [], "heldout": 4},
    },
    "optim": {"lr": 3e-4, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "max_grad_norm": 1.0},
    # lr(step): see train/schedule.py. kind "cosine" (tail_fraction > 0: the extended low-LR tail),
    # "wsd" (warm-up, stable, decay over the last decay_fraction), "constant".
    "schedule": {"kind": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1, "tail_fraction": 0.0,
                 "decay_fraction": 0.2},
    # dp 0: world size / cp. replicate R: HSDP, dp = R replica groups x dp / R shards (parameters sharded
    # over dp / R x cp ranks, replicated R times); R = 1 is plain FSDP over dp x cp.
    "parallel": {"dp": 0, "cp": 1, "replicate": 1},
    # SDC guard (0: off): fingerprints and cross-replica checks every step (under torchrun the
    # cross-replica check needs parallel.replicate >= 2), a replay of the last N steps every N steps.
    "guard": {"check_every": 0},
    "train": {
        "dtype": "auto",              # "auto": bfloat16 on CUDA, float32 on CPU; or "float32" / "bfloat16"
        "compile": False,             # torch.compile each decoder layer
        "activation_checkpointing": False,
        "micro_batch_rows": 0,        # rows per forward on each rank (0: all of the rank's rows at once)
        "plot_every": 10,             # steps between refreshes of OUTPUT/loss.png (and at the last step)
    },
}

_MODEL_FIELDS = {f.name for f in dataclasses.fields(LoopCoderConfig)} - {"extra"}


class RecipeError(ValueError):
    """A recipe or an override names an unknown key or gives a value of the wrong type."""


def load_recipe(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The recipe (bundled name or TOML path) merged over DEFAULTS, then the `key=value` overrides.

    Raises RecipeError naming an unknown recipe, key or a value of the wrong type."""
    recipe = read_recipe(name_or_path, overrides, defaults=DEFAULTS, bundled=BUNDLED)
    try:
        recipe["data"]["sources"] = expand_components(recipe["data"])
    except ValueError as e:
        raise RecipeError(str(e)) from None
    recipe["data"]["components"] = []  # now part of data.sources
    validate(recipe)
    return recipe


def read_recipe(name_or_path: str, overrides: list[str] | tuple[str, ...] = (), *, defaults: dict[str, Any],
                bundled: tuple[str, ...]) -> dict[str, Any]:
    """load_recipe for any schema `defaults` and bundled names, without the training recipes' cross-key
    checks (the RL recipe uses it with its own schema)."""
    path = Path(name_or_path)
    if name_or_path in bundled:
        text = resources.files("iquest_core.train").joinpath("recipes", f"{name_or_path}.toml").read_text()
        where = f"recipe {name_or_path!r}"
    elif path.suffix == ".toml" and path.is_file():
        text, where = path.read_text(), f"recipe file {path}"
    else:
        raise RecipeError(f"recipe: expected a bundled name {list(bundled)} or an existing .toml file, "
                          f"got {name_or_path!r}")
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{where}: not valid TOML ({e})") from None
    recipe = copy.deepcopy(defaults)
    _merge(recipe, values, defaults, prefix="", where=where)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"--set: expected key=value, got {item!r}")
        set_key(recipe, key.strip(), parse_value(raw.strip()), schema=defaults)
    return recipe


def parse_value(raw: str) -> Any:
    """A TOML value (number, bool, string, array, inline table), or the raw text as a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def set_key(recipe: dict[str, Any], dotted: str, value: Any, *, schema: dict[str, Any] = DEFAULTS) -> None:
    """Set recipe[dotted path] = value; RecipeError naming the key if the schema has no such key."""
    parts = dotted.split(".")
    node = recipe
    for i, part in enumerate(parts[:-1]):
        if not isinstance(schema.get(part), dict):
            raise RecipeError(f"--set {dotted}: unknown key {'.'.join(parts[:i + 1])!r}; known: {_known(schema)}")
        node, schema = node[part], schema[part]
    _merge(node, {parts[-1]: value}, schema, prefix=".".join(parts[:-1]), where="--set")


def _known(schema: dict[str, Any]) -> str:
    return ", ".join(sorted(schema))


def _merge(node: dict, values: dict, schema: dict, *, prefix: str, where: str) -> None:
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if prefix == "model" and key in _MODEL_FIELDS:
            node[key] = value
            continue
        if key not in schema:
            extra = " or a LoopCoderConfig field" if prefix == "model" else ""
            raise RecipeError(f"{where}: unknown key {dotted!r}; known: {_known(schema)}{extra}")
        default = schema[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise RecipeError(f"{where}: {dotted!r} is a table, got {value!r}")
            _merge(node[key], value, default, prefix=dotted, where=where)
            continue
        node[key] = _coerce(value, default, dotted, where)


def _coerce(value: Any, default: Any, dotted: str, where: str) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise RecipeError(f"{where}: {dotted!r} expects a {type(default).__name__}, got {value!r}")
    return value


def validate(recipe: dict[str, Any]) -> None:
    """Cross-key checks that need no data or devices."""
    for key in ("steps", "seq_len", "batch_tokens"):
        if recipe[key] < 1:
            raise RecipeError(f"{key}: expected >= 1, got {recipe[key]}")
    if recipe["batch_tokens"] % recipe["seq_len"]:
        raise RecipeError(f"batch_tokens: expected a multiple of seq_len={recipe['seq_len']}, "
                          f"got {recipe['batch_tokens']}")
    for key in ("checkpoint_every", "keep_checkpoints"):
        if recipe[key] < 0:
            raise RecipeError(f"{key}: expected >= 0, got {recipe[key]}")
    data = recipe["data"]
    if not data["sources"]:
        raise RecipeError("data.sources: expected at least one source")
    _check_sources(data["sources"], "data.sources")
    _check_sources(data["replay"]["sources"], "data.replay.sources")
    if bool(data["replay"]["sources"]) != (data["replay"]["share"] > 0) or not 0 <= data["replay"]["share"] < 1:
        raise RecipeError(f"data.replay: expected sources with a share in (0, 1), or neither; got share "
                          f"{data['replay']['share']} and {len(data['replay']['sources'])} sources")
    _check_mixture(data["mixture"], len(data["sources"]))
    if data["template"] not in ("instruct", "thinking"):
        raise RecipeError(f"data.template: expected 'instruct' or 'thinking', got {data['template']!r}")
    if data["loss_on"] not in ("all", "assistant"):
        raise RecipeError(f"data.loss_on: expected 'all' or 'assistant', got {data['loss_on']!r}")
    curriculum = data["curriculum"]
    if len(curriculum["boundaries"]) != len(curriculum["stage_steps"]):
        raise RecipeError("data.curriculum: boundaries and stage_steps must have the same length "
                          f"(got {curriculum['boundaries']} and {curriculum['stage_steps']})")
    if curriculum["stage_steps"] != sorted(curriculum["stage_steps"]) or \
            curriculum["boundaries"] != sorted(curriculum["boundaries"]):
        raise RecipeError("data.curriculum: boundaries and stage_steps must be increasing")
    try:
        lr_at(recipe, 0)
    except ValueError as e:
        raise RecipeError(f"schedule.{e}") from None
    if recipe["train"]["dtype"] not in ("auto", "float32", "bfloat16"):
        raise RecipeError(f"train.dtype: expected auto, float32 or bfloat16, got {recipe['train']['dtype']!r}")
    if recipe["model"]["attn_implementation"] not in LOOP_ATTENTION:
        raise RecipeError(f"model.attn_implementation: expected one of {sorted(LOOP_ATTENTION)}, got "
                          f"{recipe['model']['attn_implementation']!r}")
    parallel = recipe["parallel"]
    if parallel["cp"] < 1 or parallel["dp"] < 0 or parallel["replicate"] < 1:
        raise RecipeError(f"parallel: expected cp >= 1, dp >= 0 and replicate >= 1, got {parallel}")
    if parallel["dp"] and parallel["dp"] % parallel["replicate"]:
        raise RecipeError(f"parallel.replicate: expected a divisor of dp={parallel['dp']}, got {parallel['replicate']}")
    if recipe["guard"]["check_every"] < 0:
        raise RecipeError(f"guard.check_every: expected >= 0, got {recipe['guard']['check_every']}")


def _check_sources(sources: list, where: str) -> None:
    for i, source in enumerate(sources):
        if not isinstance(source, dict) or "path" not in source:
            raise RecipeError(f"{where}[{i}]: expected a table with a path, got {source!r}")
        unknown = set(source) - set(SOURCE_KEYS)
        if unknown:
            raise RecipeError(f"{where}[{i}]: unknown keys {sorted(unknown)}; known: {', '.join(SOURCE_KEYS)}")
        if source.get("kind", "auto") not in ("auto", "shards", "jsonl", "package"):
            raise RecipeError(f"{where}[{i}].kind: expected auto, shards, jsonl or package, got {source['kind']!r}")
        if not float(source.get("weight", 1.0)) > 0:
            raise RecipeError(f"{where}[{i}].weight: expected > 0, got {source.get('weight')!r}")


def _check_mixture(mixture: dict[str, Any], sources: int) -> None:
    if mixture["kind"] not in ("static", "dynamic"):
        raise RecipeError(f"data.mixture.kind: expected 'static' or 'dynamic', got {mixture['kind']!r}")
    if mixture["unit"] not in ("documents", "tokens"):
        raise RecipeError(f"data.mixture.unit: expected 'documents' or 'tokens', got {mixture['unit']!r}")
    if mixture["kind"] == "dynamic":
        if mixture["every"] < 1 or mixture["heldout"] < 1:
            raise RecipeError(f"data.mixture: a dynamic mixture needs every >= 1 and heldout >= 1, got "
                              f"every={mixture['every']}, heldout={mixture['heldout']}")
        if mixture["reference"] and len(mixture["reference"]) != sources:
            raise RecipeError(f"data.mixture.reference: expected one loss per source ({sources}), got "
                              f"{mixture['reference']}")
        if not 0 <= mixture["floor"] * sources < 1:
            raise RecipeError(f"data.mixture.floor: expected 0 <= floor < 1 / {sources} sources, got {mixture['floor']}")


def model_config(recipe: dict[str, Any]) -> LoopCoderConfig:
    """The LoopCoderConfig the recipe names: model.init_from's config.json, or model.preset, with the
    LoopCoderConfig fields set in [model] on top."""
    model = recipe["model"]
    fields = {k: v for k, v in model.items() if k in _MODEL_FIELDS}
    if model["init_from"]:
        if not (Path(model["init_from"]) / "config.json").is_file():
            raise RecipeError(f"model.init_from: no config.json in {model['init_from']}")
        base = LoopCoderConfig.from_json(model["init_from"]).to_dict()
        try:
            return LoopCoderConfig.from_dict({**base, **fields})
        except ValueError as e:
            raise RecipeError(f"model: {e}") from None
    try:
        return LoopCoderConfig.preset(model["preset"], **fields)
    except (ValueError, TypeError) as e:
        raise RecipeError(f"model: {e}") from None
