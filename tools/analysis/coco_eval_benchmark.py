#!/usr/bin/env python
"""Time mmdet's ``CocoMetric`` (pycocotools) against ``FastCocoMetric``
(faster-coco-eval) on a generated COCO-sized evaluation.

The evaluation is generated, not downloaded: ``--images`` images (COCO val
has 5000) of 640x480 with about 7 objects each (COCO val: 36,781), 80
classes, a few crowd regions and empty images; detections are jittered
copies of the ground truth plus false positives, up to 100 per image, with
scores spread over (0, 1). Both metrics evaluate the same predictions, one
after the other in alternating order, ``--repeats`` times each; the table
gives the median wall time of ``compute_metrics`` (building the COCO objects,
matching, accumulating, summarising) and their ratio, and checks that every
value agrees to 1e-4.

Example::

    python tools/analysis/coco_eval_benchmark.py --images 5000 --segm
"""
import argparse
import contextlib
import io
import json
import os.path as osp
import statistics
import tempfile
import time

import numpy as np


def polygon(x, y, w, h, triangle):
    """A rectangle filling the box, or a triangle inside it."""
    if triangle:
        return [x + w / 2, y, x + w, y + h, x, y + h]
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def make_evaluation(num_images, num_classes=80, seed=0, size=(640, 480),
                    objects=7.4, with_masks=True, max_dets=100):
    """Ground truth (a COCO dict) and predictions (mmdet's per-image
    ``pred_instances``: tensors of boxes, scores, labels; RLE masks).

    Object sizes are log-uniform from 4 to 400 pixels, so small, medium and
    large areas all occur; 2% of objects are crowd regions and 3% of images
    have no objects.
    """
    import torch
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(seed)
    width, height = size
    images, annotations, predictions = [], [], []
    for img_id in range(1, num_images + 1):
        images.append(dict(id=img_id, width=width, height=height,
                           file_name=f'{img_id:012d}.jpg'))
        n = 0 if rng.random() < 0.03 else rng.poisson(objects)
        boxes, labels, scores, shapes = [], [], [], []
        for _ in range(n):
            w, h = np.exp(rng.uniform(np.log(4), np.log(400), 2))
            w, h = min(w, width - 1), min(h, height - 1)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            label = int(rng.integers(num_classes))
            triangle = rng.random() < 0.5
            seg = polygon(x, y, w, h, triangle)
            rle = mask_utils.frPyObjects([seg], height, width)
            annotations.append(dict(
                id=len(annotations) + 1, image_id=img_id,
                category_id=label + 1, bbox=[x, y, w, h],
                area=float(mask_utils.area(mask_utils.merge(rle))),
                iscrowd=int(rng.random() < 0.02), segmentation=[seg]))
            if rng.random() < 0.85:  # detected, with some jitter
                jx, jy, jw, jh = rng.normal(0, 0.08, 4) * [w, h, w, h]
                boxes.append([x + jx, y + jy, x + jx + w + jw,
                              y + jy + h + jh])
                labels.append(label if rng.random() < 0.9 else
                              int(rng.integers(num_classes)))
                scores.append(rng.beta(4, 2))
                shapes.append(triangle)
        for _ in range(int(rng.poisson(objects * 0.8))):  # false positives
            w, h = np.exp(rng.uniform(np.log(4), np.log(300), 2))
            w, h = min(w, width - 1), min(h, height - 1)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            boxes.append([x, y, x + w, y + h])
            labels.append(int(rng.integers(num_classes)))
            scores.append(rng.beta(1.5, 4))
            shapes.append(rng.random() < 0.5)
        boxes = np.clip(np.array(boxes, np.float32).reshape(-1, 4), 0,
                        [width, height, width, height])[:max_dets]
        pred = dict(
            bboxes=torch.from_numpy(boxes),
            labels=torch.tensor(labels[:max_dets], dtype=torch.int64),
            scores=torch.tensor(scores[:max_dets], dtype=torch.float32))
        if with_masks:
            pred['masks'] = []
            for (x1, y1, x2, y2), triangle in zip(boxes.tolist(), shapes):
                seg = polygon(x1, y1, max(x2 - x1, 1), max(y2 - y1, 1),
                              triangle)
                rle = mask_utils.merge(
                    mask_utils.frPyObjects([seg], height, width))
                pred['masks'].append(rle)
        predictions.append(dict(img_id=img_id, ori_shape=(height, width),
                                pred_instances=pred))
    categories = [dict(id=i + 1, name=f'class_{i}')
                  for i in range(num_classes)]
    gt = dict(images=images, annotations=annotations, categories=categories)
    return gt, predictions


def evaluate(metric_type, ann_file, classes, predictions, **kwargs):
    """``(metrics, seconds)`` of one metric on the predictions."""
    from mmdet.registry import METRICS

    import eca_mmdet  # noqa: F401  (registers FastCocoMetric)
    t0 = time.perf_counter()
    metric = METRICS.build(dict(type=metric_type, ann_file=ann_file,
                                **kwargs))
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, predictions)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' prints
        results = metric.compute_metrics(metric.results)
    return results, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', type=int, default=5000)
    p.add_argument('--segm', action='store_true',
                   help='also evaluate masks (segm)')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--out', help='write the figures to this JSON file')
    args = p.parse_args(argv)
    from mmengine.logging import MMLogger
    MMLogger.get_instance('coco_eval_benchmark', log_level='WARNING')

    gt, predictions = make_evaluation(args.images, with_masks=args.segm)
    classes = [c['name'] for c in gt['categories']]
    metrics = ['bbox', 'segm'] if args.segm else ['bbox']
    times = {'CocoMetric': [], 'FastCocoMetric': []}
    with tempfile.TemporaryDirectory() as tmp:
        ann_file = osp.join(tmp, 'gt.json')
        with open(ann_file, 'w') as f:
            json.dump(gt, f)
        for r in range(args.repeats):
            order = list(times) if r % 2 == 0 else list(times)[::-1]
            for name in order:
                got, seconds = evaluate(name, ann_file, classes, predictions,
                                        metric=metrics)
                times[name].append(seconds)
                if name == 'CocoMetric':
                    want = got
                else:
                    fast = got
            worst = max(abs(want[k] - fast[k]) for k in want)
            if set(want) != set(fast) or worst > 1e-4:
                raise AssertionError(f'metrics differ: {want} vs {fast}')
    n_gt = len(gt['annotations'])
    n_det = sum(len(p['pred_instances']['scores']) for p in predictions)
    slow = statistics.median(times['CocoMetric'])
    fast = statistics.median(times['FastCocoMetric'])
    print(f'{args.images} images, {n_gt} objects, {n_det} detections, '
          f'metrics {metrics}, {args.repeats} runs each (median):')
    print('| metric | seconds | ratio to CocoMetric |')
    print('|---|---|---|')
    print(f'| CocoMetric (pycocotools) | {slow:.1f} | 1.00 |')
    print(f'| FastCocoMetric (faster-coco-eval) | {fast:.1f} | '
          f'{fast / slow:.2f} |')
    print(f'values agree to 1e-4 ({len(want)} values: '
          + ', '.join(f'{k}={v:.3f}' for k, v in want.items()) + ')')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(images=args.images, objects=n_gt,
                           detections=n_det, metrics=metrics,
                           seconds=times, values=want), f, indent=1)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
