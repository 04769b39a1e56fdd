#!/usr/bin/env python
"""Train a detector: mmdet's ``tools/train.py`` plus ``--data-root``,
crash-safe checkpoints and one-line errors for common mistakes.

Example::

    python tools/train.py configs/faster_rcnn_eca_r101.py
    python tools/train.py configs/faster_rcnn_eca_r101.py --data-root /coco/
    python tools/train.py CONFIG --resume            # latest in work_dir
    python tools/train.py CONFIG --amp --amp-dtype bfloat16   # GPU
    bash tools/dist_train.sh CONFIG 4                # 4 processes (torchrun)
"""
import argparse
import sys
from contextlib import nullcontext

from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine.device import get_device

import eca_mmdet.engine  # noqa: F401  (opt-in: safe checkpoint I/O, hooks)
from eca_mmdet import cli
from eca_mmdet.layers.mmcv_ops_fp32 import mmcv_ops_in_fp32
from eca_mmdet.utils import is_main_process


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--amp', action='store_true', default=False,
        help='enable automatic-mixed-precision training (GPU): mmengine\'s '
        'AmpOptimWrapper, with mmcv\'s RoIAlign, focal loss, deformable '
        'attention and NMS in float32 (mmcv_ops_in_fp32, restored however '
        'the run ends)')
    parser.add_argument(
        '--amp-dtype', choices=['float16', 'bfloat16'],
        help='the autocast dtype of --amp (implies --amp; default: the '
        'config\'s optim_wrapper.dtype, else float16)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='enable automatically scaling LR')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a value from the '
        'latest checkpoint in the work directory')
    cli.add_common_args(parser)
    return cli.parse_args(parser, argv)


def build_cfg(args):
    """The training config of ``args``: checked, with the weights it names
    fetched and its datasets found."""
    cfg = cli.load_config(args.config, args.cfg_options, args.data_root,
                          args.work_dir, args.launcher)
    if args.amp or args.amp_dtype:
        if get_device() == 'cpu':
            raise cli.ConfigError(
                '--amp needs a GPU: mmengine\'s AmpOptimWrapper refuses the '
                'CPU')
        cli.use_amp(cfg, args.amp_dtype)
    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise cli.ConfigError(
                '--auto-scale-lr needs auto_scale_lr=dict(enable=False, '
                'base_batch_size=N) in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cli.check_file_exists(args.resume, '--resume: checkpoint')
        cfg.resume = True
        cfg.load_from = args.resume
    cli.use_safe_training_hooks(cfg)
    cli.add_custom_hooks(cfg, 'BatchSizeLogHook')
    cli.setup_device(cfg)
    for line in cli.fetch_checkpoints(cfg):
        if is_main_process():
            print(line, flush=True)
    cli.check_datasets_exist(cfg)
    return cfg


def main(argv=None):
    setup_cache_size_limit_of_dynamo()
    args = parse_args(argv)
    cfg = build_cfg(args)
    runner = cli.build_runner(cfg)
    # the hook cannot restore mmcv's ops after an error: the block does
    fp32_ops = any(str(h.get('type')).endswith('MMCVOpsInFP32Hook')
                   for h in cfg.get('custom_hooks') or [])
    with cli.diagnose_data_errors(cfg), \
            (mmcv_ops_in_fp32() if fp32_ops else nullcontext()):
        runner.train()


if __name__ == '__main__':
    sys.exit(cli.run_tool(main))
