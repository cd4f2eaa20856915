"""An FP16 copy of a float32 ONNX graph, for TensorRT's strongly typed networks.

TensorRT 11 dropped weak typing (``BuilderFlag.FP16``): a network runs in the types its ONNX
declares. ``to_fp16`` writes the FP16 graph TensorRT then builds: every float32 weight becomes
float16 and every float32 computation with it, while the graph's inputs and outputs stay float32
with a Cast at each, so the engine's contract (float32 images in, float32 box encodings and
class scores out) is the same for every precision. Kept in float32: tensors whose type an
operator fixes whatever the data's (Resize's ``scales``), and Cast nodes keep their target unless
it was float32.

Needs the ``onnx`` package (a build-time step; the engine that results does not).
"""
import os

# (op_type, input index) whose tensor the operator requires as float32 in every opset
_FLOAT32_INPUTS = {("Resize", 2), ("Upsample", 1)}


def is_fp16(model):
    """Whether the graph already computes in float16 (any float16 initializer)."""
    from onnx import TensorProto
    return any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)


def _rename(nodes, old, new, outputs):
    """Every node input named ``old`` renamed ``new``; node outputs too where ``outputs``."""
    for node in nodes:
        for names in ((node.input, node.output) if outputs else (node.input,)):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new


def to_fp16(model):
    """A new ModelProto: float16 weights and compute, float32 graph inputs and outputs."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    src = model
    model = onnx.ModelProto()
    model.CopyFrom(src)
    g = model.graph
    keep32 = set()
    for node in g.node:
        for i, name in enumerate(node.input):
            if (node.op_type, i) in _FLOAT32_INPUTS:
                keep32.add(name)
    for k, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT and t.name not in keep32:
            arr = numpy_helper.to_array(t).astype(np.float16)
            g.initializer[k].CopyFrom(numpy_helper.from_array(arr, t.name))
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT and \
                        node.output[0] not in keep32:
                    arr = numpy_helper.to_array(a.t).astype(np.float16)
                    a.t.CopyFrom(numpy_helper.from_array(arr, a.t.name))
        elif node.op_type == "Cast":
            for a in node.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
    # graph inputs: float32 in, cast to float16 for the nodes that read them
    casts_in, casts_out = [], []
    for vi in g.input:
        if vi.type.tensor_type.elem_type != TensorProto.FLOAT or vi.name in keep32:
            continue
        half = vi.name + "__fp16"
        _rename(g.node, vi.name, half, outputs=False)
        casts_in.append(helper.make_node("Cast", [vi.name], [half], to=TensorProto.FLOAT16,
                                         name=half + "_cast"))
    # graph outputs: computed in float16 under a new name, cast back to float32
    for vi in g.output:
        if vi.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half = vi.name + "__fp16"
        _rename(g.node, vi.name, half, outputs=True)
        casts_out.append(helper.make_node("Cast", [half], [vi.name], to=TensorProto.FLOAT,
                                          name=vi.name + "_cast"))
    nodes = casts_in + list(g.node) + casts_out
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]          # intermediate types changed; TensorRT and ORT infer them
    return model


def write_fp16(onnx_path, out_path):
    """Write the FP16 graph of ``onnx_path`` to ``out_path`` (atomically); returns out_path."""
    import onnx
    model = onnx.load(onnx_path)
    if not is_fp16(model):
        model = to_fp16(model)
    # no onnx.checker: it rejects TensorRT plugin ops (``*_TRT``), which the parser takes
    d = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(d):
        os.makedirs(d)
    tmp = "%s.tmp%d" % (out_path, os.getpid())
    onnx.save(model, tmp)
    os.replace(tmp, out_path)
    return out_path
