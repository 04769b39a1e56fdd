# Mask R-CNN with an ECA-ResNet-50 FPN backbone, 1x COCO schedule.
# ECA-Net (Wang et al., CVPR 2020), Table "object detection on MS COCO".
# The paper's R-50 Mask R-CNN used backbones whose ImageNet weights were never
# released (k=5 everywhere for Faster R-CNN, k=3,3,7,7 for Mask R-CNN and
# RetinaNet); this config uses the released ECA-ResNet-50 (k=3,5,5,7).
#
# ImageNet ECA weights: eca://resnet50_k3557 =
#   $ECA_MMDET_CHECKPOINTS/eca_resnet50_k3557.pth.tar
# (download from https://github.com/BangguWu/ECANet, see README).
#
# Paper training setting: 8 images per iteration (e.g. 4 GPUs x 2 images),
# SGD lr 0.01. With another total batch size add --auto-scale-lr and the lr
# is scaled linearly from base_batch_size=8.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(
    imports=['eca_mmdet', 'eca_mmdet.engine'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='ECAResNet',
        arch='eca_resnet50_k3557',
        init_cfg=dict(type='Pretrained', checkpoint='eca://resnet50_k3557')))

train_dataloader = dict(batch_size=2)
optim_wrapper = dict(optimizer=dict(lr=0.01))
auto_scale_lr = dict(enable=False, base_batch_size=8)
