# RetinaNet on timm's ecaresnet50d_pruned: ECA-ResNet-50-D pruned (channel-
# pruned ResNet-50-D). ImageNet weights ecaresnet50d_pruned.miil_in1k from the
# Hugging Face hub (fetched on first use), the paper's training setting. See
# README.md.
_base_ = './retinanet_ecaresnet26t.py'

model = dict(
    backbone=dict(
        model_name='ecaresnet50d_pruned',
        init_cfg=dict(checkpoint='timm://ecaresnet50d_pruned.miil_in1k')),
    neck=dict(in_channels=[19, 171, 818, 2022]))
