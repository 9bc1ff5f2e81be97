"""Write docs/results/alignment_frame.json: what the alignment's frame costs a linear neutraliser.

    python scripts/alignment_frame.py [--datasets synth ict] [--out docs/results/alignment_frame.json]

On each dataset's training split as ``facelab train`` draws it (validation subjects held out,
the test split never read), three alignments on the stable region a new run chooses are compared,
their corrections learned from the script's training pairs (expressive and neutral faces):

* ``tilt_degrees``: the mean rotation each alignment applies to validation faces that are all
  registered in one pose (any turn is the person's shape read as pose);
* ``linear_mm``: a linear neutraliser (ridge on the 200 leading principal coefficients of the
  expressive face) fitted on training pairs in that frame and scored on validation pairs, its
  predictions mapped back to the input's frame: the raw frame, the template fit
  (``similarity``), the template fit with the learned turn back into the data's frame
  (``canonical``, what ``--alignment canonical`` does) and with the whole way back, size
  included (``canonical_with_size``). ICT-FaceKit's expressions add linearly, so in the raw frame a linear map is
  exact; what a frame adds is the nonlinearity it brings.
* ``auto``: what ``facelab train``'s default, ``--alignment auto``, chooses on the same split (its
  own sample: 2,000 training pairs, 600 validation pairs), its linear checks and the seconds the
  choice took.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from facelab.atomic import atomic_write_text
from facelab.data.layouts import load_dataset
from facelab.evaluation.metrics import per_vertex_error
from facelab.provenance import provenance
from facelab.training import TrainConfig
from facelab.training.alignment_choice import LINEAR_MODES, linear_error_in_frame, linear_map_prediction
from facelab.training.data import make_training_split
from facelab.training.starts import alignment_for_run, fitted_alignment, sampled_pairs

REPO = Path(__file__).resolve().parents[1]
ICT_MODEL = REPO.parent / "shared" / "data" / "ict-facekit" / "ict_face_model.npz"
SOURCES = {"synth": ("SynthFaces", "synth", {"identities": 2700}),
           "ict": ("ICT-FaceKit", str(ICT_MODEL), {"identities": 400})}
FIT_PAIRS, VALIDATION_PAIRS = 3000, 600


def measure(label: str, source: str, options: dict) -> dict:
    dataset = load_dataset(source, progress=False, **options)
    config = TrainConfig(data=source, data_options=options)
    split = make_training_split(dataset, config.train_fraction, config.split_seed, config.validation_fraction)
    rng = np.random.default_rng(0)
    fit_x, fit_y = sampled_pairs(dataset, split.fit_subjects, FIT_PAIRS, rng)
    val_x, val_y = sampled_pairs(dataset, split.validation_subjects, VALIDATION_PAIRS, rng)
    fit_x, fit_y, val_x, val_y = (faces.astype(np.float64) for faces in (fit_x, fit_y, val_x, val_y))
    template = torch.from_numpy(np.asarray(dataset.template().vertices, dtype=np.float64))
    result = {"data": dataset.name, "fit_pairs": len(fit_x), "validation_pairs": len(val_x),
              "validation_subjects": len(split.validation_subjects),
              "do_nothing_mm": float(per_vertex_error(val_x, val_y).mean()),
              "linear_mm": {"raw": float(per_vertex_error(linear_map_prediction(fit_x, fit_y, val_x), val_y).mean())},
              "tilt_degrees": {}}
    similarity = fitted_alignment(TrainConfig(data=source, data_options=options, alignment="similarity"),
                                  dataset, split)
    faces = torch.from_numpy(np.concatenate([fit_x, fit_y]))
    alignments = {"similarity": similarity, "canonical": similarity.with_correction(faces, template),
                  "canonical_with_size": similarity.with_correction(faces, template, turn_only=False)}
    for kind, alignment in alignments.items():
        result["linear_mm"][kind] = linear_error_in_frame(alignment, template.numpy(), (fit_x, fit_y), (val_x, val_y))
        degrees = alignment.fit(torch.from_numpy(val_x), template).degrees().numpy()
        result["tilt_degrees"][kind] = {"mean": float(degrees.mean()), "max": float(degrees.max())}
        print(f"{label} {kind}: tilt {degrees.mean():.2f} degrees, linear {result['linear_mm'][kind]:.4f} mm", flush=True)
    started = time.perf_counter()
    choice = alignment_for_run(config, dataset, split)  # what `facelab train` does by default
    result["auto"] = {**choice.to_dict(), "seconds": time.perf_counter() - started}
    print(f"{label}: {choice.reason}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=tuple(SOURCES), default=list(SOURCES))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "alignment_frame.json")
    args = parser.parse_args(argv)
    stamp = provenance("python scripts/alignment_frame.py", argv)
    torch.set_num_threads(2)
    report = {"fit_pairs_at_most": FIT_PAIRS, "validation_pairs_at_most": VALIDATION_PAIRS, "linear_modes": LINEAR_MODES,
              "datasets": {}}
    for name in args.datasets:
        label, source, options = SOURCES[name]
        report["datasets"][label] = measure(label, source, options)
    report.update(stamp)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
