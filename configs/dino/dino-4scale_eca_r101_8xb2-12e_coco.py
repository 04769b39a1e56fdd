# DINO (4 scales, 12 epochs) with the authors' ECA-ResNet-101 (k=3,3,5,7).
# See README.md.
_base_ = './dino-4scale_eca_r50_8xb2-12e_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        arch='eca_resnet101_k3357',
        init_cfg=dict(checkpoint='eca://resnet101_k3357')))
