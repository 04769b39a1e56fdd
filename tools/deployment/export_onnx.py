#!/usr/bin/env python
"""Export a detector's tensor forward to ONNX and check it in onnxruntime.

What is exported: for one-stage detectors (RetinaNet) the raw head outputs
(``model(x, mode='tensor')``, before box decoding and NMS); for two-stage
detectors (Faster/Mask R-CNN) the backbone + neck features
(``model.extract_feat``), as their RoI stages are not a fixed-shape graph;
for a bare backbone config, its feature maps. The ONNX model is then run in
onnxruntime on the same input and compared with PyTorch.

    python tools/deployment/export_onnx.py configs/retinanet_eca_r50.py \\
        work_dirs/retinanet_eca_r50/epoch_12.pth --out retinanet.onnx
    python tools/deployment/export_onnx.py CONFIG --dynamo   # torch >= 2.5

Without a checkpoint the model keeps its random initialisation (enough to
check that it exports). Needs ``pip install onnx onnxruntime`` (and
``onnxscript`` for ``--dynamo``).
"""
import argparse
import inspect
import os.path as osp
import sys
import time

import torch

import eca_mmdet.engine  # noqa: F401  (opt-in: safe checkpoint reads)
from eca_mmdet.cli import ConfigError, init_model, run_tool


def has_dynamo_exporter():
    """Whether ``torch.onnx.export`` takes ``dynamo=`` (torch >= 2.5)."""
    return 'dynamo' in inspect.signature(torch.onnx.export).parameters


def export_onnx(model, inputs, path, dynamo=False, opset=17):
    """``torch.onnx.export`` with the TorchScript exporter or, with
    ``dynamo=True``, the dynamo one (torch >= 2.5)."""
    model.eval()
    kwargs = dict(opset_version=opset, input_names=['input'])
    if has_dynamo_exporter():
        kwargs['dynamo'] = dynamo
    elif dynamo:
        raise ConfigError(f'--dynamo needs torch >= 2.5 (this is '
                          f'{torch.__version__})')
    with torch.no_grad():
        torch.onnx.export(model, (inputs, ), path, **kwargs)


def run_onnxruntime(path, inputs):
    """Outputs of the ONNX model at ``path`` on ``inputs`` (a tensor)."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return session.run(None, {name: inputs.detach().cpu().numpy()})


def max_relative_error(expected, got):
    """Largest ``|a - b| / max|a|`` over paired outputs."""
    errors = []
    for a, b in zip(expected, got):
        a = a.detach().cpu().double()
        b = torch.as_tensor(b).double()
        if a.shape != b.shape:
            raise AssertionError(f'output shape {tuple(b.shape)} from ONNX, '
                                 f'{tuple(a.shape)} from PyTorch')
        errors.append(((a - b).abs().max() / a.abs().max().clamp_min(
            1e-12)).item())
    return max(errors)


class TensorForward(torch.nn.Module):
    """The part of a detector that exports: see the module docstring."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.what = ('extract_feat' if getattr(model, 'with_rpn', False)
                     else 'mode=tensor' if hasattr(model, 'bbox_head')
                     else 'features' if not hasattr(model, 'extract_feat')
                     else 'extract_feat')

    def forward(self, x):
        if self.what == 'mode=tensor':
            outs = self.model(x, mode='tensor')
        elif self.what == 'features':
            outs = self.model(x)
        else:
            outs = self.model.extract_feat(x)
        flat = []
        for o in outs:
            flat.extend(o if isinstance(o, (list, tuple)) else [o])
        return tuple(flat)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?')
    p.add_argument('--out', help='ONNX file (default: CONFIG name .onnx)')
    p.add_argument('--shape', type=int, nargs=2, default=[320, 320],
                   metavar=('H', 'W'), help='input size (default 320 320)')
    p.add_argument('--dynamo', action='store_true',
                   help='the dynamo exporter instead of TorchScript')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--rtol', type=float, default=1e-5,
                   help='largest relative difference onnxruntime may show')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = args.out or osp.splitext(osp.basename(args.config))[0] + '.onnx'
    model = TensorForward(init_model(args.config, args.checkpoint,
                                     strict=True)).eval()
    x = torch.randn(1, 3, *args.shape)  # the range of a normalised image
    with torch.no_grad():
        expected = model(x)
    exporter = 'dynamo' if args.dynamo else 'TorchScript'
    print(f'[1/2] exporting {model.what} of {args.config} '
          f'({exporter} exporter, input 1x3x{args.shape[0]}x'
          f'{args.shape[1]}) ...', flush=True)
    t = time.time()
    export_onnx(model, x, out, dynamo=args.dynamo, opset=args.opset)
    print(f'      wrote {out} ({osp.getsize(out) / 2**20:.1f} MiB, '
          f'{time.time() - t:.0f} s)', flush=True)
    print('[2/2] checking it in onnxruntime ...', flush=True)
    err = max_relative_error(expected, run_onnxruntime(out, x))
    ok = err <= args.rtol
    print(f'      {len(expected)} outputs, largest relative difference '
          f'{err:.2e} ({"ok" if ok else "FAILED"}: limit {args.rtol:g})')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(run_tool(main))
