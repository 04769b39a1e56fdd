"""timm's ECA networks as MMDetection backbones (ECATimmBackbone), against
timm itself: for every timm ECA architecture with ImageNet weights, a
``.safetensors`` file written from timm's model (random weights, random
batch-norm statistics) gives our backbone the feature maps of timm's own
``features_only`` model loaded from that file by timm, in float64.

timm needs the torchvision of its torch; ``make test`` runs this file in the
torch 2.1 environment that has both (skipped elsewhere, with the reason)."""
import pytest
import torch
from mmdet.registry import MODELS

import eca_mmdet  # noqa: F401
from eca_mmdet.backbones import TIMM_ECA_MODELS
from eca_mmdet.checkpoint import CheckpointError

from helpers import ROOT, randomize_bn

timm = pytest.importorskip(
    'timm', reason='timm (with the torchvision of this torch) is not '
    'installed here; make test runs these tests in .venv-compat')
safetensors_torch = pytest.importorskip('safetensors.torch')

# the input each architecture takes (HaloNet: 8x8 blocks at stride 32;
# BoTNet: position embeddings for a 256 px input only)
SIZE = {'eca_halonext26ts': 256, 'eca_botnext26ts_256': 256}


def random_timm_file(name, path):
    """timm's ``name`` with random weights (zero-initialised gains and biases
    made non-zero too) and random batch-norm statistics, saved as timm's
    hub files are: a flat ``model.safetensors``."""
    torch.manual_seed(0)
    model = randomize_bn(timm.create_model(name, pretrained=False))
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.1)
    safetensors_torch.save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(path))
    return path


def ours(name, checkpoint=None, **kwargs):
    init = dict(type='Pretrained', checkpoint=str(checkpoint)) \
        if checkpoint else None
    model = MODELS.build(dict(type='ECATimmBackbone', model_name=name,
                              init_cfg=init, **kwargs))
    model.init_weights()
    return model


@pytest.mark.parametrize('name', list(TIMM_ECA_MODELS))
def test_features_equal_timms_own_features_only(name, tmp_path):
    path = random_timm_file(name, tmp_path / 'model.safetensors')
    model = ours(name, path).double().eval()
    reference = timm.create_model(
        name, features_only=True, pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path))).double().eval()
    size = SIZE.get(name, 96)
    x = torch.randn(2, 3, size, size, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = model(x), reference(x)[1:]  # timm's [0]: stride 2
    assert len(got) == 4
    for stride, a, b in zip((4, 8, 16, 32), got, want):
        assert a.shape == b.shape and a.shape[-1] == size // stride
        err = ((a - b).abs().max() / b.abs().max()).item()
        assert err < 1e-6, (name, stride, err)
        assert b.abs().max() > 0
    assert model.channels == [f.shape[1] for f in got]


def test_frozen_stages_and_norm_eval_as_mmdets_resnet():
    """frozen_stages=1 freezes the stem and the first stage (parameters
    and batch-norm statistics), as mmdet's ResNet does; norm_eval keeps
    every batch norm's statistics in training; the rest trains."""
    from mmdet.models.backbones import ResNet
    model = ours('ecaresnet26t', frozen_stages=1, norm_eval=False).train()
    frozen = {n.split('.')[1] for n, p in model.named_parameters()
              if not p.requires_grad}
    assert frozen == {'conv1', 'bn1', 'layer1'}
    mmdet_resnet = ResNet(depth=50, frozen_stages=1)
    assert {n.split('.')[0] for n, p in mmdet_resnet.named_parameters()
            if not p.requires_grad} == {'conv1', 'bn1', 'layer1'}

    def stats(m):
        return {n: b.clone() for n, b in m.named_buffers()
                if 'running_mean' in n}
    before = stats(model)
    model(torch.randn(2, 3, 64, 64))
    after = stats(model)
    changed = {n.split('.')[1] for n in before
               if not torch.equal(before[n], after[n])}
    assert changed == {'layer2', 'layer3', 'layer4'}

    model = ours('ecaresnet26t', frozen_stages=-1, norm_eval=True).train()
    assert all(p.requires_grad for p in model.parameters())
    before = stats(model)
    model(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(before[n], b) for n, b in stats(model).items())

    # timm's ByobNet: its stem modules are frozen with frozen_stages=0
    byob = ours('eca_resnext26ts', frozen_stages=0)
    assert {n.split('.')[1] for n, p in byob.named_parameters()
            if not p.requires_grad} == {'stem_conv1', 'stem_conv2',
                                        'stem_conv3'}


def test_file_of_another_architecture_is_refused_naming_both(tmp_path):
    path = random_timm_file('ecaresnet26t', tmp_path / 'model.safetensors')
    with pytest.raises(CheckpointError) as e:
        ours('ecaresnet50t', path)
    assert "holds ecaresnet26t's weights, not ecaresnet50t's" in str(e.value)
    assert 'missing' in str(e.value)
    # a truncated checkpoint of the right architecture
    sd = safetensors_torch.load_file(str(path))
    del sd['layer4.1.conv3.weight']
    safetensors_torch.save_file(sd, str(tmp_path / 'cut.safetensors'))
    with pytest.raises(CheckpointError, match='1 missing, e.g. '
                       'layer4.1.conv3.weight'):
        ours('ecaresnet26t', tmp_path / 'cut.safetensors')


def test_timm_config_trains_on_generated_data(tmp_path):
    """A timm-backbone detector config (RetinaNet on eca_resnext26ts)
    trains a few iterations on generated data through tools/train.py."""
    from tiny_training import train_tiny
    out = train_tiny('timm/retinanet_eca_resnext26ts.py', tmp_path)
    assert "type='ECATimmBackbone'" in out


@pytest.mark.parametrize('version', ['1.0.21', '0.9.16'])
def test_timm_below_the_floor_stops_in_one_line(monkeypatch, version):
    from eca_mmdet.backbones.timm_backbone import TIMM_MIN, TimmVersionError
    assert f'"timm>={TIMM_MIN}"' in open(f'{ROOT}/pyproject.toml').read()
    monkeypatch.setattr(timm, '__version__', version)
    with pytest.raises(TimmVersionError) as e:
        ours('ecaresnet26t')
    message = str(e.value)
    assert '\n' not in message
    assert f'found timm {version}' in message
    assert 'pip install "timm>=1.0.30"' in message


def test_norm_cfg_stops_in_one_line_pointing_to_sync_bn_torch():
    from eca_mmdet.backbones.timm_backbone import NormCfgError
    with pytest.raises(NormCfgError) as e:
        ours('ecaresnet26t', norm_cfg=dict(type='SyncBN', requires_grad=True))
    message = str(e.value)
    assert '\n' not in message and isinstance(e.value, TypeError)
    assert 'takes no norm_cfg' in message and "sync_bn='torch'" in message
