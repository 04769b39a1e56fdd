"""Shared test helpers."""
import os
import os.path as osp
import subprocess
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_tool(tool, *args, timeout=900):
    """Run ``tools/<tool>`` as a user would (from the repository root, one
    thread); return the ``CompletedProcess``."""
    return subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', tool), *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout,
        env=dict(os.environ, OMP_NUM_THREADS='1'))


def tool_output(tool, *args):
    """What ``tools/<tool>`` printed, after checking that it succeeded."""
    r = run_tool(tool, *args)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout


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
