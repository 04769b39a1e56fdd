# RetinaNet on timm's ecaresnet269d: ECA-ResNet-269-D. ImageNet weights
# ecaresnet269d.ra2_in1k from the Hugging Face hub (fetched on first use), the
# paper's training setting. See README.md.
_base_ = './retinanet_ecaresnet26t.py'

model = dict(
    backbone=dict(
        model_name='ecaresnet269d',
        init_cfg=dict(checkpoint='timm://ecaresnet269d.ra2_in1k')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
