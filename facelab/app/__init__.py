"""The desktop application (``facelab gui``): three linked views, dataset browsing, identity,
training in the background and figure export.

Modules without the ``_qt`` prefix hold state and logic that runs without Qt (``sample``,
``session``, ``identity``, ``files``, ``export``) or wraps Qt services (``settings``,
``workers``); ``_qt_*`` modules are widgets. Importing this package imports no Qt: call
:func:`main` (or ``facelab gui``) to start the app.
"""

from __future__ import annotations


def main(argv=None) -> int:
    """Start the app; the arguments are those of ``facelab gui``."""
    from facelab.cli import main as cli_main

    return cli_main(["gui", *(argv or [])])
