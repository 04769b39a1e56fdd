"""Shared test helpers."""
import importlib.util
import os.path as osp

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(path):
    """A script under tools/ (``'train'``, ``'analysis/complexity'``) as a
    module, so tests call its functions in-process."""
    name = path.replace('/', '_')
    spec = importlib.util.spec_from_file_location(
        f'tools_{name}', osp.join(ROOT, 'tools', f'{path}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
