"""WideLinear: nn.Linear's results and state dict, with an inference copy that follows the weight."""

import torch
from torch import nn

from facelab.nn.wide_linear import WideLinear


def _pair(seed: int = 0) -> tuple[nn.Linear, WideLinear]:
    torch.manual_seed(seed)
    plain = nn.Linear(5, 300)
    wide = WideLinear(5, 300)
    wide.load_state_dict(plain.state_dict())
    return plain, wide


def test_it_computes_what_nn_linear_computes_with_and_without_autograd():
    plain, wide = _pair()
    x = torch.randn(7, 5)
    with torch.no_grad():
        torch.testing.assert_close(wide(x), plain(x))
        torch.testing.assert_close(wide(x[0]), plain(x[0]))                # one input, no batch
        torch.testing.assert_close(wide(x.view(7, 1, 5)), plain(x.view(7, 1, 5)))
    x.requires_grad_(True)
    wide(x).square().sum().backward()
    assert wide.weight.grad is not None and x.grad is not None


def test_the_inference_copy_follows_every_change_of_the_weight():
    plain, wide = _pair()
    x = torch.randn(3, 5)
    with torch.no_grad():
        wide(x)                                                            # makes the copy
    optimizer = torch.optim.SGD(wide.parameters(), lr=0.5)
    wide(torch.randn(4, 5)).sum().backward()
    optimizer.step()                                                       # an in-place update
    with torch.no_grad():
        expected = x @ wide.weight.T + wide.bias
        torch.testing.assert_close(wide(x), expected)
        _, other = _pair(seed=1)
        wide.load_state_dict(other.state_dict())                          # a loaded checkpoint
        torch.testing.assert_close(wide(x), other(x))


def test_its_state_dict_is_nn_linears():
    plain, wide = _pair()
    assert list(wide.state_dict()) == list(plain.state_dict())
    assert wide.state_dict()["weight"].shape == (300, 5)


def test_a_cast_or_a_copy_makes_its_own_inference_copy():
    import copy

    plain, wide = _pair()
    x = torch.randn(3, 5)
    with torch.no_grad():
        wide(x)
        wide.double()
        torch.testing.assert_close(wide(x.double()), plain.double()(x.double()))
        wide.float()
        plain.float()
        twin = copy.deepcopy(wide)
        assert twin._transposed is None                                   # not carried along
        twin.weight.mul_(2.0)
        torch.testing.assert_close(twin(x), x @ (2.0 * plain.weight).T + plain.bias)
        torch.testing.assert_close(wide(x), plain(x))                     # the original is untouched
