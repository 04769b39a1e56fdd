# Cascade Mask R-CNN with the authors' ECA-ResNet-50 FPN backbone (k=3,5,5,7)
# on mmdet's Cascade Mask R-CNN, with the paper's training setting. See
# README.md.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py', '../_base_/eca_coco_1x.py'
]

model = dict(
    backbone=dict(
        type='ECAResNet',
        arch='eca_resnet50_k3557',
        init_cfg=dict(type='Pretrained', checkpoint='eca://resnet50_k3557')))
