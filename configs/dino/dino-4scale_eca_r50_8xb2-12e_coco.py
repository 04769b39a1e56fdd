# DINO (4 scales, 12 epochs) with the authors' ECA-ResNet-50 (released
# ImageNet weights, k=3,5,5,7) in place of mmdet's ResNet-50: mmdet's own
# recipe otherwise (AdamW lr 1e-4, backbone lr x0.1, 8 GPUs x 2 images;
# --auto-scale-lr scales from base_batch_size=16). See README.md.
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'

custom_imports = dict(
    imports=['eca_mmdet', 'eca_mmdet.engine'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='ECAResNet',
        arch='eca_resnet50_k3557',
        init_cfg=dict(type='Pretrained', checkpoint='eca://resnet50_k3557')))
