#!/usr/bin/env python
"""Time and peak memory of ECA backbones against plain ResNet, paired.

Variants, same depth, input and seed:

* ``plain`` -- mmdet's ``ResNet``;
* ``eca``   -- our ``ECAResNet`` (the residual tail does not keep ``bn(x)``
  for backward);
* ``naive`` -- mmdet's ``ResNet`` with our ``ECA`` module as an
  ``after_conv3`` plugin: the straightforward ``out + x * gate(x)``;
* ``se``    -- mmdet's ``ResNet`` with the ``SE`` plugin (reduction 16).

Every round runs one step of each variant in a shuffled order (seeded), timed
with CUDA events on the device given (``perf_counter`` on the CPU). Each
round gives a ratio ``variant / plain`` from steps moments apart, so drift of
a shared machine cancels; the table shows their geometric mean with a 95%
Student-t interval on the log-ratios
(:func:`eca_mmdet.utils.timing.paired_ratio`), and ``eca / naive`` paired the
same way. A step computes float32 as float32 (TF32 off, backward included);
``--amp`` autocasts its forward pass. Peak memory is the second step's peak
of live tensor bytes over those live before it: ``max_memory_allocated`` of
the device on CUDA, the allocator's events recorded by ``torch.profiler`` on
the CPU.

Examples::

    python tools/analysis/benchmark.py --mode training --size 512 --memory
    python tools/analysis/benchmark.py --size 224 512 800x1216
    python tools/analysis/benchmark.py --task detector --depth 101
    python tools/analysis/benchmark.py --device cuda --amp --mode training
"""
import argparse
import json
import os
import statistics
import sys

VARIANTS = ('plain', 'eca', 'naive', 'se')
PLUGINS = dict(naive=dict(type='ECA', k_size=None),
               se=dict(type='SE', reduction=16))


def build(task, variant, depth):
    """The model of ``variant``: a backbone, or a Faster R-CNN (R-50/101
    FPN, mmdet's 1x COCO config) with that backbone."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import eca_mmdet  # noqa: F401
    init_default_scope('mmdet')
    torch.manual_seed(0)
    backbone = dict(type='ResNet', depth=depth, norm_eval=False,
                    frozen_stages=-1, init_cfg=None)
    if variant == 'eca':
        backbone.update(type='ECAResNet', k_size=None)
    elif variant in PLUGINS:
        backbone['plugins'] = [dict(cfg=PLUGINS[variant],
                                    position='after_conv3')]
    if task == 'backbone':
        model = MODELS.build(backbone)
    else:
        import mmdet
        cfg = Config.fromfile(os.path.join(
            os.path.dirname(mmdet.__file__), '.mim', 'configs', 'faster_rcnn',
            f'faster-rcnn_r{depth}_fpn_1x_coco.py'))
        cfg.model.backbone = dict(backbone, norm_eval=True, frozen_stages=1)
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def make_step(task, model, mode, batch, size, device, amp):
    """A zero-argument callable that runs one step of ``model``."""
    import torch

    from eca_mmdet.utils.timing import autocast, no_tf32
    h, w = size
    x = torch.randn(batch, 3, h, w, device=device)
    precision = ('fp16' if device.startswith('cuda') else 'bf16') if amp \
        else 'fp32'
    if task == 'detector':
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData
        meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                    batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
        samples = [DetDataSample(metainfo=meta) for _ in range(batch)]
        for s in samples:
            s.gt_instances = InstanceData()
        model.eval()

        def step():
            with torch.no_grad(), no_tf32(), autocast(device, precision):
                model(x, samples, mode='predict')
        return step
    model.train(mode == 'training')

    def step():
        if mode == 'inference':
            with torch.no_grad(), no_tf32(), autocast(device, precision):
                model(x)
            return
        with no_tf32():  # forward and backward
            with autocast(device, precision):
                loss = sum(o.float().mean() for o in model(x))
            loss.backward()
    return step


def run_size(args, size):
    """Time (and memory) of every variant at one input size."""
    from eca_mmdet.utils.timing import (
        interleaved_times,
        paired_ratio,
        peak_bytes,
    )
    steps, models = {}, {}
    for v in args.variants:
        models[v] = build(args.task, v, args.depth).to(args.device)
        steps[v] = make_step(args.task, models[v], args.mode, args.batch,
                             size, args.device, args.amp)
    times = interleaved_times(steps, args.warmup, args.repeats, args.device)
    rows = {}
    for v in args.variants:
        rows[v] = dict(median_s=statistics.median(times[v]), times_s=times[v],
                       ratio=paired_ratio(times[v], times['plain']))
        if args.memory:
            steps[v]()  # the first training step creates the .grad tensors
            rows[v]['peak_mib'] = peak_bytes(steps[v], args.device) / 2**20
        models[v].zero_grad(set_to_none=True)
    if 'eca' in times and 'naive' in times:
        rows['eca / naive'] = dict(ratio=paired_ratio(times['eca'],
                                                      times['naive']))
    return rows


def parse_size(text):
    h, _, w = text.partition('x')
    return int(h), int(w or h)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--task', choices=['backbone', 'detector'],
                   default='backbone', help='detector: Faster R-CNN predict')
    p.add_argument('--mode', choices=['inference', 'training'],
                   default='inference')
    p.add_argument('--depth', type=int, default=50, choices=[50, 101])
    p.add_argument('--batch', type=int, default=None,
                   help='images per step (default 2 training, 1 inference)')
    p.add_argument('--size', type=parse_size, nargs='+',
                   default=[(800, 1216)], metavar='S|HxW')
    p.add_argument('--variants', nargs='+', default=list(VARIANTS),
                   choices=VARIANTS)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--memory', action='store_true',
                   help='also measure each variant\'s peak memory')
    p.add_argument('--amp', action='store_true',
                   help='autocast: float16 on CUDA, bfloat16 on the CPU')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=os.cpu_count() or 1)
    p.add_argument('--json', help='write the results to this file')
    args = p.parse_args(argv)
    if 'plain' not in args.variants:
        args.variants.insert(0, 'plain')
    if args.batch is None:
        args.batch = 2 if args.mode == 'training' else 1
    if args.task == 'detector' and args.mode == 'training':
        p.error('--task detector measures the predict step; drop '
                '--mode training')
    return args


def main(argv=None):
    args = parse_args(argv)
    import logging

    import torch
    from mmengine.logging import MMLogger

    from eca_mmdet.utils.timing import setup_device
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    args.device = setup_device(args.device, 'benchmark')
    where = torch.cuda.get_device_name(args.device) \
        if args.device.startswith('cuda') else \
        f'cpu, {args.threads} threads'
    print(f'{args.task} R-{args.depth} {args.mode}, batch {args.batch}'
          f'{", amp" if args.amp else ""}, {where}, torch '
          f'{torch.__version__}; {args.repeats} rounds after {args.warmup} '
          f'warm-up; time x = geometric mean of per-round ratios to plain '
          f'(95% Student-t interval of the log-ratios); TF32 off')
    results = []
    for size in args.size:
        rows = run_size(args, size)
        print(f'\n{size[0]}x{size[1]}')
        print(f'{"variant":<12}{"median s":>10}{"time x":>8}'
              f'{"95% interval":>16}' + (f'{"peak MiB":>10}{"mem x":>7}'
                                         if args.memory else ''))
        for name, row in rows.items():
            ratio, lo, hi = row['ratio']
            line = f'{name:<12}' + (f'{row["median_s"]:10.4f}'
                                    if 'median_s' in row else ' ' * 10)
            line += f'{ratio:8.3f}{lo:9.3f}-{hi:.3f}'
            if 'peak_mib' in row:
                base = rows['plain']['peak_mib']
                line += f'{row["peak_mib"]:10.0f}' + (
                    f'{row["peak_mib"] / base:7.3f}' if base > 0 else
                    f'{"-":>7}')
            print(line, flush=True)
        results.append(dict(size=size, rows=rows))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(args=vars(args), device=where,
                           torch=torch.__version__, results=results), f,
                      indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
