# RetinaNet on timm's eca_resnext26ts: timm's ByobNet ECA-ResNeXt-26-TS (tiered
# stem, SiLU). ImageNet weights eca_resnext26ts.ch_in1k from the Hugging Face
# hub (fetched on first use), the paper's training setting. See README.md.
_base_ = './retinanet_ecaresnet26t.py'

model = dict(
    backbone=dict(
        model_name='eca_resnext26ts',
        init_cfg=dict(checkpoint='timm://eca_resnext26ts.ch_in1k')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
