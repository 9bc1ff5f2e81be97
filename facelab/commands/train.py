"""``facelab train``: train a model (on one process or under torchrun)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from facelab.commands.common import EXIT_INTERRUPTED, non_negative_int, positive_int
from facelab.errors import FacelabError

# ---- facelab train -------------------------------------------------------------------------------
def add_train(commands: argparse._SubParsersAction) -> None:
    # Each option sets the TrainConfig field its dest names, except the few train_config_from_args
    # maps; one left out takes TrainConfig's default, which the help shows through {field} names.
    parser = commands.add_parser(
        "train", help="train or fine-tune the network", formatter_class=_RecipeHelp,
        description="Train the network end to end on SynthFaces or a dataset folder. The run directory "
                    "gets config.json, metrics.csv and the checkpoints last and best (lowest validation error).",
    )
    parser.add_argument("--recommended", action="store_true",
                        help="start from the bundled model's recipe (identity-preserving with the expression mixture, "
                             "2 blends per subject, 10 neutral pairs, 0.1 mm input noise, no epoch, the recogniser "
                             "fitted on 12,800 pairs: facelab/training/recipe.py) and, on SynthFaces, its 2,700 "
                             "identities (its fits want many people: on 100 they validate about three times worse); "
                             "the options given as well override it")
    parser.add_argument("--data", help="'synth' (built-in) or a dataset path (default {data})")
    parser.add_argument("--format", dest="data_format", help="force a dataset layout")
    parser.add_argument("--identities", type=positive_int,
                        help="identities to generate for synth or morphable-model data (default 100)")
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--epochs", type=non_negative_int,
                        help="(default {epochs}); 0 fits the start only (the closed-form fits, no training step) "
                             "and saves it as best and last")
    parser.add_argument("--batch-size", type=positive_int, help="(default {batch_size})")
    parser.add_argument("--lr", type=float,
                        help="Adam learning rate of Enc, Dec and G (default {lr:g}; warm-up, then cosine to 0 at the "
                             "last step); R learns at {recognizer_lr:g}, D at {discriminator_lr:g}")
    parser.add_argument("--generator-lr", type=float, help="learning rate of G alone (default: --lr)")
    parser.add_argument("--l1-reduction", metavar="REDUCTION",
                        help="{choices[l1_reduction]}: |.|_1 of Eq. 2 and 6 as a mean over elements or as each sample's L1 norm (a sum, as "
                             "the paper writes it) (default {l1_reduction})")
    parser.add_argument("--loss-weights", type=_loss_weights, metavar="NAME=VALUE,...",
                        help="change the paper's loss weights ({loss_weights}), e.g. id=0.1,gan=0.5; the others "
                             "keep their defaults")
    parser.add_argument("--lr-schedule", metavar="SCHEDULE",
                        help="{choices[lr_schedule]}: cosine, or exponential (x{lr_decay:g} per epoch, the reference implementations') "
                             "(default {lr_schedule})")
    parser.add_argument("--weight-init", metavar="INIT",
                        help="{choices[weight_init]}: linear: start as the rank-{latent} linear neutraliser of the training pairs; random: "
                             "plain initialisation; auto: linear unless --downsample or the PyG layer is used "
                             "(default {weight_init})")
    parser.add_argument("--linear-ridge", type=float,
                        help="ridge of the linear start, relative to the mean eigenvalue (default: chosen on "
                             "held-out training subjects)")
    parser.add_argument("--recognizer-warmup", type=non_negative_int, metavar="PAIRS",
                        help="experimental: before training from the linear start (or with a new recogniser head), "
                             "fit R alone on the codes of this many training pairs, e.g. 6400 (default "
                             "{experimental[recognizer_warmup_samples]}: off; see docs/method.md)")
    parser.add_argument("--variant", metavar="VARIANT",
                        help="one of {choices[variant]}: the paper's four, or identity-preserving (the person's geometry "
                             "outside the expression subspace passes from the input); default {variant}, or with "
                             "--init the variant of the model fine-tuned, with its --fusion-ridge or --fusion-mixture")
    parser.add_argument("--alignment", metavar="KIND",
                        help="how faces are brought into the model's frame, one of {choices[alignment]}: similarity "
                             "(fitted onto the template), canonical (then moved back into the training data's own "
                             "frame by a correction learned from the training faces), none, or auto (whichever of "
                             "the first two a linear check on the validation subjects prefers); default {alignment}")
    parser.add_argument("--no-align", action="store_true",
                        help="feed faces to the network as they are, without the similarity fit to the template "
                             "(--alignment none)")
    parser.add_argument("--neutral-pairs", type=non_negative_int, metavar="N",
                        help="also train each subject's neutral face as its own pair N times (default {neutral_pairs})")
    parser.add_argument("--input-noise", dest="input_noise_mm", type=float, metavar="MM",
                        help="train on inputs with Gaussian noise of up to MM mm standard deviation "
                             "(default {input_noise_mm:g})")
    parser.add_argument("--expression-dims", type=positive_int,
                        help="identity-preserving: dimensions of the expression subspace (default {expression_dims})")
    parser.add_argument("--identity-dims", type=non_negative_int,
                        help="identity-preserving: dimensions of the identity subspace (default {identity_dims})")
    parser.add_argument("--fusion-ridge", action="store_true",
                        help="identity-preserving: inside the expression subspace, start as a ridge map of the input "
                             "and learn per direction how far to trust the decoder instead")
    parser.add_argument("--fusion-mixture", action="store_true",
                        help="identity-preserving: as --fusion-ridge, with one ridge map per training expression, "
                             "weighed by a classifier of the input's expression (the recommended start)")
    parser.add_argument("--mixture-blends", type=non_negative_int, metavar="N",
                        help="with --fusion-mixture: also learn N blends of two expressions per training subject "
                             "(faces doing two things at once) as an expression of their own (default {mixture_blends})")
    parser.add_argument("--laplacian", metavar="LAPLACIAN",
                        help="{choices[laplacian]}: combinatorial L = D - A (the paper's) or normalized (CoMA's code) (default {laplacian})")
    parser.add_argument("--seed", type=int, help="(default {seed})")
    parser.add_argument("--deterministic", action="store_true", help="use deterministic torch algorithms")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped, to its own number of epochs (a larger "
                             "--epochs extends it; a smaller one, 0 included, is ignored)")
    parser.add_argument("--checkpoint-minutes", type=float, metavar="MINUTES",
                        help="also save 'last' inside an epoch every MINUTES minutes, so that a killed run "
                             "resumes (--resume) from there; 0 saves at epoch ends only (default {checkpoint_minutes:g})")
    parser.add_argument("--init", type=Path, help="fine-tune from this checkpoint")
    parser.add_argument("--device", help="cpu or cuda (default {device})")
    parser.add_argument("--threads", dest="num_threads", type=positive_int, metavar="THREADS",
                        help="torch CPU threads")
    parser.add_argument("--amp", metavar="PRECISION",
                        help="{choices[amp]}: mixed precision bf16 runs the dense layers in bfloat16 (the sparse products stay "
                             "float32); helps on GPUs from Ampere on and CPUs with AVX512-BF16/AMX (default {amp})")
    parser.add_argument("--downsample", type=_downsample_factors,
                        help="CoMA-style mesh downsampling for large templates: decimation factors per level, "
                             "e.g. 4,4,4,4 (default: none, the paper's architecture)")
    parser.add_argument("--workers", dest="num_workers", type=int, metavar="WORKERS",
                        help="DataLoader processes that read batches ahead (default {num_workers}: in the training "
                             "process)")
    parser.set_defaults(handler=_run_train)


class _RecipeHelp(argparse.HelpFormatter):
    """Help texts whose ``{field}`` names are :class:`TrainConfig`'s defaults, looked up only when the
    help is shown: the config imports torch, which parsing a command line does without."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        return text.format_map(_recipe()) if text and "{" in text else text


def _recipe() -> dict:
    from facelab.training.config import CHOICES, TrainConfig

    defaults = TrainConfig().to_dict()
    return {**defaults, "choices": {name: ", ".join(allowed) for name, allowed in CHOICES.items()},
            "loss_weights": ", ".join(f"{name} {value:g}" for name, value in defaults["weights"].items())}


def _loss_weights(text: str) -> dict[str, float]:
    import dataclasses

    from facelab.training.config import LossWeights

    names = [f.name for f in dataclasses.fields(LossWeights)]
    weights = {}
    for part in text.split(","):
        name, separator, value = (piece.strip() for piece in part.partition("="))
        try:
            if not separator or name not in names:
                raise ValueError
            weights[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected NAME=VALUE pairs with NAME one of {', '.join(names)}, e.g. id=0.1,gan=0.5; got {text}"
            ) from None
    return weights


def _downsample_factors(text: str) -> list[int]:
    if text.strip().lower() in ("", "none", "off"):
        return []
    try:
        factors = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 4,4,4,4, got {text}") from None
    if any(factor < 2 for factor in factors):
        raise argparse.ArgumentTypeError(f"each downsampling factor must be at least 2, got {text}")
    return factors


def train_config_from_args(args: argparse.Namespace):
    """The run's TrainConfig: the options given, and TrainConfig's defaults for the others (a
    switch left off is the default too)."""
    import dataclasses

    from facelab.training.config import ExperimentalOptions, LossWeights, TrainConfig

    known = {field.name for field in dataclasses.fields(TrainConfig)}
    fields = {name: value for name, value in vars(args).items()
              if name in known and value is not None and value is not False}
    if args.identities:
        fields["data_options"] = {"identities": args.identities}
    if args.loss_weights:
        fields["weights"] = LossWeights(**args.loss_weights)
    if args.no_align:
        fields["alignment"] = "none"
    if args.recognizer_warmup is not None:
        fields["experimental"] = ExperimentalOptions(recognizer_warmup_samples=args.recognizer_warmup)
    if getattr(args, "recommended", False):
        from facelab.data.layouts import SYNTH
        from facelab.training.recipe import RECOMMENDED_SYNTH_IDENTITIES, recommended_config

        if not args.identities and SYNTH in (fields.get("data", TrainConfig.data), args.data_format):
            fields["data_options"] = {"identities": RECOMMENDED_SYNTH_IDENTITIES}
        return recommended_config(**fields)
    return TrainConfig(**fields)


def keep_the_models_settings(args: argparse.Namespace) -> None:
    """Fine-tuning (``--init``) keeps the model's method unless another variant is named, and what
    its training pairs were made of (neutral pairs, input noise) unless given."""
    from facelab.training.checkpoint import load_checkpoint
    from facelab.training.config import architecture_of

    kept = architecture_of(load_checkpoint(args.init, with_optimizers=False).meta)
    if args.variant is None:
        args.variant = kept["variant"]
        if not (args.fusion_ridge or args.fusion_mixture):
            args.fusion_ridge, args.fusion_mixture = kept["fusion_ridge"], kept["fusion_mixture"]
            if args.mixture_blends is None:
                args.mixture_blends = kept["mixture_blends"]
    for name in ("neutral_pairs", "input_noise_mm"):
        if getattr(args, name) is None:
            setattr(args, name, kept[name])


def _run_train(args: argparse.Namespace) -> int:
    from facelab.training.events import TrainingControl
    from facelab.training.progress import TqdmProgress
    from facelab.training.trainer import Trainer

    if args.resume and args.init:
        raise FacelabError("--resume and --init exclude each other: resume a run, or start one from a checkpoint.")
    if not args.resume and (args.out / "config.json").exists():
        raise FacelabError(f"{args.out} already holds a run: pass --resume to continue it, or choose another --out.")
    if args.recommended and (args.resume or args.init):
        raise FacelabError("--recommended starts a new run: a resumed run keeps its own settings, and fine-tuning "
                           "keeps the model's (its method, neutral pairs and input noise).")
    if args.init:
        keep_the_models_settings(args)
    control = TrainingControl()

    # Under torchrun only rank 0 reports (the trainer emits its events there alone).
    trainer = Trainer(train_config_from_args(args), args.out, callbacks=[TqdmProgress()], control=control,
                      init_checkpoint=args.init, resume=args.resume)
    interrupted = []

    def stop_gracefully(signum, frame):  # first Ctrl-C: save 'last' at this step; second: abort
        print("\nstopping after this step (Ctrl-C again to abort without saving)", file=sys.stderr)
        interrupted.append(signum)
        control.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, stop_gracefully)
    try:
        result = trainer.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    best = f", best validation error {result.best_val_error_mm:.3f} mm" if result.best_val_error_mm is not None else ""
    if best and not trainer.split.validation_held_out:
        best += (" (measured on the training subjects: with fewer than 3 training subjects none is held out, "
                 "so it says nothing about unseen faces)")
    if int(os.environ.get("RANK", "0")) == 0:  # one summary line, not one per torchrun process
        print(f"{result.status}: {result.epochs_done} epochs in {result.run_dir}{best}")
    # Stopped by Ctrl-C: 'last' is saved and --resume continues, but the run did not finish.
    return EXIT_INTERRUPTED if interrupted and result.status == "stopped" else 0
