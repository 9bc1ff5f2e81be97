"""Identities: a seeded parameter vector per person and the neutral face it describes.

An identity is a vector of ``IDENTITY_DIM`` standard-normal numbers. Each maps to one physical
trait (a scale factor around 1 or an offset in mm around 0, with the spread listed in
``IDENTITY_PARAMETERS``); together they set the face's proportions, the position and size of its
features (through the chart warp handles), how pronounced each feature is (relief weights), some
smooth random shape fields, the person's resting face, and six traits of how the person performs
expressions.

A neutral face is not a zero expression: people rest with their mouth corners higher or lower,
wider or narrower, brows higher or lower, lips more or less pouted, cheeks fuller or flatter and
the jaw closed or slightly open. These six resting traits move the same skin, in the same
directions, as the expressions do, so the space of neutral faces contains every expression's
main motion: an expression cannot be undone by projecting a fixed set of directions away, the
model must tell the person's resting face from what the expression added.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from facelab.data.synth import regions
from facelab.data.synth.anatomy import (
    WARP_HANDLE_NAMES,
    HeadShape,
    embed,
    relief_basis,
    warp_chart,
)
from facelab.data.synth.jaw import X_AXIS, jaw_joint, rotate_weighted


@dataclass(frozen=True)
class IdentityParameter:
    """One identity trait: ``value = base + spread * z`` with z the standard-normal parameter.

    ``kind`` is "scale" (base 1, a factor) or "offset" (base 0, in mm; radians for the angle).
    """

    name: str
    kind: str
    spread: float


_S, _O = "scale", "offset"
IDENTITY_PARAMETERS: tuple[IdentityParameter, ...] = tuple(
    IdentityParameter(name, kind, spread)
    for name, kind, spread in (
        # Head proportions.
        ("face_width", _S, 0.05), ("face_height", _S, 0.06), ("face_depth", _S, 0.08),
        ("jaw_width", _S, 0.06), ("forehead_slope", _S, 0.3), ("forehead_bossing", _S, 0.4),
        ("chin_recession", _S, 0.3), ("relief_depth", _S, 0.1),
        # Eyes and brows.
        ("eye_spacing", _O, 1.8), ("eye_height", _O, 2.0), ("eye_depth", _S, 0.15),
        ("lid_size", _S, 0.07), ("lid_fullness", _S, 0.2), ("brow_height", _O, 2.0),
        ("brow_prominence", _S, 0.3),
        # Nose.
        ("nose_length", _O, 2.5), ("nose_width", _S, 0.1), ("nose_projection", _S, 0.13),
        ("bridge_height", _S, 0.2), ("tip_roundness", _S, 0.25),
        # Cheeks.
        ("cheekbone_height", _O, 2.5), ("cheekbone_prominence", _S, 0.3), ("cheek_fullness", _S, 0.35),
        ("nasolabial_depth", _S, 0.35),
        # Mouth, chin.
        ("mouth_width", _S, 0.07), ("mouth_height", _O, 1.5), ("upper_lip", _S, 0.2),
        ("lower_lip", _S, 0.2), ("lip_protrusion", _S, 0.25), ("chin_height", _O, 2.0),
        ("chin_width", _S, 0.1), ("chin_projection", _S, 0.3), ("labiomental_depth", _S, 0.3),
        # How this person performs expressions (see expressions.py).
        ("expressiveness", _S, 0.1), ("expression_asymmetry", _O, 0.08), ("smile_angle", _O, 0.2),
        ("jaw_drop", _S, 0.1), ("jaw_glide", _S, 0.5), ("lip_tension", _S, 0.25),
        # Resting face (mm of chart slide or relief; radians for the jaw, which only opens).
        ("resting_corners_up", _O, 2.2), ("resting_corners_out", _O, 1.8), ("resting_brows", _O, 2.2),
        ("resting_pout", _O, 1.2), ("resting_cheeks", _O, 1.5), ("resting_jaw", _O, 0.035),
        # Weights (mm) of the smooth random shape fields.
        *((f"random_field_{k}", _O, 0.3) for k in range(8)),
    )
)
IDENTITY_DIM: int = len(IDENTITY_PARAMETERS)
_PARAMETER_INDEX = {parameter.name: k for k, parameter in enumerate(IDENTITY_PARAMETERS)}

# The resting jaw opening is this plus the "resting_jaw" trait, never below 0 (closed), radians.
_RESTING_JAW_MEAN = 0.02

# Identity parameters are clipped here: beyond it the analytic face stops looking like a face.
_PARAMETER_LIMIT = 3.0

# Which identity trait scales which relief term (terms not listed keep their template weight).
_RELIEF_TRAITS = {
    "brow_ridge": "brow_prominence", "glabella": "brow_prominence",
    "frontal_bossing": "forehead_bossing", "eye_sockets": "eye_depth",
    "eyelids": "lid_fullness", "upper_lid_overhang": "lid_fullness",
    "nose_bridge": "bridge_height", "nose_projection": "nose_projection", "nose_tip": "tip_roundness",
    "cheekbones": "cheekbone_prominence", "cheeks": "cheek_fullness",
    "nasolabial_bulges": "cheek_fullness", "nasolabial_folds": "nasolabial_depth",
    "muzzle": "lip_protrusion", "upper_lip": "upper_lip", "vermilion_border": "upper_lip",
    "lower_lip": "lower_lip", "chin": "chin_projection", "labiomental_groove": "labiomental_depth",
    **{f"random_field_{k}": f"random_field_{k}" for k in range(8)},
}


def sample_identity_params(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` identities' parameters, (count, IDENTITY_DIM) float64, standard normal
    truncated to [-2.5, 2.5] (redrawn beyond), so every sample is a plausible face."""
    params = rng.standard_normal((count, IDENTITY_DIM))
    outside = np.abs(params) > 2.5
    while outside.any():
        params[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(params) > 2.5
    return params


def _clipped(params: np.ndarray) -> np.ndarray:
    params = np.clip(np.atleast_2d(np.asarray(params, dtype=np.float64)), -_PARAMETER_LIMIT, _PARAMETER_LIMIT)
    if params.shape[1] != IDENTITY_DIM:
        raise ValueError(f"identity parameters must have {IDENTITY_DIM} columns, got shape {params.shape}")
    return params


def identity_traits(params: np.ndarray) -> dict[str, np.ndarray]:
    """Physical traits of each identity: name -> (count, 1) scale factor or mm offset."""
    params = _clipped(params)
    traits = {}
    for k, parameter in enumerate(IDENTITY_PARAMETERS):
        base = 1.0 if parameter.kind == _S else 0.0
        traits[parameter.name] = base + parameter.spread * params[:, k : k + 1]
    return traits


@dataclass(frozen=True)
class IdentityGeometry:
    """Everything that places an identity's vertices, kept for expressions to build on.

    Attributes:
        params: (count, IDENTITY_DIM) the identities' parameters, clipped (standard scores).
        traits: name -> (count, 1) physical traits (see :func:`identity_traits`).
        uv: (count, n, 2) warped chart coordinates of the resting face, mm.
        relief: (count, n) relief along the head normal of the resting face, mm.
        head: the head proportions.
    """

    params: np.ndarray
    traits: dict[str, np.ndarray]
    uv: np.ndarray
    relief: np.ndarray
    head: HeadShape

    @property
    def count(self) -> int:
        return self.uv.shape[0]

    @functools.cached_property
    def resting_jaw_angle(self) -> np.ndarray:
        """(count,) how far the jaw is open at rest, radians (0: closed)."""
        return np.maximum(_RESTING_JAW_MEAN + self.traits["resting_jaw"][:, 0], 0.0)

    @functools.cached_property
    def neutral(self) -> np.ndarray:
        """(count, n, 3) float64 neutral vertices, mm (computed once): the resting face."""
        hinge = jaw_joint(self.head, self.count)
        hinge[:, 0] = 0.0
        return rotate_weighted(embed(self.uv, self.relief, self.head), hinge, X_AXIS, self.resting_jaw_angle,
                               np.zeros_like(hinge), regions.jaw_weight())

    def score(self, name: str) -> np.ndarray:
        """(count, 1) the standard score of identity parameter ``name``."""
        return self.params[:, _PARAMETER_INDEX[name] : _PARAMETER_INDEX[name] + 1]


def _relief(traits: dict[str, np.ndarray]) -> np.ndarray:
    """(count, n) relief, mm: the template's relief terms reweighted by the traits."""
    basis = relief_basis()
    count = next(iter(traits.values())).shape[0]
    weights = np.tile(basis.default_amplitudes, (count, 1))
    for term, trait in _RELIEF_TRAITS.items():
        weights[:, basis.index(term)] *= traits[trait][:, 0]
    # Summed term by term rather than by a matrix product, whose rounding depends on the batch
    # size: an identity must come out bitwise the same however many are generated with it.
    relief = np.zeros((count, basis.fields.shape[1]))
    for k, field in enumerate(basis.fields):
        relief += weights[:, k : k + 1] * field
    return relief


def _warp(traits: dict[str, np.ndarray]) -> np.ndarray:
    """(count, n, 2) chart positions with the features moved and resized by the traits."""
    count = traits["face_width"].shape[0]
    zero, one = np.zeros((count, 1)), np.ones((count, 1))
    eye_v = traits["eye_height"]
    eye_scale = traits["lid_size"]
    moves = {  # handle -> (translation u, translation v, scale u, scale v)
        "eye_right": (traits["eye_spacing"], eye_v, eye_scale, eye_scale),
        "eye_left": (-traits["eye_spacing"], eye_v, eye_scale, eye_scale),
        "brow_right": (zero, eye_v + traits["brow_height"], one, one),
        "brow_left": (zero, eye_v + traits["brow_height"], one, one),
        "nose_base": (zero, -traits["nose_length"], traits["nose_width"], one),
        "mouth": (zero, traits["mouth_height"], traits["mouth_width"], one),
        "chin": (zero, -traits["chin_height"], traits["chin_width"], one),
        "cheekbone_right": (zero, traits["cheekbone_height"], one, one),
        "cheekbone_left": (zero, traits["cheekbone_height"], one, one),
    }
    translation = np.stack([np.concatenate(moves[name][:2], axis=1) for name in WARP_HANDLE_NAMES], axis=1)
    scale = np.stack([np.concatenate(moves[name][2:], axis=1) for name in WARP_HANDLE_NAMES], axis=1)
    return warp_chart(translation, scale)


def identity_geometry(params: np.ndarray) -> IdentityGeometry:
    """The chart warp, relief and head shape of identities ``params`` (count, IDENTITY_DIM)."""
    params = _clipped(params)
    traits = identity_traits(params)
    head = HeadShape(
        width=traits["face_width"], jaw_width=traits["jaw_width"], depth=traits["face_depth"],
        forehead_slope=traits["forehead_slope"], chin_recession=traits["chin_recession"],
        height=traits["face_height"], relief=traits["relief_depth"],
    )
    uv, relief = _warp(traits), _relief(traits)
    # The resting face's slides: the same skin, in the same directions, as the expressions move.
    lateral = regions.lateral_sign()
    corners = regions.corner_weight(True) + regions.corner_weight(False)
    uv[..., 0] += traits["resting_corners_out"] * corners * lateral
    # Brows rest lower by at most a third as much as they rest higher: the lids below them leave
    # little room (lower, on an already heavy-lidded face, would fold the skin over).
    brows = np.where(traits["resting_brows"] < 0.0, traits["resting_brows"] / 3.0, traits["resting_brows"])
    uv[..., 1] += traits["resting_corners_up"] * corners + brows * regions.brow_lift_weight()
    relief += traits["resting_pout"] * regions.pucker_weight() + traits["resting_cheeks"] * regions.cheeks_weight()
    return IdentityGeometry(params, traits, uv, relief, head)


def identity_vertices(params: np.ndarray) -> np.ndarray:
    """Neutral faces of identities ``params`` (count, IDENTITY_DIM): (count, n, 3) float32, mm."""
    return identity_geometry(params).neutral.astype(np.float32)
