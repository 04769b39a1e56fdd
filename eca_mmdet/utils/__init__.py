from .dist import get_rank, is_main_process, log_for_job, log_once

__all__ = ['get_rank', 'is_main_process', 'log_for_job', 'log_once']
