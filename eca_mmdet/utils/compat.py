"""The few torch APIs whose names changed within the supported range
(torch 2.0 to 2.13): the newer one where it exists, else the older one."""
import torch


def is_compiling() -> bool:
    """Whether ``torch.compile``/``torch.export`` is tracing the caller
    (``torch.compiler.is_compiling`` from torch 2.3, the ``torch._dynamo``
    name before)."""
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and hasattr(compiler, 'is_compiling'):
        return compiler.is_compiling()
    from torch import _dynamo
    return _dynamo.is_compiling()


def is_tracing() -> bool:
    """Whether the caller is being compiled, exported or traced: code that
    must then be the plain composition of standard ops."""
    return (is_compiling() or torch.jit.is_tracing()
            or torch.onnx.is_in_onnx_export())
