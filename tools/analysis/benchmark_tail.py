#!/usr/bin/env python
"""Cost of the ECA block tail per ResNet stage, and which of our paths pays
where (``FUSE_MIN_NUMEL`` in training, ``EVAL_POOL_INPUT_MIN_NUMEL`` in
inference).

The tail is what ECA adds to a Bottleneck: ``relu(bn3(x) * gate + identity)``
(forward and backward in training, forward without autograd in inference),
at the map shape of each stage of a ResNet-50 for a given input size and
batch. Paths, interleaved round by round in a shuffled order:

* ``plain``    -- ``relu(bn3(x) + identity)``, mmdet's tail without ECA
* ``naive``    -- the authors' ``eca_layer`` then ``+= identity``

training (``--mode training``, the default):

* ``autograd`` -- our ECA gate and ``addcmul`` through autograd (the path
  below ``FUSE_MIN_NUMEL``)
* ``fused``    -- the one-node ``_BNGatedResidual`` (the path above it)

inference (``--mode inference``, no autograd, eval-mode batch norm):

* ``pool_out`` -- our tail, gate from the pooled output of batch norm
* ``pool_in``  -- our tail, gate from the pooled input of conv3 (1x1, 4x
  fewer channels) through conv3's weight and batch norm's affine map (used
  at ``EVAL_POOL_INPUT_MIN_NUMEL`` elements and above)

Prints, per stage and in total, the median over rounds of (path - plain in
the same round) in microseconds per step (the stage's blocks times the
per-block difference), and which of our paths ECAResNet takes there.

Examples::

    python tools/analysis/benchmark_tail.py --size 128 --batch 2
    python tools/analysis/benchmark_tail.py --mode inference --batch 1 \\
        --size 800 1216 --rounds 60
"""
import argparse
import os
import os.path as osp
import statistics
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

# (channels after conv3, stride of the map, blocks) of ResNet-50's stages
STAGES = ((256, 4, 3), (512, 8, 4), (1024, 16, 6), (2048, 32, 3))


def _modules(channels):
    import torch.nn as nn

    from eca_mmdet.layers.eca import ECA, adaptive_kernel_size
    from tools.analysis.benchmark import straightforward_eca
    k = adaptive_kernel_size(channels)
    return (nn.BatchNorm2d(channels), ECA(channels, k),
            straightforward_eca()(channels, k))


def tail_paths(batch, channels, h, w):
    """Zero-argument callables, one training step of the tail each."""
    import torch

    from eca_mmdet.layers import gated_residual
    bn, eca, naive = _modules(channels)
    x0 = torch.randn(batch, channels, h, w, requires_grad=True)
    identity0 = torch.randn_like(x0, requires_grad=True)
    grad = torch.randn_like(x0)

    def tail(fn):
        def step():
            # non-leaf inputs, as inside a network
            x, identity = x0 * 1.0, identity0 * 1.0
            torch.relu(fn(x, identity)).backward(grad)
        return step

    def plain(x, identity):
        z = bn(x)
        z += identity
        return z

    def straightforward(x, identity):
        z = naive(bn(x))
        z += identity
        return z

    def autograd(x, identity):
        z = bn(x)
        return torch.addcmul(identity, z, eca.gate(z))

    def fused(x, identity):
        return gated_residual._fused(x, bn, eca, identity, None)

    return dict(plain=tail(plain), naive=tail(straightforward),
                autograd=tail(autograd), fused=tail(fused))


def inference_tail_paths(batch, channels, h, w):
    """Zero-argument callables, one inference step of the tail each (conv3's
    output ``x`` is given; ``pool_in`` also reads conv3's input)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from eca_mmdet.layers.gated_residual import bn_gated_residual
    bn, eca, naive = _modules(channels)
    bn.eval()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    conv3 = nn.Conv2d(channels // 4, channels, 1, bias=False)
    with torch.no_grad():
        x_in = torch.randn(batch, channels // 4, h, w).relu_()
        x = conv3(x_in)
    identity = torch.randn_like(x)

    def pooled_input():
        return F.linear(x_in.mean((2, 3)), conv3.weight.flatten(1))

    def tail(fn):
        def step():
            with torch.no_grad():
                torch.relu_(fn())
        return step

    def plain():
        z = bn(x)
        z += identity
        return z

    def straightforward():
        z = naive(bn(x))
        z += identity
        return z

    return dict(
        plain=tail(plain), naive=tail(straightforward),
        pool_out=tail(lambda: bn_gated_residual(x, bn, eca, identity)),
        pool_in=tail(lambda: bn_gated_residual(x, bn, eca, identity,
                                               pooled_input)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--mode', choices=('training', 'inference'),
                   default='training')
    p.add_argument('--size', type=int, nargs='+', default=[128],
                   metavar='S', help='input H = W, or H W')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--rounds', type=int, default=200)
    p.add_argument('--threads', type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    if len(args.size) not in (1, 2):
        p.error('--size takes H, or H W')
    height, width = args.size * (3 - len(args.size))
    import torch
    torch.set_num_threads(args.threads)
    from eca_mmdet.backbones.eca_resnet import (EVAL_POOL_INPUT_MIN_NUMEL,
                                                pools_conv3_input)
    from eca_mmdet.layers.gated_residual import FUSE_MIN_NUMEL
    from tools.analysis.benchmark import interleaved_times
    if args.mode == 'training':
        make, ours, rule = tail_paths, ('autograd', 'fused'), \
            f'FUSE_MIN_NUMEL = {FUSE_MIN_NUMEL}'
    else:
        make, ours, rule = inference_tail_paths, ('pool_out', 'pool_in'), \
            f'EVAL_POOL_INPUT_MIN_NUMEL = {EVAL_POOL_INPUT_MIN_NUMEL}'
    names = ('naive', ) + ours
    total = {}
    print(f'ResNet-50 block tails, {args.mode}, input {height}x{width}, '
          f'batch {args.batch}, {args.threads} threads, {args.rounds} '
          f'rounds: extra us per step over plain ({rule})')
    print(f'{"stage map":>26} {"numel":>9} ' +
          ' '.join(f'{n:>9}' for n in names) + '  used')
    for channels, stride, blocks in STAGES:
        h, w = height // stride, width // stride
        times = interleaved_times(make(args.batch, channels, h, w),
                                  warmup=3, repeats=args.rounds)
        extra = {}
        for name in names:
            extra[name] = blocks * 1e6 * statistics.median(
                a - b for a, b in zip(times[name], times['plain']))
            total[name] = total.get(name, 0.0) + extra[name]
        numel = args.batch * channels * h * w
        if args.mode == 'training':
            used = ours[numel >= FUSE_MIN_NUMEL]
        else:
            used = ours[pools_conv3_input(args.batch, channels // 4,
                                          channels, h, w, False)]
        shape = f'{blocks} x ({args.batch},{channels},{h},{w})'
        print(f'{shape:>26} {numel:>9} ' +
              ' '.join(f'{extra[n]:9.0f}' for n in names) + f'  {used}',
              flush=True)
    print(f'{"total":>26} {"":>9} ' +
          ' '.join(f'{total[n]:9.0f}' for n in names))
    return 0


if __name__ == '__main__':
    sys.exit(main())
