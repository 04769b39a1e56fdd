"""ECA models export to ONNX with both exporters and onnxruntime agrees with
PyTorch (relative 1e-5): backbones with trained-like batch norms, a
RetinaNet's tensor forward and a Faster R-CNN's features, through
tools/deployment/export_onnx.py as a user runs it."""
import inspect
import os.path as osp
import subprocess
import sys

import pytest
import torch

import eca_mmdet  # noqa: F401
from eca_mmdet.backbones import ECAMobileNetV2, ECAResNet

from helpers import ROOT, randomize_bn

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

TOOL = osp.join(ROOT, 'tools', 'deployment', 'export_onnx.py')
EXPORTERS = [
    'torchscript',
    pytest.param('dynamo', marks=pytest.mark.skipif(
        'dynamo' not in inspect.signature(torch.onnx.export).parameters,
        reason=f'torch.onnx.export(dynamo=True) needs torch >= 2.5, this is '
        f'{torch.__version__}')),
]


def export(config, exporter, tmp_path, *args):
    """Run the tool; return what it printed."""
    if exporter == 'dynamo':
        pytest.importorskip('onnxscript')
    cmd = [sys.executable, TOOL, str(config), *map(str, args), '--out',
           str(tmp_path / 'model.onnx')]
    proc = subprocess.run(cmd + (['--dynamo'] if exporter == 'dynamo'
                                 else []),
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert '(ok:' in proc.stdout and (tmp_path / 'model.onnx').is_file()
    return proc.stdout


BACKBONES = {
    'eca_resnet18': dict(type='ECAResNet', arch='eca_resnet18_k3577'),
    'eca_resnet50': dict(type='ECAResNet', arch='eca_resnet50_k3557'),
    'eca_mobilenetv2': dict(type='ECAMobileNetV2', out_indices=(2, 4, 6)),
}


@pytest.mark.parametrize('exporter', EXPORTERS)
@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_backbones_export(name, exporter, tmp_path):
    """A bare backbone config and a checkpoint whose batch norms are not at
    their initial values, as for trained weights."""
    cfg = dict(BACKBONES[name])
    model = {'ECAResNet': ECAResNet, 'ECAMobileNetV2': ECAMobileNetV2}[
        cfg.pop('type')](**cfg)
    model.init_weights()
    torch.save({'state_dict': randomize_bn(model).state_dict()},
               tmp_path / 'weights.pth')
    (tmp_path / 'backbone.py').write_text(
        '\n'.join(f'{k} = {v!r}' for k, v in BACKBONES[name].items()))
    out = export(tmp_path / 'backbone.py', exporter, tmp_path,
                 tmp_path / 'weights.pth', '--shape', '96', '128')
    assert 'exporting features' in out


@pytest.mark.parametrize('exporter', EXPORTERS)
@pytest.mark.parametrize('config', ['retinanet_eca_r50.py',
                                    'faster_rcnn_eca_r50.py'])
def test_detector_tool(config, exporter, tmp_path):
    """The tool exports RetinaNet's head outputs (mode='tensor') and
    Faster R-CNN's FPN features, checks them in onnxruntime and says so."""
    out = export(osp.join(ROOT, 'configs', config), exporter, tmp_path,
                 '--shape', '128', '160')
    what = 'mode=tensor' if 'retinanet' in config else 'extract_feat'
    assert f'exporting {what}' in out
    # RetinaNet: 5 levels x (cls, reg); Faster R-CNN: 5 FPN levels
    n = 10 if 'retinanet' in config else 5
    assert f'{n} outputs, largest relative difference' in out
