#!/usr/bin/env python
"""Test (evaluate) a trained detector (mirrors mmdet's tools/test.py).

COCO bbox AP (and segm AP for Mask R-CNN) through mmdet's CocoMetric:
AP, AP50, AP75, AP_S, AP_M, AP_L; ``--classwise`` adds the per-class table.

Example::

    python tools/test.py configs/mask_rcnn_eca_r101.py work_dirs/x/epoch_12.pth
    python tools/test.py CONFIG CKPT --out results.pkl --show-dir vis/
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a '
                                     'detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='dir for the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to this .pkl file')
    parser.add_argument('--show-dir', help='save painted predictions here '
                        '(relative to the run\'s work_dir/timestamp)')
    parser.add_argument('--classwise', action='store_true',
                        help='print the per-class AP table')
    parser.add_argument('--data-root', help='dataset root override')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args):
    from eca_mmdet.runner import (
        add_custom_hooks,
        check_datasets_exist,
        load_config,
        setup_device,
    )
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl file, got {args.out}')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    # the trained checkpoint holds every weight: skip ImageNet init
    cfg.model.setdefault('backbone', {})
    if cfg.model.backbone.get('init_cfg') is not None:
        cfg.model.backbone.init_cfg = None
    if args.classwise:
        evs = cfg.test_evaluator
        for ev in (evs if isinstance(evs, list) else [evs]):
            ev['classwise'] = True
    if args.show_dir:
        vis = cfg.default_hooks.get('visualization')
        if vis is None:
            raise ValueError('--show-dir needs default_hooks.visualization '
                             '(DetVisualizationHook) in the config')
        vis['draw'] = True
        vis['test_out_dir'] = args.show_dir
    setup_device(cfg)
    check_datasets_exist(cfg, loaders=('test_dataloader', ))
    add_custom_hooks(cfg, 'ImageFilesCheckHook')
    return cfg


def main(argv=None):
    args = parse_args(argv)
    from mmdet.evaluation import DumpDetResults
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    import eca_mmdet.engine  # noqa: F401  (models, safe I/O, hooks)
    from eca_mmdet.runner import explain_failure, teardown_distributed

    setup_cache_size_limit_of_dynamo()
    cfg = None
    try:
        cfg = build_cfg(args)
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
            else RUNNERS.build(cfg)
        if args.out is not None:
            runner.test_evaluator.metrics.append(
                DumpDetResults(out_file_path=args.out))
        metrics = runner.test()
    except Exception as e:
        message = explain_failure(e, cfg, loaders=('test_dataloader', ))
        if message is None:
            raise
        print(f'error: {message}', file=sys.stderr)
        teardown_distributed(sync=False)
        return 2
    teardown_distributed()
    print('metrics: ' + ', '.join(f'{k}={v:.4f}' if isinstance(v, float)
                                  else f'{k}={v}'
                                  for k, v in metrics.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
