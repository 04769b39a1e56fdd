# The ECA-Net paper's COCO training setting (MMDetection, 1x schedule): 8
# images per iteration (e.g. 4 GPUs x 2 images, the 2 per GPU of mmdet's COCO
# dataloaders) and SGD lr 0.01. With another total batch size, add
# --auto-scale-lr: lr then scales linearly from base_batch_size=8.
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py'
]

custom_imports = dict(
    imports=['eca_mmdet', 'eca_mmdet.engine'], allow_failed_imports=False)

optim_wrapper = dict(optimizer=dict(lr=0.01))
auto_scale_lr = dict(base_batch_size=8)
