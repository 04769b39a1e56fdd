# As instance-seg_tensorrt_dynamic-320x320-1344x1344.py, in fp16. NOT
# TESTED HERE (no GPU, no TensorRT on these machines).
_base_ = './instance-seg_tensorrt_dynamic-320x320-1344x1344.py'

backend_config = dict(common_config=dict(fp16_mode=True))
