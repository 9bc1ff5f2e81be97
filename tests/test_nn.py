"""The network: the Chebyshev layer against PyG's, and the modules' shapes, variants and config."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import trimesh
from torch_geometric.nn import ChebConv

from facelab.errors import FacelabError, TopologyMismatchError
from facelab.nn.variants import PAPER_VARIANTS
from facelab.mesh import combinatorial_laplacian, normalized_laplacian, scaled_laplacian, vertex_adjacency
from facelab.nn import (
    Decoder,
    Discriminator,
    Encoder,
    Generator,
    MeshChebConv,
    NetworkConfig,
    NeutralisationNetwork,
    PygChebConv,
    Recognizer,
    adapt_cheb_state_dict,
    build_network,
    make_cheb_conv,
    pyg_graph_of,
)

BASE_LAPLACIANS = {"combinatorial": (combinatorial_laplacian, None), "normalized": (normalized_laplacian, "sym")}


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).detach().norm() / expected.detach().norm())


@pytest.fixture(scope="module")
def sphere3():
    """642 vertices: big enough for the sparse eigensolver, small enough for float64 checks."""
    sphere = trimesh.creation.icosphere(subdivisions=3)
    return np.asarray(sphere.faces), len(sphere.vertices)


@pytest.fixture(scope="module")
def sphere2():
    sphere = trimesh.creation.icosphere(subdivisions=2)  # 162 vertices
    return np.asarray(sphere.faces), len(sphere.vertices)


def pyg_reference(triangles, n_vertices, kind, in_channels, out_channels, K, dtype):
    """PyG's ChebConv set up from the mesh graph alone, independently of facelab.nn.

    PyG builds ``2 L / lambda_max - I`` itself from unit edge weights: ``L = D - A`` with
    ``normalization=None``, ``I - D^-1/2 A D^-1/2`` with ``"sym"``. ``lambda_max`` is exact
    (dense eigendecomposition in float64).
    """
    base, normalization = BASE_LAPLACIANS[kind]
    lambda_max = float(np.linalg.eigvalsh(base(triangles, n_vertices).toarray())[-1])
    adjacency = vertex_adjacency(triangles, n_vertices).tocoo()
    edge_index = torch.as_tensor(np.vstack([adjacency.row, adjacency.col]), dtype=torch.int64)
    conv = ChebConv(in_channels, out_channels, K, normalization=normalization).to(dtype)
    torch.nn.init.normal_(conv.bias)  # PyG initialises it to zero, which would hide a missing bias

    def run(x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        offsets = torch.arange(batch).view(1, batch, 1) * n_vertices
        batched = (edge_index.unsqueeze(1) + offsets).reshape(2, -1)
        out = conv(x.reshape(batch * n_vertices, in_channels), batched, lambda_max=lambda_max)
        return out.view(batch, n_vertices, out_channels)

    return conv, run, lambda_max


# --- the Chebyshev layer -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("K", [1, 2, 6])
def test_mesh_cheb_conv_matches_pyg_forward_and_gradients(sphere3, kind, dtype, K):
    triangles, n = sphere3
    torch.manual_seed(0)
    conv, pyg_forward, _ = pyg_reference(triangles, n, kind, 5, 7, K, dtype)
    ours = MeshChebConv.from_pyg(conv, scaled_laplacian(triangles, n, kind))
    assert ours.weight.dtype == dtype
    x = torch.randn(3, n, 5, dtype=dtype, requires_grad=True)
    probe = torch.randn(3, n, 7, dtype=dtype)  # a loss whose gradient differs at every output

    expected = pyg_forward(x)
    expected_grads = torch.autograd.grad((expected * probe).sum(), [x, *[lin.weight for lin in conv.lins], conv.bias])
    got = ours(x)
    got_grads = torch.autograd.grad((got * probe).sum(), [x, ours.weight, ours.bias])

    # Our Laplacian is float32 (as facelab.mesh stores it), PyG's is rebuilt in ``dtype``: the
    # float32 rounding of L (~6e-8) bounds the agreement, in float64 as in float32.
    tolerance = 1e-5
    assert relative_error(got, expected) <= tolerance
    assert relative_error(got_grads[0], expected_grads[0]) <= tolerance  # input
    expected_weight_grad = torch.stack([grad.T for grad in expected_grads[1:-1]])
    assert relative_error(got_grads[1], expected_weight_grad) <= tolerance  # weights
    assert relative_error(got_grads[2], expected_grads[-1]) <= tolerance  # bias


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
def test_pyg_graph_of_recovers_normalisation_and_lambda_max(sphere3, kind):
    triangles, n = sphere3
    base, normalization = BASE_LAPLACIANS[kind]
    edge_index, found_normalization, lambda_max = pyg_graph_of(scaled_laplacian(triangles, n, kind))
    assert found_normalization == normalization
    assert lambda_max == pytest.approx(np.linalg.eigvalsh(base(triangles, n).toarray())[-1], rel=1e-5)
    adjacency = vertex_adjacency(triangles, n)
    assert edge_index.shape == (2, adjacency.nnz)


def test_pyg_graph_of_rejects_a_laplacian_pyg_cannot_rebuild(sphere2):
    triangles, n = sphere2
    laplacian = scaled_laplacian(triangles, n).tolil()
    a, b = triangles[0, :2]
    laplacian[a, b] = laplacian[b, a] = 0.5 * laplacian[a, b]  # a weighted edge
    with pytest.raises(ValueError, match="cannot rebuild"):
        pyg_graph_of(laplacian.tocsr())


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
def test_pyg_wrapper_and_fast_layer_agree_with_ported_weights(sphere3, kind):
    triangles, n = sphere3
    laplacian = scaled_laplacian(triangles, n, kind)
    torch.manual_seed(0)
    fast = make_cheb_conv(4, 6, 5, laplacian, conv="fast")
    torch.nn.init.normal_(fast.bias)
    reference = make_cheb_conv(4, 6, 5, laplacian, conv="pyg")
    assert isinstance(fast, MeshChebConv) and isinstance(reference, PygChebConv)
    reference.load_state_dict(adapt_cheb_state_dict(fast.state_dict(), reference))
    x = torch.randn(2, n, 4)
    assert relative_error(fast(x), reference(x)) <= 1e-5
    back = MeshChebConv(4, 6, 5, laplacian)
    back.load_state_dict(adapt_cheb_state_dict(reference.state_dict(), back))
    assert torch.equal(back.weight, fast.weight) and torch.equal(back.bias, fast.bias)


def test_laplacian_is_a_non_persistent_buffer_that_follows_the_module(sphere2):
    triangles, n = sphere2
    layer = MeshChebConv(3, 4, 3, scaled_laplacian(triangles, n))
    assert set(layer.state_dict()) == {"weight", "bias"}
    layer.double()
    assert layer.laplacian.dtype == torch.float64 and layer.laplacian.layout == torch.sparse_csr
    assert layer(torch.randn(2, n, 3, dtype=torch.float64)).dtype == torch.float64
    clone = copy.deepcopy(layer)  # a sparse CSR tensor could not be deep-copied
    x = torch.randn(2, n, 3, dtype=torch.float64)
    assert torch.equal(clone(x), layer(x))


def test_laplacian_accepted_as_scipy_or_torch_sparse(sphere2):
    triangles, n = sphere2
    laplacian = scaled_laplacian(triangles, n)
    coo = laplacian.tocoo()
    as_torch = torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data, coo.shape, check_invariants=True)
    torch.manual_seed(0)
    layers = [MeshChebConv(3, 4, 3, matrix) for matrix in (laplacian, as_torch, as_torch.to_sparse_csr())]
    for layer in layers[1:]:
        layer.load_state_dict(layers[0].state_dict())
    x = torch.randn(2, n, 3)
    for layer in layers[1:]:
        assert torch.equal(layer(x), layers[0](x))


def test_bad_laplacian_and_input_shapes_are_refused(sphere2):
    triangles, n = sphere2
    laplacian = scaled_laplacian(triangles, n).tolil()
    a, b = triangles[0, :2]
    laplacian[a, b] += 0.5
    with pytest.raises(ValueError, match="symmetric"):
        MeshChebConv(3, 4, 3, laplacian.tocsr())
    with pytest.raises(ValueError, match="square"):
        MeshChebConv(3, 4, 3, sp.csr_matrix((3, 4)))
    layer = MeshChebConv(3, 4, 3, scaled_laplacian(triangles, n))
    with pytest.raises(ValueError, match=rf"\(B, {n}, 3\)"):
        layer(torch.randn(2, n + 1, 3))


# --- the modules -----------------------------------------------------------------------------


def test_module_shapes(sphere2):
    triangles, n = sphere2
    laplacian = scaled_laplacian(triangles, n)
    batch = 3
    x = torch.randn(batch, n, 3)
    z = Encoder(laplacian, n)(x)
    assert z.shape == (batch, 25)
    decoded = Decoder(laplacian, n)(z)
    assert decoded.shape == (batch, n, 3) and decoded.is_contiguous()
    assert Generator()(z).shape == (batch, 25)
    assert Discriminator()(z, z).shape == (batch,)
    recognizer = Recognizer(n_subjects=11)
    assert recognizer(z).shape == (batch, 11)
    recognizer.reset_head(4)
    assert recognizer(z).shape == (batch, 4) and recognizer.n_subjects == 4


def test_encoder_refuses_a_laplacian_of_another_size(sphere2):
    triangles, n = sphere2
    with pytest.raises(ValueError, match="scaled Laplacian"):
        Encoder(scaled_laplacian(triangles, n), n + 1)


def test_generator_output_is_linear_and_can_be_negative():
    torch.manual_seed(0)
    generator = Generator()
    assert isinstance(generator.layers[-1], torch.nn.Linear)
    with torch.no_grad():
        generator.layers[-1].bias.fill_(-10.0)  # a ReLU on the output would make this all zeros
        out = generator(torch.randn(64, 25))
    assert (out < 0).all()


def test_discriminator_returns_unbounded_logits():
    discriminator = Discriminator()
    assert isinstance(discriminator.layers[-1], torch.nn.Linear)
    with torch.no_grad():
        discriminator.layers[-1].bias.fill_(5.0)
        logits = discriminator(torch.randn(8, 25), torch.randn(8, 25))
    assert (logits > 1).all()  # no sigmoid: that lives in BCEWithLogitsLoss


# --- the network ---------------------------------------------------------------------------------


def make_network(sphere, **options) -> NeutralisationNetwork:
    triangles, n = sphere
    options.setdefault("n_subjects", 5)
    return build_network(triangles, n, **options)


def test_full_network_outputs_and_gradients_reach_every_parameter(sphere2):
    torch.manual_seed(0)
    network = make_network(sphere2)
    n = sphere2[1]
    x_e, x_n = torch.randn(3, n, 3), torch.randn(3, n, 3)
    outputs = network(x_e, x_n)
    shapes = {key: tuple(value.shape) for key, value in outputs.items()}
    assert shapes == {
        "z_e": (3, 25), "z_n": (3, 25), "z_g": (3, 25),
        "rec_n": (3, n, 3), "rec_e": (3, n, 3),
        "logits_g": (3, 5), "logits_n": (3, 5),
    }  # fmt: skip
    loss = sum(value.square().mean() for value in outputs.values())
    loss = loss + network.discriminator(outputs["z_g"], outputs["z_e"]).mean()
    loss.backward()
    for name, parameter in network.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


def test_training_outputs_equal_the_separate_branches(sphere2):
    torch.manual_seed(0)
    network = make_network(sphere2)
    n = sphere2[1]
    x_e, x_n = torch.randn(2, n, 3), torch.randn(2, n, 3)
    with torch.no_grad():
        outputs = network(x_e, x_n)
        z_e, z_n = network.encode(x_e), network.encode(x_n)
        z_g = network.generator(z_e)
        expected = {
            "z_e": z_e, "z_n": z_n, "z_g": z_g,
            "rec_n": network.decode(z_n), "rec_e": network.decode(z_g),
            "logits_g": network.recognizer(z_g), "logits_n": network.recognizer(z_n),
        }  # fmt: skip
        neutral, code = network.neutralise(x_e)
        embedding = network.identity_embedding(x_e)
    # Batching both branches changes only the float32 summation order inside the matmuls.
    for key, value in expected.items():
        assert relative_error(outputs[key], value) <= 1e-5, key
    assert relative_error(neutral, expected["rec_e"]) <= 1e-5
    assert relative_error(code, z_g) <= 1e-5
    assert relative_error(embedding, expected["logits_g"]) <= 1e-5


@pytest.mark.parametrize(
    ("variant", "modules"),
    [
        ("full", {"encoder", "decoder", "generator", "discriminator", "recognizer"}),
        ("no-l2l", {"encoder", "decoder", "generator", "recognizer"}),
        ("no-id", {"encoder", "decoder", "generator", "discriminator"}),
        ("gca", {"encoder", "decoder"}),
        ("identity-preserving", {"encoder", "decoder", "generator", "discriminator", "recognizer", "fusion"}),
    ],
)
def test_variants_build_only_what_they_need(sphere2, variant, modules):
    network = make_network(sphere2, variant=variant)
    assert {name for name, _ in network.named_children()} == modules
    assert {key.split(".")[0] for key in network.state_dict()} == modules
    assert ("fusion" in modules) == (variant not in PAPER_VARIANTS)
    generator_ids = {id(p) for p in network.generator_parameters()}
    discriminator_ids = {id(p) for p in network.discriminator_parameters()}
    assert generator_ids.isdisjoint(discriminator_ids)
    assert generator_ids | discriminator_ids == {id(p) for p in network.parameters()}
    assert bool(discriminator_ids) == ("discriminator" in modules)

    n = sphere2[1]
    x = torch.randn(2, n, 3)
    with torch.no_grad():
        outputs = network(x, x)
        neutral, code = network.neutralise(x)
        embedding = network.identity_embedding(x)
    assert neutral.shape == (2, n, 3) and code.shape == (2, 25)
    assert embedding.shape == ((2, 5) if "recognizer" in modules else (2, 25))
    if variant == "gca":
        assert set(outputs) == {"z_e", "rec_e"}
        torch.testing.assert_close(neutral, network.decode(network.encode(x)))
        torch.testing.assert_close(embedding, network.encode(x))
    else:
        assert ("logits_g" in outputs) == ("recognizer" in modules)


def test_pyg_and_fast_networks_with_the_same_weights_agree(sphere2):
    torch.manual_seed(0)
    fast = make_network(sphere2, conv="fast")
    reference = make_network(sphere2, conv="pyg")
    assert set(fast.state_dict()) != set(reference.state_dict())  # the layouts differ ...
    reference.load_state_dict(fast.state_dict())  # ... and load_state_dict converts
    n = sphere2[1]
    x_e, x_n = torch.randn(3, n, 3), torch.randn(3, n, 3)
    with torch.no_grad():
        got, expected = fast(x_e, x_n), reference(x_e, x_n)
    for key in expected:
        assert relative_error(got[key], expected[key]) <= 1e-5, key

    round_trip = make_network(sphere2, conv="fast")
    round_trip.load_state_dict(reference.state_dict())
    for key, value in fast.state_dict().items():
        assert torch.equal(round_trip.state_dict()[key], value), key


def test_config_round_trips_through_json(sphere2):
    triangles, n = sphere2
    config = NetworkConfig.for_template(triangles, n, variant="no-id", laplacian_kind="normalized", K=4, conv="pyg")
    restored = NetworkConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert NeutralisationNetwork(restored, triangles).config == config


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"variant": "mine"}, "unknown variant"),
        ({"conv": "dense"}, "unknown Chebyshev implementation"),
        ({"laplacian_kind": "cotangent"}, "unknown Laplacian kind"),
        ({"n_subjects": 0}, "n_subjects"),
        ({"decoder_channels": [32, 16, 4]}, "3 channels"),
        ({"dropout": 0.5}, "unknown network configuration keys: dropout"),
    ],
)
def test_invalid_configs_are_user_errors(values, message):
    with pytest.raises(FacelabError, match=message):
        NetworkConfig.from_dict({"n_vertices": 10, "triangles_hash": "0" * 16, "n_subjects": 3, **values})


def test_network_refuses_triangles_of_another_template(sphere2):
    triangles, n = sphere2
    config = NetworkConfig.for_template(triangles, n, n_subjects=3)
    with pytest.raises(TopologyMismatchError):
        NeutralisationNetwork(config, triangles[1:])


def test_reset_recognizer_updates_the_config(sphere2):
    network = make_network(sphere2)
    network.reset_recognizer(9)
    assert network.config.n_subjects == 9
    assert network.identity_embedding(torch.randn(1, sphere2[1], 3)).shape == (1, 9)
    with pytest.raises(FacelabError):
        make_network(sphere2, variant="gca").reset_recognizer(3)


@pytest.mark.parametrize("channels", [(2, 3), (3, 2)])
@pytest.mark.parametrize("K", [1, 2, 3, 4, 6])
def test_hand_written_backward_passes_gradcheck(K, channels):
    """The layer's backward computes the input, weight and bias gradients itself: check them all,
    with the recurrence on the input side (2 -> 3) and on the weighted terms (3 -> 2)."""
    sphere = trimesh.creation.icosphere(subdivisions=1)
    laplacian = scaled_laplacian(sphere.faces, len(sphere.vertices))
    torch.manual_seed(0)
    in_channels, out_channels = channels
    layer = MeshChebConv(in_channels, out_channels, K, laplacian).double()
    x = torch.randn(2, len(sphere.vertices), in_channels, dtype=torch.float64, requires_grad=True)
    weight = layer.weight.detach().clone().requires_grad_()
    bias = torch.randn(out_channels, dtype=torch.float64, requires_grad=True)

    def run(x, weight, bias):
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,))

    assert torch.autograd.gradcheck(run, (x, weight, bias))


@pytest.mark.parametrize("K", [1, 2, 6])
def test_inference_path_equals_the_autograd_path(sphere3, K):
    """Under no_grad the layer skips its autograd function (terms weighted as they are computed)."""
    triangles, n = sphere3
    torch.manual_seed(0)
    layer = MeshChebConv(4, 5, K, scaled_laplacian(triangles, n))
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(3, n, 4)
    with_grad = layer(x)
    assert with_grad.requires_grad
    with torch.no_grad():
        without_grad = layer(x)
    assert relative_error(without_grad, with_grad) <= 1e-6


def dense_chebyshev(laplacian: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``sum_k T_k(L) x W_k + b`` with a dense L, term by term: the definition, for comparison."""
    terms = [x]
    if weight.shape[0] > 1:
        terms.append(laplacian @ x)
    for _ in range(2, weight.shape[0]):
        terms.append(2 * laplacian @ terms[-1] - terms[-2])
    return sum(term @ w for term, w in zip(terms, weight)) + bias


@pytest.mark.parametrize("channels", [(3, 16), (16, 3), (16, 16), (5, 7), (7, 5)])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("input_grad", [True, False])
def test_layer_equals_the_definition_on_every_path(sphere2, channels, batch, input_grad):
    """Each way the layer computes the sum (recurrence on the input or on the weighted terms; one
    mesh or several side by side, padded, in a last group of fewer meshes; with or without the
    input's gradient) gives the definition's outputs and gradients, in float64."""
    triangles, n = sphere2
    laplacian = scaled_laplacian(triangles, n)
    dense = torch.from_numpy(laplacian.toarray()).double()
    in_channels, out_channels = channels
    torch.manual_seed(0)
    layer = MeshChebConv(in_channels, out_channels, 6, laplacian).double()
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(batch, n, in_channels, dtype=torch.float64, requires_grad=input_grad)
    probe = torch.randn(batch, n, out_channels, dtype=torch.float64)
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()
    x_reference = x.detach().clone().requires_grad_(input_grad)
    expected = dense_chebyshev(dense, x_reference, weight, bias)

    got = layer(x)
    assert got.shape == (batch, n, out_channels) and got.is_contiguous()
    with torch.no_grad():
        assert relative_error(layer(x), expected) <= 1e-12
    assert relative_error(got, expected) <= 1e-12
    wanted = [layer.weight, layer.bias] + ([x] if input_grad else [])
    references = [weight, bias] + ([x_reference] if input_grad else [])
    got_grads = torch.autograd.grad((got * probe).sum(), wanted)
    expected_grads = torch.autograd.grad((expected * probe).sum(), references)
    for got_grad, expected_grad in zip(got_grads, expected_grads):
        assert relative_error(got_grad, expected_grad) <= 1e-12


def test_layer_takes_a_non_contiguous_input(sphere2):
    triangles, n = sphere2
    layer = MeshChebConv(4, 5, 3, scaled_laplacian(triangles, n))
    vertex_major = torch.randn(n, 2, 4)
    x = vertex_major.transpose(0, 1)  # (2, n, 4), not contiguous
    assert relative_error(layer(x), layer(x.contiguous())) == 0.0
