"""Stop before training or testing when dataset images are missing."""
import os.path as osp

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ..errors import ReadableError


class MissingImagesError(ReadableError, FileNotFoundError):
    """Images referenced by an annotation file do not exist."""


def _leaf_datasets(dataset):
    """The datasets inside Repeat/ClassBalanced/Concat wrappers."""
    if hasattr(dataset, 'datasets'):
        for d in dataset.datasets:
            yield from _leaf_datasets(d)
    elif hasattr(dataset, 'dataset'):
        yield from _leaf_datasets(dataset.dataset)
    else:
        yield dataset


def check_images_exist(dataset, what: str = 'dataset',
                       show: int = 3) -> None:
    """Raise :class:`MissingImagesError` if any ``img_path`` is absent.

    Args:
        dataset: A built mmengine ``BaseDataset`` (or a wrapper of some).
        what (str): How to name the dataset in the message.
        show (int): How many missing paths to list.
    """
    for ds in _leaf_datasets(dataset):
        if not hasattr(ds, 'get_data_info'):
            continue
        paths = [ds.get_data_info(i).get('img_path') for i in range(len(ds))]
        missing = [p for p in paths if p and not osp.isfile(p)]
        if missing:
            ann = getattr(ds, 'ann_file', '?')
            raise MissingImagesError(
                f'{what}: {len(missing)} of {len(paths)} images listed in '
                f'{ann} do not exist, e.g. {", ".join(missing[:show])}. '
                f'Check data_root and data_prefix.img, or remove those '
                f'images from the annotation file')


@HOOKS.register_module()
class ImageFilesCheckHook(Hook):
    """Check that every image of the train/val/test datasets exists.

    Without it a missing image stops a run with a bare ``FileNotFoundError``
    whenever the data loader first reaches it, possibly hours in. The check
    costs one ``stat`` per image (about a second for COCO train2017).
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        check_images_exist(runner.train_dataloader.dataset, 'train_dataloader')
        if runner.val_loop is not None:
            check_images_exist(runner.val_dataloader.dataset,
                               'val_dataloader')

    def before_test(self, runner) -> None:
        check_images_exist(runner.test_dataloader.dataset, 'test_dataloader')
