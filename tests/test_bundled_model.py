"""The bundled model meets its targets on the default SynthFaces test split (docs/results/bundled_model.json)."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.data.synth_dataset import load_synthfaces
from facelab.evaluation.evaluate import evaluate_model
from facelab.evaluation.metrics import per_vertex_error
from facelab.model import FaceLabModel, bundled_model_path


@pytest.mark.skipif(not bundled_model_path().with_suffix(".json").is_file(), reason="models/synthfaces is not checked out")
def test_the_bundled_model_neutralises_unseen_subjects_and_identifies_them():
    # What a new user sees when the app opens: unseen subjects neutralised to at most 35% of the
    # do-nothing error and recognised (rank-1 >= 95%). On this split 35% of doing nothing (0.49
    # mm) is below the linear baseline (0.72 mm, left out here: its fit is the slow part of
    # `facelab evaluate`), so this also holds the model below linear.
    dataset = load_synthfaces()
    split = dataset.split()
    report = evaluate_model(FaceLabModel.bundled(), dataset, split, baselines=False)
    assert report["variant"] == "full" and report["test_subjects"] == 30
    pairs = dataset.pairs_of(split.test_subjects)
    do_nothing = per_vertex_error(np.asarray(dataset.vertices[[p.expressive for p in pairs]]),
                                  np.asarray(dataset.vertices[[p.neutral for p in pairs]])).mean()
    assert report["mean_error_mm"] <= 0.35 * do_nothing
    assert report["rank1"] >= 0.95
