# Mask R-CNN with an ECA-ResNet-50 FPN backbone (released ImageNet weights,
# k=3,5,5,7), the paper's training setting. See README.md.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py', './_base_/eca_coco_1x.py'
]

model = dict(
    backbone=dict(
        type='ECAResNet',
        arch='eca_resnet50_k3557',
        init_cfg=dict(type='Pretrained', checkpoint='eca://resnet50_k3557')))
