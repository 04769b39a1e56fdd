"""Turn a failed train/test run into one readable line, where we can."""
from typing import Iterable, Optional

from .config import (
    DATALOADERS,
    ConfigError,
    DatasetNotFoundError,
    diagnose_datasets,
)


def explain_failure(error: BaseException, cfg=None,
                    loaders: Iterable[str] = DATALOADERS) -> Optional[str]:
    """The message a tool should print for ``error``, or None to re-raise.

    Our own errors already say what is wrong and how to fix it. For any
    other error, the configured annotation files are checked (a broken file
    makes pycocotools fail with messages such as ``KeyError: 'bbox'``); a
    problem found there is reported instead of the error. Remaining
    ``FileNotFoundError``/``ValueError`` messages are printed as they are;
    anything else is a bug whose traceback the user should see.

    Args:
        error (BaseException): What ``Runner.train``/``test`` raised.
        cfg (Config, optional): The run's config, if it was built.
        loaders (Iterable[str]): The dataloaders whose annotation files to
            check, in order. Defaults to train, val and test.

    Returns:
        str or None: The message, or None if the error should propagate.
    """
    from ..checkpoint import CheckpointError
    from ..datasets import AnnotationError
    from ..engine import MissingImagesError, NonFiniteLossError
    clear = (CheckpointError, ConfigError, DatasetNotFoundError,
             AnnotationError, MissingImagesError, NonFiniteLossError)
    if isinstance(error, clear):
        return str(error)
    if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit
        return None
    if cfg is not None:
        problem = diagnose_datasets(cfg, loaders)
        if problem:
            return problem
    if isinstance(error, (FileNotFoundError, ValueError)):
        return str(error)
    return None
