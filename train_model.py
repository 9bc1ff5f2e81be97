#!/usr/bin/env python
"""Train a facelab model: the same command as ``facelab train`` (one implementation).

    python train_model.py --data synth --out runs/synth --epochs 30
"""

import sys

from facelab.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
