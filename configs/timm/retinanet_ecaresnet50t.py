# RetinaNet on timm's ecaresnet50t: ECA-ResNet-50-T (tiered stem); ra2 is the
# strongest of its four tags. ImageNet weights ecaresnet50t.ra2_in1k from the
# Hugging Face hub (fetched on first use), the paper's training setting. See
# README.md.
_base_ = './retinanet_ecaresnet26t.py'

model = dict(
    backbone=dict(
        model_name='ecaresnet50t',
        init_cfg=dict(checkpoint='timm://ecaresnet50t.ra2_in1k')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
