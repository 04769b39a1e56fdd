#!/usr/bin/env python
"""Test (evaluate) a detector: mmdet's ``tools/test.py`` plus
``--data-root``, ``--classwise`` and one-line errors for common mistakes.

COCO bbox AP (and segm AP for Mask R-CNN) through the config's evaluator:
AP, AP50, AP75, AP_S, AP_M, AP_L; ``--classwise`` adds the per-class table.

Example::

    python tools/test.py configs/mask_rcnn_eca_r101.py work_dirs/x/epoch_12.pth
    python tools/test.py CONFIG CKPT --out results.pkl --show-dir vis/
"""
import argparse
import sys

from mmdet.utils import setup_cache_size_limit_of_dynamo

import eca_mmdet.engine  # noqa: F401  (opt-in: safe checkpoint I/O, hooks)
from eca_mmdet import cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump predictions to this .pkl file')
    parser.add_argument('--show-dir', help='save painted predictions here '
                        '(relative to the run\'s work_dir/timestamp)')
    parser.add_argument('--classwise', action='store_true',
                        help='print the per-class AP table')
    cli.add_common_args(parser)
    return cli.parse_args(parser, argv)


def build_cfg(args):
    """The test config of ``args``: checked, evaluating ``args.checkpoint``
    on the test set."""
    cli.check_file_exists(args.checkpoint, 'checkpoint')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise cli.ConfigError(f'--out must be a .pkl file, got {args.out}')
    cfg = cli.load_config(args.config, args.cfg_options, args.data_root,
                          args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    cli.skip_pretrained_init(cfg)
    evaluators = cfg.test_evaluator
    if not isinstance(evaluators, (list, tuple)):
        evaluators = [evaluators]
    if args.classwise:
        for ev in evaluators:
            ev['classwise'] = True
    if args.out is not None:
        cfg.test_evaluator = [*evaluators, dict(type='DumpDetResults',
                                                out_file_path=args.out)]
    if args.show_dir:
        vis = cfg.default_hooks.get('visualization')
        if vis is None:
            raise cli.ConfigError(
                '--show-dir needs default_hooks.visualization '
                '(DetVisualizationHook) in the config')
        vis['draw'] = True
        vis['test_out_dir'] = args.show_dir
    cli.setup_device(cfg)
    cli.check_datasets_exist(cfg, loaders=('test_dataloader', ))
    cli.add_custom_hooks(cfg, 'ImageFilesCheckHook')
    return cfg


def main(argv=None):
    setup_cache_size_limit_of_dynamo()
    args = parse_args(argv)
    cfg = build_cfg(args)
    runner = cli.build_runner(cfg)
    with cli.diagnose_data_errors(cfg, loaders=('test_dataloader', )):
        metrics = runner.test()
    print('metrics: ' + ', '.join(
        f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}'
        for k, v in metrics.items()))


if __name__ == '__main__':
    sys.exit(cli.run_tool(main))
