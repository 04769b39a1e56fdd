from .config_checks import (ConfigError, DatasetNotFoundError,
                            check_datasets_exist, offline_notice,
                            set_data_root, setup_device)

__all__ = ['ConfigError', 'DatasetNotFoundError', 'check_datasets_exist',
           'offline_notice', 'set_data_root', 'setup_device']
