"""Which of MMDetection 3.3's backbones take ``ECA`` as an ``after_conv3``
plugin (README, "ECA in mmdet's other backbones"): each that does builds
one ECA per bottleneck block (k=3: 3 parameters each, nothing else added)
and trains (forward and backward reach every ECA kernel); each that does not
says so at build time."""
import pytest
import torch
from mmdet.registry import MODELS

import eca_mmdet  # noqa: F401

ECA3 = [dict(cfg=dict(type='ECA', k_size=3), position='after_conv3')]
TRIDENT = dict(type='TridentResNet', depth=50, num_stages=3,
               strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(2, ),
               style='caffe', trident_dilations=(1, 2, 3), num_branch=3,
               test_branch_idx=1)

# backbone config -> its bottleneck blocks (mmdet's own stage depths)
TAKE_PLUGINS = {
    'ResNet-50': (dict(type='ResNet', depth=50), 3 + 4 + 6 + 3),
    'ResNet-101': (dict(type='ResNet', depth=101), 3 + 4 + 23 + 3),
    'ResNetV1d-50': (dict(type='ResNetV1d', depth=50), 16),
    'ResNeXt-50 32x4d': (dict(type='ResNeXt', depth=50, groups=32,
                              base_width=4), 16),
    'Res2Net-50': (dict(type='Res2Net', depth=50), 16),
    'ResNeSt-50': (dict(type='ResNeSt', depth=50), 16),
    'RegNetX-3.2GF': (dict(type='RegNet', arch='regnetx_3.2gf'),
                      2 + 6 + 15 + 2),
    'DetectoRS_ResNet-50': (dict(type='DetectoRS_ResNet', depth=50), 16),
    'DetectoRS_ResNeXt-50': (dict(type='DetectoRS_ResNeXt', depth=50,
                                  groups=32, base_width=4), 16),
    'TridentResNet-50 (C4)': (TRIDENT, 3 + 4 + 6),
}
# backbone config -> what it answers to plugins
REFUSE = {
    'ResNet-18': (dict(type='ResNet', depth=18), AssertionError,
                  'Not implemented'),  # BasicBlock: use ECAResNet
    'HRNet': (dict(type='HRNet', extra=dict(
        stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                    num_blocks=(1, ), num_channels=(8, )),
        stage2=dict(num_modules=1, num_branches=2, block='BASIC',
                    num_blocks=(1, 1), num_channels=(8, 16)),
        stage3=dict(num_modules=1, num_branches=3, block='BASIC',
                    num_blocks=(1, 1, 1), num_channels=(8, 16, 32)),
        stage4=dict(num_modules=1, num_branches=4, block='BASIC',
                    num_blocks=(1, 1, 1, 1),
                    num_channels=(8, 16, 32, 64)))), TypeError, 'plugins'),
    'CSPDarknet': (dict(type='CSPDarknet'), TypeError, 'plugins'),
    'MobileNetV2': (dict(type='MobileNetV2'), TypeError, 'plugins'),
    'SwinTransformer': (dict(type='SwinTransformer'), TypeError, 'plugins'),
    'EfficientNet': (dict(type='EfficientNet', arch='b0'), TypeError,
                     'plugins'),
}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('name', TAKE_PLUGINS)
def test_backbone_takes_eca_plugin(name):
    cfg, blocks = TAKE_PLUGINS[name]
    plain = MODELS.build(dict(cfg))
    model = MODELS.build(dict(cfg, plugins=ECA3))
    for m in model.modules():  # mmdet's TridentConv leaves its weight
        if type(m).__name__ == 'TridentConv':  # as uninitialised memory
            torch.nn.init.kaiming_uniform_(m.weight, nonlinearity='relu')
    ecas = [m for m in model.modules() if type(m).__name__ == 'ECA']
    assert len(ecas) == blocks
    assert n_params(model) - n_params(plain) == 3 * blocks
    out = model(torch.randn(2, 3, 64, 64))
    sum(o.float().mean() for o in out).backward()
    for eca in ecas:
        grad = eca.conv.weight.grad
        assert grad is not None and torch.isfinite(grad).all()
        assert grad.abs().sum() > 0


@pytest.mark.parametrize('name', REFUSE)
def test_backbone_refuses_plugins_at_build(name):
    cfg, error, match = REFUSE[name]
    MODELS.build(dict(cfg))  # builds without the plugin
    with pytest.raises(error, match=match):
        MODELS.build(dict(cfg, plugins=ECA3))
