"""Short training runs that compare training recipes on validation subjects.

Each run prepares a trainer with `facelab train`'s defaults (linear start, schedule, loss
weights, ...; the linear start's ridge chosen on held-out subjects, as for the bundled model, unless
``--linear-ridge`` fixes it: the screens recorded in this repository used the earlier bundled model's
1e-6, so pass ``--linear-ridge 1e-6`` to reproduce them),
then trains for ``--steps`` steps with the cosine schedule compressed to that length (its
200-step warm-up kept), and prints the mean error (mm) on the run's validation subjects (training
subjects held out from fitting; never the test split, which is read once per reported number)
every ``--every`` steps. The screens recorded in earlier versions of this repository read the
test split; their numbers are not comparable with these. It is
how the recipe choices in facelab/training/recognizer_warmup.py and docs/method.md were
screened before a full run (about 3.5 minutes per 600-step run of `full` on 2 cores at 900
identities; `gca` steps cost half). Short screens did not predict full runs here (the warm-up
and plain-millimetre L_rec won at 600 steps and lost at 5,283): confirm with a full run. Example,
the recogniser warm-up on:

    python scripts/recipe_screen.py --identities 900 --steps 600 --set experimental.recognizer_warmup_samples=6400

``--set`` takes TrainConfig fields (``weights.<name>`` for the loss weights,
``experimental.<name>`` for the experimental options); values are parsed
as JSON where they can be (numbers, true/false, null), else taken as strings.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from facelab.evaluation.metrics import per_vertex_error
from facelab.training.config import TrainConfig
from facelab.training.schedule import make_scheduler
from facelab.training.trainer import Trainer


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def configure(args) -> TrainConfig:
    # The screens' recorded results were all measured with the plain template fit.
    config = TrainConfig(data="synth", data_options={"identities": args.identities}, variant=args.variant,
                         tensorboard=False, preview_every=0, num_threads=args.threads, linear_ridge=args.linear_ridge,
                         alignment="similarity")
    for assignment in args.set:
        key, _, text = assignment.partition("=")
        if key.startswith("weights."):
            setattr(config.weights, key.removeprefix("weights."), float(text))
        elif key.startswith("experimental."):
            setattr(config.experimental, key.removeprefix("experimental."), _value(text))
        elif key in {f.name for f in dataclasses.fields(TrainConfig)}:
            setattr(config, key, _value(text))
        else:
            raise SystemExit(f"unknown TrainConfig field '{key}'")
    return config.validate()


def validation_error(trainer: Trainer, expressive: np.ndarray, neutral: np.ndarray) -> float:
    return float(per_vertex_error(trainer.predict(expressive), np.asarray(trainer.dataset.vertices[neutral])).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=900)
    parser.add_argument("--variant", default="full")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--linear-ridge", type=float, default=None,
                        help="the linear start's ridge (default: chosen on held-out training subjects, as "
                             "facelab train does)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()

    # prepare() writes nothing into the run directory; only run() would.
    scratch = tempfile.mkdtemp(prefix="facelab-recipe-screen-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    trainer = Trainer(configure(args), Path(scratch))
    started = time.perf_counter()
    trainer.prepare()
    print(f"prepared in {time.perf_counter() - started:.0f} s; recogniser warm-up loss "
          f"{trainer.recognizer_warmup_loss}", flush=True)
    trainer.scheduler = make_scheduler(trainer.optimizer, dataclasses.replace(trainer.config, epochs=1), args.steps)
    if not trainer.split.validation_held_out:
        raise SystemExit("too few training subjects to hold any out for validation: screen on more identities")
    validation = trainer.dataset.pairs_of(trainer.split.validation_subjects)
    expressive = np.array([p.expressive for p in validation])
    neutral = np.array([p.neutral for p in validation])
    print(f"step 0 validation {validation_error(trainer, expressive, neutral):.3f} mm", flush=True)
    batches, sums, window = trainer.train_batches, {}, 0
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        epoch, index = divmod(step - 1, batches.steps_per_epoch)  # the order `facelab train` sees
        for key, value in trainer.train_step(*batches.batch(epoch, index)).items():
            sums[key] = sums.get(key, 0.0) + value
        window += 1
        if step % args.every == 0 or step == args.steps:
            losses = " ".join(f"{key} {value / window:.4f}" for key, value in sorted(sums.items()))
            print(f"step {step} ({time.perf_counter() - started:.0f} s) validation "
                  f"{validation_error(trainer, expressive, neutral):.3f} mm | {losses}", flush=True)
            sums, window = {}, 0


if __name__ == "__main__":
    main()
