"""The bundled model, as a new user meets it: on unseen SynthFaces subjects, moved, and neutral.

Its full measurements are in docs/results/bundled_model.json (scripts/bundled_model_report.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from facelab.data.synth_dataset import load_synthfaces
from facelab.evaluation.evaluate import evaluate_model
from facelab.evaluation.metrics import per_vertex_error
from facelab.model import FaceLabModel, bundled_model_path

pytestmark = pytest.mark.skipif(not bundled_model_path().with_suffix(".json").is_file(),
                                reason="models/synthfaces is not checked out")


@pytest.fixture(scope="module")
def report():
    dataset = load_synthfaces()
    return evaluate_model(FaceLabModel.bundled(), dataset, dataset.split(), baselines=False), dataset


def test_the_bundled_model_neutralises_unseen_subjects_and_identifies_them(report):
    # Unseen subjects: at most a quarter of the do-nothing error and 0.20 mm, no expression at any intensity
    # left worse than doing nothing, at most 2% of the pairs worse than their input, rank-1 >= 95%.
    result, dataset = report
    pairs = dataset.pairs_of(dataset.split().test_subjects)
    expressive = np.asarray(dataset.vertices[[p.expressive for p in pairs]])
    truth = np.asarray(dataset.vertices[[p.neutral for p in pairs]])
    do_nothing = per_vertex_error(expressive, truth).mean(axis=1)
    assert result["variant"] == "identity-preserving" and result["test_subjects"] == 30
    assert result["mean_error_mm"] <= 0.25 * do_nothing.mean() and result["mean_error_mm"] <= 0.20
    for expression, error in result["per_expression"].items():
        assert error < np.mean([d for d, p in zip(do_nothing, pairs) if p.expression == expression]), expression
    assert result["worse_than_input"] <= 0.02
    assert result["rank1"] >= 0.95


def test_the_bundled_model_follows_a_face_moved_turned_and_scaled(report):
    result, _ = report
    for move in ("translated_50mm", "rotated_30deg", "scaled_0.8", "scaled_1.25", "mirrored"):
        assert result["robustness"][move] <= 1.02 * result["mean_error_mm"] + 0.01, move
    assert result["robustness"]["rank1_moved_probes"] == result["rank1"]


def test_a_face_doing_two_things_at_once_comes_back_nearer_its_neutral_face(report):
    result, _ = report
    assert result["robustness"]["blended_mm"] < 0.5 * result["robustness"]["blended_do_nothing_mm"]


def test_a_neutral_face_in_comes_back_as_it_was_and_noise_is_not_amplified(report):
    # A neutral face comes back within 0.05 mm of itself; 0.2 mm of input noise adds at most 0.1 mm.
    result, _ = report
    assert result["robustness"]["neutral_in_mm"] <= 0.05
    assert result["robustness"]["noise_0.2mm"] <= result["mean_error_mm"] + 0.1


def test_the_bundled_model_reads_expressions_and_an_uncertain_reading_warns(report):
    # What the app's readout relies on: a neutral face read as neutral, and a reading it calls
    # uncertain (below p = 0.5) marking faces predicted worse than the confident ones.
    result, _ = report
    read = result["expression_recognition"]
    assert read["pairs"] == result["test_pairs"] and read["top3_accuracy"] > read["accuracy"] > 0.5
    assert result["robustness"]["neutral_in_read_as_neutral"] >= 0.95
    uncertain, confident = read["by_confidence"][0], read["by_confidence"][-1]
    assert uncertain["to"] == 0.5 and uncertain["mean_error_mm"] > confident["mean_error_mm"]
    assert read["error_read_wrong_mm"] > read["error_read_right_mm"]
