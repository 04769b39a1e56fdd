# The authors' released RetinaNet_ecanet50_k3377_bs8_lr0.01 (MMDetection v1),
# after `tools/convert_checkpoint.py`: ECA-ResNet-50 with k=3,3,7,7.
# MMDetection v1's inference settings as mmdet 3.3 keeps them for its own v1
# models in configs/legacy_1.x/retinanet_r50_fpn_1x_coco_v1.py, written here
# on the normal bases (mmengine 0.10.7 cannot _base_ a folder whose name has
# a dot).
_base_ = '../retinanet_eca_r50.py'

model = dict(
    backbone=dict(arch=None, k_size=(3, 3, 7, 7), init_cfg=None),
    bbox_head=dict(
        anchor_generator=dict(type='LegacyAnchorGenerator',
                              center_offset=0.5),
        bbox_coder=dict(type='LegacyDeltaXYWHBBoxCoder')))
