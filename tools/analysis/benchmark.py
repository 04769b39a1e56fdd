#!/usr/bin/env python
"""Wall time, throughput and peak memory: plain vs ECA vs naive ECA vs SE.

Variants (same depth, same weights init, same input):

* ``plain``  -- mmdet's ``ResNet``
* ``eca``    -- our ``ECAResNet`` (fused gate+residual, lean backward)
* ``naive``  -- mmdet's ``ResNet`` + the authors' ``eca_layer`` (their
  ``models/eca_module.py``, :class:`StraightforwardECA`) as a plugin after
  conv3: ``AdaptiveAvgPool2d``, ``nn.Conv1d``, sigmoid, separate full-size
  multiply -- the straightforward port
* ``se``     -- mmdet's ``ResNet`` + the ``SE`` plugin (reduction 16)

Timing interleaves the variants round by round, in a shuffled order, and
reports the median step time with min/max over ``--repeats`` rounds after
``--warmup`` rounds. The time ratio to ``plain`` is paired: each round gives
``variant / plain`` from steps seconds apart (so drift of a shared machine
cancels), and the table shows the geometric mean of those ratios with a 95%
bootstrap interval. On a noisy machine, raise ``--repeats`` until the
interval is as narrow as the question needs.

Peak memory is measured in a fresh subprocess per variant, for the second
step after the model is built (the first creates the ``.grad``
tensors): the peak of live tensor bytes during the step over those live
before it -- on the CPU from the allocator events recorded by
``torch.profiler`` (``profile_memory=True``), on CUDA from
``max_memory_allocated``.

Examples::

    python tools/analysis/benchmark.py                  # R-50 backbone, CPU
    python tools/analysis/benchmark.py --task detector  # Faster R-CNN predict
    python tools/analysis/benchmark.py --device cuda --size 800 1216
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

VARIANTS = ('plain', 'eca', 'naive', 'se')


def straightforward_eca():
    """The authors' ``eca_layer`` (``models/eca_module.py`` of
    BangguWu/ECANet), verbatim but for the mmdet plugin signature
    (``in_channels``; ``k_size=None`` picks the paper's adaptive size).
    Kept independent of ``eca_mmdet`` so the baseline does not move when
    our layer is optimised."""
    import torch.nn as nn

    from eca_mmdet.layers.eca import adaptive_kernel_size

    class StraightforwardECA(nn.Module):
        _abbr_ = 'eca'

        def __init__(self, in_channels, k_size=None):
            super().__init__()
            if k_size is None:
                k_size = adaptive_kernel_size(in_channels)
            self.avg_pool = nn.AdaptiveAvgPool2d(1)
            self.conv = nn.Conv1d(1, 1, kernel_size=k_size,
                                  padding=(k_size - 1) // 2, bias=False)
            self.sigmoid = nn.Sigmoid()

        def forward(self, x):
            y = self.avg_pool(x)
            y = self.conv(y.squeeze(-1).transpose(-1, -2))
            y = self.sigmoid(y.transpose(-1, -2).unsqueeze(-1))
            return x * y.expand_as(x)

    return StraightforwardECA


def build_backbone(variant, depth):
    from mmdet.models.backbones import ResNet

    import eca_mmdet  # noqa: F401
    from eca_mmdet.backbones import ECAResNet
    common = dict(depth=depth, norm_eval=False, frozen_stages=-1)
    if variant == 'plain':
        return ResNet(**common)
    if variant == 'eca':
        return ECAResNet(k_size=None, **common)
    plugin = dict(type=straightforward_eca()) if variant == 'naive' \
        else dict(type='mmdet.SE', reduction=16)
    return ResNet(plugins=[dict(cfg=plugin, position='after_conv3')],
                  **common)


DETECTOR_CONFIGS = {
    'plain': 'configs/baselines/faster_rcnn_r{d}.py',
    'eca': 'configs/faster_rcnn_eca_r{d}.py',
    'se': 'configs/baselines/faster_rcnn_se_r{d}.py',
}


def build_detector(variant, depth):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import eca_mmdet  # noqa: F401
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    if variant == 'naive':
        cfg = Config.fromfile(osp.join(ROOT, DETECTOR_CONFIGS['plain']
                                       .format(d=depth)))
        cfg.model.backbone.plugins = [dict(
            cfg=dict(type=straightforward_eca()), position='after_conv3')]
    else:
        cfg = Config.fromfile(osp.join(ROOT, DETECTOR_CONFIGS[variant]
                                       .format(d=depth)))
    cfg.model.backbone.init_cfg = None
    if variant == 'eca':
        cfg.model.backbone.pop('arch', None)
        cfg.model.backbone.k_size = None
    return MODELS.build(cfg.model)


def build(task, variant, depth, device):
    import logging

    import torch
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    torch.manual_seed(0)
    model = build_backbone(variant, depth) if task == 'backbone' \
        else build_detector(variant, depth)
    model.init_weights()
    return model.to(device)


def make_step(task, model, mode, batch, size, device):
    """Return a zero-argument callable running one step."""
    import torch
    h, w = size
    if task == 'backbone':
        x = torch.randn(batch, 3, h, w, device=device)
        if mode == 'inference':
            model.eval()

            def step():
                with torch.no_grad():
                    return model(x)
        else:
            model.train()

            def step():
                outs = model(x)
                sum(o.float().mean() for o in outs).backward()
        return step
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    model.eval()
    inputs = torch.randn(batch, 3, h, w, device=device)
    samples = []
    for _ in range(batch):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                        pad_shape=(h, w),
                                        batch_input_shape=(h, w),
                                        scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData()
        samples.append(s)

    def step():
        with torch.no_grad():
            return model(inputs, samples, mode='predict')
    return step


def sync(device):
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_variants(args, variants):
    """Step times per variant, one step of each variant per round.

    The order within a round is shuffled (seeded), so no variant always
    runs first or always right after the same other variant (what a step
    leaves in the caches and the allocator can speed up or slow down the
    next one)."""
    steps = {}
    for v in variants:
        model = build(args.task, v, args.depth, args.device)
        steps[v] = make_step(args.task, model, args.mode, args.batch,
                             args.size, args.device)
    return interleaved_times(steps, args.warmup, args.repeats, args.device)


def interleaved_times(steps, warmup, repeats, device='cpu', seed=0):
    """Run each of ``steps`` (name -> zero-argument callable) once per
    round, in an order shuffled per round (seeded); return name -> step
    times of the ``repeats`` rounds after ``warmup``."""
    import random
    rng = random.Random(seed)
    names = list(steps)
    times = {name: [] for name in names}
    for r in range(warmup + repeats):
        for name in rng.sample(names, len(names)):
            sync(device)
            t = time.perf_counter()
            steps[name]()
            sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - t)
    return times


def paired_ratio(times, base, resamples=2000, seed=0):
    """Time ratio of ``times`` to ``base`` from the same rounds.

    Each round gives one ratio ``times[r] / base[r]``, taken seconds apart,
    so slow drift of a shared machine cancels. Returns the geometric mean of
    the per-round ratios and a 95% bootstrap interval for it (percentile
    method, ``resamples`` resamples of the rounds, fixed ``seed``)."""
    import math
    import random
    logs = [math.log(t / b) for t, b in zip(times, base)]
    if not logs:
        raise ValueError('paired_ratio needs at least one round')
    rng = random.Random(seed)
    means = sorted(
        statistics.fmean(rng.choices(logs, k=len(logs)))
        for _ in range(resamples))
    lo = means[int(0.025 * (resamples - 1))]
    hi = means[int(0.975 * (resamples - 1))]
    return (math.exp(statistics.fmean(logs)), math.exp(lo), math.exp(hi))


def eca_over_naive(times):
    """Our ECA paired directly with the straightforward one, round by
    round: ``dict(ratio, ci95)`` (see :func:`paired_ratio`), or None if
    either was not timed."""
    if 'eca' not in times or 'naive' not in times:
        return None
    ratio, lo, hi = paired_ratio(times['eca'], times['naive'])
    return dict(ratio=ratio, ci95=(lo, hi))


def cpu_peak_bytes(step):
    """Peak bytes of live CPU tensors during ``step()`` over those live
    before it, from the allocation and free events that the profiler
    records at PyTorch's allocator: the CPU counterpart of
    ``torch.cuda.max_memory_allocated``, and unlike the process's resident
    set it does not depend on what glibc keeps cached or returns."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == '[memory]' and e.device_type() ==
              torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def memory_worker(args):
    """Run in a subprocess: peak memory of one step of one variant."""
    import torch
    model = build(args.task, args.variant, args.depth, args.device)
    step = make_step(args.task, model, args.mode, args.batch, args.size,
                     args.device)
    step()  # the first step creates the .grad tensors
    if args.device.startswith('cuda'):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = cpu_peak_bytes(step)
    print(json.dumps(dict(peak_bytes=peak)))


def measure_memory(args, variant):
    cmd = [sys.executable, osp.abspath(__file__), '--_memory-worker',
           variant, '--task', args.task, '--mode', args.mode, '--depth',
           str(args.depth), '--batch', str(args.batch), '--size',
           *map(str, args.size), '--device', args.device,
           '--threads', str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])['peak_bytes']


def sweep(args, variants):
    """Time ratio to plain for several input sizes; table, JSON, plot."""
    import copy
    sizes = [(s, s) for s in args.sweep] + [tuple(args.size)]
    results = []
    print(f'{args.task} R-{args.depth} {args.mode}, batch {args.batch}: '
          f'time / plain (geometric mean of {args.repeats} paired rounds)')
    print(f'{"size":>10} ' + ' '.join(f'{v:>7}' for v in variants))
    for size in sizes:
        a = copy.copy(args)
        a.size = list(size)
        times = time_variants(a, variants)
        base = statistics.median(times['plain'])
        cis = {v: paired_ratio(times[v], times['plain']) for v in variants}
        ratios = {v: cis[v][0] for v in variants}
        results.append(dict(size=size, plain_s=base, ratios=ratios,
                            ci95={v: cis[v][1:] for v in variants}))
        line = f'{size[0]:>4}x{size[1]:<5} ' + \
            ' '.join(f'{ratios[v]:7.3f}' for v in variants)
        pair = eca_over_naive(times)
        if pair:
            results[-1]['eca_over_naive'] = pair
            line += f'   eca/naive {pair["ratio"]:.3f} ' \
                f'({pair["ci95"][0]:.3f}-{pair["ci95"][1]:.3f})'
        print(line, flush=True)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(args=vars(args), results=results), f, indent=2)
    if args.plot:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = [f'{h}x{w}' for h, w in sizes]
        names = dict(eca='ECA (ours)', naive='ECA, straightforward',
                     se='SE (r=16)', plain='plain')
        for v in variants:
            if v == 'plain':
                continue
            ax.plot(labels, [r['ratios'][v] for r in results], marker='o',
                    label=names[v])
        ax.axhline(1.0, color='gray', lw=0.8)
        ax.set_xlabel('input size')
        ax.set_ylabel('time / plain ResNet')
        ax.set_title(f'R-{args.depth} backbone {args.mode} overhead, '
                     f'{args.device}, {args.threads} threads')
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f'plot: {args.plot}')
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--task', choices=['backbone', 'detector'],
                   default='backbone')
    p.add_argument('--mode', choices=['inference', 'training'],
                   default='inference')
    p.add_argument('--depth', type=int, default=50, choices=[50, 101])
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--size', type=int, nargs=2, default=[800, 1216],
                   metavar=('H', 'W'))
    p.add_argument('--variants', nargs='+', default=list(VARIANTS),
                   choices=VARIANTS)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--memory', action='store_true',
                   help='also measure peak memory (one subprocess each)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=os.cpu_count() or 1)
    p.add_argument('--json', help='write results here')
    p.add_argument('--sweep', type=int, nargs='+', metavar='S',
                   help='time square inputs of these sizes (and --size) '
                   'and plot the time ratio to plain per size')
    p.add_argument('--plot', help='PNG file for the --sweep plot')
    p.add_argument('--_memory-worker', dest='variant', help=argparse.SUPPRESS)
    return p.parse_args(argv)


def check_device(device):
    """Exit with a clear message if ``device`` cannot run here."""
    import torch
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise SystemExit(f'benchmark: --device {device!r} is not a device '
                         f'name ({e}); use cpu or cuda[:N]')
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(
            f'benchmark: --device {device} asked for, but '
            f'torch.cuda.is_available() is False (torch {torch.__version__}'
            f' is a CPU build, or no GPU is visible); run on a GPU machine '
            f'with a CUDA build of torch, or use --device cpu')
    if dev.type not in ('cpu', 'cuda'):
        raise SystemExit(f'benchmark: --device {device}: only cpu and cuda '
                         f'are supported')


def main(argv=None):
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    check_device(args.device)
    if args.variant:
        return memory_worker(args)
    if args.task == 'detector' and args.mode == 'training':
        raise SystemExit('detector benchmark measures the predict step; use '
                         '--mode inference')
    variants = [v for v in args.variants]
    if 'plain' not in variants:
        variants.insert(0, 'plain')
    if args.sweep:
        return sweep(args, variants)
    times = time_variants(args, variants)
    rows = []
    for v in variants:
        med = statistics.median(times[v])
        ratio, lo, hi = paired_ratio(times[v], times['plain'])
        row = dict(variant=v, median_s=med, min_s=min(times[v]),
                   max_s=max(times[v]), ratio=ratio, ratio_ci95=(lo, hi),
                   median_ratio=med / statistics.median(times['plain']),
                   images_per_s=args.batch / med, times_s=times[v])
        rows.append(row)
    if args.memory:
        mems = {v: measure_memory(args, v) for v in variants}
        for row in rows:
            row['peak_mib'] = mems[row['variant']] / 2**20
            row['mem_ratio'] = mems[row['variant']] / mems['plain']
    dev = args.device if not args.device.startswith('cuda') else \
        torch.cuda.get_device_name()
    title = (f'{args.task} R-{args.depth} {args.mode}, batch {args.batch}, '
             f'{args.size[0]}x{args.size[1]}, {dev}, {args.threads} threads, '
             f'{args.repeats} rounds after {args.warmup} warm-up')
    print(title)
    print('time x: geometric mean over rounds of (variant / plain in the '
          'same round), with its 95% bootstrap interval')
    head = f'{"variant":<8} {"median s":>9} {"min s":>8} {"max s":>8} ' \
           f'{"img/s":>7} {"time x":>7} {"95% interval":>13}'
    if args.memory:
        head += f' {"peak MiB":>9} {"mem x":>6}'
    print(head)
    for r in rows:
        line = (f'{r["variant"]:<8} {r["median_s"]:9.4f} {r["min_s"]:8.4f} '
                f'{r["max_s"]:8.4f} {r["images_per_s"]:7.2f} '
                f'{r["ratio"]:7.3f}   {r["ratio_ci95"][0]:.3f}-'
                f'{r["ratio_ci95"][1]:.3f}')
        if args.memory:
            line += f' {r["peak_mib"]:9.0f} {r["mem_ratio"]:6.3f}'
        print(line)
    result = dict(title=title, args=vars(args), rows=rows)
    pair = eca_over_naive(times)
    if pair:
        result['eca_over_naive'] = pair
        print(f'eca / naive: {pair["ratio"]:.3f} (95% interval '
              f'{pair["ci95"][0]:.3f}-{pair["ci95"][1]:.3f})')
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
