# mmdeploy 1.3.1: Faster R-CNN / RetinaNet to ONNX Runtime, any input size.
# The exported graph takes the preprocessed image and returns dets
# (x1, y1, x2, y2, score) and labels after NMS.
#
# mmdeploy reads iou_threshold, score_thr and max_per_img from the model's
# test_cfg where it has them; the values below apply where it has none.
# The RPN's test_cfg has no score_thr: mmdet keeps every proposal, so
# score_threshold is 0 here (mmdeploy's own configs use 0.05, which drops
# proposals that mmdet keeps). max_output_boxes_per_class and pre_top_k
# are above what any config here keeps.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=11,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['dets', 'labels'],
    input_shape=None,
    optimize=True,
    dynamic_axes=dict(
        input={0: 'batch', 2: 'height', 3: 'width'},
        dets={0: 'batch', 1: 'num_dets'},
        labels={0: 'batch', 1: 'num_dets'}))
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.0,
        confidence_threshold=0.005,
        iou_threshold=0.5,
        max_output_boxes_per_class=1000,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1))
backend_config = dict(type='onnxruntime')
