"""``facelab evaluate``: the paper's protocol on the test split."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facelab.commands.common import add_no_align, load_model, positive_int

# ---- facelab evaluate ----------------------------------------------------------------------------
def add_evaluate(commands: argparse._SubParsersAction) -> None:
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
    parser.add_argument("--identities", type=positive_int, default=None,
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
    add_no_align(parser)
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from facelab.atomic import atomic_write_text
    from facelab.data.layouts import load_dataset
    from facelab.evaluation.evaluate import evaluate_model_with_errors
    from facelab.evaluation.figures import check_figure_folder, write_evaluation_figures

    if args.figures is not None:
        check_figure_folder(args.figures)  # before the evaluation, which can take minutes
    model = load_model(args.checkpoint, align=not args.no_align)
    trained_on = model.meta.get("data", {})
    source = args.data if args.data is not None else trained_on.get("source", "synth")
    options = dict(trained_on.get("options", {})) if source == trained_on.get("source") else {}
    # Extra SynthFaces identities only ever train (the default set holds every test subject), so
    # the model's own count keeps the test subjects and fits the linear baseline on its own
    # training identities.
    if args.identities is not None:
        options["identities"] = args.identities
    dataset = load_dataset(source, format=args.data_format, **options)
    split = dataset.split_of(model.meta.get("train_config"))
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
    read = result.get("expression_recognition")
    if read and read["pairs"]:
        print(f"expression read right: {read['accuracy']:.1%} of {read['pairs']} pairs ({read['top3_accuracy']:.1%} "
              f"in the top three); error read right {read['error_read_right_mm']:.3f} mm, "
              f"read wrong {read['error_read_wrong_mm']:.3f} mm")
    elif read:
        print("expression reading not scored: no test pair's label is an expression the model learned")
    for name, value in result.get("robustness", {}).items():
        # shares (of pairs, of probes ranked first, of faces read as ...) as percentages, errors in mm
        share = name.endswith("worse_than_input") or name.startswith("rank1") or "_read_as_" in name
        print(f"  {name:<26} {value:.1%}" if share else f"  {name:<26} {value:.3f} mm")
