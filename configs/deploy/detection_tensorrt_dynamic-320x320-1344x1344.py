# mmdeploy 1.3.1: Faster R-CNN / RetinaNet to TensorRT (fp32), inputs from
# 320x320 to 1344x1344. NOT TESTED HERE (no GPU, no TensorRT on these
# machines); the ONNX Runtime config is the tested one.
_base_ = './detection_onnxruntime_dynamic.py'

backend_config = dict(
    type='tensorrt',
    common_config=dict(fp16_mode=False, max_workspace_size=1 << 30),
    model_inputs=[
        dict(
            input_shapes=dict(
                input=dict(
                    min_shape=[1, 3, 320, 320],
                    opt_shape=[1, 3, 800, 1344],
                    max_shape=[1, 3, 1344, 1344])))
    ])
