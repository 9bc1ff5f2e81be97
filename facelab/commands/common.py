"""What the ``facelab`` commands share: exit statuses, argument types and loading the model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's convention for a command ended by Ctrl-C (128 + SIGINT)


def int_at_least(minimum: int, kind: str):
    """An argparse type: an integer of at least ``minimum`` (``kind`` names it in the error)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {text}")
        return value
    parse.__name__ = f"{kind} integer"  # argparse names the type in "invalid ... value" errors
    return parse


positive_int = int_at_least(1, "positive")
non_negative_int = int_at_least(0, "non-negative")


def load_model(checkpoint: Path | None, align: bool = True):
    from facelab.model import FaceLabModel

    choice = None if align else False  # the checkpoint's own alignment, or none at all
    if not checkpoint:
        return FaceLabModel.bundled(align=choice)
    model = FaceLabModel.load(checkpoint, align=choice)
    if Path(checkpoint).is_dir() and model.source.name != "best":
        print(f"facelab: note: {checkpoint} has no 'best' checkpoint: using '{model.source.name}'", file=sys.stderr)
    return model


def add_no_align(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-align", action="store_true",
                        help="feed the mesh to the network as it is, without fitting it to the model's template "
                             "frame first (the paper's behaviour, for comparison)")


def add_folder_input(parser: argparse.ArgumentParser, batch_size: int | None = None, workers_do: str = "") -> None:
    """The options of a command that takes a folder or dataset: its layout and sampled identities,
    and (with ``batch_size``, the default shown) the model's batch and the I/O threads."""
    parser.add_argument("--layout", default=None,
                        help="folder or dataset: force a dataset layout (synth, coma, facewarehouse, facescape, "
                             "ict-facekit, generic)")
    parser.add_argument("--identities", type=positive_int, default=None,
                        help="identities to generate for synth or morphable-model data (default 100)")
    if batch_size is not None:
        parser.add_argument("--batch-size", type=positive_int, default=None,
                            help=f"folder or dataset: meshes per model call (default {batch_size})")
        parser.add_argument("--workers", type=positive_int, default=None,
                            help=f"folder or dataset: threads that {workers_do} (default 4)")
