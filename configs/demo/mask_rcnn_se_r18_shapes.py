# SE twin of the built-in demo (mask_rcnn_eca_r18_shapes.py): the same
# half-width ResNet-18 Mask R-CNN, data and schedule, with an SE block
# (reduction 16, SENet's placement: after the last BN of every block, before
# the addition) where the demo has ECA. Used to compare learned channel
# weights (supplementary Fig. B):
#   python tools/train.py configs/demo/mask_rcnn_se_r18_shapes.py
#   python tools/analysis/visualize_attention.py \
#       configs/demo/mask_rcnn_eca_r18_shapes.py work_dirs/demo/epoch_22.pth \
#       --compare configs/demo/mask_rcnn_se_r18_shapes.py \
#       work_dirs/mask_rcnn_se_r18_shapes/epoch_22.pth
_base_ = './mask_rcnn_eca_r18_shapes.py'

model = dict(
    backbone=dict(
        arch=None,
        depth=18,
        attention_cfg=dict(type='SE', reduction=16)))
