"""The bundled model meets its targets on the default SynthFaces test split (docs/results/bundled_model.json)."""

from __future__ import annotations

import pytest

from facelab.data.synth_dataset import load_synthfaces
from facelab.evaluation.evaluate import evaluate_model
from facelab.model import FaceLabModel, bundled_model_path


@pytest.mark.skipif(not bundled_model_path().with_suffix(".json").is_file(), reason="models/synthfaces is not checked out")
def test_the_bundled_model_beats_doing_nothing_and_the_linear_baseline_and_identifies():
    # What a new user sees when the app opens: unseen subjects neutralised to at most 35% of the
    # do-nothing error, better than a ridge regression, and recognised (rank-1 >= 95%).
    dataset = load_synthfaces()
    report = evaluate_model(FaceLabModel.bundled(), dataset, dataset.split())
    assert report["variant"] == "full" and report["test_subjects"] == 30
    do_nothing = report["baselines"]["do_nothing"]["mean_error_mm"]
    assert report["mean_error_mm"] <= 0.35 * do_nothing
    assert report["mean_error_mm"] < report["baselines"]["linear"]["mean_error_mm"]
    assert report["rank1"] >= 0.95
