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
    cli.check_file_exists(args.checkpoint, 'checkpoint')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise cli.ConfigError(f'--out must be a .pkl file, got {args.out}')
    cfg = cli.load_config(args)
    cfg.load_from = args.checkpoint
    cli.skip_pretrained_init(cfg)
    if args.classwise:
        evs = cfg.test_evaluator
        for ev in (evs if isinstance(evs, list) else [evs]):
            ev['classwise'] = True
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


def test(runner, out=None):
    """``runner.test()``, dumping predictions to ``out`` if given."""
    if out is not None:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=out))
    return runner.test()


def main(argv=None):
    args = parse_args(argv)
    code, metrics = cli.run(lambda: build_cfg(args),
                            lambda runner: test(runner, args.out),
                            loaders=('test_dataloader', ))
    if metrics is not None:
        print('metrics: ' + ', '.join(
            f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}'
            for k, v in metrics.items()))
    return code


if __name__ == '__main__':
    sys.exit(main())
