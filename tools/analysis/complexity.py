#!/usr/bin/env python
"""Parameters and FLOPs, the paper's complexity columns.

* ``complexity.py CONFIG [--shape H W]``       a detector config
* ``complexity.py --backbone ECAResNet --depth 50 --k-size 3 5 5 7``
* ``complexity.py --paper``  the six paper configs and their plain / SE twins
  beside the paper-reported numbers, with ECA-minus-plain differences.
* ``complexity.py --ablation``  the paper's Table 2 for the attention variants
  of ``configs/ablations/``: formula, the parameters it predicts for
  ResNet-50, the parameters counted, FLOPs, and the paper's ImageNet top-1.

Parameters are exact integers (and M = 1e6); FLOPs come from mmengine's
analysis tools (fvcore-style counting: one fused multiply-add = 1 FLOP, as in
the paper's tables) for one image of the given size. Paper numbers used the
MMDetection v1 heads and base-1024 units, so compare the *differences* of
ECA and SE to plain rather than the totals.
"""
import argparse
import os.path as osp
import sys

from eca_mmdet.cli import init_model

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# the paper's COCO table (configs/README.md; the ECA-Net poster and the
# authors' README): params M, GFLOPs, box AP
PAPER = {
    ('faster_rcnn', 50): {'plain': (41.53, 207.07, 36.4),
                          'se': (44.02, 207.18, 37.7),
                          'eca': (41.53, 207.18, 38.0)},
    ('faster_rcnn', 101): {'plain': (60.52, 283.14, 38.7),
                           'se': (65.24, 283.33, 39.6),
                           'eca': (60.52, 283.32, 40.3)},
    ('mask_rcnn', 50): {'plain': (None, None, 37.2),
                        'se': (None, None, 38.7),
                        'eca': (44.18, 275.69, 39.0)},
    ('mask_rcnn', 101): {'plain': (63.17, 351.65, 39.4),
                         'se': (67.89, 351.84, 40.7),
                         'eca': (63.17, 351.83, 41.3)},
    ('retinanet', 50): {'plain': (None, None, None),
                        'se': (None, None, None),
                        'eca': (37.74, 239.43, 37.3)},
    ('retinanet', 101): {'plain': (56.74, 315.39, 37.7),
                         'se': (61.45, 315.58, 38.7),
                         'eca': (56.74, 315.57, 39.1)},
}


# the paper's Table 2 (ResNet-50, ImageNet top-1) and
# supplementary B; per-block parameter formula in C (channels)
ABLATIONS = [
    # name, label, formula, params(C), gate multiply-adds(C), paper top-1
    ('se', 'SE (r=16)', '2C^2/r (+C/r+C bias)',
     lambda c: 2 * c * c // 16 + c // 16 + c, lambda c: 2 * c * c // 16,
     76.71),
    ('se-var1', 'SE-Var1', '0', lambda c: 0, lambda c: 0, 76.00),
    ('se-var2', 'SE-Var2', 'C', lambda c: c, lambda c: c, 77.07),
    ('se-var3', 'SE-Var3', 'C^2', lambda c: c * c, lambda c: c * c, 77.42),
    ('se-gc1', 'SE-GC1 (G=16)', 'C^2/G', lambda c: c * c // 16,
     lambda c: c * c // 16, 76.95),
    ('se-gc2', 'SE-GC2 (G=C/16)', 'C^2/G', lambda c: 16 * c,
     lambda c: 16 * c, 76.98),
    ('se-gc3', 'SE-GC3 (G=C/8)', 'C^2/G', lambda c: 8 * c, lambda c: 8 * c,
     76.96),
    ('eca-ns', 'ECA-NS (k=3)', 'k*C', lambda c: 3 * c, lambda c: 3 * c,
     77.35),
    ('eca-k3', 'ECA (k=3)', 'k', lambda c: 3, lambda c: 3 * c, 77.43),
    ('eca-k3-2convs', 'ECA, 2 convs (k=3)', '2k', lambda c: 6, lambda c: 6 * c,
     None),
]
R50_BLOCKS = ((3, 256), (4, 512), (6, 1024), (3, 2048))


def ablation_table(with_flops=True):
    """Print the paper's Table 2 for configs/ablations/ (ResNet-50)."""
    plain_bb = init_model(osp.join(ROOT, 'configs', 'baselines',
                                   'faster_rcnn_r50.py')).backbone
    plain = count_params(plain_bb)
    base_flops = count_flops(plain_bb, (224, 224), False) \
        if with_flops else None
    print('Attention variants on ResNet-50 (ECA-Net Table 2; top-1 is the '
          'paper-reported ImageNet number, the rest is measured here).\n'
          'Parameters: the formula per block summed over the 16 blocks '
          '(C = 256/512/1024/2048), and counted on the built backbone.\n'
          'Gate MACs: multiply-adds of the gate from the pooled vector, '
          'summed over blocks (pooling and scaling, 2 H W C per block, are '
          'the same for all variants). mmengine FLOPs count conv/linear/'
          'einsum multiply-adds only, not elementwise products such as '
          'SE-Var2\'s.')
    head = ('| variant | params per block | params, formula over R-50 | '
            'params counted (backbone - plain) | gate MACs | '
            'Faster R-CNN params | RetinaNet params |'
            + (' mmengine GFLOPs 224x224 (+ over plain) |'
               if with_flops else '') + ' paper top-1 |')
    print(head)
    print('|' + '---|' * head.count(' |'))
    rows = [('vanilla', 'ResNet-50', '-', lambda c: 0, lambda c: 0, 75.20)
            ] + ABLATIONS
    for name, label, formula, per_block, macs, top1 in rows:
        predicted = sum(n * per_block(c) for n, c in R50_BLOCKS)
        gate_macs = sum(n * macs(c) for n, c in R50_BLOCKS)
        paths = [ablation_config(d, name)
                 for d in ('faster_rcnn', 'retinanet')]
        dets = [init_model(pth) for pth in paths]
        counted = count_params(dets[0].backbone) - plain
        if counted != predicted:
            raise AssertionError(f'{label}: counted {counted} parameters, '
                                 f'the formula gives {predicted}')
        cells = [label, formula, f'{predicted:,}', f'{counted:,}',
                 f'{gate_macs:,}', fmt_m(count_params(dets[0])),
                 fmt_m(count_params(dets[1]))]
        if with_flops:
            f = count_flops(dets[0].backbone, (224, 224), False)
            cells.append(f'{f / 1e9:.4f} (+{(f - base_flops) / 1e9:.2e})')
        cells.append('-' if top1 is None else f'{top1:.2f}')
        print('| ' + ' | '.join(cells) + ' |', flush=True)


def ablation_config(det, name):
    """configs/ablations/<det>_<name>_r50.py; plain and SE are baselines."""
    if name in ('vanilla', 'se'):
        return config_path(det, 50, 'plain' if name == 'vanilla' else 'se')
    return osp.join(ROOT, 'configs', 'ablations', f'{det}_{name}_r50.py')


def config_path(det, depth, variant):
    if variant == 'eca':
        return osp.join(ROOT, 'configs', f'{det}_eca_r{depth}.py')
    mid = '' if variant == 'plain' else 'se_'
    return osp.join(ROOT, 'configs', 'baselines', f'{det}_{mid}r{depth}.py')


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def count_flops(model, shape, detector):
    import torch
    from mmengine.analysis import FlopAnalyzer
    h, w = shape
    x = torch.randn(1, 3, h, w)
    model.eval()
    if not detector:
        return FlopAnalyzer(model, x).total()
    from mmdet.structures import DetDataSample
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
        batch_input_shape=(h, w), scale_factor=(1.0, 1.0)))

    class TensorMode(torch.nn.Module):
        def __init__(self, det):
            super().__init__()
            self.det = det

        def forward(self, inputs):
            return self.det._forward(inputs, [sample])

    analyzer = FlopAnalyzer(TensorMode(model), x)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer.total()


def fmt_m(n):
    return f'{n / 1e6:.2f}M'


def paper_table(shape, with_flops=True):
    import torch
    print(f'Input 1x3x{shape[0]}x{shape[1]}. "ours": params of the mmdet 3.x '
          f'models (exact), FLOPs by mmengine. "paper": MMDetection v1 '
          f'heads, base-1024 M.')
    print('| detector | backbone | params (ours) | GFLOPs (ours) | '
          'params (paper) | GFLOPs (paper) | box AP (paper) |')
    print('|---|---|---|---|---|---|---|')
    diffs = []
    for (det, depth), paper in PAPER.items():
        res = {}
        for variant in ('plain', 'se', 'eca'):
            model = init_model(config_path(det, depth, variant))
            p = count_params(model)
            f = count_flops(model, shape, True) if with_flops else None
            res[variant] = (p, f)
            pp, pf, ap = paper[variant]
            name = {'plain': f'R-{depth}', 'se': f'SE-R-{depth}',
                    'eca': f'ECA-R-{depth}'}[variant]
            print(f'| {det} | {name} | {p:,} ({fmt_m(p)}) | '
                  f'{"-" if f is None else f"{f / 1e9:.2f}"} | '
                  f'{"-" if pp is None else f"{pp:.2f}M"} | '
                  f'{"-" if pf is None else f"{pf:.2f}"} | '
                  f'{"-" if ap is None else ap} |')
            del model
            torch.cuda.empty_cache() if torch.cuda.is_available() else None
        diffs.append((det, depth, res))
    print()
    print('ECA and SE minus plain (ours; paper in brackets where known):')
    print('| detector | depth | ECA params | ECA FLOPs | SE params | '
          'SE FLOPs |')
    print('|---|---|---|---|---|---|')
    for det, depth, res in diffs:
        paper = PAPER[(det, depth)]
        (p0, f0), (ps, fs), (pe, fe) = res['plain'], res['se'], res['eca']

        def pdiff(v, unit):
            a, b = paper[v], paper['plain']
            if a[unit] is None or b[unit] is None:
                return ''
            return f' [{a[unit] - b[unit]:+.2f}{"M" if unit == 0 else "G"}]'

        def ff(a, b):
            return '-' if a is None else f'{(a - b) / 1e9:+.4f}G'

        print(f'| {det} | {depth} | {pe - p0:+,}{pdiff("eca", 0)} | '
              f'{ff(fe, f0)}{pdiff("eca", 1)} | {ps - p0:+,}'
              f'{pdiff("se", 0)} | {ff(fs, f0)}{pdiff("se", 1)} |')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', nargs='?', help='detector config')
    p.add_argument('--backbone', help='backbone type, e.g. ECAResNet')
    p.add_argument('--depth', type=int, default=50)
    p.add_argument('--k-size', type=int, nargs='+')
    p.add_argument('--shape', type=int, nargs=2, default=[800, 1280],
                   metavar=('H', 'W'))
    p.add_argument('--paper', action='store_true')
    p.add_argument('--ablation', action='store_true',
                   help="the paper's Table 2 for configs/ablations/")
    p.add_argument('--no-flops', action='store_true',
                   help='parameters only (fast)')
    args = p.parse_args(argv)
    if args.paper:
        paper_table(args.shape, not args.no_flops)
        return 0
    if args.ablation:
        ablation_table(not args.no_flops)
        return 0
    if args.config:
        model = init_model(args.config)
        detector = True
    elif args.backbone:
        from mmdet.registry import MODELS
        cfg = dict(type=args.backbone, depth=args.depth)
        if args.k_size:
            cfg['k_size'] = tuple(args.k_size) if len(args.k_size) > 1 \
                else args.k_size[0]
        model = MODELS.build(cfg)
        detector = False
    else:
        p.error('give a CONFIG, --backbone or --paper')
    n = count_params(model)
    print(f'params: {n:,} ({fmt_m(n)})')
    if not args.no_flops:
        f = count_flops(model, args.shape, detector)
        print(f'FLOPs : {f / 1e9:.4f} G at 1x3x{args.shape[0]}x'
              f'{args.shape[1]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
