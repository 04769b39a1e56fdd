"""Loading released-format ECA checkpoints through init_cfg, strictly."""
import os
import subprocess
import sys

import pytest
import torch
from mmdet.registry import MODELS

import eca_mmdet  # noqa: F401
from eca_mmdet.checkpoint import RELEASED_CHECKPOINTS, CheckpointError

from ckpt_utils import official_layout, timm_layout
from helpers import ROOT, randomize_bn

RESNET_ARCHS = [a for a, i in RELEASED_CHECKPOINTS.items()
                if i['family'] == 'resnet']


def _randomize_eca(model):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith('eca.conv.weight'):
                p.copy_(torch.randn_like(p))
    return model


def _source_model(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return _randomize_eca(randomize_bn(model)).eval()


def _outputs(model, size=64):
    torch.manual_seed(1)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        return model.eval()(x)


def _assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def _save_official(model, path, fc_in, classifier='fc'):
    ckpt = official_layout(model.state_dict(), 'x', fc_in=fc_in,
                           classifier=classifier)
    torch.save(ckpt, path)
    return ckpt


@pytest.mark.parametrize('arch', RESNET_ARCHS)
def test_official_resnet_checkpoint_loads_exactly(arch, tmp_path):
    depth = RELEASED_CHECKPOINTS[arch]['depth']
    src = _source_model(dict(type='ECAResNet', arch=arch))
    path = str(tmp_path / f'{arch}.pth.tar')
    ckpt = _save_official(src, path, 512 if depth < 50 else 2048)
    keys = ckpt['state_dict']
    assert 'module.layer1.0.eca.conv.weight' in keys
    assert 'module.layer2.0.downsample.0.weight' in keys
    assert 'module.bn1.running_mean' in keys and 'module.fc.weight' in keys

    dst = MODELS.build(dict(type='ECAResNet', arch=arch, init_cfg=dict(
        type='Pretrained', checkpoint=path)))
    before = dst.layer1[0].eca.conv.weight.clone()
    dst.init_weights()
    assert not torch.equal(before, dst.layer1[0].eca.conv.weight)
    _assert_same(_outputs(src), _outputs(dst))


def test_official_mobilenetv2_checkpoint_loads_exactly(tmp_path):
    src = _source_model(dict(type='ECAMobileNetV2'))
    path = str(tmp_path / 'eca_mobilenetv2_k13.pth.tar')
    ckpt = _save_official(src, path, 1280, classifier='classifier')
    assert 'module.features.1.conv.3.conv.weight' in ckpt['state_dict']
    assert 'module.features.2.conv.4.conv.weight' in ckpt['state_dict']
    dst = MODELS.build(dict(type='ECAMobileNetV2', init_cfg=dict(
        type='Pretrained', checkpoint=path)))
    dst.init_weights()
    _assert_same(_outputs(src), _outputs(dst))


def test_eca_scheme_resolves_in_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('ECA_MMDET_CHECKPOINTS', str(tmp_path))
    src = _source_model(dict(type='ECAResNet', arch='eca_resnet18_k3577'))
    _save_official(src, str(tmp_path / 'eca_resnet18_k3577.pth.tar'), 512)
    dst = MODELS.build(dict(type='ECAResNet', arch='eca_resnet18_k3577',
                            init_cfg=dict(type='Pretrained',
                                          checkpoint='eca://resnet18_k3577')))
    dst.init_weights()
    _assert_same(_outputs(src), _outputs(dst))


def test_missing_eca_file_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv('ECA_MMDET_CHECKPOINTS', str(tmp_path / 'ckpts'))
    m = MODELS.build(dict(type='ECAResNet', arch='eca_resnet101_k3357',
                          init_cfg=dict(type='Pretrained',
                                        checkpoint='eca://resnet101_k3357')))
    with pytest.raises(CheckpointError) as e:
        m.init_weights()
    msg = str(e.value)
    assert 'eca_resnet101_k3357.pth.tar' in msg
    assert 'github.com/BangguWu/ECANet' in msg
    assert str(tmp_path / 'ckpts' / 'eca_resnet101_k3357.pth.tar') in msg


def test_missing_local_file_is_clear(tmp_path):
    m = MODELS.build(dict(type='ECAResNet', depth=18, init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'nope.pth'))))
    with pytest.raises(CheckpointError, match='checkpoint not found'):
        m.init_weights()


@pytest.mark.parametrize('name', ['../../etc/passwd', 'a/b.pth', '..',
                                  '/etc/passwd'])
def test_scheme_refuses_paths(name, tmp_path, monkeypatch):
    monkeypatch.setenv('ECA_MMDET_CHECKPOINTS', str(tmp_path))
    m = MODELS.build(dict(type='ECAResNet', depth=18, init_cfg=dict(
        type='Pretrained', checkpoint='eca://' + name)))
    with pytest.raises(CheckpointError, match='invalid checkpoint name'):
        m.init_weights()


def test_wrong_kernel_sizes_name_expected_found_and_preset(tmp_path):
    src = _source_model(dict(type='ECAResNet', arch='eca_resnet50_k3557'))
    path = str(tmp_path / 'k3557.pth.tar')
    _save_official(src, path, 2048)
    dst = MODELS.build(dict(
        type='ECAResNet', depth=50, k_size=3,
        init_cfg=dict(type='Pretrained', checkpoint=path)))
    with pytest.raises(CheckpointError) as e:
        dst.init_weights()
    msg = str(e.value)
    assert 'layer1=3, layer2=3, layer3=3, layer4=3' in msg  # expected
    assert 'layer1=3, layer2=5, layer3=5, layer4=7' in msg  # found
    assert "arch='eca_resnet50_k3557'" in msg


def test_checkpoint_of_other_depth(tmp_path):
    src = _source_model(dict(type='ECAResNet', arch='eca_resnet50_k3557'))
    path = str(tmp_path / 'r50.pth.tar')
    _save_official(src, path, 2048)
    dst = MODELS.build(dict(type='ECAResNet', arch='eca_resnet101_k3357',
                            init_cfg=dict(type='Pretrained', checkpoint=path)))
    with pytest.raises(CheckpointError, match='blocks per stage'):
        dst.init_weights()


def test_truncated_and_non_checkpoint_files(tmp_path):
    src = _source_model(dict(type='ECAResNet', arch='eca_resnet18_k3577'))
    path = tmp_path / 'full.pth.tar'
    _save_official(src, str(path), 512)
    data = path.read_bytes()
    cases = {'truncated.pth.tar': data[:len(data) // 2],
             'empty.pth': b'', 'text.pth': b'this is not a checkpoint\n'}
    for name, content in cases.items():
        bad = tmp_path / name
        bad.write_bytes(content)
        m = MODELS.build(dict(type='ECAResNet', arch='eca_resnet18_k3577',
                              init_cfg=dict(type='Pretrained',
                                            checkpoint=str(bad))))
        with pytest.raises(CheckpointError, match='truncated|empty|not a'):
            m.init_weights()


def test_missing_eca_keys(tmp_path):
    src = _source_model(dict(type='ECAResNet', arch='eca_resnet18_k3577'))
    ckpt = official_layout(src.state_dict(), 'x', fc_in=512)
    plain = dict(ckpt, state_dict={k: v for k, v in ckpt['state_dict'].items()
                                   if '.eca.' not in k})
    torch.save(plain, tmp_path / 'plain.pth')
    one = dict(ckpt['state_dict'])
    del one['module.layer3.1.eca.conv.weight']
    torch.save(dict(ckpt, state_dict=one), tmp_path / 'one.pth')
    for name, match in [('plain.pth', 'no ECA weights'),
                        ('one.pth', 'lacks 1 of the model')]:
        m = MODELS.build(dict(type='ECAResNet', arch='eca_resnet18_k3577',
                              init_cfg=dict(type='Pretrained',
                                            checkpoint=str(tmp_path / name))))
        with pytest.raises(CheckpointError, match=match):
            m.init_weights()


def test_convert_tool_official_and_timm(tmp_path):
    # timm ecaresnet50d layout -> converted plain state_dict -> ECAResNetV1d
    src = _source_model(dict(type='ECAResNetV1d', depth=50, k_size=None))
    torch.save(timm_layout(src.state_dict()), tmp_path / 'timm.pth')
    out = tmp_path / 'converted.pth'
    r = subprocess.run([sys.executable,
                        os.path.join(ROOT, 'tools', 'convert_checkpoint.py'),
                        str(tmp_path / 'timm.pth'), str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'timm' in r.stdout and '5, 5, 5, 7' in r.stdout
    sd = torch.load(out, weights_only=True)
    dst = MODELS.build(dict(type='ECAResNetV1d', depth=50, k_size=None))
    dst.load_state_dict(sd, strict=True)
    _assert_same(_outputs(src), _outputs(dst))

    # official file -> converted -> strict load into ECAResNet
    src = _source_model(dict(type='ECAResNet', arch='eca_resnet34_k3357'))
    _save_official(src, str(tmp_path / 'off.pth.tar'), 512)
    r = subprocess.run([sys.executable,
                        os.path.join(ROOT, 'tools', 'convert_checkpoint.py'),
                        str(tmp_path / 'off.pth.tar'), str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'eca_resnet34_k3357' in r.stdout
    dst = MODELS.build(dict(type='ECAResNet', arch='eca_resnet34_k3357'))
    dst.load_state_dict(torch.load(out, weights_only=True), strict=True)
    _assert_same(_outputs(src), _outputs(dst))
