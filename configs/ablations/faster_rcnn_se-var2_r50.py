# Table 2 ablation: SE-Var2 in every Bottleneck of ResNet-50.
_base_ = '../baselines/faster_rcnn_r50.py'

model = dict(
    backbone=dict(plugins=[
        dict(cfg=dict(type='SEVar2'), position='after_conv3')
    ]))
