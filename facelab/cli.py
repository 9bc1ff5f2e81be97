"""The ``facelab`` command: a thin layer over the core.

Every user error (a bad file, an unknown layout, a mismatched template) is a
:class:`~facelab.errors.FacelabError`; it is printed as one sentence and the command exits with
status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from facelab import __version__
from facelab.errors import FacelabError, is_path_error, os_error_sentence

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's convention for a command ended by Ctrl-C (128 + SIGINT)

Handler = Callable[[argparse.Namespace], int]


def _int_at_least(minimum: int, kind: str):
    """An argparse type: an integer of at least ``minimum`` (``kind`` names it in the error)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {text}")
        return value
    parse.__name__ = f"{kind} integer"  # argparse names the type in "invalid ... value" errors
    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


# ---- facelab synth ------------------------------------------------------------------------------
def _add_synth(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth", help="write the built-in SynthFaces dataset as mesh files",
        description="Write SynthFaces (each identity: a neutral and 12 CoMA expressions at 3 intensities) "
                    "in the generic folder layout <out>/<subject>/<expression>.<format> with a manifest.csv.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (new, or a previous facelab output)")
    parser.add_argument("--identities", type=_positive_int, default=100, help="number of identities (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--format", choices=("ply", "obj"), default="ply", help="mesh file format (default ply)")
    parser.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from facelab.data.layouts.generic import write_generic
    from facelab.data.synth_dataset import load_synthfaces

    dataset = load_synthfaces(identities=args.identities, seed=args.seed)
    write_generic(dataset, args.out, args.format)
    print(f"wrote {len(dataset)} meshes of {len(dataset.subjects)} subjects to {args.out}")
    return 0


# ---- facelab inspect -----------------------------------------------------------------------------
def _add_inspect(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "inspect", help="say what a mesh file or dataset is",
        description="Describe a mesh file (format, vertices, triangles, size) or a dataset "
                    "(layout, subjects, expressions, pairs, split sizes). PATH may be 'synth'.",
    )
    parser.add_argument("path", help="a mesh file, a dataset folder, a morphable-model .npz, or 'synth'")
    parser.add_argument("--format", dest="layout", default=None,
                        help="force a dataset layout (synth, coma, facewarehouse, facescape, ict-facekit, generic)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from facelab.inspection import inspect_path

    info = inspect_path(args.path, layout=args.layout)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_info(info)
    return 0


def _print_info(info: dict, indent: str = "") -> None:
    width = max(len(key) for key in info)
    for key, value in info.items():
        label = key.replace("_", " ")
        if isinstance(value, dict):
            print(f"{indent}{label}:")
            _print_info(value, indent + "  ")
        elif isinstance(value, list):
            print(f"{indent}{label}:")
            for item in value:
                print(f"{indent}  - {item}")
        else:
            print(f"{indent}{label:<{width}}  {value}")


# ---- facelab import-ict ---------------------------------------------------------------------------
def _add_import_ict(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "import-ict", help="convert an ICT-FaceKit FaceXModel folder into a compact morphable-model file",
        description="Read ICT-FaceKit's FaceXModel/ folder (neutral, 100 identity and 53 expression shapes, in cm), "
                    "keep the face area, and write a compact .npz morphable model in millimetres.",
    )
    parser.add_argument("facexmodel", type=Path, help="the FaceXModel/ folder of an ICT-FaceKit clone")
    parser.add_argument("--out", required=True, type=Path, help="the .npz file to write")
    parser.set_defaults(handler=_run_import_ict)


def _run_import_ict(args: argparse.Namespace) -> int:
    from facelab.data.morphable_model import import_ict

    import_ict(args.facexmodel, args.out)
    print(f"wrote {args.out}")
    return 0


# ---- facelab train -------------------------------------------------------------------------------
def _add_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train", help="train or fine-tune the network",
        description="Train the network end to end on SynthFaces or a dataset folder. The run directory "
                    "gets config.json, metrics.csv and the checkpoints last and best (lowest validation error).",
    )
    parser.add_argument("--data", default="synth", help="'synth' (built-in) or a dataset path (default synth)")
    parser.add_argument("--format", dest="data_format", default=None, help="force a dataset layout")
    parser.add_argument("--identities", type=_positive_int, default=None,
                        help="identities to generate for synth or morphable-model data (default 100)")
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--epochs", type=_positive_int, default=30)
    parser.add_argument("--batch-size", type=_positive_int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4,
                        help="Adam learning rate of Enc, Dec and G (default 3e-4; warm-up, then cosine to 0 at the "
                             "last step); R and D learn at 1e-3")
    parser.add_argument("--generator-lr", type=float, default=None,
                        help="learning rate of G alone (default: --lr)")
    parser.add_argument("--l1-reduction", choices=("mean", "sum"), default="mean",
                        help="|.|_1 of Eq. 2 and 6 as a mean over elements (default) or as each sample's L1 norm "
                             "(a sum, as the paper writes it)")
    parser.add_argument("--loss-weights", type=_loss_weights, default={}, metavar="NAME=VALUE,...",
                        help="change the paper's loss weights (l2l 0.5, l1 0.4, gan 1, id 0.05, rec 2), e.g. "
                             "id=0.1,gan=0.5; the others keep their defaults")
    parser.add_argument("--lr-schedule", choices=("cosine", "exponential"), default="cosine",
                        help="cosine (default) or exponential (x0.99 per epoch, the reference implementations')")
    parser.add_argument("--weight-init", choices=("auto", "linear", "random"), default="auto",
                        help="linear: start as the rank-25 linear neutraliser of the training pairs; random: plain "
                             "initialisation; auto (default): linear unless --downsample or the PyG layer is used")
    parser.add_argument("--linear-ridge", type=float, default=None,
                        help="ridge of the linear start, relative to the mean eigenvalue (default: chosen on "
                             "held-out training subjects)")
    parser.add_argument("--recognizer-warmup", type=_non_negative_int, default=0, metavar="PAIRS",
                        help="before training from the linear start (or with a new recogniser head), fit R alone "
                             "on the codes of this many training pairs, e.g. 6400 (default 0: off; see the README)")
    parser.add_argument("--variant", choices=("full", "no-l2l", "no-id", "gca", "identity-preserving"), default=None,
                        help="the paper's full, no-l2l, no-id or gca, or identity-preserving (the person's geometry "
                             "outside the expression subspace passes from the input; default full, or with --init "
                             "the variant of the model fine-tuned, with its --fusion-ridge or --fusion-mixture)")
    parser.add_argument("--no-align", action="store_true",
                        help="feed faces to the network as they are, without the similarity fit to the template")
    parser.add_argument("--neutral-pairs", type=_non_negative_int, default=0, metavar="N",
                        help="also train each subject's neutral face as its own pair N times (default 0)")
    parser.add_argument("--input-noise", type=float, default=0.0, metavar="MM",
                        help="train on inputs with Gaussian noise of up to MM mm standard deviation (default 0)")
    parser.add_argument("--expression-dims", type=_positive_int, default=50,
                        help="identity-preserving: dimensions of the expression subspace (default 50)")
    parser.add_argument("--identity-dims", type=_non_negative_int, default=200,
                        help="identity-preserving: dimensions of the identity subspace (default 200)")
    parser.add_argument("--fusion-ridge", action="store_true",
                        help="identity-preserving: inside the expression subspace, start as a ridge map of the input "
                             "and learn per direction how far to trust the decoder instead")
    parser.add_argument("--fusion-mixture", action="store_true",
                        help="identity-preserving: as --fusion-ridge, with one ridge map per training expression, "
                             "weighed by a classifier of the input's expression (the recommended start)")
    parser.add_argument("--laplacian", choices=("combinatorial", "normalized"), default="combinatorial",
                        help="combinatorial L = D - A (the paper's, default) or normalized (CoMA's code)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deterministic", action="store_true", help="use deterministic torch algorithms")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    parser.add_argument("--init", type=Path, default=None, help="fine-tune from this checkpoint")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    parser.add_argument("--amp", choices=("off", "bf16"), default="off",
                        help="mixed precision: bf16 runs the dense layers in bfloat16 (the sparse products stay "
                             "float32); helps on GPUs from Ampere on and CPUs with AVX512-BF16/AMX (default off)")
    parser.add_argument("--downsample", type=_downsample_factors, default=[],
                        help="CoMA-style mesh downsampling for large templates: decimation factors per level, "
                             "e.g. 4,4,4,4 (default: none, the paper's architecture)")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader processes that read batches ahead (default 0: in the training process)")
    parser.set_defaults(handler=_run_train)


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
    from facelab.training.config import LossWeights, TrainConfig

    options = {"identities": args.identities} if args.identities else {}
    return TrainConfig(
        data=args.data, data_format=args.data_format, data_options=options, variant=args.variant or "full",
        laplacian=args.laplacian, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        deterministic=args.deterministic, device=args.device, num_threads=args.threads,
        amp=getattr(args, "amp", "off"), downsample=list(getattr(args, "downsample", [])),
        num_workers=getattr(args, "workers", 0), lr_schedule=getattr(args, "lr_schedule", "cosine"),
        weight_init=getattr(args, "weight_init", "auto"), linear_ridge=getattr(args, "linear_ridge", None),
        recognizer_warmup_samples=getattr(args, "recognizer_warmup", 0),
        generator_lr=getattr(args, "generator_lr", None), l1_reduction=getattr(args, "l1_reduction", "mean"),
        weights=LossWeights(**getattr(args, "loss_weights", {})),
        alignment="none" if getattr(args, "no_align", False) else "similarity",
        neutral_pairs=getattr(args, "neutral_pairs", 0), expression_dims=getattr(args, "expression_dims", 50),
        identity_dims=getattr(args, "identity_dims", 200), input_noise_mm=getattr(args, "input_noise", 0.0),
        fusion_ridge=getattr(args, "fusion_ridge", False), fusion_mixture=getattr(args, "fusion_mixture", False),
    )


def _run_train(args: argparse.Namespace) -> int:
    from facelab.training.events import TrainingControl
    from facelab.training.progress import TqdmProgress
    from facelab.training.trainer import Trainer

    if args.resume and args.init:
        raise FacelabError("--resume and --init exclude each other: resume a run, or start one from a checkpoint.")
    if not args.resume and (args.out / "config.json").exists():
        raise FacelabError(f"{args.out} already holds a run: pass --resume to continue it, or choose another --out.")
    if args.init and args.variant is None:
        # Fine-tuning keeps the model's method unless another is named.
        from facelab.training.checkpoint import load_checkpoint
        from facelab.training.config import architecture_of

        kept = architecture_of(load_checkpoint(args.init, with_optimizers=False).meta)
        args.variant = kept["variant"]
        if not (args.fusion_ridge or args.fusion_mixture):
            args.fusion_ridge, args.fusion_mixture = kept["fusion_ridge"], kept["fusion_mixture"]
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


# ---- facelab neutralize --------------------------------------------------------------------------
def _add_neutralize(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "neutralize", help="predict the neutral face (and identity) of an expressive mesh, a folder or a dataset",
        description="Write the predicted neutral mesh, print the top-5 predicted training subjects and, with a "
                    "ground truth, the mean and max per-vertex error (the PLY output then carries an 'error' "
                    "property). For a folder or dataset, --out is a folder: every mesh is predicted in batches and written "
                    "there in the input's layout and format, with a report neutralize.csv; outputs that exist are "
                    "kept unless --overwrite.",
    )
    parser.add_argument("input", type=Path,
                        help="an expressive mesh registered to the model's template, or a folder of meshes, a dataset "
                             "folder, a morphable-model .npz or 'synth'")
    parser.add_argument("--out", required=True, type=Path,
                        help="the predicted neutral mesh (.ply, .obj, .off, .stl), or for a folder or dataset the "
                             "output folder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint (default: the bundled model)")
    parser.add_argument("--ground-truth", type=Path, default=None,
                        help="the true neutral mesh, to measure the error (a dataset's pairs give it for each mesh)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--format", dest="mesh_format", choices=("ply", "obj", "off"), default=None,
                        help="folder or dataset: the format of every output (default: each input's own; ply for "
                             "generated data)")
    parser.add_argument("--overwrite", action="store_true",
                        help="folder or dataset: predict again the meshes whose output exists (default: keep them)")
    parser.add_argument("--layout", default=None,
                        help="folder or dataset: force a dataset layout (synth, coma, facewarehouse, facescape, "
                             "ict-facekit, generic)")
    parser.add_argument("--identities", type=_positive_int, default=None,
                        help="identities to generate for synth or morphable-model data (default 100)")
    parser.add_argument("--batch-size", type=_positive_int, default=None,
                        help="folder or dataset: meshes per model call (default 32)")
    parser.add_argument("--workers", type=_positive_int, default=None,
                        help="folder or dataset: threads that read and write meshes (default 4)")
    _add_no_align(parser)
    parser.set_defaults(handler=_run_neutralize)


def _load_model(checkpoint: Path | None, align: bool = True):
    from facelab.model import FaceLabModel

    choice = None if align else False  # the checkpoint's own alignment, or none at all
    if not checkpoint:
        return FaceLabModel.bundled(align=choice)
    model = FaceLabModel.load(checkpoint, align=choice)
    if Path(checkpoint).is_dir() and model.source.name != "best":
        print(f"facelab: note: {checkpoint} has no 'best' checkpoint: using '{model.source.name}'", file=sys.stderr)
    return model


def _add_no_align(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-align", action="store_true",
                        help="feed the mesh to the network as it is, without fitting it to the model's template "
                             "frame first (the paper's behaviour, for comparison)")


def _run_neutralize(args: argparse.Namespace) -> int:
    from facelab.batch import is_batch_input
    from facelab.evaluation.metrics import per_vertex_error
    from facelab.mesh import read_mesh, write_mesh

    if is_batch_input(args.input):
        return _run_neutralize_batch(args)
    if args.mesh_format is not None:
        raise FacelabError("--format is for a folder or dataset: for one mesh, the extension of --out chooses "
                           "the format.")
    model = _load_model(args.checkpoint, align=not args.no_align)
    mesh = model.check_mesh(read_mesh(args.input))
    truth = model.check_mesh(read_mesh(args.ground_truth)) if args.ground_truth else None
    predicted = model.neutralise_mesh(mesh)
    result: dict = {"output": str(args.out), "top5": [[s, p] for s, p in model.top_subjects(mesh.vertices, 5)]}
    scalars = None
    if truth is not None:
        error = per_vertex_error(predicted.vertices, truth.vertices)
        result["mean_error_mm"] = float(error.mean())
        result["max_error_mm"] = float(error.max())
        if args.out.suffix.lower() == ".ply":
            scalars = {"error": error}
    write_mesh(predicted, args.out, vertex_scalars=scalars)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"wrote {args.out}")
    if result["top5"]:
        print("top-5 predicted subjects:")
        for subject, probability in result["top5"]:
            print(f"  {subject:<24} {probability:.3f}")
    if truth is not None:
        print(f"error: mean {result['mean_error_mm']:.3f} mm, max {result['max_error_mm']:.3f} mm")
    return 0


def _run_neutralize_batch(args: argparse.Namespace) -> int:
    from facelab.batch import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, list_meshes, neutralise_meshes

    if args.ground_truth is not None:
        raise FacelabError("--ground-truth is for one mesh: for a dataset, its pairs give each mesh's ground truth.")
    options = {"identities": args.identities} if args.identities else {}
    source = list_meshes(args.input, layout=args.layout, exclude=args.out, **options)
    model = _load_model(args.checkpoint, align=not args.no_align)
    report = neutralise_meshes(model, source, args.out, fmt=args.mesh_format, overwrite=args.overwrite,
                               batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
                               workers=args.workers or DEFAULT_WORKERS)
    if report.nothing_done:
        reason = report.skipped[0]["reason"].rstrip(".")
        raise FacelabError(f"none of the {len(report.rows)} meshes of {args.input} could be neutralised, as "
                           f"{report.path} lists (first: {reason}).")
    if args.json:
        print(json.dumps(report.summary(), indent=2))
        return 0
    kept = report.count("kept")
    print(f"wrote {report.count('written')} neutralised meshes to {args.out}"
          + (f", kept {kept} from an earlier run (--overwrite redoes them)" if kept else ""))
    if report.skipped:
        print(f"skipped {len(report.skipped)} mesh(es) that could not be neutralised (listed with the reason in "
              f"{report.path})")
    mean_error = report.mean_error_mm()
    if mean_error is not None:
        print(f"mean error to the ground-truth neutral: {mean_error:.3f} mm")
    print(f"report: {report.path}")
    return 0


# ---- facelab export ------------------------------------------------------------------------------
def _add_export(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export", help="write any dataset facelab reads as mesh files in the generic layout",
        description="Write a dataset (SynthFaces, CoMA, FaceWarehouse, FaceScape, ICT-FaceKit, a generic folder) as "
                    "<out>/<subject>/[<group>/]<expression>.<format> in millimetres, with a manifest.csv of its "
                    "labels; facelab reads the folder back as the same dataset.",
    )
    parser.add_argument("data", help="'synth', a dataset folder or a morphable-model .npz")
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder (new, empty, or a previous facelab export)")
    parser.add_argument("--format", dest="mesh_format", choices=("ply", "obj"), default="ply",
                        help="mesh file format (default ply)")
    parser.add_argument("--layout", default=None,
                        help="force a dataset layout (synth, coma, facewarehouse, facescape, ict-facekit, generic)")
    parser.add_argument("--identities", type=_positive_int, default=None,
                        help="identities to generate for synth or morphable-model data (default 100)")
    parser.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from facelab.batch import export_dataset

    options = {"identities": args.identities} if args.identities else {}
    dataset = export_dataset(args.data, args.out, args.mesh_format, layout=args.layout, **options)
    print(f"wrote {len(dataset)} meshes of {len(dataset.subjects)} subjects to {args.out}")
    return 0


# ---- facelab identify ----------------------------------------------------------------------------
def _add_identify(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "identify", help="rank the subjects of a gallery dataset for a probe mesh or folder",
        description="Rank the subjects of a gallery (each subject's neutral faces) for each probe mesh by cosine "
                    "similarity of identity embeddings, as 'facelab evaluate' computes rank-k identification.",
    )
    parser.add_argument("probe", type=Path, help="a mesh registered to the model's template, or a folder of them")
    parser.add_argument("--gallery", required=True, help="'synth', a dataset folder or a morphable-model .npz")
    parser.add_argument("--k", type=_positive_int, default=5, help="subjects listed per probe (default 5)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint (default: the bundled model)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    _add_no_align(parser)
    parser.set_defaults(handler=_run_identify)


def _run_identify(args: argparse.Namespace) -> int:
    from facelab.batch import identify

    model = _load_model(args.checkpoint, align=not args.no_align)
    result = identify(model, args.probe, args.gallery, k=args.k)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"gallery: {result['gallery']} ({result['gallery_subjects']} subjects)")
    for probe in result["probes"]:
        print(probe["probe"] + (f" (subject {probe['subject']})" if probe["subject"] else ""))
        for match in probe["matches"]:
            print(f"  {match['rank']:>3}  {match['subject']:<24} {match['similarity']:.3f}")
    if result["skipped"]:
        print(f"skipped {len(result['skipped'])} probe(s) that could not be used:")
        for skipped in result["skipped"]:
            print(f"  {skipped['probe']}: {skipped['reason']}")
    return 0


# ---- facelab evaluate ----------------------------------------------------------------------------
def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "evaluate", help="measure neutralisation error and identification on the test split",
        description="The paper's protocol on the test split of unseen subjects: mean per-vertex error (mm), "
                    "rank-1/rank-5 identification, and the do-nothing and linear baselines on the same split.",
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint (default: the bundled model)")
    parser.add_argument("--data", default=None,
                        help="'synth' or a dataset path (default: the data the model was trained on; "
                             "SynthFaces is evaluated on its default 100 identities)")
    parser.add_argument("--format", dest="data_format", default=None, help="force a dataset layout")
    parser.add_argument("--identities", type=_positive_int, default=None,
                        help="identities to generate for synth or morphable-model data (SynthFaces default 100; "
                             "extra SynthFaces identities only join the training split, so the test subjects stay "
                             "the same and the linear baseline is fitted on more data, e.g. the model's own)")
    parser.add_argument("--json", dest="json_out", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--figures", type=Path, default=None, metavar="DIR",
                        help="also write the paper's figures of this run into DIR as PNG and SVG: the mean error "
                             "per vertex on the template (model and do-nothing), per-expression errors beside the "
                             "baselines', and the cumulative error curve")
    parser.add_argument("--no-baselines", action="store_true", help="skip the do-nothing and linear baselines")
    parser.add_argument("--no-robustness", action="store_true",
                        help="skip the robustness rows (neutral in, noise, moved inputs)")
    _add_no_align(parser)
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from facelab.atomic import atomic_write_text
    from facelab.data.layouts import load_dataset
    from facelab.evaluation.evaluate import evaluate_model_with_errors
    from facelab.evaluation.figures import check_figure_folder, write_evaluation_figures

    if args.figures is not None:
        check_figure_folder(args.figures)  # before the evaluation, which can take minutes
    model = _load_model(args.checkpoint, align=not args.no_align)
    trained_on = model.meta.get("data", {})
    split_config = model.meta.get("train_config", {})
    source = args.data if args.data is not None else trained_on.get("source", "synth")
    options = dict(trained_on.get("options", {})) if source == trained_on.get("source") else {}
    # Extra SynthFaces identities only ever train (the default set holds every test subject), so
    # the model's own count keeps the test subjects and fits the linear baseline on its own
    # training identities.
    if args.identities is not None:
        options["identities"] = args.identities
    dataset = load_dataset(source, format=args.data_format, **options)
    split = dataset.split(split_config.get("train_fraction", 0.7), split_config.get("split_seed", 0))
    result, errors = evaluate_model_with_errors(model, dataset, split, baselines=not args.no_baselines,
                                                robustness=not args.no_robustness)
    if result["excluded_training_subjects"]:
        print(f"warning: left out {len(result['excluded_training_subjects'])} test subject(s) the model trained on: "
              f"{', '.join(result['excluded_training_subjects'])}", file=sys.stderr)
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(result, indent=2))
    _print_evaluation(result)
    if args.figures is not None:
        written = write_evaluation_figures(errors, model.template.vertices, model.triangles, args.figures)
        print(f"figures in {args.figures}: {', '.join(sorted({path.stem for path in written}))} (PNG and SVG)")
    return 0


def _print_evaluation(result: dict) -> None:
    print(f"{result['data']}: {result['test_subjects']} unseen test subjects, {result['test_pairs']} pairs")
    print(f"{'method':<12} {'mean (mm)':>10} {'std':>8} {'median':>8} {'rank-1':>8} {'rank-5':>8}")
    print(f"{'facelab':<12} {result['mean_error_mm']:>10.3f} {result['std_error_mm']:>8.3f} "
          f"{result['median_error_mm']:>8.3f} {result['rank1']:>8.1%} {result['rank5']:>8.1%}")
    for name, row in result.get("baselines", {}).items():
        rank1 = f"{row['rank1']:>8.1%}" if "rank1" in row else f"{'':>8}"
        print(f"{name:<12} {row['mean_error_mm']:>10.3f} {'':>8} {'':>8} {rank1}")
    print(f"pairs worse than their input: {result['worse_than_input']:.1%}")
    for name, value in result.get("robustness", {}).items():
        print(f"  {name:<18} {value:.3f} mm")


# ---- facelab gui ---------------------------------------------------------------------------------
def _add_gui(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "gui", help="open the desktop app",
        description="Open the desktop app: input, predicted neutral and ground-truth neutral side by side with "
                    "error heatmaps, a dataset browser, identity matches, training in the background and figure "
                    "export. By default it opens the SynthFaces test split with the bundled model.",
    )
    parser.add_argument("input", nargs="?", type=Path, default=None, help="an expressive mesh to open (optional)")
    parser.add_argument("--ground-truth", type=Path, default=None, help="the true neutral of INPUT")
    parser.add_argument("--data", default=None,
                        help="'synth' or a dataset folder or file to browse (default: synth, unless INPUT is given)")
    parser.add_argument("--identities", type=_positive_int, default=None, help="SynthFaces identities (default 100)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint (default: the bundled model)")
    parser.add_argument("--screenshot", type=Path, default=None,
                        help="save a PNG of the window once the first sample is shown, then quit")
    parser.set_defaults(handler=_run_gui)


def _run_gui(args: argparse.Namespace) -> int:
    from facelab.app.launch import run_gui

    if args.ground_truth and not args.input:
        raise FacelabError("--ground-truth needs an INPUT mesh: the ground truth belongs to an input.")
    for path in (args.input, args.ground_truth, args.checkpoint):
        if path is not None and not path.exists() and not path.with_name(path.name + ".json").exists():
            raise FacelabError(f"{path} does not exist.")
    if args.screenshot is not None and args.screenshot.suffix.lower() != ".png":
        raise FacelabError(f"{args.screenshot}: the screenshot is written as PNG, expected a name ending in .png.")
    data = args.data or (None if args.input else "synth")
    return run_gui(data=data, checkpoint=str(args.checkpoint) if args.checkpoint else None,
                   input_mesh=str(args.input) if args.input else None,
                   ground_truth=str(args.ground_truth) if args.ground_truth else None,
                   screenshot=str(args.screenshot) if args.screenshot else None, identities=args.identities)


# ---- facelab render ------------------------------------------------------------------------------
def _figure_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 1 and 4, got {text}") from None
    if not 1.0 <= value <= 4.0:
        raise argparse.ArgumentTypeError(f"expected a number between 1 and 4, got {text}")
    return value


def _add_render(commands: argparse._SubParsersAction) -> None:
    from facelab.render import COLORMAPS, DEFAULT_VIEW, RANGE_MODES, VIEW_PRESETS

    parser = commands.add_parser(
        "render", help="render the app's figure of a mesh, a folder or a dataset off-screen (no display needed)",
        description="Render input, predicted neutral and (with --ground-truth) the ground truth side by side, the "
                    "prediction coloured by its per-vertex error in mm with a scalar bar, into a PNG, off-screen. "
                    "For a folder or dataset, --out is a folder: one figure per mesh in the input's layout (a "
                    "dataset's pairs give the ground truth), predicted in batches; figures that exist are kept "
                    "unless --overwrite.",
    )
    parser.add_argument("input", type=Path,
                        help="an expressive mesh registered to the model's template, or a folder of meshes, a dataset "
                             "folder, a morphable-model .npz or 'synth'")
    parser.add_argument("--out", required=True, type=Path,
                        help="the PNG to write, or for a folder or dataset the output folder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint (default: the bundled model)")
    parser.add_argument("--ground-truth", type=Path, default=None, help="the true neutral mesh, to colour the error")
    parser.add_argument("--scale", type=_figure_scale, default=1.0,
                        help="1 to 4: each panel is 480 x 540 pixels times this (default 1)")
    parser.add_argument("--view", choices=tuple(VIEW_PRESETS), default=DEFAULT_VIEW)
    parser.add_argument("--colormap", choices=COLORMAPS, default=COLORMAPS[0])
    parser.add_argument("--range", dest="range_mode", choices=RANGE_MODES, default="percentile",
                        help="colour range: a percentile of the errors (default) or fixed (see --max)")
    parser.add_argument("--max", dest="fixed_max", type=float, default=5.0, help="top of the fixed range in mm")
    parser.add_argument("--percentile", type=float, default=99.0, help="percentile for the range (default 99)")
    parser.add_argument("--displacement", action="store_true", help="colour the input by its displacement")
    parser.add_argument("--transparent", action="store_true", help="transparent background")
    parser.add_argument("--overwrite", action="store_true",
                        help="folder or dataset: draw again the figures that exist (default: keep them)")
    parser.add_argument("--layout", default=None,
                        help="folder or dataset: force a dataset layout (synth, coma, facewarehouse, facescape, "
                             "ict-facekit, generic)")
    parser.add_argument("--identities", type=_positive_int, default=None,
                        help="identities to generate for synth or morphable-model data (default 100)")
    parser.add_argument("--batch-size", type=_positive_int, default=None,
                        help="folder or dataset: meshes per model call (default 8)")
    parser.add_argument("--workers", type=_positive_int, default=None,
                        help="folder or dataset: threads that read meshes and write figures (default 4)")
    _add_no_align(parser)
    parser.set_defaults(handler=_run_render)


def _render_style(args: argparse.Namespace):
    from facelab.render import DisplayStyle

    return DisplayStyle(colormap=args.colormap, range_mode=args.range_mode, fixed_max_mm=args.fixed_max,
                        percentile=args.percentile, displacement=args.displacement).validate()


def _run_render(args: argparse.Namespace) -> int:
    from facelab.batch import is_batch_input
    from facelab.evaluation.sample import compute_sample
    from facelab.mesh import read_mesh
    from facelab.render import check_png, render_sample

    if is_batch_input(args.input):
        return _run_render_batch(args)
    check_png(args.out)
    style = _render_style(args)
    model = _load_model(args.checkpoint, align=not args.no_align)
    mesh = model.check_mesh(read_mesh(args.input))
    truth = model.check_mesh(read_mesh(args.ground_truth)) if args.ground_truth else None
    sample = compute_sample(model, mesh.vertices, None if truth is None else truth.vertices, label=args.input.name)
    width, height = render_sample(sample, model.triangles, args.out, style=style, scale=args.scale,
                                  transparent=args.transparent, view=args.view)
    print(f"wrote {args.out} ({width} x {height} pixels)")
    return 0


def _run_render_batch(args: argparse.Namespace) -> int:
    from facelab.batch import DEFAULT_WORKERS, RENDER_BATCH_SIZE, list_meshes, render_meshes

    if args.ground_truth is not None:
        raise FacelabError("--ground-truth is for one mesh: for a dataset, its pairs give each mesh's ground truth.")
    if args.out.suffix.lower() == ".png":
        raise FacelabError(f"{args.out}: for a folder or dataset --out is the folder to write the figures into, "
                           "not a PNG.")
    style = _render_style(args)
    options = {"identities": args.identities} if args.identities else {}
    source = list_meshes(args.input, layout=args.layout, exclude=args.out, **options)
    model = _load_model(args.checkpoint, align=not args.no_align)
    report = render_meshes(model, source, args.out, style=style, scale=args.scale, transparent=args.transparent,
                           view=args.view, overwrite=args.overwrite,
                           batch_size=args.batch_size or RENDER_BATCH_SIZE, workers=args.workers or DEFAULT_WORKERS)
    print(report.summary(args.input))
    return 0


# ---- the command ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facelab",
        description="Neutralise facial expressions on registered 3D face meshes and recognise identity.",
    )
    parser.add_argument("--version", action="version", version=f"facelab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_train, _add_neutralize, _add_evaluate, _add_render, _add_gui, _add_synth, _add_inspect,
                _add_import_ict, _add_export, _add_identify):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    from facelab.nn.cpu_memory import keep_freed_memory

    keep_freed_memory()  # a command is a whole process: reuse freed tensor memory (see cpu_memory.py)
    try:
        return args.handler(args)
    except FacelabError as error:
        print(f"facelab: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as error:
        # A path the system refused (no such folder, no permission, disk full) outside the
        # writers that say so themselves: still the user's to fix, so one sentence, no traceback.
        if not is_path_error(error):
            raise
        print(f"facelab: error: {os_error_sentence(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("facelab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
