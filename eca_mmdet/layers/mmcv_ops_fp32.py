"""mmcv's kernels that lack a low-precision dtype, run in float32 under AMP.

mmcv 2.1.0's RoIAlign kernels (CUDA and CPU) and its CUDA kernels of the
sigmoid focal loss and multi-scale deformable attention dispatch on float32,
float64 and float16 only, and its NMS kernels read float32 boxes only. Under
bfloat16 autocast, Faster and Mask R-CNN (RoIAlign; on the CPU also NMS,
whose boxes CPU autocast leaves in bfloat16), and on CUDA RetinaNet and DINO
(focal loss; DINO's deformable attention) stop with "not implemented for
'BFloat16'" or "expected scalar type Float but found BFloat16".
:func:`mmcv_ops_in_fp32` runs exactly these ops in float32, as torchvision's
autocast rules do for its own ``roi_align`` and ``nms``; every other op keeps
the autocast dtype. It is opt-in (importing this module changes nothing):
``tools/train.py --amp`` runs training inside it, and configs turn it on
through :class:`~eca_mmdet.engine.MMCVOpsInFP32Hook`.

While active it changes, process-wide:

* mmdet's ``SingleRoIExtractor`` and ``GenericRoIExtractor``: float16 /
  bfloat16 features are extracted in float32 (with the RoIs in float32,
  which mmdet would round to the features' dtype) and returned in the
  features' dtype;
* mmdet's ``FocalLoss`` hands mmcv's CUDA kernel float32 scores (the loss is
  float32, as autocast computes losses);
* mmcv's ``MultiScaleDeformableAttnFunction`` (the CUDA path of
  ``MultiScaleDeformableAttention``) computes in float32 and returns the
  value's dtype;
* mmcv's ``NMSop`` (under ``nms``) gets float32 boxes and scores, and
  ``batched_nms``, wherever a loaded module imported it, works in float32
  (its per-class offsets in bfloat16 would move boxes by up to 32 pixels)
  and returns float32 boxes and scores.
"""
import functools
import sys
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

import torch
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
from mmcv.ops.nms import NMSop, batched_nms
from mmdet.models.losses import focal_loss
from mmdet.models.roi_heads.roi_extractors import (
    GenericRoIExtractor,
    SingleRoIExtractor,
)

LOW_PRECISION = (torch.float16, torch.bfloat16)
_active = False  # whether mmcv_ops_in_fp32 has its replacements in place


def to_fp32(x):
    """Cast float16/bfloat16 tensors to float32.

    Args:
        x: A tensor, a tuple or list (cast element-wise), or anything else.

    Returns:
        ``x`` with every float16/bfloat16 tensor in it as float32; anything
        else as it is.
    """
    if isinstance(x, torch.Tensor) and x.dtype in LOW_PRECISION:
        return x.float()
    if isinstance(x, (tuple, list)):
        return type(x)(to_fp32(v) for v in x)
    return x


def _fp32_call(op: Callable) -> Callable:
    """``op`` with its low-precision tensor arguments cast to float32."""

    @functools.wraps(op)
    def wrapped(*args, **kwargs):
        return op(*to_fp32(args), **{k: to_fp32(v) for k, v in kwargs.items()})

    return wrapped


def _fp32_roi_forward(forward: Callable) -> Callable:
    """An RoI extractor's ``forward(feats, rois, ...)`` computed in float32
    and returned in the features' dtype."""

    @functools.wraps(forward)
    def wrapped(self, feats, rois, *args, **kwargs):
        dtype = feats[0].dtype
        if dtype not in LOW_PRECISION:
            return forward(self, feats, rois, *args, **kwargs)
        out = forward(self, to_fp32(tuple(feats)), to_fp32(rois), *args,
                      **kwargs)
        return out.to(dtype)

    return wrapped


def _fp32_deform_attn(apply: Callable) -> Callable:
    """``MultiScaleDeformableAttnFunction.apply(value, ...)`` computed in
    float32 and returned in the value's dtype."""

    @functools.wraps(apply)
    def wrapped(value, *args):
        return apply(*to_fp32((value, *args))).to(value.dtype)

    return wrapped


@contextmanager
def _patched(owner, name: str, wrap: Callable) -> Iterator[None]:
    """Replace ``owner.name`` by ``wrap(owner.name)``; restore on exit (an
    inherited attribute is shadowed, then uncovered again)."""
    saved = vars(owner).get(name)
    new = wrap(getattr(owner, name))
    setattr(owner, name,
            staticmethod(new) if isinstance(saved, staticmethod) else new)
    try:
        yield
    finally:
        if saved is None:
            delattr(owner, name)
        else:
            setattr(owner, name, saved)


@contextmanager
def _patched_everywhere(func: Callable, wrap: Callable) -> Iterator[None]:
    """Replace ``func`` by ``wrap(func)`` in every loaded module that binds
    it under its name (mmdet's modules import mmcv's functions by name);
    restore on exit."""
    name, new = func.__name__, wrap(func)
    owners = [m for m in list(sys.modules.values())
              if getattr(m, '__dict__', {}).get(name) is func]
    for module in owners:
        setattr(module, name, new)
    try:
        yield
    finally:
        for module in owners:
            setattr(module, name, func)


@contextmanager
def mmcv_ops_in_fp32() -> Iterator[None]:
    """Within the context, run mmcv's RoIAlign (through mmdet's RoI
    extractors), sigmoid focal loss, multi-scale deformable attention and
    NMS in float32 when they get float16/bfloat16 tensors (see the module's
    docstring); float32 inputs run exactly as without it. Modules imported
    inside the context keep mmcv's own ``batched_nms``. Within an active
    context (or a run of the hook) it does nothing: only the outermost one
    replaces and restores.

    Example::

        with mmcv_ops_in_fp32(), torch.autocast('cuda', torch.bfloat16):
            losses = model.train_step(data, optim_wrapper)
    """
    global _active
    if _active:
        yield
        return
    with ExitStack() as stack:
        for extractor in (SingleRoIExtractor, GenericRoIExtractor):
            stack.enter_context(
                _patched(extractor, 'forward', _fp32_roi_forward))
        stack.enter_context(
            _patched(focal_loss, '_sigmoid_focal_loss', _fp32_call))
        stack.enter_context(_patched(MultiScaleDeformableAttnFunction,
                                     'apply', _fp32_deform_attn))
        stack.enter_context(_patched(NMSop, 'forward', _fp32_call))
        stack.enter_context(_patched_everywhere(batched_nms, _fp32_call))
        _active = True
        try:
            yield
        finally:
            _active = False
