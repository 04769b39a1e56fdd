#!/usr/bin/env python
"""The built-in demo: generate data, train an ECA Mask R-CNN, evaluate it.

1. Generates the "shapes" COCO dataset (boxes + instance masks; reused when
   it already exists) under ``data/synthetic_shapes/``.
2. Trains ``configs/demo/mask_rcnn_eca_r18_shapes.py`` (ECA-ResNet-18 FPN
   Mask R-CNN, from scratch) on the CPU with mmengine's Runner.
3. Evaluates the final checkpoint with the COCO metric (pycocotools) and
   prints the bbox and segm AP table, plus where the checkpoint, logs and a
   picture of predictions on validation images were written.

``--resume`` continues an interrupted run from its last checkpoint.
"""
import argparse
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_eca_r18_shapes.py')
METRICS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--data-root', default='data/synthetic_shapes')
    p.add_argument('--num-train', type=int, default=300)
    p.add_argument('--num-val', type=int, default=60)
    p.add_argument('--epochs', type=int, default=None,
                   help='training epochs (default: the config\'s)')
    p.add_argument('--resume', action='store_true',
                   help='continue from the last checkpoint in --work-dir')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def ap_table(metrics):
    rows = []
    for task in ('bbox', 'segm'):
        vals = [metrics.get(f'coco/{task}_{m}') for m in METRICS]
        if any(v is None for v in vals):
            continue
        rows.append(f'| {task:<4} | ' + ' | '.join(f'{v:6.3f}' for v in vals)
                    + ' |')
    head = '| task | ' + ' | '.join(f'{m:>6}' for m in METRICS) + ' |'
    sep = '|------|' + '|'.join('-' * 8 for _ in METRICS) + '|'
    return '\n'.join([head, sep] + rows)


def draw_predictions(runner, cfg, out_file, num=6, score_thr=0.5,
                     zoom=3):
    """Paint predictions of the trained model on a few val images, enlarged
    ``zoom`` times so that labels stay readable on 128-pixel images."""
    import mmcv
    import numpy as np
    import torch.nn.functional as F
    from mmdet.apis import inference_detector
    from mmdet.registry import VISUALIZERS

    model = runner.model
    model.cfg = cfg
    model.dataset_meta = runner.test_dataloader.dataset.metainfo
    visualizer = VISUALIZERS.build(dict(type='DetLocalVisualizer',
                                        name=f'demo_vis_{time.time()}'))
    visualizer.dataset_meta = model.dataset_meta
    ds = runner.test_dataloader.dataset
    tiles = []
    for i in range(min(num, len(ds))):
        path = ds.get_data_info(i)['img_path']
        img = mmcv.imread(path, channel_order='rgb')
        result = inference_detector(model, path)
        pred = result.pred_instances
        pred = pred[pred.scores >= score_thr]
        pred.bboxes = pred.bboxes * zoom
        if 'masks' in pred and len(pred):
            pred.masks = F.interpolate(pred.masks[:, None].float(),
                                       scale_factor=zoom)[:, 0] > 0.5
        result.pred_instances = pred
        big = mmcv.imrescale(img, zoom, interpolation='nearest')
        visualizer.add_datasample('pred', big, result, draw_gt=False,
                                  pred_score_thr=score_thr, show=False)
        tiles.append(visualizer.get_image())
    grid = np.concatenate([np.concatenate(tiles[:3], 1),
                           np.concatenate(tiles[3:6], 1)], 0) \
        if len(tiles) == 6 else np.concatenate(tiles, 1)
    mmcv.imwrite(grid[..., ::-1], out_file)
    return out_file


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    import torch
    torch.set_num_threads(os.cpu_count() or 2)

    from mmengine.config import Config
    from mmengine.runner import Runner

    import eca_mmdet.engine  # noqa: F401  (models, safe I/O, hooks)
    from eca_mmdet.datasets import generate_dataset
    from eca_mmdet.runner import set_data_root, use_safe_training_hooks

    print(f'[1/3] dataset: {args.data_root} ({args.num_train} train / '
          f'{args.num_val} val images; reused if present)', flush=True)
    generate_dataset(args.data_root, args.num_train, args.num_val,
                     seed=args.seed)

    cfg = Config.fromfile(CONFIG)
    set_data_root(cfg, args.data_root)
    if args.epochs is not None:
        cfg.train_cfg.max_epochs = args.epochs
        for s in cfg.param_scheduler:
            if s.get('by_epoch', False) or s.type == 'CosineAnnealingLR':
                s.T_max = s.end = args.epochs
    # evaluate once, after training (below), not inside the training loop
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.work_dir = args.work_dir
    cfg.randomness = dict(seed=args.seed)
    cfg.resume = bool(args.resume)
    use_safe_training_hooks(cfg)
    if args.resume and not osp.isfile(osp.join(args.work_dir,
                                               'last_checkpoint')):
        print(f'note: --resume: no checkpoint in {args.work_dir} yet, '
              f'starting from scratch', flush=True)

    print(f'[2/3] training ECA-ResNet-18 Mask R-CNN for '
          f'{cfg.train_cfg.max_epochs} epochs on the CPU', flush=True)
    runner = Runner.from_cfg(cfg)
    runner.train()
    t_train = time.time() - t0

    print('[3/3] COCO evaluation on the val split', flush=True)
    metrics = runner.test()
    ckpt = osp.join(args.work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    picture = draw_predictions(runner, cfg,
                               osp.join(args.work_dir, 'predictions.png'))
    print()
    print('ECA-ResNet-18 Mask R-CNN on the generated shapes val split '
          f'({args.num_val} images), COCO AP@[.5:.95]:')
    print(ap_table(metrics))
    print()
    print(f'checkpoint : {ckpt}')
    print(f'logs       : {osp.join(args.work_dir, runner.timestamp)}')
    print(f'predictions: {picture}')
    print(f'attention  : python tools/analysis/visualize_attention.py '
          f'{osp.relpath(CONFIG, os.getcwd())} {ckpt} --data-root '
          f'{args.data_root}')
    print(f'time       : {t_train / 60:.1f} min to train, '
          f'{(time.time() - t0) / 60:.1f} min in all')
    return 0


if __name__ == '__main__':
    sys.exit(main())
