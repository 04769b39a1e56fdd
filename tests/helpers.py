"""Shared test helpers."""
import os.path as osp

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def randomize_bn(model, seed=0):
    """Give every BN non-trivial affine params and running stats so that
    outputs depend on all of them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model
