"""A generated COCO evaluation (ground truth and predictions) for checking
and timing COCO metrics without COCO: ``tools/analysis/coco_eval_benchmark.py``
and the tests of :class:`FastCocoMetric`."""
import contextlib
import io
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

    t0 = time.perf_counter()
    metric = METRICS.build(dict(type=metric_type, ann_file=ann_file,
                                **kwargs))
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, predictions)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' prints
        results = metric.compute_metrics(metric.results)
    return results, time.perf_counter() - t0
