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
import json
import os.path as osp
import statistics
import tempfile

from eca_mmdet.evaluation.synthetic_evaluation import (
    evaluate,
    make_evaluation,
)


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
