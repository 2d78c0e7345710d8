"""Stage recipes: TOML files of nested keys filling the typed schema (`iquest_core.train.schema`),
overridable by dotted paths, validated in one place.

A recipe is the bundled name (``iquest_core/train/recipes/NAME.toml``) or a path to a TOML file. A recipe
file and ``--set key=value`` may only name fields of the schema (``model.*`` also takes any
`LoopCoderConfig` field). ``--set`` values are parsed as TOML values (``--set optim.lr=1e-3``,
``--set data.sources=[{path="x.jsonl"}]``) and fall back to plain strings (``--set model.preset=tiny``).
Every error names the key. `explain` (``iquest train --explain [KEY]``) prints the schema.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

from iquest_core.model import LoopCoderConfig
from iquest_core.train.schedule import lr_at
from iquest_core.data.mixture import expand_components
from iquest_core.train.schema import Mixture, ModelSection, Parallel, Recipe, Replay, Source, field_doc

BUNDLED = ("pretrain", "anneal", "midtrain-32k", "midtrain-128k", "sft-thinking", "sft-instruct", "tiny")
MODEL_FIELDS = {f.name for f in dataclasses.fields(LoopCoderConfig)} - {"extra"}
R = TypeVar("R")


class RecipeError(ValueError):
    """A recipe or an override names an unknown key or gives a value of the wrong type."""


def load_recipe(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """The recipe (bundled name or TOML path) over the schema's defaults, then the `key=value` overrides,
    validated. Raises RecipeError naming an unknown recipe, key or a value of the wrong type."""
    recipe = read_recipe(name_or_path, overrides, schema=Recipe, bundled=BUNDLED)
    try:
        sources = expand_components(dataclasses.asdict(recipe.data))
    except ValueError as e:
        raise RecipeError(str(e)) from None
    recipe.data.sources = _coerce(sources, list[Source], "data.sources", "data.components")
    recipe.data.components = []  # now part of data.sources
    validate(recipe)
    return recipe


def read_recipe(name_or_path: str, overrides: list[str] | tuple[str, ...] = (), *, schema: type[R],
                bundled: tuple[str, ...]) -> R:
    """An instance of `schema` (a dataclass of the schema) from a bundled name or a TOML path and overrides,
    without the cross-key checks of `validate`."""
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
    recipe = schema()
    _assign(recipe, values, prefix="", where=where)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"--set: expected key=value, got {item!r}")
        set_key(recipe, key.strip(), parse_value(raw.strip()))
    return recipe


def parse_value(raw: str) -> Any:
    """A TOML value (number, bool, string, array, inline table), or the raw text as a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def set_key(recipe: Any, dotted: str, value: Any) -> None:
    """Set the field at a dotted path; RecipeError naming the key if the schema has no such field."""
    parts = dotted.split(".")
    node = recipe
    for i, part in enumerate(parts[:-1]):
        child = getattr(node, part, None) if part in _names(node) else None
        if not dataclasses.is_dataclass(child):
            raise RecipeError(f"--set {dotted}: unknown key {'.'.join(parts[:i + 1])!r}; known: {_known(node)}")
        node = child
    _assign(node, {parts[-1]: value}, prefix=".".join(parts[:-1]), where="--set")


def _names(node: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(node) if not (isinstance(node, ModelSection) and f.name == "config")]


def _known(node: Any) -> str:
    return ", ".join(sorted(_names(node)))


def _assign(node: Any, values: dict, *, prefix: str, where: str) -> None:
    hints = typing.get_type_hints(type(node))
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(node, ModelSection) and key in MODEL_FIELDS:
            node.config[key] = value
            continue
        if key not in _names(node):
            extra = " or a LoopCoderConfig field" if isinstance(node, ModelSection) else ""
            raise RecipeError(f"{where}: unknown key {dotted!r}; known: {_known(node)}{extra}")
        current = getattr(node, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise RecipeError(f"{where}: {dotted!r} is a table, got {value!r}")
            _assign(current, value, prefix=dotted, where=where)
            continue
        setattr(node, key, _coerce(value, hints[key], dotted, where))


def _coerce(value: Any, hint: Any, dotted: str, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{where}: {dotted!r} expects one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        if not isinstance(value, list):
            raise RecipeError(f"{where}: {dotted!r} expects a list of tables, got {value!r}")
        items = []
        for i, table in enumerate(value):
            if not isinstance(table, dict) or "path" not in table:
                raise RecipeError(f"{where}: {dotted}[{i}]: expected a table with a path, got {table!r}")
            item = args[0]()
            _assign(item, table, prefix=f"{dotted}[{i}]", where=where)
            items.append(item)
        return items
    kind = origin or hint
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise RecipeError(f"{where}: {dotted!r} expects a {kind.__name__}, got {value!r}")
    return copy.deepcopy(value)


def parallel_layout(parallel: Parallel, world_size: int | None = None) -> tuple[int, int, int]:
    """(dp, cp, replicate) of the recipe's [parallel] table on `world_size` ranks (None: not known yet, dp
    stays 0 when unset): the one statement of the layout rules."""
    if parallel.cp < 1 or parallel.dp < 0 or parallel.replicate < 1:
        raise RecipeError(f"parallel: expected cp >= 1, dp >= 0 and replicate >= 1, got {parallel}")
    dp = parallel.dp or (max(1, world_size // parallel.cp) if world_size else 0)
    if world_size is not None and dp * parallel.cp != world_size:
        raise RecipeError(f"parallel: dp={dp} x cp={parallel.cp} does not match the world size {world_size}")
    if dp and dp % parallel.replicate:
        raise RecipeError(f"parallel.replicate: expected a divisor of dp={dp}, got {parallel.replicate}")
    return dp, parallel.cp, parallel.replicate


def validate(recipe: Recipe) -> None:
    """The cross-key checks that need no data or devices."""
    for key in ("steps", "seq_len", "batch_tokens"):
        if getattr(recipe, key) < 1:
            raise RecipeError(f"{key}: expected >= 1, got {getattr(recipe, key)}")
    if recipe.batch_tokens % recipe.seq_len:
        raise RecipeError(f"batch_tokens: expected a multiple of seq_len={recipe.seq_len}, got {recipe.batch_tokens}")
    for key in ("checkpoint_every", "keep_checkpoints"):
        if getattr(recipe, key) < 0:
            raise RecipeError(f"{key}: expected >= 0, got {getattr(recipe, key)}")
    data = recipe.data
    if not data.sources:
        raise RecipeError("data.sources: expected at least one source")
    _check_weights("data.sources", data.sources)
    check_replay(data.replay)
    _check_mixture(data.mixture, len(data.sources))
    curriculum = data.curriculum
    if len(curriculum.boundaries) != len(curriculum.stage_steps):
        raise RecipeError("data.curriculum: boundaries and stage_steps must have the same length "
                          f"(got {curriculum.boundaries} and {curriculum.stage_steps})")
    if curriculum.stage_steps != sorted(curriculum.stage_steps) or curriculum.boundaries != sorted(curriculum.boundaries):
        raise RecipeError("data.curriculum: boundaries and stage_steps must be increasing")
    try:
        lr_at(recipe, 0)
    except ValueError as e:
        raise RecipeError(f"schedule.{e}") from None
    parallel_layout(recipe.parallel)
    if recipe.guard.check_every < 0:
        raise RecipeError(f"guard.check_every: expected >= 0, got {recipe.guard.check_every}")


def _check_weights(where: str, sources: list[Source]) -> None:
    for i, source in enumerate(sources):
        if not source.weight > 0:
            raise RecipeError(f"{where}[{i}].weight: expected > 0, got {source.weight!r}")


def check_replay(replay: Replay) -> None:
    """data.replay's rules (trainer and RL recipes): sources with a share in (0, 1), or neither; source
    weights > 0; the auxiliary loss weight (RL) >= 0."""
    _check_weights("data.replay.sources", replay.sources)
    if bool(replay.sources) != (replay.share > 0) or not 0 <= replay.share < 1:
        raise RecipeError(f"data.replay: expected sources with a share in (0, 1), or neither; got share "
                          f"{replay.share} and {len(replay.sources)} sources")
    if not replay.weight >= 0:
        raise RecipeError(f"data.replay.weight: expected >= 0, got {replay.weight!r}")


def _check_mixture(mixture: Mixture, sources: int) -> None:
    if mixture.kind != "dynamic":
        return
    if mixture.every < 1 or mixture.heldout < 1:
        raise RecipeError(f"data.mixture: a dynamic mixture needs every >= 1 and heldout >= 1, got "
                          f"every={mixture.every}, heldout={mixture.heldout}")
    if mixture.reference and len(mixture.reference) != sources:
        raise RecipeError(f"data.mixture.reference: expected one loss per source ({sources}), got {mixture.reference}")
    if not 0 <= mixture.floor * sources < 1:
        raise RecipeError(f"data.mixture.floor: expected 0 <= floor < 1 / {sources} sources, got {mixture.floor}")
    if not 0 <= mixture.smoothing <= 1:
        raise RecipeError(f"data.mixture.smoothing: expected 0 <= smoothing <= 1, got {mixture.smoothing}")


def model_config(recipe: Any) -> LoopCoderConfig:
    """The LoopCoderConfig the recipe names: model.init_from's config.json, or model.preset, with the
    LoopCoderConfig fields set in [model] on top."""
    model = recipe.model
    if model.init_from:
        if not (Path(model.init_from) / "config.json").is_file():
            raise RecipeError(f"model.init_from: no config.json in {model.init_from}")
        base = LoopCoderConfig.from_json(model.init_from).to_dict()
        try:
            return LoopCoderConfig.from_dict({**base, **model.config})
        except ValueError as e:
            raise RecipeError(f"model: {e}") from None
    try:
        return LoopCoderConfig.preset(model.preset, **model.config)
    except (ValueError, TypeError) as e:
        raise RecipeError(f"model: {e}") from None


def explain(schema: type = Recipe, key: str | None = None) -> str:
    """One line per field of `schema` (or of the field/table `key`): dotted key, type, default, doc."""
    lines = []

    def walk(node: Any, prefix: str) -> None:
        hints = typing.get_type_hints(type(node))
        for f in dataclasses.fields(node):
            dotted = f"{prefix}{f.name}"
            value = getattr(node, f.name)
            if dataclasses.is_dataclass(value):
                if key is None or dotted.startswith(key) or key.startswith(dotted + "."):
                    lines.append(f"[{dotted}]  {field_doc(f)}")
                walk(value, dotted + ".")
            elif key is None or dotted == key or dotted.startswith((key + ".", key + "[].")):
                lines.append(f"  {dotted} : {_type_name(hints[f.name])} = {value!r}\n      {field_doc(f)}")
                item = typing.get_args(hints[f.name])[:1]
                if item and dataclasses.is_dataclass(item[0]):
                    walk(item[0](), dotted + "[].")

    walk(schema(), "")
    if key is not None and not any(not line.startswith("[") for line in lines):
        raise RecipeError(f"--explain: unknown key {key!r}")
    return "\n".join(lines)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    args = typing.get_args(hint)
    return f"{typing.get_origin(hint).__name__}[{args[0].__name__}]" if args else getattr(hint, "__name__", str(hint))
