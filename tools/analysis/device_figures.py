#!/usr/bin/env python
"""What ECA costs on a device: ECA-ResNet-50/101 against plain mmdet ResNet
and the straightforward ECA plugin, in one paired, interleaved run.

Variants (same depth, weights seed and input):

* ``plain`` -- mmdet's ``ResNet``;
* ``eca``   -- our ``ECAResNet`` (adaptive k, the lean residual tail);
* ``naive`` -- mmdet's ``ResNet`` + our ``ECA`` as an ``after_conv3`` plugin.

Settings (sizes are the GPU defaults; ``--device cpu`` uses small ones):

* ``det-train``  -- detection: frozen stem + stage 1, ``norm_eval``,
  800x1216, batch 2, loss = mean of the four feature maps;
* ``cls-train``  -- ImageNet: BN training, 224 px, batch 64, global pool,
  a 1000-way linear layer and cross-entropy;
* ``det-infer`` / ``cls-infer`` -- the same inputs in eval mode, no grad.

each in float32, float16 and bfloat16 autocast, eager, and some
under ``torch.compile`` (``--compile-depths/-settings/-precisions``; by
default R-50, bf16, ImageNet training and detection inference on CUDA).
TF32 is off for the whole step, forward and backward, in every row (float32
means float32); fp16/bf16 autocast the forward pass and the loss, the
backward runs in the dtypes they chose. Every round runs one step of each
variant in an order shuffled per round; a step is timed with CUDA events on
the device given (``--device cuda:1`` times, synchronises and reads the
allocator of GPU 1; ``perf_counter`` on the CPU). ``x plain`` is the
geometric mean of the per-round ratios with a 95% Student-t interval on
their logarithms (:func:`eca_mmdet.utils.timing.paired_ratio`),
``eca / naive`` pairs the two ECA forms the same way. Peak memory: the
allocator's peak during one step over what was allocated before it.

Where ECA costs more than ``--flag`` (3%) over plain, the run profiles one
stage-3 block of each variant in the worst such setting and prints the top
kernels by self time.

Examples::

    python tools/analysis/device_figures.py --device cuda --json gpu.json
    python tools/analysis/device_figures.py --device cpu
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

from eca_mmdet.utils.timing import (
    autocast,
    interleaved_times,
    no_tf32,
    paired_ratio,
    peak_bytes,
    setup_device,
)

VARIANTS = ('plain', 'eca', 'naive')
PRECISIONS = ('fp32', 'fp16', 'bf16')
SETTINGS = ('det-train', 'cls-train', 'det-infer', 'cls-infer')
# (height, width, batch) of each kind of input, on a GPU and on the CPU
SIZES = dict(cuda=dict(det=(800, 1216, 2), cls=(224, 224, 64)),
             cpu=dict(det=(128, 192, 2), cls=(64, 64, 8)))


def build(variant, depth, setting, device):
    """The backbone of ``variant`` (with a classifier for ``cls-*``)."""
    from mmdet.registry import MODELS

    import eca_mmdet  # noqa: F401
    torch.manual_seed(0)
    det = setting.startswith('det')
    cfg = dict(type='mmdet.ResNet', depth=depth, init_cfg=None,
               frozen_stages=1 if det else -1, norm_eval=det,
               out_indices=(0, 1, 2, 3) if det else (3, ))
    if variant == 'eca':
        cfg.update(type='mmdet.ECAResNet', k_size=None)
    elif variant == 'naive':
        cfg['plugins'] = [dict(cfg=dict(type='mmdet.ECA', k_size=None),
                               position='after_conv3')]
    model = MODELS.build(cfg)
    model.init_weights()
    if not det:
        model = Classifier(model)
    return model.to(device)


class Classifier(torch.nn.Module):
    """Backbone, global average pool and a 1000-way linear layer."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.fc = torch.nn.Linear(2048, 1000)

    def forward(self, x):
        return (self.fc(self.backbone(x)[-1].mean((2, 3))), )


def make_step(model, setting, precision, device, size):
    """A zero-argument callable: one step of ``model`` in ``setting``."""
    h, w, n = size
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, h, w, generator=g).to(device)
    labels = torch.randint(0, 1000, (n, ), generator=g).to(device)
    train = setting.endswith('train')
    model.train(train)
    if not train:
        def step():
            with torch.no_grad(), no_tf32(), autocast(device, precision):
                model(x)
        return step

    def step():
        with no_tf32():  # forward and backward
            with autocast(device, precision):
                outs = model(x)
                if setting == 'cls-train':
                    loss = torch.nn.functional.cross_entropy(
                        outs[0].float(), labels)
                else:
                    loss = sum(o.float().mean() for o in outs)
            loss.backward()
        model.zero_grad(set_to_none=False)
    return step


def measure_cell(args, depth, setting, precision, compiled):
    """Times and peak memory of every variant in one setting."""
    size = args.sizes[setting.split('-')[0]]
    steps, models = {}, {}
    for v in VARIANTS:
        models[v] = build(v, depth, setting, args.device)
        run = models[v]
        if compiled:
            run = torch.compile(models[v], backend=args.compile_backend)
        steps[v] = make_step(run, setting, precision, args.device, size)
    times = interleaved_times(steps, args.warmup, args.rounds, args.device)
    peaks = {v: peak_bytes(steps[v], args.device) / 2**20 for v in VARIANTS}
    del steps, models
    if args.device.startswith('cuda'):
        torch.cuda.empty_cache()
    return dict(depth=depth, setting=setting, precision=precision,
                mode='compile' if compiled else 'eager', size=size,
                times_s=times, peak_mib=peaks,
                eca=paired_ratio(times['eca'], times['plain']),
                naive=paired_ratio(times['naive'], times['plain']),
                eca_naive=paired_ratio(times['eca'], times['naive']))


def mem_ratio(peak, base):
    """``peak / base`` as printed: ``-`` where the base peak is zero."""
    return f'{peak / base:6.3f}' if base > 0 else f'{"-":>6}'


def print_row(c, file=sys.stdout):
    def r(x):
        return f'{x[0]:.3f} ({x[1]:.3f}-{x[2]:.3f})'
    h, w, n = c['size']
    ms = statistics.median(c['times_s']['plain']) * 1000
    mem = c['peak_mib']
    print(f"R-{c['depth']:<4}{c['setting']:<10}{f'{h}x{w} b{n}':<14}"
          f"{c['precision']:<5}{c['mode']:<8}{ms:9.2f}  {r(c['eca']):<22}"
          f"{r(c['naive']):<22}{r(c['eca_naive']):<22}"
          f"{mem['plain']:8.0f} {mem_ratio(mem['eca'], mem['plain'])} "
          f"{mem_ratio(mem['naive'], mem['plain'])}", file=file, flush=True)


HEADER = (f"{'model':<6}{'setting':<10}{'input':<14}{'prec':<5}"
          f"{'mode':<8}{'plain ms':>9}  {'eca x plain (95%)':<22}"
          f"{'naive x plain (95%)':<22}{'eca / naive (95%)':<22}"
          f"{'plainMiB':>8} {'eca x':>6} {'naiv x':>6}")


def profile_blocks(args, cell, top=8):
    """Top kernels by self time of one stage-3 block of each variant, in
    the setting, precision and mode of ``cell`` (eager)."""
    from torch.profiler import ProfilerActivity, profile
    kind, precision = args.device.split(':')[0], cell['precision']
    activities = [ProfilerActivity.CPU]
    if kind == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    h, w, n = cell['size']
    for v in VARIANTS:
        model = build(v, cell['depth'], cell['setting'], args.device)
        backbone = getattr(model, 'backbone', model)
        block = backbone.layer3[1]
        train = cell['setting'].endswith('train')
        backbone.train(train)
        x = torch.randn(n, 1024, h // 16, w // 16, device=args.device,
                        requires_grad=train)
        def one():
            with no_tf32(), torch.set_grad_enabled(train):
                with autocast(args.device, precision):
                    out = block(x)
                if train:
                    out.float().mean().backward()
        for _ in range(3):
            one()
        with profile(activities=activities) as prof:
            for _ in range(5):
                one()
            if kind == 'cuda':
                torch.cuda.synchronize(args.device)
        sort = 'self_cpu_time_total'
        if kind == 'cuda':  # torch 2.4 renamed it; older have the other
            from torch.autograd.profiler_util import FunctionEventAvg
            sort = 'self_device_time_total' if hasattr(
                FunctionEventAvg, 'self_device_time_total') else \
                'self_cuda_time_total'
        print(f'\n{v}: layer3[1], input {tuple(x.shape)}, 5 steps, top '
              f'{top} by self {kind} time')
        print(prof.key_averages().table(sort_by=sort, row_limit=top))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda')
    p.add_argument('--depths', type=int, nargs='+', default=[50, 101],
                   choices=[50, 101])
    p.add_argument('--settings', nargs='+', default=list(SETTINGS),
                   choices=SETTINGS)
    p.add_argument('--precisions', nargs='+', default=None,
                   choices=PRECISIONS,
                   help='default: all on CUDA; fp32 and bf16 on the CPU')
    p.add_argument('--compile-depths', type=int, nargs='*', default=[50],
                   help='depths also measured under torch.compile '
                   '(none: eager only)')
    p.add_argument('--compile-precisions', nargs='+', default=None,
                   choices=PRECISIONS,
                   help='precisions measured under torch.compile (default: '
                   'bf16 on CUDA, fp32 on the CPU)')
    p.add_argument('--compile-settings', nargs='*', default=None,
                   choices=SETTINGS,
                   help='settings measured under torch.compile (default: '
                   'cls-train and det-infer on CUDA, det-infer on the CPU, '
                   'where inductor takes minutes per model)')
    p.add_argument('--compile-backend', default='inductor')
    p.add_argument('--det-size', default=None, metavar='HxWxB',
                   help='detection input, default 800x1216x2 (CPU 128x192x2)')
    p.add_argument('--cls-size', default=None, metavar='HxWxB',
                   help='ImageNet input, default 224x224x64 (CPU 64x64x8)')
    p.add_argument('--rounds', type=int, default=None,
                   help='timed rounds (default 10 on CUDA, 3 on the CPU)')
    p.add_argument('--warmup', type=int, default=None,
                   help='untimed rounds first (default 3 on CUDA, 1 on CPU)')
    p.add_argument('--flag', type=float, default=0.03,
                   help='profile where eca costs more than this over plain')
    p.add_argument('--threads', type=int, default=os.cpu_count() or 1)
    p.add_argument('--json', help='write every cell to this file')
    args = p.parse_args(argv)
    cuda = args.device.startswith('cuda')
    sizes = dict(SIZES['cuda' if cuda else 'cpu'])
    for kind in ('det', 'cls'):
        text = getattr(args, f'{kind}_size')
        if text:
            try:
                h, w, n = (int(v) for v in text.split('x'))
            except ValueError:
                p.error(f'--{kind}-size {text!r}: give HxWxB, e.g. 800x1216x2')
            sizes[kind] = (h, w, n)
    args.sizes = sizes
    if args.precisions is None:
        args.precisions = list(PRECISIONS) if cuda else ['fp32', 'bf16']
    if args.compile_settings is None:
        args.compile_settings = ['cls-train', 'det-infer'] if cuda else \
            ['det-infer']
    if args.compile_precisions is None:
        args.compile_precisions = ['bf16'] if cuda else ['fp32']
    args.rounds = args.rounds or (10 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else \
        (3 if cuda else 1)
    return args


def cells(args):
    for depth in args.depths:
        for setting in args.settings:
            for precision in args.precisions:
                yield depth, setting, precision, False
    for depth in args.compile_depths:
        for setting in args.compile_settings:
            for precision in args.compile_precisions:
                yield depth, setting, precision, True


def describe(device):
    if device.startswith('cuda'):
        p = torch.cuda.get_device_properties(device)
        return (f'{p.name} ({p.total_memory / 2**30:.0f} GiB, sm_{p.major}'
                f'{p.minor}), CUDA {torch.version.cuda}, cuDNN '
                f'{torch.backends.cudnn.version()}')
    return f'CPU, {torch.get_num_threads()} threads'


def main(argv=None):
    args = parse_args(argv)
    import logging

    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    args.device = setup_device(args.device, 'device_figures')
    torch.set_num_threads(args.threads)
    where = describe(args.device)
    print(f'device_figures: {where}; torch {torch.__version__}; '
          f'{args.rounds} rounds after {args.warmup} warm-up, variants '
          f'interleaved in a shuffled order per round; ratios are geometric '
          f'means of per-round ratios (95% Student-t interval of the '
          f'log-ratios); TF32 off; memory x is peak over plain\'s peak\n')
    print(HEADER, flush=True)
    started, results = time.perf_counter(), []
    for depth, setting, precision, compiled in cells(args):
        cell = measure_cell(args, depth, setting, precision, compiled)
        print_row(cell)
        results.append(cell)
    print(f'\n{len(results)} settings in '
          f'{(time.perf_counter() - started) / 60:.1f} min')
    if args.json:  # before the profile, which may fail on its own
        with open(args.json, 'w') as f:
            json.dump(dict(device=where, torch=torch.__version__,
                           args=vars(args), cells=results), f, indent=1)
    over = [c for c in results if c['eca'][0] > 1 + args.flag]
    if over:
        worst = max(over, key=lambda c: c['eca'][0])
        print(f"\nECA costs more than {args.flag:.0%} over plain in "
              f"{len(over)} of {len(results)} settings; worst: R-"
              f"{worst['depth']} {worst['setting']} {worst['precision']} "
              f"{worst['mode']} (x{worst['eca'][0]:.3f}; the "
              f"straightforward form there: x{worst['naive'][0]:.3f}, "
              f"eca / naive {worst['eca_naive'][0]:.3f}). Where the time "
              f"goes, one block each:")
        profile_blocks(args, worst)
    else:
        print(f'\nECA costs at most {args.flag:.0%} over plain everywhere.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
