#!/usr/bin/env python
"""Parameters and FLOPs, the paper's complexity columns.

* ``complexity.py CONFIG [--shape H W]``       a detector config
* ``complexity.py --backbone ECAResNet --depth 50 --k-size 3 5 5 7``
* ``complexity.py --paper``  the six paper configs and their plain / SE twins
  beside the paper-reported numbers, with ECA-minus-plain differences.

Parameters are exact integers (and M = 1e6); FLOPs come from mmengine's
analysis tools (fvcore-style counting: one fused multiply-add = 1 FLOP, as in
the paper's tables) for one image of the given size. Paper numbers used the
MMDetection v1 heads and base-1024 units, so compare the *differences* of
ECA and SE to plain rather than the totals.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

# the paper's COCO table (reference section 5): params M, GFLOPs, box AP
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


def config_path(det, depth, variant):
    if variant == 'eca':
        return osp.join(ROOT, 'configs', f'{det}_eca_r{depth}.py')
    mid = '' if variant == 'plain' else 'se_'
    return osp.join(ROOT, 'configs', 'baselines', f'{det}_{mid}r{depth}.py')


def build_detector(path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import eca_mmdet  # noqa: F401
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model)


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
            model = build_detector(config_path(det, depth, variant))
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

        ff = (lambda a, b: '-' if a is None else f'{(a - b) / 1e9:+.4f}G')
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
    p.add_argument('--no-flops', action='store_true',
                   help='parameters only (fast)')
    args = p.parse_args(argv)
    if args.paper:
        paper_table(args.shape, not args.no_flops)
        return 0
    if args.config:
        model = build_detector(args.config)
        detector = True
    elif args.backbone:
        import eca_mmdet  # noqa: F401
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
