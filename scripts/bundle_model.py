"""Copy a trained checkpoint into ``models/`` as the bundled model, without optimiser state.

    python scripts/bundle_model.py runs/synth/best [--out models/synthfaces]

The bundled model is the only large file in git (keep it under ~50 MB). It is replaced when a
new one is better on the validation subjects (the ``best`` checkpoint's validation error,
``scripts/network_gain.py``, or for the mixture's blends ``scripts/blend_screen.py``, which weighs
single expressions and blends alike); the test split is read afterwards, once, by
``scripts/bundled_model_report.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facelab.model import BUNDLED_MODEL
from facelab.training.checkpoint import load_checkpoint, save_checkpoint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=BUNDLED_MODEL)
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.checkpoint, with_optimizers=False)
    checkpoint.optimizer_states = {}
    meta_path = save_checkpoint(args.out, checkpoint)
    size = sum(p.stat().st_size for p in (meta_path, meta_path.with_suffix(".safetensors")))
    print(f"wrote {args.out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
