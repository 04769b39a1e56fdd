# RetinaNet on timm's ecaresnetlight: ECA-ResNet-Light (a ResNet-50-D with
# fewer blocks: 1, 1, 11, 3). ImageNet weights ecaresnetlight.miil_in1k from
# the Hugging Face hub (fetched on first use), the paper's training setting.
# See README.md.
_base_ = './retinanet_ecaresnet26t.py'

model = dict(
    backbone=dict(
        model_name='ecaresnetlight',
        init_cfg=dict(checkpoint='timm://ecaresnetlight.miil_in1k')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
