from .cpu_distributed import teardown_distributed
from .config_checks import (ConfigError, DatasetNotFoundError,
                            check_datasets_exist, load_config,
                            offline_notice,
                            set_data_root, setup_device,
                            use_safe_training_hooks)

__all__ = ['ConfigError', 'DatasetNotFoundError', 'check_datasets_exist', 'load_config',
           'offline_notice', 'set_data_root', 'setup_device',
           'teardown_distributed', 'use_safe_training_hooks']
