"""The base class of the errors eca-mmdet raises for problems a user can
fix (a wrong config value, a missing or unsuitable file, broken data)."""


class ReadableError(Exception):
    """An error whose message says what was wrong and how to fix it.

    The tools print it as one ``error:`` line and exit with status 2; every
    other exception keeps its traceback. Each subclass also derives from the
    builtin error it stands for (``ValueError``, ``FileNotFoundError``, ...).
    """
