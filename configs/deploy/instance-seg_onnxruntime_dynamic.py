# mmdeploy 1.3.1: Mask R-CNN to ONNX Runtime, any input size: dets, labels
# and one 28x28 mask per detection, pasted into the image by mmdeploy's
# backend model as mmdet does (see detection_onnxruntime_dynamic.py for the
# post-processing values).
_base_ = './detection_onnxruntime_dynamic.py'

onnx_config = dict(
    output_names=['dets', 'labels', 'masks'],
    dynamic_axes=dict(masks={0: 'batch', 1: 'num_dets'}))
# mmdeploy 1.3.1 runs mmdet's Mask R-CNN as an ObjectDetection task with a
# third output; the 28x28 masks are pasted outside the graph
codebase_config = dict(post_processing=dict(export_postprocess_mask=False))
