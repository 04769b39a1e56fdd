"""ECA against an independent computation of the paper's formula."""
import math

import numpy as np
import pytest
import torch

import eca_mmdet  # noqa: F401  (registers)
from eca_mmdet.layers import ECA, adaptive_kernel_size


def reference_eca(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pool, zero-padded 1-D conv across channels, sigmoid, scale (float64,
    explicit loops)."""
    n, c = x.shape[:2]
    k = w.shape[0]
    pad = (k - 1) // 2
    y = x.reshape(n, c, -1).mean(-1)
    out = np.empty_like(x)
    for b in range(n):
        for ch in range(c):
            acc = 0.0
            for j in range(k):
                src = ch + j - pad
                if 0 <= src < c:
                    acc += w[j] * y[b, src]
            gate = 1.0 / (1.0 + math.exp(-acc))
            out[b, ch] = x[b, ch] * gate
    return out


@pytest.mark.parametrize('batch', [1, 3])
@pytest.mark.parametrize('grad', [True, False])
@pytest.mark.parametrize('k', [1, 3, 5, 7])
def test_eca_matches_reference_formula(k, grad, batch):
    """With autograd (sliding-window product) and without (``conv1d``, on
    one image or on a batch laid end to end)."""
    m = ECA(in_channels=12, k_size=k)
    with torch.no_grad():
        m.conv.weight.copy_(torch.randn(1, 1, k))
    x = torch.randn(batch, 12, 5, 4)
    ref = reference_eca(x.double().numpy(),
                        m.conv.weight.detach().double().view(-1).numpy())
    with torch.set_grad_enabled(grad):
        out = m(x)
    assert out.requires_grad == grad
    np.testing.assert_allclose(out.detach().double().numpy(), ref,
                               atol=1e-6, rtol=0)
    assert m.conv.weight.shape == (1, 1, k)
    assert sum(p.numel() for p in m.parameters()) == k


def test_eca_gradient_reaches_kernel():
    m = ECA(16, 3)
    x = torch.randn(2, 16, 3, 3, requires_grad=True)
    m(x).square().sum().backward()
    assert m.conv.weight.grad is not None
    assert m.conv.weight.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0


def test_adaptive_kernel_size_paper_values():
    assert [adaptive_kernel_size(c) for c in (256, 512, 1024, 2048)] == \
        [5, 5, 5, 7]
    assert [ECA(c, k_size=None).k_size for c in (256, 512, 1024, 2048)] == \
        [5, 5, 5, 7]
    assert adaptive_kernel_size(64) == 3  # (6+1)//2 = 3
    assert ECA(256, k_size=None, gamma=1, b=1).k_size == 9


@pytest.mark.parametrize('bad', [0, 2, 4, -3, 3.0, '3', True])
def test_bad_kernel_size_is_a_clear_error(bad):
    with pytest.raises(ValueError, match='k_size must be a positive odd int'):
        ECA(64, k_size=bad)


def test_state_dict_key_matches_official():
    assert list(ECA(64, 3).state_dict()) == ['conv.weight']
