"""SyncBN, the ways mmdet users ask for it, computes what BN computes, for
every backbone we register (ECAResNet, ECAResNetV1d, ECAMobileNetV2, mmdet's
ResNet with the ECA plugin, ECATimmBackbone on every timm architecture with a
config in configs/timm/):

* ``sync_bn='torch'`` in a config: mmengine's ``convert_sync_batchnorm``,
  what the Runner calls on a distributed run;
* ``norm_cfg=dict(type='SyncBN')`` where the backbone takes a ``norm_cfg``;
* ``sync_bn='mmcv'``: mmengine's conversion to mmcv's SyncBatchNorm (our
  own backbones; on timm's BatchNormAct2d it is a one-line error).

torch's ``SyncBatchNorm`` in eval mode needs no process group (mmcv's asks
for the world size when built: a one-process gloo group), so the CPU checks
the converted backbone's features against the original's (random weights
and batch-norm statistics, small inputs, quarter-width ResNets for
speed)."""
import glob
import os.path as osp
import re

import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.model import convert_sync_batchnorm, revert_sync_batchnorm
from torch.nn.modules.batchnorm import _BatchNorm

import eca_mmdet  # noqa: F401

from helpers import ROOT, randomize_bn

ECA3 = [dict(cfg=dict(type='ECA', k_size=3), position='after_conv3')]
SMALL = dict(base_channels=16, stem_channels=16)
BACKBONES = {
    'ECAResNet-18': dict(type='ECAResNet', depth=18, **SMALL),
    'ECAResNet-50': dict(type='ECAResNet', depth=50, k_size=None, **SMALL),
    'ECAResNetV1d-50': dict(type='ECAResNetV1d', depth=50, **SMALL),
    'ECAMobileNetV2': dict(type='ECAMobileNetV2', widen_factor=0.5),
    'ResNet-50 + ECA plugin': dict(type='ResNet', depth=50, plugins=ECA3,
                                   **SMALL),
}
# the backbones with a norm_cfg (ECAMobileNetV2 has none)
WITH_NORM_CFG = [name for name in BACKBONES if name != 'ECAMobileNetV2']
# timm's architectures our configs build
TIMM_NAMES = sorted({
    m for path in glob.glob(osp.join(ROOT, 'configs', 'timm', '*.py'))
    for m in re.findall(r"model_name='(\w+)'", open(path).read())})
# the input each architecture takes (HaloNet: 8x8 blocks at stride 32)
SIZE = {'eca_halonext26ts': 256}
TIMM_SIZE = 32
# for speed: ResNet-269-D's layers with one block per stage
TIMM_KWARGS = {'ecaresnet269d': dict(layers=(1, 1, 1, 1))}


def features(model, size=64):
    """The eval-mode features of one random ``size`` x ``size`` image."""
    model.eval()  # mmdet's ResNet.train() returns None
    x = torch.randn(1, 3, size, size,
                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(x)


def assert_same_features(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b)


def assert_all_sync(model):
    """Every batch norm is a SyncBatchNorm (and there is one)."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and all(isinstance(m, nn.SyncBatchNorm) for m in norms)


@pytest.mark.parametrize('name', BACKBONES)
def test_sync_bn_torch_conversion_computes_the_same(name):
    model = randomize_bn(MODELS.build(BACKBONES[name]))
    want = features(model)
    model = convert_sync_batchnorm(model, 'torch')
    assert_all_sync(model)
    assert_same_features(features(model), want)


@pytest.mark.parametrize('name', WITH_NORM_CFG)
def test_norm_cfg_sync_bn_computes_what_bn_computes(name):
    bn = randomize_bn(MODELS.build(BACKBONES[name]))
    sync = MODELS.build(dict(BACKBONES[name],
                             norm_cfg=dict(type='SyncBN', requires_grad=True)))
    assert_all_sync(sync)
    sync.load_state_dict(bn.state_dict(), strict=True)
    assert_same_features(features(sync), features(bn))


@pytest.mark.parametrize('name', TIMM_NAMES)
def test_timm_sync_bn_torch_conversion_is_timms(name):
    """mmengine's conversion of ECATimmBackbone gives the layers timm's own
    ``convert_sync_batchnorm`` gives (``SyncBatchNormAct`` for timm's
    ``BatchNormAct2d``, which keeps the activation) and the same
    features."""
    timm = pytest.importorskip('timm')
    kwargs = TIMM_KWARGS.get(name, {})
    model = randomize_bn(MODELS.build(dict(type='ECATimmBackbone',
                                           model_name=name, **kwargs)))
    with torch.device('meta'):
        reference = timm.layers.convert_sync_batchnorm(timm.create_model(
            name, features_only=True, **kwargs))
    if not any(isinstance(m, _BatchNorm) for m in model.modules()):
        assert name.startswith('eca_nfnet')  # no batch norm: nothing to do
        before = dict(model.named_modules())
        assert dict(convert_sync_batchnorm(model).named_modules()) == before
        return
    size = SIZE.get(name, TIMM_SIZE)
    want = features(model, size)
    model = convert_sync_batchnorm(model, 'torch')
    assert {k: type(m) for k, m in model.body.named_modules()} == \
        {k: type(m) for k, m in reference.named_modules()}
    assert_all_sync(model)
    assert_same_features(features(model, size), want)


def test_timm_sync_bn_round_trip_keeps_timms_layers():
    """mmengine's ``revert_sync_batchnorm`` (what a Runner does on one
    process) after a conversion gives timm's ``BatchNormAct2d`` back."""
    pytest.importorskip('timm')
    model = randomize_bn(MODELS.build(dict(type='ECATimmBackbone',
                                           model_name='eca_resnext26ts')))
    types = {k: type(m) for k, m in model.named_modules()}
    want = features(model, TIMM_SIZE)
    model = revert_sync_batchnorm(convert_sync_batchnorm(model, 'torch'))
    assert {k: type(m) for k, m in model.named_modules()} == types
    assert_same_features(features(model, TIMM_SIZE), want)


@pytest.fixture
def process_group(tmp_path):
    """A one-process gloo group: mmcv's SyncBatchNorm asks for the world
    size when it is built."""
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg',
                            rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_mmcv_sync_bn_on_timm_batch_norm_act_fails_in_one_line(
        process_group):
    """mmcv's SyncBatchNorm cannot hold timm's activation: the conversion
    (``sync_bn='mmcv'``) stops with our one-line error instead of training a
    network without its activations."""
    pytest.importorskip('timm')
    pytest.importorskip('mmcv.ops')
    from eca_mmdet.backbones.timm_backbone import SyncBNError
    model = MODELS.build(dict(type='ECATimmBackbone',
                              model_name='eca_resnext26ts'))
    with pytest.raises(SyncBNError) as e:
        convert_sync_batchnorm(nn.Sequential(model), 'mmcv')
    message = str(e.value)
    assert '\n' not in message
    assert "BatchNormAct2d" in message and "sync_bn='torch'" in message
    assert 'mmcv.ops.sync_bn.SyncBatchNorm would drop its activation' in \
        message


@pytest.mark.parametrize('name', BACKBONES)
def test_sync_bn_mmcv_conversion_computes_the_same(name, process_group):
    """``sync_bn='mmcv'`` on our own backbones: every batch norm becomes
    mmcv's SyncBatchNorm (not a torch ``_BatchNorm``) and the eval-mode
    features are the original's."""
    ops = pytest.importorskip('mmcv.ops')
    model = randomize_bn(MODELS.build(BACKBONES[name]))
    want = features(model)
    model = convert_sync_batchnorm(model, 'mmcv')
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    assert any(isinstance(m, ops.SyncBatchNorm) for m in model.modules())
    assert_same_features(features(model), want)
