# RetinaNet with timm's ECA-ResNet-101-D initialised from its ImageNet weights
# (ecaresnet101d.miil_in1k). See README.md.
_base_ = './retinanet_ecaresnet50d.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='timm://ecaresnet101d')))
