#!/usr/bin/env python
"""The built-in demo: generate data, train an ECA Mask R-CNN, evaluate it.

1. Generates the "shapes" COCO dataset (boxes and instance masks; reused
   when it exists) under ``data/synthetic_shapes/``.
2. Trains ``configs/demo/mask_rcnn_eca_r18_shapes.py`` (ECA-ResNet-18 FPN
   Mask R-CNN from scratch) on the CPU through ``tools/train.py``'s code.
3. Evaluates the last checkpoint with the COCO metric through
   ``tools/test.py``'s code and prints the bbox and segm AP table.

The terminal shows progress bars; mmengine's full log (config, hooks, every
iteration) goes to the run's log file in the work directory, and
``--verbose`` shows it live instead. ``--resume`` continues an interrupted
run from its last checkpoint.
"""
import argparse
import contextlib
import importlib.util
import io
import os.path as osp
import sys
import time
import warnings

TOOLS = osp.dirname(osp.abspath(__file__))
CONFIG = osp.join(osp.dirname(TOOLS), 'configs', 'demo',
                  'mask_rcnn_eca_r18_shapes.py')
METRICS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--data-root', default='data/synthetic_shapes')
    p.add_argument('--num-train', type=int, default=300)
    p.add_argument('--num-val', type=int, default=60)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--resume', action='store_true',
                   help='continue from the last checkpoint in --work-dir')
    p.add_argument('--verbose', action='store_true',
                   help="show mmengine's full log instead of progress bars")
    return p.parse_args(argv)


def load_tool(name):
    """``tools/<name>.py`` as a module: the demo runs the tools' code."""
    spec = importlib.util.spec_from_file_location(
        f'eca_mmdet_tools_{name}', osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ap_table(metrics):
    rows = ['| task | ' + ' | '.join(f'{m:>6}' for m in METRICS) + ' |',
            '|------|' + '|'.join('-' * 8 for _ in METRICS) + '|']
    for task in ('bbox', 'segm'):
        vals = [metrics.get(f'coco/{task}_{m}') for m in METRICS]
        if None not in vals:
            rows.append(f'| {task:<4} | '
                        + ' | '.join(f'{v:6.3f}' for v in vals) + ' |')
    return '\n'.join(rows)


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    terminal = sys.stdout

    def say(*lines):
        print(*lines, sep='\n', file=terminal, flush=True)

    def quiet():
        """Without --verbose, keep what mmengine and pycocotools print off
        the terminal: mmengine's messages are in the log file anyway, the
        rest is dataset-loading chatter."""
        if args.verbose:
            return contextlib.nullcontext()
        return contextlib.redirect_stdout(io.StringIO())

    if not args.verbose:
        warnings.filterwarnings('ignore')
    from eca_mmdet import cli
    from eca_mmdet.cli.console import ProgressBarHook, QuietConsoleRunner
    from eca_mmdet.datasets import generate_dataset
    train, test = load_tool('train'), load_tool('test')
    runner_cls = None if args.verbose else QuietConsoleRunner
    common = ['--work-dir', args.work_dir, '--data-root', args.data_root]

    say('eca-mmdet demo: Mask R-CNN with an ECA-ResNet-18 backbone, trained '
        'from scratch on the CPU',
        f'[1/3] data: {args.num_train} train / {args.num_val} val generated '
        f'images in {args.data_root} (reused if present)')
    generate_dataset(args.data_root, args.num_train, args.num_val,
                     seed=args.seed)

    with quiet():
        cfg = train.build_cfg(train.parse_args(
            [CONFIG, *common, '--cfg-options', f'randomness.seed={args.seed}']
            + (['--resume'] if args.resume else [])))
        # evaluated once after training, below, with tools/test.py's code
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
        say(f'[2/3] training for {cfg.train_cfg.max_epochs} epochs (full '
            f'log in {args.work_dir}/<time>/, --verbose shows it here)')
        runner = cli.build_runner(cfg, runner_cls)
        if not args.verbose:
            runner.register_hook(ProgressBarHook())
        with cli.diagnose_data_errors(cfg):
            runner.train()
    t_train = time.time() - t0
    ckpt = osp.join(args.work_dir, f'epoch_{runner.max_epochs}.pth')
    log = osp.relpath(osp.join(runner.log_dir, f'{runner.timestamp}.log'))
    del runner

    say(f'[3/3] COCO evaluation of {ckpt} on the val images')
    with quiet():
        cfg = test.build_cfg(test.parse_args([CONFIG, ckpt, *common]))
        runner = cli.build_runner(cfg, runner_cls)
        if not args.verbose:
            runner.register_hook(ProgressBarHook())
        with contextlib.redirect_stdout(io.StringIO()) as coco_output, \
                cli.diagnose_data_errors(cfg, ('test_dataloader', )):
            metrics = runner.test()
        runner.logger.info(coco_output.getvalue())  # to the log file
        if args.verbose:
            print(coco_output.getvalue())
    config = osp.relpath(CONFIG)
    say('', f'COCO AP@[.5:.95] on {args.num_val} val images:',
        ap_table(metrics), '', f'checkpoint: {ckpt}', f'log       : {log}',
        f'time      : {t_train / 60:.1f} min training, '
        f'{(time.time() - t0) / 60:.1f} min in all',
        'next      : detect objects in any image or folder:',
        f'  python tools/infer.py {args.data_root}/val {config} {ckpt} '
        f'--out-dir {args.work_dir}/infer',
        '            what ECA learned per class:',
        f'  python tools/analysis/visualize_attention.py {config} {ckpt} '
        f'--data-root {args.data_root}')


if __name__ == '__main__':
    from eca_mmdet.cli import run_tool
    sys.exit(run_tool(main))
