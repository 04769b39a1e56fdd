# Plain ResNet-101 twin of ../retinanet_eca_r101.py
# (same detector, schedule and batch/lr), the paper's "ResNet-101" row.
# NOTE: initialises from torchvision://resnet101, which is downloaded at start
# (needs torchvision and internet); offline, give a local file with
# --cfg-options model.backbone.init_cfg.checkpoint=/path/to/resnet101.pth
_base_ = '../retinanet_eca_r101.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=101,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
