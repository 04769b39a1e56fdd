# Ablation (ECA-Net paper, Table 2 / supplementary B) on Faster R-CNN R-50:
# SE-GC2: group conv with C/16 groups, 16C parameters.
# The module sits where ECA/SE sit (after the last BN of every Bottleneck,
# before the addition) as a plugin of mmdet's ResNet-50; every variant starts
# from the same plain ImageNet ResNet-50 (torchvision://resnet50, downloaded
# at start; offline give a local file with --cfg-options
# model.backbone.init_cfg.checkpoint=PATH), the attention layers from
# random init.
# Parameters and FLOPs: python tools/analysis/complexity.py --ablation
_base_ = '../baselines/faster_rcnn_r50.py'

model = dict(
    backbone=dict(plugins=[
        dict(cfg=dict(type='SEGC', channels_per_group=16),
             position='after_conv3')
    ]))
