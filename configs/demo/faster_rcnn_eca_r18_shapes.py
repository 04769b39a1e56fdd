# Faster R-CNN twin of the demo (mask_rcnn_eca_r18_shapes.py): the same
# half-width ECA-ResNet-18 FPN detector, data and schedule, boxes only.
_base_ = './mask_rcnn_eca_r18_shapes.py'

model = dict(
    type='FasterRCNN',
    roi_head=dict(mask_roi_extractor=None, mask_head=None))
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator
