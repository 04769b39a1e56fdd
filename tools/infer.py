#!/usr/bin/env python
"""Run a trained detector on an image or a folder of images.

mmdet's ``DetInferencer`` with the checkpoint read through eca-mmdet's safe
loader. Writes ``OUT_DIR/vis/<image>.jpg`` (boxes, labels, scores and masks
drawn) and ``OUT_DIR/preds/<image>.json`` (``labels``, ``scores``,
``bboxes`` as x1, y1, x2, y2 in pixels and, for Mask R-CNN, ``masks`` as
COCO RLE) for every image.

Example::

    python tools/infer.py data/synthetic_shapes/val \
        configs/demo/mask_rcnn_eca_r18_shapes.py work_dirs/demo/epoch_22.pth
    python tools/infer.py street.jpg configs/mask_rcnn_eca_r101.py \
        mask_rcnn_eca_r101.pth --score-thr 0.5 --device cuda
"""
import argparse
import os.path as osp
import sys

from mmdet.apis import DetInferencer

import eca_mmdet.engine  # noqa: F401  (opt-in: safe checkpoint reads)
from eca_mmdet import cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Detect objects in images with a trained detector')
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config', help='the model\'s config file')
    parser.add_argument('checkpoint', help='its trained checkpoint')
    parser.add_argument('--out-dir', default='outputs',
                        help='where vis/ and preds/ are written')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='draw predictions scoring at least this')
    parser.add_argument('--device', default=None,
                        help='cpu, cuda, cuda:1, ... (default: cuda if '
                        'available, else cpu)')
    parser.add_argument('--batch-size', type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.check_file_exists(args.checkpoint, 'checkpoint')
    if not osp.exists(args.inputs):
        raise cli.MissingFileError(
            f'image or folder not found: {args.inputs}')
    if not 0 <= args.score_thr <= 1:
        raise cli.ConfigError(
            f'--score-thr must be between 0 and 1, got {args.score_thr}')
    cfg = cli.load_config(args.config)
    cli.skip_pretrained_init(cfg)
    inferencer = DetInferencer(model=cfg, weights=args.checkpoint,
                               device=args.device, show_progress=False)
    result = inferencer(args.inputs, batch_size=args.batch_size,
                        out_dir=args.out_dir, pred_score_thr=args.score_thr,
                        no_save_pred=False)
    print(f'{len(result["predictions"])} image(s): pictures in '
          f'{args.out_dir}/vis, predictions in {args.out_dir}/preds')


if __name__ == '__main__':
    sys.exit(cli.run_tool(main))
