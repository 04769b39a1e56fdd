# RetinaNet on the demo's data and schedule (mask_rcnn_eca_r18_shapes.py):
# the same half-width ECA-ResNet-18 with a 128-channel FPN, one stacked conv
# per head branch, anchors scaled for 128-pixel images.
_base_ = './mask_rcnn_eca_r18_shapes.py'

ch = 128
model = dict(
    _delete_=True,
    type='RetinaNet',
    data_preprocessor={{_base_.model.data_preprocessor}},
    backbone={{_base_.model.backbone}},
    neck=dict(
        type='FPN',
        in_channels=[32, 64, 128, 256],
        out_channels=ch,
        start_level=1,
        add_extra_convs='on_input',
        num_outs=5),
    bbox_head=dict(
        type='RetinaHead',
        num_classes=4,
        in_channels=ch,
        stacked_convs=1,
        feat_channels=ch,
        anchor_generator=dict(
            type='AnchorGenerator',
            octave_base_scale=2,
            scales_per_octave=3,
            ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0,
            ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=50))
optim_wrapper = dict(optimizer=dict(lr=0.01))
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator
