# Faster R-CNN with timm's ECA-ResNet-50-D (deep stem, avg-down shortcuts,
# adaptive ECA kernels) initialised from its ImageNet weights on the Hugging
# Face hub (ecaresnet50d.miil_in1k, fetched on first use). See README.md.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py', '../_base_/eca_coco_1x.py'
]

model = dict(
    backbone=dict(
        type='ECAResNetV1d',
        depth=50,
        k_size=None,
        init_cfg=dict(type='Pretrained', checkpoint='timm://ecaresnet50d')))
