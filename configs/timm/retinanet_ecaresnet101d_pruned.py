# RetinaNet on timm's ecaresnet101d_pruned: ECA-ResNet-101-D pruned. ImageNet
# weights ecaresnet101d_pruned.miil_in1k from the Hugging Face hub (fetched on
# first use), the paper's training setting. See README.md.
_base_ = './retinanet_ecaresnet26t.py'

model = dict(
    backbone=dict(
        model_name='ecaresnet101d_pruned',
        init_cfg=dict(checkpoint='timm://ecaresnet101d_pruned.miil_in1k')),
    neck=dict(in_channels=[26, 142, 278, 2042]))
