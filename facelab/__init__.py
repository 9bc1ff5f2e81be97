"""facelab: neutralise facial expressions on registered 3D face meshes and recognise identity.

The core (meshes, datasets, network, training, evaluation) never imports Qt; the desktop
application lives in :mod:`facelab.app` and the command line in :mod:`facelab.cli`.
"""

from facelab.errors import FacelabError
from facelab.openmp import short_spin

short_spin()  # before torch is imported anywhere: see facelab.openmp

__version__ = "0.1.0"

__all__ = ["FacelabError", "__version__"]
