"""Tiny ONNX files shaped like trtssd's converter output, for the TensorRT fakes.

Input ``images`` [N,3,H,W] (N symbolic), outputs ``box_encodings`` [N,A,4] and
``class_scores`` [N,A,C], the ModelSpec JSON under metadata key ``trtssd.spec``. The graph
computes something plausible (not what the fakes return: fake engines never run ONNX).
"""
import numpy as np

H = W = 12
A = 7
C = 4


def small_spec(name="tiny-ssd"):
    from trtssd.core.spec import ModelSpec
    rng = np.random.RandomState(3)
    return ModelSpec(name=name, input_height=H, input_width=W, mean=(128, 128, 128),
                     scale=(1 / 128.0,) * 3, channel_order="RGB", num_classes=C,
                     anchors=rng.uniform(0.1, 0.9, size=(A, 4)).astype(np.float32))


def write_onnx(path, extra_ops=(), qdq=False, spec=None, metadata=True, out_names=None):
    import onnx
    from onnx import TensorProto, helper
    spec = spec or small_spec()
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, H, W])
    names = out_names or ("box_encodings", "class_scores")
    outs = [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, ["N", A, 4]),
            helper.make_tensor_value_info(names[1], TensorProto.FLOAT, ["N", A, C])]
    inits = [
        helper.make_tensor("w", TensorProto.FLOAT, [3 * H * W, A * (4 + C)],
                           np.zeros(3 * H * W * A * (4 + C), np.float32).tolist()),
        helper.make_tensor("sb", TensorProto.INT64, [3], [0, A, 4]),
        helper.make_tensor("sc", TensorProto.INT64, [3], [0, A, C]),
        helper.make_tensor("split", TensorProto.INT64, [2], [A * 4, A * C]),
        helper.make_tensor("qs", TensorProto.FLOAT, [], [0.02]),
        helper.make_tensor("qz", TensorProto.INT8, [], [0]),
    ]
    nodes = []
    src = "images"
    if qdq:
        nodes += [helper.make_node("QuantizeLinear", ["images", "qs", "qz"], ["q"]),
                  helper.make_node("DequantizeLinear", ["q", "qs", "qz"], ["dq"])]
        src = "dq"
    nodes += [helper.make_node("Flatten", [src], ["flat"], axis=1),
              helper.make_node("MatMul", ["flat", "w"], ["mm"])]
    for k, op in enumerate(extra_ops):
        nodes.append(helper.make_node(op, ["mm"], ["extra%d" % k], domain=""))
    nodes += [helper.make_node("Split", ["mm", "split"], ["b", "c"], axis=1),
              helper.make_node("Reshape", ["b", "sb"], [names[0]]),
              helper.make_node("Reshape", ["c", "sc"], ["c3"]),
              helper.make_node("Sigmoid", ["c3"], [names[1]])]
    graph = helper.make_graph(nodes, "tiny", [inp], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    if metadata:
        helper.set_model_props(model, {"trtssd.spec": spec.to_json(), "producer": "tests"})
    onnx.save(model, path)
    return path
