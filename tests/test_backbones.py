"""ECA backbones: structure, parameter counts, plugin use in mmdet."""
import pytest
import torch
from mmdet.models.backbones import ResNet, ResNeXt
from mmdet.registry import MODELS

import eca_mmdet  # noqa: F401
from eca_mmdet.backbones import ECAMobileNetV2, ECAResNet, ECAResNetV1d
from eca_mmdet.checkpoint import RELEASED_CHECKPOINTS

from helpers import randomize_bn

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
          101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_eca_resnet50_k3557_has_exactly_80_more_parameters():
    plain = ResNet(depth=50)
    eca = ECAResNet(arch='eca_resnet50_k3557')
    assert n_params(eca) - n_params(plain) == 80
    assert eca.stage_k_sizes == (3, 5, 5, 7)


@pytest.mark.parametrize('arch', [a for a, i in RELEASED_CHECKPOINTS.items()
                                  if i['family'] == 'resnet'])
def test_surplus_is_sum_of_kernel_sizes(arch):
    info = RELEASED_CHECKPOINTS[arch]
    eca = ECAResNet(arch=arch)
    plain = ResNet(depth=info['depth'])
    expected = sum(n * k for n, k in zip(BLOCKS[info['depth']],
                                         info['k_size']))
    assert n_params(eca) - n_params(plain) == expected
    # one ECA per block, with the stage's kernel size
    for stage, (n, k) in enumerate(zip(BLOCKS[info['depth']],
                                       info['k_size'])):
        layer = getattr(eca, f'layer{stage + 1}')
        assert len(layer) == n
        assert all(b.eca.k_size == k for b in layer)


def test_kernel_size_forms():
    assert ECAResNet(depth=50, k_size=None).stage_k_sizes == (5, 5, 5, 7)
    assert ECAResNet(depth=50, k_size=7).stage_k_sizes == (7, 7, 7, 7)
    assert ECAResNet(depth=18, k_size=(3, 5, 7, 7)).stage_k_sizes == \
        (3, 5, 7, 7)
    assert ECAResNet(depth=50, num_stages=3, k_size=(3, 5, 5, 7),
                     strides=(1, 2, 2), dilations=(1, 1, 1),
                     out_indices=(0, 1, 2)).stage_k_sizes == (3, 5, 5)
    # BasicBlock ECA sees `planes` channels: 64..512 -> 3, 5, 5, 5
    assert ECAResNet(depth=18, k_size=None).stage_k_sizes == (3, 5, 5, 5)


@pytest.mark.parametrize('kwargs, match', [
    (dict(depth=50, k_size=4), 'positive odd int'),
    (dict(depth=50, k_size=0), 'positive odd int'),
    (dict(depth=50, k_size=(3, 5, 5)), 'one entry per stage'),
    (dict(depth=50, k_size=(3, 5, 5, 7, 9)), 'one entry per stage'),
    (dict(depth=42), 'invalid depth 42'),
    (dict(arch='eca_resnet51_k3557'), 'unknown ECA-ResNet arch'),
    (dict(depth=101, arch='eca_resnet50_k3557'),
     r"arch='eca_resnet50_k3557' sets depth 50 and k_size \(3, 5, 5, 7\)"),
    (dict(arch='eca_resnet50_k3557', k_size=5), 'give arch without k_size'),
    (dict(arch='eca_resnet50_k3557', k_size=None), 'without k_size'),
    (dict(arch='eca_resnet50_k3557', k_size=(3, 5, 5, 7)), 'without k_size'),
])
def test_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ECAResNet(**kwargs)


def test_bottleneck_after_conv3_plugins_run_before_eca():
    """mmdet's after_conv3 plugins sit between norm3 and ECA, which stays
    last before the residual add (the paper's place); the block's one tail
    computes ``identity + eca(plugin(norm3(conv3(.))))``."""
    plugin = dict(cfg=dict(type='SE', reduction=4), position='after_conv3')
    m = ECAResNet(depth=50, plugins=[plugin]).eval()
    randomize_bn(m)
    blk = m.layer1[1]
    x = torch.randn(2, 256, 16, 16)
    with torch.no_grad():
        out = blk.relu(blk.norm1(blk.conv1(x)))
        out = blk.relu(blk.norm2(blk.conv2(out)))
        z = blk.se(blk.norm3(blk.conv3(out)))
        want = torch.relu(x + z * torch.sigmoid(blk.eca.conv(
            z.mean((2, 3))[:, None, :]))[:, 0, :, None, None])
        assert torch.allclose(blk(x), want, atol=1e-5)
    x.requires_grad_(True)
    blk.train()(x).sum().backward()
    assert blk.eca.conv.weight.grad is not None
    assert blk.se.fc1.weight.grad is not None


@pytest.mark.parametrize('depth', [18, 50])
def test_outputs_match_plain_resnet_shapes(depth):
    x = torch.randn(1, 3, 64, 64)
    eca = ECAResNet(depth=depth).eval()
    plain = ResNet(depth=depth)
    plain.eval()  # mmdet's ResNet.train() returns None
    with torch.no_grad():
        a, b = eca(x), plain(x)
    assert [t.shape for t in a] == [t.shape for t in b]


def test_mmdet_resnet_options_keep_working():
    m = ECAResNet(depth=50, num_stages=4, out_indices=(1, 3),
                  frozen_stages=1, norm_eval=True, style='caffe',
                  with_cp=True, norm_cfg=dict(type='BN', requires_grad=True))
    m.train()
    assert not any(p.requires_grad for p in m.layer1.parameters())
    assert not m.layer2[0].bn1.training  # norm_eval
    assert m.layer2[0].conv1.stride == (2, 2)  # caffe style
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    outs = m(x)
    assert [o.shape[1] for o in outs] == [512, 2048]
    sum(o.sum() for o in outs).backward()
    assert m.layer4[0].eca.conv.weight.grad is not None


def test_v1d_form_and_registry_build():
    m = MODELS.build(dict(type='ECAResNetV1d', depth=50, k_size=None))
    assert isinstance(m, ECAResNetV1d)
    assert hasattr(m, 'stem') and len(m.stem) == 9
    assert isinstance(m.layer2[0].downsample[0], torch.nn.AvgPool2d)
    y = m.eval()(torch.randn(1, 3, 64, 64))
    assert [t.shape[1] for t in y] == [256, 512, 1024, 2048]


def test_zero_init_residual_zeroes_last_bn():
    m = ECAResNet(depth=50)
    m.init_weights()
    assert all(b.bn3.weight.abs().sum() == 0 for b in m.layer1)
    m18 = ECAResNet(depth=18)
    m18.init_weights()
    assert all(b.bn2.weight.abs().sum() == 0 for b in m18.layer1)


def test_eca_plugin_in_mmdet_resnet_and_resnext():
    plugins = [dict(cfg=dict(type='ECA', k_size=3), position='after_conv3')]
    resnet = ResNet(depth=50, plugins=plugins)
    resnext = ResNeXt(depth=50, groups=32, base_width=4, plugins=plugins)
    for m in (resnet, resnext):
        assert n_params(m) - n_params(type(m)(depth=50, **(
            dict(groups=32, base_width=4) if m is resnext else {}))) == \
            3 * 16
        assert 'layer1.0.eca.conv.weight' in m.state_dict()
        x = torch.randn(1, 3, 64, 64, requires_grad=True)
        m.train()
        out = m(x)
        sum(o.sum() for o in out).backward()
        assert m.layer3[0].eca.conv.weight.grad is not None


def test_plugin_adaptive_kernel_matches_backbone():
    plugins = [dict(cfg=dict(type='ECA', k_size=None),
                    position='after_conv3')]
    resnet = ResNet(depth=50, plugins=plugins)
    assert [getattr(resnet, f'layer{i}')[0].eca.k_size
            for i in range(1, 5)] == [5, 5, 5, 7]


def test_mobilenetv2_structure_and_outputs():
    m = ECAMobileNetV2().eval()
    ks = [b.conv[-1].k_size for b in list(m.features)[1:18]]
    chans = [b.conv[-1].in_channels for b in list(m.features)[1:18]]
    assert ks == [1 if c < 96 else 3 for c in chans]
    assert ks.count(1) == 10 and ks.count(3) == 7
    out = m(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in out] == \
        [(24, 16, 16), (32, 8, 8), (96, 4, 4), (1280, 2, 2)]
    assert sum(b.conv[-1].k_size for b in list(m.features)[1:18]) == \
        sum(p.numel() for n, p in m.named_parameters() if '.conv.4.' in n or
            n.endswith('conv.3.conv.weight'))
    with pytest.raises(ValueError, match='out_indices'):
        ECAMobileNetV2(out_indices=(8, ))


def test_mobilenetv2_frozen_and_norm_eval():
    m = ECAMobileNetV2(frozen_stages=2, norm_eval=True).train()
    assert not any(p.requires_grad for p in m.features[:4].parameters())
    assert all(p.requires_grad for p in m.features[4].parameters())
    assert not m.features[5].conv[0][1].training
