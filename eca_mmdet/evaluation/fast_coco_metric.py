"""COCO detection metrics computed by faster-coco-eval.

``FastCocoMetric`` is mmdet's ``CocoMetric`` (same arguments, same result
keys and classwise table) whose matching and accumulation run in
faster-coco-eval's C++ instead of pycocotools' Python loops. It reads the
annotation file and the detections with faster-coco-eval's ``COCO``.
"""
import os.path as osp
import tempfile
from collections import OrderedDict

import numpy as np
from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS
from mmengine.fileio import get_local_path, load
from mmengine.logging import MMLogger
from terminaltables import AsciiTable

# index of each result in COCOeval.stats (first 12 entries, as pycocotools)
STATS = {'mAP': 0, 'mAP_50': 1, 'mAP_75': 2, 'mAP_s': 3, 'mAP_m': 4,
         'mAP_l': 5, 'AR@100': 6, 'AR@300': 7, 'AR@1000': 8,
         'AR_s@1000': 9, 'AR_m@1000': 10, 'AR_l@1000': 11}
AP_ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
AR_ITEMS = ('AR@100', 'AR@300', 'AR@1000', 'AR_s@1000', 'AR_m@1000',
            'AR_l@1000')


def _faster_coco_eval():
    try:
        import faster_coco_eval
    except ImportError as e:
        raise ImportError(
            'FastCocoMetric needs the faster-coco-eval package: pip install '
            'faster-coco-eval (or use type=\'CocoMetric\')') from e
    return faster_coco_eval


def _mean_precision(precision):
    """Mean over the valid (> -1) entries, nan if none, as CocoMetric."""
    valid = precision[precision > -1]
    return round(float(np.mean(valid)), 3) if valid.size else float('nan')


@METRICS.register_module()
class FastCocoMetric(CocoMetric):
    """mmdet's :class:`CocoMetric` evaluated with faster-coco-eval.

    Takes every argument of ``CocoMetric`` and returns the same keys
    (``coco/bbox_mAP``, ..., ``AR@100``, ``<class>_precision``); the
    numbers agree with pycocotools' (tests check all 12 values of bbox and
    segm and the classwise table to 1e-4). ``use_mp_eval`` is accepted and
    ignored: faster-coco-eval needs no process pool.
    """

    def __init__(self, ann_file=None, backend_args=None, **kwargs):
        self._fce = _faster_coco_eval()
        super().__init__(ann_file=None, backend_args=backend_args, **kwargs)
        if ann_file is not None:
            with get_local_path(ann_file, backend_args=backend_args) as path:
                self._coco_api = self._coco(path)

    def _coco(self, annotations):
        coco = self._fce.COCO(annotations)
        # the snake-case names CocoMetric's own methods call
        coco.get_cat_ids = lambda cat_names=None: coco.getCatIds(
            catNms=cat_names)
        coco.get_img_ids = coco.getImgIds
        coco.get_ann_ids = lambda img_ids=None: coco.getAnnIds(imgIds=img_ids)
        coco.load_anns = coco.loadAnns
        return coco

    def compute_metrics(self, results: list) -> dict:
        """COCO metrics of the processed ``results``, as CocoMetric's."""
        logger = MMLogger.get_current_instance()
        for item in self.metric_items or ():
            if item not in STATS:
                raise KeyError(f'metric item "{item}" is not supported')
        gts, preds = zip(*results)
        with tempfile.TemporaryDirectory() as tmp_dir:
            prefix = self.outfile_prefix or osp.join(tmp_dir, 'results')
            if self._coco_api is None:
                logger.info('Converting ground truth to coco format...')
                self._coco_api = self._coco(
                    self.gt_to_coco_json(gt_dicts=gts, outfile_prefix=prefix))
            if self.cat_ids is None:
                self.cat_ids = self._coco_api.get_cat_ids(
                    cat_names=self.dataset_meta['classes'])
            if self.img_ids is None:
                self.img_ids = self._coco_api.get_img_ids()
            result_files = self.results2json(preds, prefix)
            if self.format_only:
                logger.info(f'results are saved in {osp.dirname(prefix)}')
                return OrderedDict()
            metrics = OrderedDict()
            for metric in self.metrics:
                logger.info(f'Evaluating {metric}...')
                if metric == 'proposal_fast':
                    recalls = self.fast_eval_recall(
                        preds, self.proposal_nums, self.iou_thrs,
                        logger=logger)
                    metrics.update((f'AR@{n}', r) for n, r in
                                   zip(self.proposal_nums, recalls))
                    continue
                if metric not in result_files:
                    raise KeyError(f'{metric} is not in results')
                dets = load(result_files[metric])
                if not dets:
                    logger.error('The testing results of the whole dataset '
                                 'is empty.')
                    break
                metrics.update(self._evaluate(metric, dets, logger))
        return metrics

    def _evaluate(self, metric, dets, logger):
        iou_type = 'bbox' if metric == 'proposal' else metric
        if iou_type == 'segm':
            for det in dets:  # mask area, not box area, for AP_s/m/l
                det.pop('bbox')
        coco_eval = self._fce.COCOeval_faster(
            self._coco_api, self._coco_api.loadRes(dets), iou_type,
            print_function=logger.info)
        params = coco_eval.params
        params.catIds = self.cat_ids
        params.imgIds = self.img_ids
        params.maxDets = list(self.proposal_nums)
        params.iouThrs = self.iou_thrs
        params.useCats = int(metric != 'proposal')
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        stats = coco_eval.stats
        # pycocotools' AP counts up to 100 detections per image, the others
        # up to maxDets[-1]; faster-coco-eval uses maxDets[-1] throughout
        stats[0] = coco_eval._summarize(1, maxDets=100)
        if metric == 'proposal':
            return {item: float(f'{stats[STATS[item]]:.3f}')
                    for item in self.metric_items or AR_ITEMS}
        out = {}
        if self.classwise:
            out.update(self._classwise(coco_eval.eval['precision'], logger))
        out.update((f'{metric}_{item}', round(float(stats[STATS[item]]), 3))
                   for item in self.metric_items or AP_ITEMS)
        logger.info(f'{metric}_mAP_copypaste: '
                    + ' '.join(f'{v:.3f}' for v in stats[:6]))
        return out

    def _classwise(self, precision, logger):
        """Per-class AP (all, IoU .5, IoU .75, small, medium, large) from
        precision[iou, recall, class, area, max dets], logged as a table."""
        out, rows = {}, [['category', *AP_ITEMS]]
        for i, cat_id in enumerate(self.cat_ids):
            name = self._coco_api.loadCats(cat_id)[0]['name']
            p = precision[:, :, i, :, -1]
            aps = [_mean_precision(p[:, :, 0]), _mean_precision(p[0, :, 0]),
                   _mean_precision(p[5, :, 0])]
            aps += [_mean_precision(p[:, :, area]) for area in (1, 2, 3)]
            out[f'{name}_precision'] = aps[0]
            rows.append([name, *map(str, aps)])
        logger.info('\n' + AsciiTable(rows).table)
        return out
