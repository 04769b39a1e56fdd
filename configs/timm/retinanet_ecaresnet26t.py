# RetinaNet on timm's ecaresnet26t: ECA-ResNet-26-T (tiered 3x3 stem 24-32-64,
# average-pool shortcuts). ImageNet weights ecaresnet26t.ra2_in1k from the
# Hugging Face hub (fetched on first use), the paper's training setting. See
# README.md.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py', '../_base_/eca_coco_1x.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='ECATimmBackbone',
        model_name='ecaresnet26t',
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained', checkpoint='timm://ecaresnet26t.ra2_in1k')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
