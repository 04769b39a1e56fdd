# Plain twin of faster_rcnn_eca_r18_shapes.py: mmdet's ResNet-18 at the same
# half width, everything else the same (the reference for what ECA changes,
# e.g. in deployment).
_base_ = './faster_rcnn_eca_r18_shapes.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        base_channels=32,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None))
