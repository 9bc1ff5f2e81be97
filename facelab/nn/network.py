"""The whole neutralisation network (paper Sec. 3) and its configuration.

Variants (paper Tables 1 and 2):

* ``full``:   Enc, Dec, G, D, R — the paper's method.
* ``no-l2l``: Enc, Dec, G, R — without the latent-to-latent loss ``L_l2l`` (L1 + GAN, Eq. 4), so
  without the discriminator; G is trained only through the reconstruction and identity losses.
* ``no-id``:  Enc, Dec, G, D — without the identity loss ``L_id``, so without the recogniser.
* ``gca``:    Enc, Dec only — the adapted GCA baseline, an autoencoder trained to map an
  expressive face straight to its neutral face.

Beyond the paper:

* ``identity-preserving``: the full method (Enc, Dec, G, D, R and their losses), whose decoded
  face is kept only inside the subspace that expressions move; the person's geometry outside
  it comes from the input (:class:`~facelab.nn.subspace_fusion.SubspaceFusion`), so it is not
  squeezed through the 25-number code.

Every method takes and returns NORMALISED vertex tensors (B, n, 3): normalising with the
dataset's mean and standard deviation, and undoing it, happens outside the network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from facelab.errors import FacelabError, TopologyMismatchError
from facelab.mesh.topology import LAPLACIAN_KINDS, scaled_laplacian
from facelab.mesh.validation import triangles_hash
from facelab.nn.cheb_conv import CHEB_CONV_IMPLEMENTATIONS, adapt_cheb_state_dict
from facelab.nn.decoder import Decoder
from facelab.nn.discriminator import Discriminator
from facelab.nn.encoder import Encoder
from facelab.nn.generator import Generator
from facelab.nn.recognizer import Recognizer
from facelab.nn.subspace_fusion import SubspaceFusion
from facelab.nn.variants import VARIANTS

_WITH_GENERATOR = {"full", "no-l2l", "no-id", "identity-preserving"}
_WITH_DISCRIMINATOR = {"full", "no-id", "identity-preserving"}
_WITH_RECOGNIZER = {"full", "no-l2l", "identity-preserving"}
_WITH_FUSION = {"identity-preserving"}

VERTEX_CHANNELS = 3  # x, y, z


@dataclass(frozen=True)
class NetworkConfig:
    """Everything that fixes the network's architecture, JSON-serialisable via :meth:`to_dict`.

    The template's triangles are not part of it (the checkpoint stores them); their
    :func:`~facelab.mesh.triangles_hash` is, so that a network is never built on another topology.
    Invalid values raise :class:`~facelab.errors.FacelabError` (they come from files and flags).
    """

    n_vertices: int
    triangles_hash: str
    variant: str = "full"
    n_subjects: int = 0  # training subjects; needed by the variants with a recogniser
    laplacian_kind: str = "combinatorial"  # the paper's L = D - A; "normalized" is CoMA's code
    K: int = 6
    encoder_channels: tuple[int, ...] = (16, 16, 16, 32)
    decoder_channels: tuple[int, ...] = (32, 16, 16, VERTEX_CHANNELS)
    latent: int = 25
    generator_hidden: tuple[int, ...] = (100, 200, 50)
    discriminator_hidden: tuple[int, ...] = (100, 200, 50)
    recognizer_hidden: int = 100
    conv: str = "fast"
    # CoMA-style mesh downsampling for large templates: one decimation factor per pooling level
    # (e.g. (4, 4, 4, 4)); empty is the paper's architecture. See facelab/mesh/hierarchy.py.
    downsample: tuple[int, ...] = ()
    # identity-preserving: the columns of the expression and identity subspaces (SubspaceFusion)
    expression_dims: int = 50
    identity_dims: int = 200
    # identity-preserving: inside U, a ridge map of the input mixed with the decoder (SubspaceFusion)
    fusion_ridge: bool = False
    # identity-preserving: inside U, one linear map of the input per expression named here, chosen
    # by a classifier and mixed with the decoder (SubspaceFusion, ExpressionMixture); empty: none
    fusion_expressions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("encoder_channels", "decoder_channels", "generator_hidden", "discriminator_hidden", "downsample"):
            object.__setattr__(self, name, tuple(int(width) for width in getattr(self, name)))
        object.__setattr__(self, "fusion_expressions", tuple(str(name) for name in self.fusion_expressions))
        _require(self.variant in VARIANTS, f"unknown variant {self.variant!r}: expected one of {', '.join(VARIANTS)}")
        _require(
            self.laplacian_kind in LAPLACIAN_KINDS,
            f"unknown Laplacian kind {self.laplacian_kind!r}: expected one of {', '.join(LAPLACIAN_KINDS)}",
        )
        _require(
            self.conv in CHEB_CONV_IMPLEMENTATIONS,
            f"unknown Chebyshev implementation {self.conv!r}: expected one of {', '.join(CHEB_CONV_IMPLEMENTATIONS)}",
        )
        _require(self.n_vertices >= 1, f"n_vertices must be positive, got {self.n_vertices}")
        _require(self.K >= 1, f"K must be at least 1, got {self.K}")
        _require(self.latent >= 1, f"latent must be positive, got {self.latent}")
        _require(
            len(self.encoder_channels) >= 1 and len(self.decoder_channels) >= 1,
            "the encoder and the decoder need at least one Chebyshev layer each",
        )
        _require(
            self.decoder_channels[-1] == VERTEX_CHANNELS,
            f"the decoder's last layer outputs vertex coordinates: expected {VERTEX_CHANNELS} channels, "
            f"got {self.decoder_channels[-1]}",
        )
        _require(
            len(self.downsample) <= min(len(self.encoder_channels), len(self.decoder_channels))
            and all(factor >= 2 for factor in self.downsample),
            f"downsampling takes at most one factor (>= 2) per Chebyshev layer "
            f"({min(len(self.encoder_channels), len(self.decoder_channels))}), got {list(self.downsample)}",
        )
        _require(self.expression_dims >= 1 and self.identity_dims >= 0,
                 f"the subspaces need at least 1 expression dimension and no negative identity ones, "
                 f"got {self.expression_dims} and {self.identity_dims}")
        _require(
            not self.has_recognizer or self.n_subjects >= 1,
            f"variant {self.variant!r} has a recogniser and needs n_subjects >= 1, got {self.n_subjects}",
        )

    @classmethod
    def for_template(cls, triangles: np.ndarray, n_vertices: int, **options: Any) -> NetworkConfig:
        """The configuration for a template's topology; ``options`` override the paper's defaults."""
        return cls(n_vertices=int(n_vertices), triangles_hash=triangles_hash(triangles), **options)

    @property
    def has_generator(self) -> bool:
        return self.variant in _WITH_GENERATOR

    @property
    def has_discriminator(self) -> bool:
        return self.variant in _WITH_DISCRIMINATOR

    @property
    def has_recognizer(self) -> bool:
        return self.variant in _WITH_RECOGNIZER

    @property
    def has_fusion(self) -> bool:
        return self.variant in _WITH_FUSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: tuples become lists."""
        values = dataclasses.asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> NetworkConfig:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise :class:`FacelabError`."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        _require(not unknown, f"unknown network configuration keys: {', '.join(unknown)}")
        missing = sorted(name for name in ("n_vertices", "triangles_hash") if name not in values)
        _require(not missing, f"the network configuration lacks {', '.join(missing)}")
        return cls(**values)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise FacelabError(message)


class NeutralisationNetwork(nn.Module):
    """Enc, Dec, and (per variant) the latent translator G, discriminator D and recogniser R.

    Built from a :class:`NetworkConfig` and the template's triangles (whose hash must match the
    configuration's); the scaled Laplacian of the configured kind is computed from them. With
    ``config.downsample``, the template's shape (``template_vertices``, (n, 3)) is decimated
    into a hierarchy of coarser templates (cached; see :mod:`facelab.mesh.hierarchy`); without
    it, the hierarchy last cached for this topology is used.

    Inference: :meth:`neutralise` and :meth:`identity_embedding`. Training: :meth:`forward` gives
    every intermediate the losses need; D is applied by the loss code itself, since its two
    steps detach different inputs. :meth:`load_state_dict` accepts weights saved with either
    Chebyshev implementation (``conv="fast"`` or ``"pyg"``).
    """

    def __init__(self, config: NetworkConfig, triangles: np.ndarray, template_vertices: np.ndarray | None = None) -> None:
        super().__init__()
        triangles = np.array(triangles, dtype=np.int64).reshape(-1, 3)  # a private, read-only copy
        if triangles_hash(triangles) != config.triangles_hash:
            raise TopologyMismatchError(
                f"the triangles given do not match the network's template (topology {config.triangles_hash}); "
                "the model was trained on another template."
            )
        if triangles.size and (triangles.min() < 0 or triangles.max() >= config.n_vertices):
            raise TopologyMismatchError(
                f"the template's triangles index vertices outside 0..{config.n_vertices - 1}."
            )
        self.config = config
        self.triangles = triangles
        self.triangles.setflags(write=False)
        laplacian = scaled_laplacian(triangles, config.n_vertices, config.laplacian_kind)
        common = dict(latent=config.latent, K=config.K, conv=config.conv)
        coarse_laplacians, down, up = [], [], []
        if config.downsample:
            from facelab.mesh.hierarchy import mesh_hierarchy

            if template_vertices is not None and np.shape(template_vertices) != (config.n_vertices, VERTEX_CHANNELS):
                raise TopologyMismatchError(f"the template's vertices are {np.shape(template_vertices)}, "
                                            f"expected ({config.n_vertices}, 3).")
            hierarchy = mesh_hierarchy(triangles, config.downsample, template_vertices)
            coarse_laplacians = [scaled_laplacian(t, len(v), config.laplacian_kind)
                                 for v, t in zip(hierarchy.vertices[1:], hierarchy.triangles[1:])]
            down, up = list(hierarchy.down), list(hierarchy.up)
        self.encoder = Encoder(
            laplacian, config.n_vertices, in_channels=VERTEX_CHANNELS, channels=config.encoder_channels, **common,
            coarse_laplacians=coarse_laplacians, down=down,
        )
        self.decoder = Decoder(laplacian, config.n_vertices, channels=config.decoder_channels, **common,
                               coarse_laplacians=coarse_laplacians, up=up)
        self.generator = Generator(config.latent, config.generator_hidden) if config.has_generator else None
        self.discriminator = (
            Discriminator(config.latent, config.discriminator_hidden) if config.has_discriminator else None
        )
        self.recognizer = (
            Recognizer(config.n_subjects, config.latent, config.recognizer_hidden) if config.has_recognizer else None
        )
        self.fusion = (SubspaceFusion(config.n_vertices, config.expression_dims, config.identity_dims,
                                      ridge=config.fusion_ridge, experts=len(config.fusion_expressions)) if config.has_fusion else None)

    def encode(self, x: Tensor) -> Tensor:
        """Faces (B, n, 3) -> latent codes (B, latent)."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Latent codes (B, latent) -> faces (B, n, 3)."""
        return self.decoder(z)

    def translate(self, z_e: Tensor) -> Tensor:
        """Expressive codes (B, latent) -> neutral codes: G(z_e), or z_e itself for ``gca``."""
        return z_e if self.generator is None else self.generator(z_e)

    def neutralise(self, x_e: Tensor) -> tuple[Tensor, Tensor]:
        """Expressive faces (B, n, 3) -> (neutral faces (B, n, 3), neutral codes (B, latent)).

        ``Dec(G(Enc(x_e)))``; ``Dec(Enc(x_e))`` for ``gca``; fused with ``x_e`` for
        ``identity-preserving``.
        """
        z = self.translate(self.encode(x_e))
        return self.fuse(self.decode(z), x_e), z

    def fuse(self, decoded: Tensor, inputs: Tensor) -> Tensor:
        """The predicted faces: ``decoded`` itself, or fused with the input faces it came from."""
        return decoded if self.fusion is None else self.fusion(decoded, inputs)

    def identity_embedding(self, x_e: Tensor) -> Tensor:
        """Faces (B, n, 3) -> identity embeddings, compared by cosine similarity (paper Sec. 4.2).

        ``R(G(Enc(x_e)))``, R's pre-softmax logits (B, n_subjects). Without a recogniser:
        ``gca`` uses the bottleneck ``Enc(x_e)`` as the paper does for its GCA baseline, and
        ``no-id`` the generated neutral code ``G(Enc(x_e))``; both (B, latent).
        """
        return self.embedding_of_code(self.translate(self.encode(x_e)))

    def embedding_of_code(self, z: Tensor) -> Tensor:
        """The identity embedding of a translated code ``z = translate(Enc(x_e))`` (B, latent), that
        is G(Enc(x_e)), or Enc(x_e) for ``gca``: R's logits, or ``z`` itself without a recogniser
        (see :meth:`identity_embedding`)."""
        return z if self.recognizer is None else self.recognizer(z)

    def forward(self, x_e: Tensor, x_n: Tensor | None = None) -> dict[str, Tensor]:
        """Every intermediate of a training step on pairs of expressive and neutral faces.

        Args:
            x_e: expressive faces (B, n, 3).
            x_n: their neutral counterparts (B, n, 3); unused (may be None) for ``gca``.

        Returns, for ``gca``: ``z_e`` = Enc(x_e) (B, latent) and ``rec_e`` = Dec(z_e) (B, n, 3).
        Otherwise ``z_e``, ``z_n`` = Enc(x_n), ``z_g`` = G(z_e) (B, latent); ``rec_n`` = Dec(z_n),
        ``rec_e`` = Dec(z_g) (B, n, 3), both fused with their inputs for ``identity-preserving``;
        and with a recogniser ``logits_g`` = R(z_g), ``logits_n`` = R(z_n) (B, n_subjects).
        """
        if self.generator is None:
            z_e = self.encode(x_e)
            return {"z_e": z_e, "rec_e": self.decode(z_e)}
        if x_n is None:
            raise ValueError(f"variant {self.config.variant!r} trains on pairs: x_n is required")
        # Expressive and neutral faces share the encoder, and codes the decoder: one batch of 2B
        # each, so every sparse product serves both branches.
        batch = x_e.shape[0]
        z_e, z_n = self.encode(torch.cat([x_e, x_n])).split(batch)
        z_g = self.generator(z_e)
        rec_n, rec_e = self.decode(torch.cat([z_n, z_g])).split(batch)
        rec_n, rec_e = self.fuse(rec_n, x_n), self.fuse(rec_e, x_e)
        outputs = {"z_e": z_e, "z_n": z_n, "z_g": z_g, "rec_n": rec_n, "rec_e": rec_e}
        if self.recognizer is not None:
            outputs["logits_g"], outputs["logits_n"] = self.recognizer(torch.cat([z_g, z_n])).split(batch)
        return outputs

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter but the discriminator's: Enc, Dec, G and R, trained on ``L_tot``."""
        excluded = {id(parameter) for parameter in self.discriminator_parameters()}
        return (parameter for parameter in self.parameters() if id(parameter) not in excluded)

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        """The discriminator's parameters (none without a discriminator)."""
        return iter(()) if self.discriminator is None else self.discriminator.parameters()

    def reset_recognizer(self, n_subjects: int) -> None:
        """Give R a fresh last layer for ``n_subjects`` subjects (fine-tuning); updates the config."""
        if self.recognizer is None:
            raise FacelabError(f"variant {self.config.variant!r} has no recogniser to reset")
        self.recognizer.reset_head(n_subjects)
        self.config = dataclasses.replace(self.config, n_subjects=n_subjects)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """As :meth:`torch.nn.Module.load_state_dict`, converting Chebyshev weights saved by the
        other implementation (see :func:`~facelab.nn.cheb_conv.adapt_cheb_state_dict`)."""
        return super().load_state_dict(adapt_cheb_state_dict(state_dict, self), strict=strict, assign=assign)


def build_network(triangles: np.ndarray, n_vertices: int, template_vertices: np.ndarray | None = None,
                  **options: Any) -> NeutralisationNetwork:
    """A network for a template: ``NeutralisationNetwork(NetworkConfig.for_template(...), triangles)``.

    ``template_vertices`` (n, 3), the template's shape, is needed with ``downsample=...``.
    """
    config = NetworkConfig.for_template(triangles, n_vertices, **options)
    return NeutralisationNetwork(config, triangles, template_vertices=template_vertices)

