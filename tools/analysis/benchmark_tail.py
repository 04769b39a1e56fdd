#!/usr/bin/env python
"""Training cost of the ECA block tail per ResNet stage: where the fused node
pays and where plain autograd is faster (``FUSE_MIN_NUMEL``).

The tail is what ECA adds to a Bottleneck: ``relu(bn3(x) * gate + identity)``
forward and backward, at the map shape of each stage of a ResNet-50 for a
given input size and batch. Paths, interleaved round by round in a shuffled
order:

* ``plain``    -- ``relu(bn3(x) + identity)``, mmdet's tail without ECA
* ``naive``    -- the authors' ``eca_layer`` then ``+= identity``
* ``autograd`` -- our ECA gate and ``addcmul`` through autograd (the path
  below ``FUSE_MIN_NUMEL``)
* ``fused``    -- the one-node ``_BNGatedResidual`` (the path above it)

Prints, per stage and in total, the median over rounds of (path - plain in
the same round) in microseconds per training step (the stage's blocks
times the per-block difference).

Example::

    python tools/analysis/benchmark_tail.py --size 128 --batch 2
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


def tail_paths(batch, channels, hw):
    """Zero-argument callables, one training step of the tail each."""
    import torch
    import torch.nn as nn

    from eca_mmdet.layers import gated_residual
    from eca_mmdet.layers.eca import ECA, adaptive_kernel_size
    from tools.analysis.benchmark import straightforward_eca
    k = adaptive_kernel_size(channels)
    bn, eca = nn.BatchNorm2d(channels), ECA(channels, k)
    naive = straightforward_eca()(channels, k)
    x0 = torch.randn(batch, channels, hw, hw, requires_grad=True)
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=128, help='input H = W')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--rounds', type=int, default=200)
    p.add_argument('--threads', type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from eca_mmdet.layers.gated_residual import FUSE_MIN_NUMEL
    from tools.analysis.benchmark import interleaved_times
    total = {}
    print(f'ResNet-50 block tails, input {args.size}x{args.size}, batch '
          f'{args.batch}, {args.threads} threads, {args.rounds} rounds: '
          f'extra us per training step over plain (FUSE_MIN_NUMEL = '
          f'{FUSE_MIN_NUMEL})')
    print(f'{"stage map":>22} {"numel":>8} {"naive":>8} {"autograd":>9} '
          f'{"fused":>8}  used')
    for channels, stride, blocks in STAGES:
        hw = args.size // stride
        times = interleaved_times(tail_paths(args.batch, channels, hw),
                                  warmup=3, repeats=args.rounds)
        extra = {}
        for name in ('naive', 'autograd', 'fused'):
            extra[name] = blocks * 1e6 * statistics.median(
                a - b for a, b in zip(times[name], times['plain']))
            total[name] = total.get(name, 0.0) + extra[name]
        numel = args.batch * channels * hw * hw
        used = 'fused' if numel >= FUSE_MIN_NUMEL else 'autograd'
        shape = f'{blocks} x ({args.batch},{channels},{hw},{hw})'
        print(f'{shape:>22} {numel:>8} {extra["naive"]:8.0f} '
              f'{extra["autograd"]:9.0f} {extra["fused"]:8.0f}  {used}',
              flush=True)
    print(f'{"total":>22} {"":>8} {total["naive"]:8.0f} '
          f'{total["autograd"]:9.0f} {total["fused"]:8.0f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
