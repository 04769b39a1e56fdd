# Plain twin of faster_rcnn_eca_r18_shapes.py: the plain Mask R-CNN twin
# (mask_rcnn_r18_shapes.py) with boxes only.
_base_ = './mask_rcnn_r18_shapes.py'

model = dict(
    type='FasterRCNN',
    roi_head=dict(mask_roi_extractor=None, mask_head=None))
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator
