"""The error every checkpoint reader raises, and its message for files that
would need unsafe unpickling."""


from ..errors import ReadableError


class CheckpointError(ReadableError, RuntimeError):
    """A checkpoint file is missing, unreadable, unsafe or does not fit."""


def unsafe_file_error(path: str, detail: str) -> CheckpointError:
    """The error for a file whose pickle names a global outside the
    allow-list (``detail``: the first line of the unpickler's message)."""
    return CheckpointError(
        f'refusing to load {path}: unpickling it would need objects that are '
        f'not tensors or types mmengine writes ({detail}). Loading it could '
        f'run code from the file; convert it to a plain state_dict of '
        f'tensors on a machine where you trust the file.')
