from .config_checks import (
                            ConfigError,
                            DatasetNotFoundError,
                            add_custom_hooks,
                            check_datasets_exist,
                            diagnose_datasets,
                            load_config,
                            offline_notice,
                            set_data_root,
                            setup_device,
                            use_safe_training_hooks,
)
from .cpu_distributed import teardown_distributed
from .failure_report import explain_failure

__all__ = ['ConfigError', 'DatasetNotFoundError', 'add_custom_hooks',
           'check_datasets_exist', 'diagnose_datasets', 'explain_failure',
           'load_config', 'offline_notice', 'set_data_root', 'setup_device',
           'teardown_distributed', 'use_safe_training_hooks']
