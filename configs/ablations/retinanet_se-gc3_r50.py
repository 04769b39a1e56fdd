# Table 2 ablation: SE-GC3 in every Bottleneck of ResNet-50.
_base_ = '../baselines/retinanet_r50.py'

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='SEGC', channels_per_group=8),
            position='after_conv3')
    ]))
