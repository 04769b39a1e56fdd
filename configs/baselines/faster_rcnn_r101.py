# Plain ResNet-101 Faster R-CNN, the baseline of ../faster_rcnn_eca_r101.py.
_base_ = './faster_rcnn_r50.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))
