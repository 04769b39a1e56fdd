# Plain ResNet-50 Mask R-CNN: mmdet's model and data with the paper's training
# setting, the baseline of ../mask_rcnn_eca_r50.py.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py', '../_base_/eca_coco_1x.py'
]
