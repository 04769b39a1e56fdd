# Plain ResNet-101 RetinaNet, the baseline of ../retinanet_eca_r101.py.
_base_ = './retinanet_r50.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))
