#!/usr/bin/env python
"""Train a detector with mmengine's Runner (mirrors mmdet's tools/train.py).

Example::

    python tools/train.py configs/faster_rcnn_eca_r101.py
    python tools/train.py configs/faster_rcnn_eca_r101.py \
        --data-root /data/coco/
    python tools/train.py CONFIG --resume            # latest in work_dir
    bash tools/dist_train.sh CONFIG 4                # 4 processes (torchrun)
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='enable automatically scaling LR')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a value from the '
        'latest checkpoint in the work directory')
    parser.add_argument('--data-root',
                        help='dataset root (overrides data_root of every '
                        'dataloader and the evaluator ann_file)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value (as in mmdet)')
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
        check_datasets_exist,
        load_config,
        setup_device,
        use_safe_training_hooks,
    )
    cfg = load_config(args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        asl = cfg.get('auto_scale_lr')
        if not asl or 'base_batch_size' not in asl:
            raise ValueError('--auto-scale-lr needs auto_scale_lr='
                             'dict(enable=False, base_batch_size=N) in the '
                             'config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume: checkpoint not found: '
                                    f'{args.resume}')
        cfg.resume = True
        cfg.load_from = args.resume
    use_safe_training_hooks(cfg)
    setup_device(cfg)
    check_datasets_exist(cfg)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    import eca_mmdet.engine  # noqa: F401  (models, safe I/O, hooks)
    from eca_mmdet.runner import (
        explain_failure,
        offline_notice,
        teardown_distributed,
    )

    setup_cache_size_limit_of_dynamo()
    cfg = None
    try:
        cfg = build_cfg(args)
        for line in offline_notice(cfg):
            print(line, flush=True)
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
            else RUNNERS.build(cfg)
        runner.train()
    except Exception as e:
        message = explain_failure(e, cfg)
        if message is None:
            raise
        print(f'error: {message}', file=sys.stderr)
        teardown_distributed(sync=False)
        return 2
    teardown_distributed()
    return 0


if __name__ == '__main__':
    sys.exit(main())
