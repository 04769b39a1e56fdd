# RetinaNet on timm's eca_halonext26ts: HaloNet (ECA-ResNeXt-26-TS with halo
# attention in the last two stages). ImageNet weights eca_halonext26ts.c1_in1k
# from the Hugging Face hub (fetched on first use), the paper's training
# setting. See README.md. Halo attention works on 8x8 blocks of the stride-32
# feature map: inputs are padded to a multiple of 256 pixels.
_base_ = './retinanet_ecaresnet26t.py'

model = dict(
    data_preprocessor=dict(pad_size_divisor=256),
    backbone=dict(
        model_name='eca_halonext26ts',
        init_cfg=dict(checkpoint='timm://eca_halonext26ts.c1_in1k')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
