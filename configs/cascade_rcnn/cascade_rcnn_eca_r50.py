# Cascade R-CNN with the authors' ECA-ResNet-50 FPN backbone (released
# ImageNet weights, k=3,5,5,7) on mmdet's Cascade R-CNN, with the paper's
# training setting (8 images per iteration, SGD lr 0.01, 1x). See README.md.
_base_ = [
    'mmdet::_base_/models/cascade-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py', '../_base_/eca_coco_1x.py'
]

model = dict(
    backbone=dict(
        type='ECAResNet',
        arch='eca_resnet50_k3557',
        init_cfg=dict(type='Pretrained', checkpoint='eca://resnet50_k3557')))
