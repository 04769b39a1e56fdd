"""FastCocoMetric (faster-coco-eval) gives mmdet's CocoMetric's numbers."""
import json
import math
import sys

import pytest

import eca_mmdet  # noqa: F401
from eca_mmdet.evaluation.synthetic_evaluation import (
    evaluate,
    make_evaluation,
)

ALL_ITEMS = ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l', 'AR@100',
             'AR@300', 'AR@1000', 'AR_s@1000', 'AR_m@1000', 'AR_l@1000']


@pytest.fixture(scope='module')
def evaluation(tmp_path_factory):
    """300 images, 6 classes of which one never occurs; crowd regions and
    empty images."""
    pytest.importorskip('faster_coco_eval')
    gt, predictions = make_evaluation(300, num_classes=6, seed=1,
                                      size=(320, 240))
    gt['categories'].append(dict(id=99, name='never_seen'))
    with_gt = {a['image_id'] for a in gt['annotations']}
    assert len(with_gt) < 300  # images without objects
    assert sum(a['iscrowd'] for a in gt['annotations']) > 0
    return write(gt, predictions, tmp_path_factory.mktemp('coco'))


def write(gt, predictions, folder):
    ann_file = str(folder / 'gt.json')
    with open(ann_file, 'w') as f:
        json.dump(gt, f)
    classes = [c['name'] for c in gt['categories']]
    return ann_file, classes, predictions


def assert_same(want, got):
    assert list(got) == list(want)
    for key, value in want.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert abs(got[key] - value) <= 1e-4, (key, value, got[key])


def test_bbox_and_segm_all_values_and_classwise_equal(evaluation):
    kwargs = dict(metric=['bbox', 'segm'], classwise=True,
                  metric_items=ALL_ITEMS)
    want, _ = evaluate('CocoMetric', *evaluation, **kwargs)
    got, _ = evaluate('FastCocoMetric', *evaluation, **kwargs)
    assert len(want) == 2 * 12 + 7  # 12 values twice, 7 classes
    assert math.isnan(want['never_seen_precision'])
    assert 0.1 < want['bbox_mAP'] < 0.9 and 0.1 < want['segm_mAP'] < 0.9
    assert_same(want, got)


def test_default_items_and_proposal_recall_equal(evaluation):
    kwargs = dict(metric=['bbox', 'proposal'])
    want, _ = evaluate('CocoMetric', *evaluation, **kwargs)
    got, _ = evaluate('FastCocoMetric', *evaluation, **kwargs)
    assert 'bbox_mAP_l' in want and 'AR_l@1000' in want
    assert_same(want, got)


def test_more_than_100_detections_per_image(tmp_path):
    """pycocotools' AP counts 100 detections of a class per image (AR@1000
    all); faster-coco-eval's own summary would count 1000 for both."""
    pytest.importorskip('faster_coco_eval')
    gt, predictions = make_evaluation(20, num_classes=1, seed=3,
                                      objects=150, max_dets=150,
                                      with_masks=False)
    assert min(len(p['pred_instances']['scores']) for p in predictions
               if len(p['pred_instances']['scores'])) > 100
    evaluation = write(gt, predictions, tmp_path)
    kwargs = dict(metric='bbox', metric_items=ALL_ITEMS)
    want, _ = evaluate('CocoMetric', *evaluation, **kwargs)
    got, _ = evaluate('FastCocoMetric', *evaluation, **kwargs)
    assert want['bbox_AR@1000'] - want['bbox_AR@100'] > 0.05
    assert_same(want, got)


def test_missing_package_says_how_to_install(monkeypatch):
    from mmdet.registry import METRICS
    monkeypatch.setitem(sys.modules, 'faster_coco_eval', None)
    with pytest.raises(ImportError, match='pip install faster-coco-eval'):
        METRICS.build(dict(type='FastCocoMetric'))
