# RetinaNet on timm's eca_nfnet_l1: ECA-NFNet-L1 (normalizer-free). ImageNet
# weights eca_nfnet_l1.ra2_in1k from the Hugging Face hub (fetched on first
# use), the paper's training setting. See README.md.
_base_ = './retinanet_ecaresnet26t.py'

model = dict(
    backbone=dict(
        model_name='eca_nfnet_l1',
        init_cfg=dict(checkpoint='timm://eca_nfnet_l1.ra2_in1k')),
    neck=dict(in_channels=[256, 512, 1536, 3072]))
