#!/usr/bin/env python
"""Deploy a detector with mmdeploy and compare it with PyTorch.

Exports CONFIG + CHECKPOINT end to end (image in; boxes, labels and, for
Mask R-CNN, masks out, post-processing included) with mmdeploy's
``torch2onnx`` and a deploy config from ``configs/deploy/``, runs the ONNX
model in onnxruntime through mmdeploy's task processor on the given images,
runs the same preprocessed images through the PyTorch model
(``test_step``), and reports for every PyTorch detection scoring above
``--score-thr``: whether onnxruntime has one of the same class there, the
box IoU, the score difference and (masks) the mask IoU. ``--latency`` also
times both per image, interleaved. ``--as-mmdeploy`` gives the PyTorch
reference mmdeploy's two-stage post-processing, which differs from mmdet's
in two places (:func:`mmdeploy_post_processing`): what then remains is what
the export itself changes.

Example::

    python tools/deployment/deploy.py \\
        configs/deploy/instance-seg_onnxruntime_dynamic.py \\
        configs/demo/mask_rcnn_eca_r18_shapes.py work_dirs/demo/epoch_22.pth \\
        data/synthetic_shapes/val --work-dir work_dirs/deploy --latency

Needs ``pip install mmdeploy==1.3.1 onnxruntime==1.15.1`` (mmdeploy 1.3.1's
onnxruntime custom operators are built against onnxruntime 1.15.1) and, as
measured here, torch 2.1 (on torch 2.13 mmdeploy's export fails inside
mmdeploy).
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import statistics
import sys
import time

import numpy as np
import torch
from mmengine.config import Config

import eca_mmdet.engine  # noqa: F401  (opt-in: safe checkpoint reads)
from eca_mmdet import cli

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('deploy_cfg', help='deploy config (configs/deploy/)')
    p.add_argument('config', help='model config')
    p.add_argument('checkpoint', help='trained checkpoint')
    p.add_argument('images', help='an image or a folder of images')
    p.add_argument('--work-dir', default='work_dirs/deploy',
                   help='where end2end.onnx and report.json are written')
    p.add_argument('--num-images', type=int, default=20,
                   help='compare on the first N images (sorted by name)')
    p.add_argument('--score-thr', type=float, default=0.3,
                   help='compare PyTorch detections scoring above this')
    p.add_argument('--as-mmdeploy', action='store_true',
                   help='give the PyTorch reference mmdeploy\'s two-stage '
                   'post-processing (see mmdeploy_post_processing), to '
                   'tell what the export changes from what mmdeploy does '
                   'differently from mmdet')
    p.add_argument('--latency', action='store_true',
                   help='also time both per image, interleaved')
    p.add_argument('--repeats', type=int, default=3,
                   help='timed runs per image and backend (--latency)')
    return p.parse_args(argv)


def list_images(path, num):
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise cli.MissingFileError(f'image or folder not found: {path}')
    names = sorted(n for n in os.listdir(path)
                   if n.lower().endswith(IMAGE_EXTS))
    if not names:
        raise cli.MissingFileError(f'no images ({", ".join(IMAGE_EXTS)}) '
                                   f'in {path}')
    return [osp.join(path, n) for n in names[:num]]


def box_iou(a, b):
    """IoU matrix of boxes ``a`` (N, 4) and ``b`` (M, 4), x1 y1 x2 y2."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def mask_iou(a, b):
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return float(inter / union) if union else 1.0


def instances(result):
    """Boxes, scores, labels (and masks) of one ``DetDataSample`` as
    numpy arrays."""
    pred = result.pred_instances
    out = dict(bboxes=pred.bboxes.float().cpu().numpy(),
               scores=pred.scores.float().cpu().numpy(),
               labels=pred.labels.cpu().numpy())
    if 'masks' in pred:
        out['masks'] = torch.as_tensor(pred.masks).bool().cpu().numpy()
    return out


def match(reference, deployed, score_thr):
    """Match each reference detection above ``score_thr`` (highest score
    first) to the unmatched deployed detection of the same class with the
    highest box IoU.

    Returns:
        list[dict]: Per reference detection: ``score``, ``label``, ``iou``
        (0 if unmatched), ``score_diff`` and ``mask_iou`` (None without
        masks or match).
    """
    ious = box_iou(reference['bboxes'], deployed['bboxes'])
    taken = set()
    rows = []
    for i in np.argsort(-reference['scores']):
        if reference['scores'][i] <= score_thr:
            continue
        same = [j for j in range(ious.shape[1]) if j not in taken
                and deployed['labels'][j] == reference['labels'][i]]
        j = max(same, key=lambda j: ious[i, j], default=None)
        if j is None or ious[i, j] == 0:
            rows.append(dict(score=float(reference['scores'][i]),
                             label=int(reference['labels'][i]), iou=0.0,
                             score_diff=None, mask_iou=None))
            continue
        taken.add(j)
        rows.append(dict(
            score=float(reference['scores'][i]),
            label=int(reference['labels'][i]), iou=float(ious[i, j]),
            score_diff=float(abs(deployed['scores'][j] -
                                 reference['scores'][i])),
            mask_iou=mask_iou(reference['masks'][i], deployed['masks'][j])
            if 'masks' in reference and 'masks' in deployed else None))
    return rows


@contextlib.contextmanager
def mmdeploy_post_processing():
    """Inside, mmdet's two-stage detectors post-process as mmdeploy 1.3.1's
    export does, in two places where the two differ:

    * the RPN's NMS runs over the proposals of all FPN levels at once
      (mmdet runs it per level: ``batched_nms`` with the level as index);
    * each RoI keeps, for every class, the box regressed for its
      highest-scoring class (mmdet decodes one box per class; ONNX's
      ``NonMaxSuppression`` takes one box per candidate for all classes).

    For the comparison only: it replaces two mmdet functions in this
    process and restores them on exit.
    """
    from mmdet.models.dense_heads import rpn_head
    from mmdet.models.roi_heads.bbox_heads import BBoxHead
    nms, predict = rpn_head.batched_nms, BBoxHead._predict_by_feat_single

    def nms_across_levels(boxes, scores, levels, *args, **kwargs):
        return nms(boxes, scores, torch.zeros_like(levels), *args, **kwargs)

    def top_class_box(self, roi, cls_score, bbox_pred, *args, **kwargs):
        if bbox_pred is not None and not self.reg_class_agnostic:
            n, c = bbox_pred.shape[0], self.num_classes
            top = cls_score.softmax(-1)[:, :c].argmax(1)
            deltas = bbox_pred.view(n, c, -1)[torch.arange(n), top]
            bbox_pred = deltas[:, None].expand(n, c, -1).reshape(n, -1)
        return predict(self, roi, cls_score, bbox_pred, *args, **kwargs)

    rpn_head.batched_nms = nms_across_levels
    BBoxHead._predict_by_feat_single = top_class_box
    try:
        yield
    finally:
        rpn_head.batched_nms, BBoxHead._predict_by_feat_single = nms, predict


def timed(fn, data, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None):
    args = parse_args(argv)
    try:
        from mmdeploy.apis import torch2onnx
        from mmdeploy.apis.utils import build_task_processor
    except ImportError as e:
        raise ImportError(
            f'{e}. deploy.py needs mmdeploy: pip install mmdeploy==1.3.1 '
            f'onnxruntime==1.15.1, in a torch 2.1 environment') from e

    cli.check_file_exists(args.deploy_cfg, 'deploy config')
    cli.check_file_exists(args.checkpoint, 'checkpoint')
    images = list_images(args.images, args.num_images)
    deploy_cfg = Config.fromfile(args.deploy_cfg)
    model_cfg = cli.load_config(args.config, work_dir=args.work_dir)
    cli.skip_pretrained_init(model_cfg)
    os.makedirs(args.work_dir, exist_ok=True)
    onnx_file = osp.join(args.work_dir, deploy_cfg.onnx_config.save_file)

    print(f'[1/3] exporting {args.config} with {args.deploy_cfg}',
          flush=True)
    t = time.time()
    torch2onnx(images[0], args.work_dir, deploy_cfg.onnx_config.save_file,
               deploy_cfg, model_cfg, args.checkpoint, device='cpu')
    print(f'      wrote {onnx_file} ({osp.getsize(onnx_file) / 2**20:.1f} '
          f'MiB, {time.time() - t:.0f} s)', flush=True)

    task = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    deployed = task.build_backend_model(
        [onnx_file], task.update_data_preprocessor)
    pytorch = cli.init_model(model_cfg, args.checkpoint, strict=True)
    print(f'[2/3] comparing onnxruntime with PyTorch on {len(images)} '
          f'image(s)', flush=True)
    rows, per_image, times = [], [], dict(pytorch=[], onnxruntime=[])
    reference = mmdeploy_post_processing() if args.as_mmdeploy \
        else contextlib.nullcontext()
    with torch.no_grad(), reference:
        for n, image in enumerate(images):
            data, _ = task.create_input(image)
            ref = instances(pytorch.test_step(data)[0])
            got = instances(deployed.test_step(data)[0])
            matched = match(ref, got, args.score_thr)
            rows += matched
            per_image.append(dict(
                image=osp.basename(image), pytorch=int(len(ref['scores'])),
                onnxruntime=int(len(got['scores'])), compared=len(matched)))
            if args.latency:
                order = [('pytorch', pytorch), ('onnxruntime', deployed)]
                for name, model in order[::(-1) ** n]:
                    times[name].append(timed(model.test_step, data,
                                             args.repeats))

    report = summarise(rows, per_image, times, args.score_thr)
    report.update(config=args.config, checkpoint=args.checkpoint,
                  deploy_cfg=args.deploy_cfg, onnx=onnx_file,
                  reference='mmdet with mmdeploy\'s post-processing'
                  if args.as_mmdeploy else 'mmdet')
    with open(osp.join(args.work_dir, 'report.json'), 'w') as f:
        json.dump(report, f, indent=1)
    print('[3/3] ' + format_report(report))
    print(f'report: {osp.join(args.work_dir, "report.json")}')


def summarise(rows, per_image, times, score_thr):
    matched = [r for r in rows if r['iou'] > 0]
    masks = [r['mask_iou'] for r in matched if r['mask_iou'] is not None]
    report = dict(
        images=len(per_image), score_thr=score_thr,
        detections_pytorch=sum(p['pytorch'] for p in per_image),
        detections_onnxruntime=sum(p['onnxruntime'] for p in per_image),
        compared=len(rows), unmatched=len(rows) - len(matched),
        min_iou=min((r['iou'] for r in rows), default=None),
        max_score_diff=max((r['score_diff'] for r in matched),
                           default=None),
        min_mask_iou=min(masks, default=None),
        **{'iou_below_0.99': sum(r['iou'] < 0.99 for r in rows),
           'mask_iou_below_0.95': sum(m < 0.95 for m in masks)},
        per_image=per_image,
        rows=rows)
    if times['pytorch']:
        ratios = [o / p for o, p in zip(times['onnxruntime'],
                                        times['pytorch'])]
        report['latency_ms'] = {
            name: 1e3 * statistics.median(t) for name, t in times.items()}
        report['latency_ratio'] = float(np.exp(np.mean(np.log(ratios))))
    return report


def format_report(r):
    def fmt(v, spec):
        return '-' if v is None else format(v, spec)

    lines = [
        f'{r["compared"]} PyTorch ({r["reference"]}) detections above '
        f'score {r["score_thr"]} on {r["images"]} image(s) '
        f'({r["detections_pytorch"]} in all; onnxruntime '
        f'{r["detections_onnxruntime"]}):',
        f'      unmatched {r["unmatched"]}, min box IoU '
        f'{fmt(r["min_iou"], ".4f")} ({r["iou_below_0.99"]} below 0.99), '
        f'max score difference {fmt(r["max_score_diff"], ".2e")}' + (
            '' if r['min_mask_iou'] is None else
            f', min mask IoU {r["min_mask_iou"]:.4f} '
            f'({r["mask_iou_below_0.95"]} below 0.95)')]
    if 'latency_ms' in r:
        ms = r['latency_ms']
        lines.append(
            f'      latency per image (median): PyTorch '
            f'{ms["pytorch"]:.1f} ms, onnxruntime {ms["onnxruntime"]:.1f} '
            f'ms; onnxruntime / PyTorch {r["latency_ratio"]:.2f} (geometric '
            f'mean of per-image ratios)')
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(cli.run_tool(main))
