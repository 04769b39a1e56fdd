# Built-in demo: Mask R-CNN with an ECA-ResNet-18 FPN backbone trained from
# scratch on the generated "shapes" dataset (4 classes, 128x128 images, boxes
# and instance masks), small enough to train on 2 CPU cores in minutes.
# Run it with `make demo` (tools/demo.py generates the data first).
#
# Sized for the CPU: a half-width ECA-ResNet-18 (32-256 channels), 128-channel
# FPN/heads, RoIAlign sampling_ratio 2 (box) / 1 (mask), 32 sampled RoIs and
# 200 proposals per image in training; no ImageNet init (nothing can be
# downloaded offline).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(
    imports=['eca_mmdet', 'eca_mmdet.engine'], allow_failed_imports=False)

classes = ('circle', 'rectangle', 'triangle', 'cross')
data_root = 'data/synthetic_shapes/'
num_classes = len(classes)
ch = 128  # FPN and head width

model = dict(
    backbone=dict(
        _delete_=True,
        type='ECAResNet',
        arch='eca_resnet18_k3577',
        base_channels=32,  # half width: 128-pixel shapes need no more
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=ch),
    rpn_head=dict(
        in_channels=ch,
        feat_channels=ch,
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=2), out_channels=ch),
        bbox_head=dict(
            in_channels=ch, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=1), out_channels=ch),
        mask_head=dict(
            num_convs=2,
            in_channels=ch,
            conv_out_channels=ch,
            num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=50)))

metainfo = dict(classes=classes,
                palette=[(220, 20, 60), (0, 128, 255), (0, 200, 80),
                         (255, 170, 0)])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# COCO AP through faster-coco-eval: pycocotools' numbers, computed faster
val_evaluator = dict(
    type='FastCocoMetric', ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

max_epochs = 22
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    optimizer=dict(lr=0.02, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=200),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2e-4,
         begin=0, end=max_epochs, by_epoch=True, convert_to_iter_based=True)
]
auto_scale_lr = dict(enable=False, base_batch_size=4)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=2))
log_processor = dict(window_size=10)
env_cfg = dict(mp_cfg=dict(opencv_num_threads=1))
