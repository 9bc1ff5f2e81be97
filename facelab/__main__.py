"""``python -m facelab`` is the ``facelab`` command."""

import sys

from facelab.cli import main

sys.exit(main())
