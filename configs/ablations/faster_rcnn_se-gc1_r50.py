# Table 2 ablation: SE-GC1 in every Bottleneck of ResNet-50.
_base_ = '../baselines/faster_rcnn_r50.py'

model = dict(
    backbone=dict(plugins=[
        dict(cfg=dict(type='SEGC', groups=16), position='after_conv3')
    ]))
