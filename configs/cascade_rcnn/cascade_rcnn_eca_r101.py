# Cascade R-CNN with the authors' ECA-ResNet-101 (k=3,3,5,7). See README.md.
_base_ = './cascade_rcnn_eca_r50.py'

model = dict(
    backbone=dict(
        depth=101,
        arch='eca_resnet101_k3357',
        init_cfg=dict(checkpoint='eca://resnet101_k3357')))
