"""Recipes: every bundled one loads; --set overrides by dotted path; unknown keys and wrong types are
named in the error."""

import pytest

from iquest_core.train.recipe import BUNDLED, RecipeError, explain, load_recipe, model_config, parse_value
from iquest_core.train.schema import Parallel, Recipe, Source


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_recipes_load_with_the_common_top_level_keys(name):
    recipe = load_recipe(name)
    assert isinstance(recipe, Recipe) and recipe.steps >= 1 and recipe.seq_len >= 1


def test_set_overrides_nested_keys_and_model_fields():
    recipe = load_recipe("tiny", ["optim.lr=0.5", "model.hidden_size=96", "model.num_hidden_layers=3", "steps=7",
                                  'data.sources=[{path="a.jsonl", weight=2}]', "model.preset=tiny-dense"])
    assert recipe.optim.lr == 0.5 and recipe.steps == 7
    assert recipe.data.sources == [Source(path="a.jsonl", weight=2.0)]
    config = model_config(recipe)
    assert (config.hidden_size, config.num_hidden_layers, config.loop_num) == (96, 3, 2)  # tiny.toml sets loop_num


def test_int_is_accepted_for_a_float_key_but_not_the_reverse():
    assert load_recipe("tiny", ["optim.lr=1"]).optim.lr == 1.0
    with pytest.raises(RecipeError, match="'steps' expects a int"):
        load_recipe("tiny", ["steps=1.5"])


@pytest.mark.parametrize("override,named", [("optim.lrr=1", "optim.lrr"), ("nope=1", "nope"),
                                            ("model.hidden=3", "model.hidden"), ("optim=3", "optim"),
                                            ("train.compile.x=1", "train.compile")])
def test_unknown_keys_are_named(override, named):
    with pytest.raises(RecipeError, match=f"'{named}'"):
        load_recipe("tiny", [override])


def test_bad_recipe_names_and_values():
    with pytest.raises(RecipeError, match="recipe: expected a bundled name"):
        load_recipe("no-such-recipe")
    with pytest.raises(RecipeError, match="--set: expected key=value"):
        load_recipe("tiny", ["steps"])
    with pytest.raises(RecipeError, match="batch_tokens: expected a multiple of seq_len"):
        load_recipe("tiny", ["batch_tokens=100"])
    with pytest.raises(RecipeError, match="schedule.warmup_steps"):
        load_recipe("tiny", ["steps=3"])
    with pytest.raises(RecipeError, match=r"data.sources\[0\].kind"):
        load_recipe("tiny", ['data.sources=[{path="x", kind="parquet"}]'])
    with pytest.raises(RecipeError, match=r"parallel.replicate: expected a divisor of dp=3, got 2"):
        load_recipe("tiny", ["parallel.dp=3", "parallel.replicate=2"])
    with pytest.raises(RecipeError, match="replicate >= 1"):
        load_recipe("tiny", ["parallel.replicate=0"])
    with pytest.raises(RecipeError, match="guard.check_every"):
        load_recipe("tiny", ["guard.check_every=-1"])


def test_hsdp_replicate_is_a_parallel_key():
    assert load_recipe("tiny").parallel.replicate == 1
    assert load_recipe("tiny", ["parallel.dp=4", "parallel.replicate=2"]).parallel == Parallel(dp=4, cp=1, replicate=2)


def test_a_toml_file_recipe(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('steps = 19\n[optim]\nlr = 0.25\n')
    recipe = load_recipe(str(path))
    assert recipe.steps == 19 and recipe.optim.lr == 0.25 and recipe.seq_len == Recipe().seq_len
    path.write_text('[optim]\nlrate = 0.25\n')
    with pytest.raises(RecipeError, match="'optim.lrate'"):
        load_recipe(str(path))


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("true") is True and parse_value("tiny") == "tiny"
    assert parse_value('"a b"') == "a b" and parse_value("[1, 2]") == [1, 2]


def test_choices_come_from_the_registries_and_errors_name_the_key():
    with pytest.raises(RecipeError, match="'model.attn_implementation' expects one of fused, reference, banded"):
        load_recipe("tiny", ["model.attn_implementation=flash"])
    with pytest.raises(RecipeError, match="'schedule.kind' expects one of cosine, wsd, constant"):
        load_recipe("tiny", ["schedule.kind=linear"])
    with pytest.raises(RecipeError, match="'data.template' expects one of instruct, thinking"):
        load_recipe("tiny", ["data.template=chatml"])
    with pytest.raises(RecipeError, match=r"unknown key 'data.sources\[0\].size'; known: kind, name, path, weight"):
        load_recipe("tiny", ['data.sources=[{path="x", size=3}]'])


def test_the_recipe_is_typed_and_defaults_are_not_shared():
    a, b = load_recipe("tiny", ["data.curriculum.boundaries=[0.5]", "data.curriculum.stage_steps=[3]"]), Recipe()
    assert a.data.curriculum.boundaries == [0.5] and b.data.curriculum.boundaries == []
    assert isinstance(a.optim.lr, float) and a.model.config["loop_num"] == 2


def test_explain_prints_every_field_with_type_default_and_doc():
    text = explain()
    for line in ("  parallel.replicate : int = 1", "  model.attn_implementation : 'fused' | 'reference' | 'banded'",
                 "  data.sources[].kind : 'auto' | 'shards' | 'jsonl' | 'package' = 'auto'"):
        assert line in text
    assert explain(key="optim.lr").splitlines()[1:] == ["  optim.lr : float = 0.0003", "      peak learning rate (AdamW)"]
    with pytest.raises(RecipeError, match="--explain: unknown key 'optim.nope'"):
        explain(key="optim.nope")
