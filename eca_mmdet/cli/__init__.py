"""Support for the command-line tools in ``tools/``: config checks with
readable errors, CPU distributed set-up, and the shared run wrapper."""
from .config import (
    ConfigError,
    DatasetNotFoundError,
    add_custom_hooks,
    check_datasets_exist,
    check_file_exists,
    diagnose_datasets,
    fetch_checkpoints,
    load_config,
    set_data_root,
    setup_device,
    skip_pretrained_init,
    use_safe_training_hooks,
)
from .cpu_distributed import teardown_distributed
from .failure_report import explain_failure
from .tool import add_common_args, build_runner, guarded, parse_args, run

__all__ = ['ConfigError', 'DatasetNotFoundError', 'add_common_args',
           'add_custom_hooks', 'build_runner', 'check_datasets_exist',
           'check_file_exists',
           'diagnose_datasets', 'explain_failure', 'fetch_checkpoints',
           'guarded', 'load_config',
           'parse_args', 'run', 'set_data_root',
           'setup_device', 'skip_pretrained_init', 'teardown_distributed',
           'use_safe_training_hooks']
