"""Support for the command-line tools in ``tools/``: config checks with
readable errors, CPU distributed set-up, the model of a config with a
checkpoint, and how a tool's run ends."""
from .config import (
    ConfigError,
    DatasetNotFoundError,
    MissingFileError,
    add_custom_hooks,
    check_datasets_exist,
    check_file_exists,
    diagnose_data_errors,
    diagnose_datasets,
    fetch_checkpoints,
    load_config,
    set_data_root,
    setup_device,
    skip_pretrained_init,
    use_amp,
    use_safe_training_hooks,
)
from .cpu_distributed import teardown_distributed
from .model import init_model
from .tool import add_common_args, build_runner, parse_args, run_tool

__all__ = ['ConfigError', 'DatasetNotFoundError', 'MissingFileError',
           'add_common_args', 'add_custom_hooks', 'build_runner',
           'check_datasets_exist', 'check_file_exists',
           'diagnose_data_errors', 'diagnose_datasets', 'fetch_checkpoints',
           'init_model', 'load_config', 'parse_args', 'run_tool',
           'set_data_root', 'setup_device', 'skip_pretrained_init',
           'teardown_distributed', 'use_amp', 'use_safe_training_hooks']
