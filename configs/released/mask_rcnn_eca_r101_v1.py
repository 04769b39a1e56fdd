# The authors' released mask_rcnn_ecanet101_k3357_bs8_lr0.01 (MMDetection
# v1), after `tools/convert_checkpoint.py`: ECA-ResNet-101, k=3,3,5,7.
_base_ = './mask_rcnn_eca_r50_v1.py'

model = dict(backbone=dict(depth=101, k_size=(3, 3, 5, 7)))
