"""The ``facelab`` command: a thin layer over the core.

Every user error (a bad file, an unknown layout, a mismatched template) is a
:class:`~facelab.errors.FacelabError`; it is printed as one sentence and the command exits with
status 2, without a traceback. The commands live by group in :mod:`facelab.commands`; this module
assembles the parser and runs the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from facelab import __version__
from facelab.commands import data, evaluate, neutralize, render, train
from facelab.commands.common import EXIT_INTERRUPTED, EXIT_USER_ERROR
from facelab.commands.train import _downsample_factors, train_config_from_args  # noqa: F401  (imported from here)
from facelab.errors import FacelabError, is_path_error, os_error_sentence


# ---- the command ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facelab",
        description="Neutralise facial expressions on registered 3D face meshes and recognise identity.",
    )
    parser.add_argument("--version", action="version", version=f"facelab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (train.add_train, neutralize.add_neutralize, evaluate.add_evaluate, render.add_render,
                render.add_gui, data.add_synth, data.add_inspect, data.add_import_ict, data.add_export,
                neutralize.add_identify):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    from facelab.cpu_memory import keep_freed_memory

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
