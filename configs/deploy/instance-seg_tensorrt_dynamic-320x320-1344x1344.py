# mmdeploy 1.3.1: Mask R-CNN to TensorRT (fp32), inputs from 320x320 to
# 1344x1344. NOT TESTED HERE (no GPU, no TensorRT on these machines).
_base_ = './detection_tensorrt_dynamic-320x320-1344x1344.py'

onnx_config = dict(
    output_names=['dets', 'labels', 'masks'],
    dynamic_axes=dict(masks={0: 'batch', 1: 'num_dets'}))
# mmdeploy 1.3.1 runs mmdet's Mask R-CNN as an ObjectDetection task with a
# third output; the 28x28 masks are pasted outside the graph
codebase_config = dict(post_processing=dict(export_postprocess_mask=False))
