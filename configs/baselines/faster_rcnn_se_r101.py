# SE-ResNet-101 twin of ../faster_rcnn_eca_r101.py, the paper's "SENet-101"
# row: an SE block (reduction 16) on the residual branch of every Bottleneck
# after the last BN, before the addition, as in SENet.
# NOTE: loads the plain ResNet-101 ImageNet weights from torchvision://resnet101
# (downloaded at start); the SE layers start from random init because no
# SE-ResNet weights exist in this layout. For the paper's comparison give
# SE-ResNet ImageNet weights with --cfg-options
# model.backbone.init_cfg.checkpoint=/path/to/se_resnet101.pth
_base_ = './faster_rcnn_r101.py'

model = dict(
    backbone=dict(plugins=[
        dict(cfg=dict(type='SE', reduction=16), position='after_conv3')
    ]))
