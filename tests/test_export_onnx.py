"""ECA models export to ONNX with both exporters and onnxruntime agrees with
PyTorch (relative 1e-5): backbones, a RetinaNet's tensor forward and a
Faster R-CNN's features, through tools/deployment/export_onnx.py."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

import eca_mmdet  # noqa: F401
from eca_mmdet.backbones import ECAMobileNetV2, ECAResNet

from helpers import randomize_bn

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools', 'deployment'))
import export_onnx  # noqa: E402

EXPORTERS = [
    'torchscript',
    pytest.param('dynamo', marks=pytest.mark.skipif(
        not export_onnx.has_dynamo_exporter(),
        reason=f'torch.onnx.export(dynamo=True) needs torch >= 2.5, this is '
        f'{torch.__version__}')),
]


def check_export(model, x, exporter, path):
    if exporter == 'dynamo':
        pytest.importorskip('onnxscript')
    model.eval()
    with torch.no_grad():
        expected = model(x)
    export_onnx.export_onnx(model, x, str(path), dynamo=exporter == 'dynamo')
    got = export_onnx.run_onnxruntime(str(path), x)
    assert len(got) == len(expected)
    assert export_onnx.max_relative_error(expected, got) < 1e-5


@pytest.mark.parametrize('exporter', EXPORTERS)
@pytest.mark.parametrize('name', ['eca_resnet18', 'eca_resnet50',
                                  'eca_mobilenetv2'])
def test_backbones_export(name, exporter, tmp_path):
    model = {'eca_resnet18': lambda: ECAResNet(arch='eca_resnet18_k3577'),
             'eca_resnet50': lambda: ECAResNet(arch='eca_resnet50_k3557'),
             'eca_mobilenetv2': lambda: ECAMobileNetV2(
                 out_indices=(2, 4, 6))}[name]()
    model.init_weights()
    randomize_bn(model)
    x = torch.randn(1, 3, 96, 128)
    check_export(model, x, exporter, tmp_path / f'{name}.onnx')


@pytest.mark.parametrize('exporter', EXPORTERS)
@pytest.mark.parametrize('config', ['retinanet_eca_r50.py',
                                    'faster_rcnn_eca_r50.py'])
def test_detector_tool(config, exporter, tmp_path):
    """The tool exports RetinaNet's head outputs (mode='tensor') and
    Faster R-CNN's FPN features, checks them in onnxruntime and says so."""
    if exporter == 'dynamo':
        pytest.importorskip('onnxscript')
    out = tmp_path / 'model.onnx'
    cmd = [sys.executable, osp.join(ROOT, 'tools/deployment/export_onnx.py'),
           osp.join(ROOT, 'configs', config), '--out', str(out),
           '--shape', '128', '160']
    proc = subprocess.run(cmd + (['--dynamo'] if exporter == 'dynamo'
                                 else []),
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    what = 'mode=tensor' if 'retinanet' in config else 'extract_feat'
    assert f'exporting {what}' in proc.stdout
    # RetinaNet: 5 levels x (cls, reg); Faster R-CNN: 5 FPN levels
    n = 10 if 'retinanet' in config else 5
    assert f'{n} outputs, largest relative difference' in proc.stdout
    assert '(ok:' in proc.stdout and out.is_file()
