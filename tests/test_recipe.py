"""The recommended recipe: what the bundled model was trained with, reachable from the command line."""

from __future__ import annotations

import dataclasses
import json

import pytest

from facelab.cli import EXIT_USER_ERROR, build_parser, main, train_config_from_args
from facelab.commands.train import keep_the_models_settings
from facelab.model import BUNDLED_MODEL
from facelab.training.recipe import RECOMMENDED, recommended_config


def _recipe_fields(config) -> dict:
    values = config.to_dict()
    return {name: values[name] for name in RECOMMENDED}


def test_the_recipe_is_how_the_bundled_model_was_trained():
    trained = json.loads(BUNDLED_MODEL.with_suffix(".json").read_text())["train_config"]
    expected = _recipe_fields(recommended_config())
    assert {name: trained[name] for name in RECOMMENDED} == expected


def test_the_judged_time_to_quality_command_trains_the_recipe(tmp_path):
    from benchmarks.time_to_quality import EPOCHS, IDENTITIES, THREADS, train_arguments

    args = build_parser().parse_args(train_arguments(IDENTITIES, EPOCHS, THREADS, tmp_path / "run"))
    assert _recipe_fields(train_config_from_args(args)) == _recipe_fields(recommended_config())


def test_recommended_sets_the_recipe_and_the_options_given_override_it(tmp_path):
    args = build_parser().parse_args(["train", "--recommended", "--out", str(tmp_path / "run")])
    assert _recipe_fields(train_config_from_args(args)) == _recipe_fields(recommended_config())
    args = build_parser().parse_args(["train", "--recommended", "--epochs", "5", "--neutral-pairs", "0",
                                      "--out", str(tmp_path / "run")])
    config = train_config_from_args(args)
    assert (config.epochs, config.neutral_pairs, config.fusion_mixture, config.mixture_blends) == (5, 0, True, 2)
    # another method given replaces the recipe's mixture (and keeps its pairs, noise and warm-up)
    for method, expected in ((["--variant", "full"], ("full", False, False, 0)),
                             (["--fusion-ridge"], ("identity-preserving", True, False, 0))):
        args = build_parser().parse_args(["train", "--recommended", *method, "--out", str(tmp_path / "run")])
        other = train_config_from_args(args).validate()
        assert (other.variant, other.fusion_ridge, other.fusion_mixture, other.mixture_blends) == expected
        assert (other.neutral_pairs, other.input_noise_mm) == (10, 0.1)
    # each config has its own experimental options: changing one leaves the recipe as it was
    config.experimental.recognizer_warmup_samples = 1
    assert recommended_config().experimental.recognizer_warmup_samples == 12800
    assert dataclasses.asdict(RECOMMENDED["experimental"])["recognizer_warmup_samples"] == 12800


def test_recommended_samples_the_bundled_models_synthfaces_identities_unless_told(tmp_path):
    from facelab.training.recipe import RECOMMENDED_SYNTH_IDENTITIES

    trained = json.loads(BUNDLED_MODEL.with_suffix(".json").read_text())["train_config"]
    assert trained["data_options"]["identities"] == RECOMMENDED_SYNTH_IDENTITIES
    out = ["--out", str(tmp_path / "run")]
    for given, identities in (([], RECOMMENDED_SYNTH_IDENTITIES), (["--identities", "300"], 300),
                              (["--format", "synth", "--data", str(tmp_path / "anywhere")], RECOMMENDED_SYNTH_IDENTITIES)):
        config = train_config_from_args(build_parser().parse_args(["train", "--recommended", *given, *out]))
        assert config.data_options == {"identities": identities}
    # another dataset keeps its own default, and a plain run SynthFaces' default
    (tmp_path / "data").mkdir()
    other = train_config_from_args(build_parser().parse_args(["train", "--recommended", "--data",
                                                              str(tmp_path / "data"), *out]))
    assert other.data_options == {}
    assert train_config_from_args(build_parser().parse_args(["train", *out])).data_options == {}


@pytest.mark.parametrize("start", [["--resume"], ["--init", str(BUNDLED_MODEL)]])
def test_recommended_starts_a_new_run_only(tmp_path, capsys, start):
    assert main(["train", "--recommended", "--out", str(tmp_path / "run"), *start]) == EXIT_USER_ERROR
    assert "--recommended starts a new run" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_fine_tuning_keeps_the_models_method_and_what_its_pairs_were_made_of(tmp_path):
    args = build_parser().parse_args(["train", "--init", str(BUNDLED_MODEL), "--out", str(tmp_path / "run")])
    keep_the_models_settings(args)
    config = train_config_from_args(args)
    assert (config.variant, config.fusion_mixture, config.mixture_blends) == ("identity-preserving", True, 2)
    assert (config.neutral_pairs, config.input_noise_mm) == (10, 0.1)
    args = build_parser().parse_args(["train", "--init", str(BUNDLED_MODEL), "--neutral-pairs", "0",
                                      "--out", str(tmp_path / "run")])
    keep_the_models_settings(args)
    assert train_config_from_args(args).neutral_pairs == 0   # given: kept as given
