# RetinaNet on timm's eca_resnet33ts: timm's ByobNet ECA-ResNet-33-TS (tiered
# stem, SiLU); its stride-32 feature is timm's final 1x1 conv (1280 channels).
# ImageNet weights eca_resnet33ts.ra2_in1k from the Hugging Face hub (fetched
# on first use), the paper's training setting. See README.md.
_base_ = './retinanet_ecaresnet26t.py'

model = dict(
    backbone=dict(
        model_name='eca_resnet33ts',
        init_cfg=dict(checkpoint='timm://eca_resnet33ts.ra2_in1k')),
    neck=dict(in_channels=[256, 512, 1536, 1280]))
