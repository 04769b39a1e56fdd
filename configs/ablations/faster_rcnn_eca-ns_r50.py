# Table 2 ablation: ECA-NS in every Bottleneck of ResNet-50.
_base_ = '../baselines/faster_rcnn_r50.py'

model = dict(
    backbone=dict(plugins=[
        dict(cfg=dict(type='ECANS', k_size=3), position='after_conv3')
    ]))
