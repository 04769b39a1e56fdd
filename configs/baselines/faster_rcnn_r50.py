# Plain ResNet-50 Faster R-CNN: mmdet's model and data with the paper's
# training setting, the baseline of ../faster_rcnn_eca_r50.py.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py', '../_base_/eca_coco_1x.py'
]
