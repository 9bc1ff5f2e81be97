"""The neural network (paper Secs. 2 and 3): a mesh autoencoder with Chebyshev convolutions, a
latent translator with a conditional discriminator, and an identity recogniser.

One module per file: :mod:`~facelab.nn.cheb_conv` (the graph convolution), :mod:`.encoder`,
:mod:`.decoder` (its first layer a :mod:`.wide_linear`), :mod:`.generator`, :mod:`.discriminator`,
:mod:`.recognizer`, and :mod:`.network`, which assembles them per variant.
"""

from facelab.nn.cheb_conv import (
    CHEB_CONV_IMPLEMENTATIONS,
    MeshChebConv,
    PygChebConv,
    adapt_cheb_state_dict,
    make_cheb_conv,
    pyg_graph_of,
)
from facelab.nn.decoder import Decoder
from facelab.nn.discriminator import Discriminator
from facelab.nn.encoder import Encoder
from facelab.nn.generator import Generator
from facelab.nn.network import VARIANTS, NetworkConfig, NeutralisationNetwork, build_network
from facelab.nn.recognizer import Recognizer
from facelab.nn.wide_linear import WideLinear

__all__ = [
    "CHEB_CONV_IMPLEMENTATIONS",
    "Decoder",
    "Discriminator",
    "Encoder",
    "Generator",
    "MeshChebConv",
    "NetworkConfig",
    "NeutralisationNetwork",
    "PygChebConv",
    "Recognizer",
    "VARIANTS",
    "WideLinear",
    "adapt_cheb_state_dict",
    "build_network",
    "make_cheb_conv",
    "pyg_graph_of",
]
