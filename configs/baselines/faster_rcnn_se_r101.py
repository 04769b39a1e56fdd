# SE-ResNet-101 Faster R-CNN: an SE block (r=16) in every Bottleneck, where ECA
# sits. The SE layers start from random init (see README.md).
_base_ = './faster_rcnn_r101.py'

model = dict(
    backbone=dict(plugins=[
        dict(cfg=dict(type='SE', reduction=16), position='after_conv3')
    ]))
