"""Write small TFLite files in the tests, with the flatbuffers builder functions of the schema
(the `tflite` package carries them), so that each operator, option and quantisation can be
checked against the official interpreter."""
import importlib

import numpy as np

_TYPES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int32): 2,
          np.dtype(np.uint8): 3, np.dtype(np.int64): 4, np.dtype(np.int8): 9}

# builtin options table of each op (None: the op has none we set)
OPTIONS_TABLE = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions",
    "CONCATENATION": "ConcatenationOptions", "LEAKY_RELU": "LeakyReluOptions",
    "MEAN": "ReducerOptions", "RESIZE_BILINEAR": "ResizeBilinearOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
    "DEPTH_TO_SPACE": "DepthToSpaceOptions", "SPACE_TO_DEPTH": "SpaceToDepthOptions",
    "SOFTMAX": "SoftmaxOptions", "STRIDED_SLICE": "StridedSliceOptions",
    "SQUEEZE": "SqueezeOptions", "RESHAPE": "ReshapeOptions", "PAD": "PadOptions",
    "PADV2": "PadV2Options", "TRANSPOSE": "TransposeOptions",
}
_ENUMS = {"Padding": {"SAME": 0, "VALID": 1},
          "FusedActivationFunction": {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3,
                                      "TANH": 4}}


class TfliteFile(object):
    def __init__(self):
        self.tensors = []
        self.ops = []
        self.opcodes = []

    def tensor(self, shape, dtype=np.float32, data=None, scale=None, zero_point=None, qdim=0,
               name=None):
        dtype = np.dtype(dtype)
        if data is not None:
            data = np.ascontiguousarray(np.asarray(data, dtype).reshape(shape))
        self.tensors.append(dict(shape=list(shape), dtype=dtype, data=data, scale=scale,
                                 zero_point=zero_point, qdim=qdim,
                                 name=name or "t%d" % len(self.tensors)))
        return len(self.tensors) - 1

    def const(self, data, dtype=None, **q):
        data = np.asarray(data, dtype)
        return self.tensor(data.shape, data.dtype, data, **q)

    def op(self, name, inputs, outputs, custom_options=None, **options):
        self.ops.append((name, list(inputs), list(outputs), options, custom_options))
        return outputs[0] if len(outputs) == 1 else outputs

    # -- serialisation ------------------------------------------------------------------------
    def build(self, inputs, outputs, description="test"):
        import flatbuffers
        import tflite
        b = flatbuffers.Builder(1024)

        def ivec(values, dtype=np.int32):
            return b.CreateNumpyVector(np.asarray(values, dtype))

        def tvec(start, offsets):
            start(b, len(offsets))
            for o in reversed(offsets):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        # buffers: 0 is the empty one, then one per constant tensor
        buffers, buf_index = [], []
        empty = _table(b, _mod("Buffer"), "Buffer", {})
        buffers.append(empty)
        for t in self.tensors:
            if t["data"] is None:
                buf_index.append(0)
                continue
            data = b.CreateNumpyVector(np.frombuffer(t["data"].tobytes(), np.uint8))
            _mod("Buffer").BufferStart(b)
            _mod("Buffer").BufferAddData(b, data)
            buffers.append(_mod("Buffer").BufferEnd(b))
            buf_index.append(len(buffers) - 1)
        tensors = []
        for t, bi in zip(self.tensors, buf_index):
            name = b.CreateString(t["name"])
            shape = ivec(t["shape"])
            quant = None
            if t["scale"] is not None:
                sc = b.CreateNumpyVector(np.asarray(t["scale"], np.float32).ravel())
                zp = b.CreateNumpyVector(np.asarray(t["zero_point"], np.int64).ravel())
                Q = _mod("QuantizationParameters")
                Q.QuantizationParametersStart(b)
                Q.QuantizationParametersAddScale(b, sc)
                Q.QuantizationParametersAddZeroPoint(b, zp)
                Q.QuantizationParametersAddQuantizedDimension(b, t["qdim"])
                quant = Q.QuantizationParametersEnd(b)
            T = _mod("Tensor")
            T.TensorStart(b)
            T.TensorAddShape(b, shape)
            T.TensorAddType(b, _TYPES[t["dtype"]])
            T.TensorAddBuffer(b, bi)
            T.TensorAddName(b, name)
            if quant is not None:
                T.TensorAddQuantization(b, quant)
            tensors.append(T.TensorEnd(b))

        codes = {}
        ops = []
        for name, ins, outs, options, custom in self.ops:
            key = name if custom is None else ("CUSTOM", name)
            if key not in codes:
                codes[key] = len(codes)
            opt_off, opt_type = None, 0
            if custom is None and name in OPTIONS_TABLE:
                table = OPTIONS_TABLE[name]
                opt_off = _table(b, importlib.import_module("tflite." + table), table, options)
                opt_type = getattr(tflite.BuiltinOptions, table)
            cust = b.CreateNumpyVector(np.frombuffer(custom, np.uint8)) if custom else None
            iv, ov = ivec(ins), ivec(outs)
            O = _mod("Operator")
            O.OperatorStart(b)
            O.OperatorAddOpcodeIndex(b, codes[key])
            O.OperatorAddInputs(b, iv)
            O.OperatorAddOutputs(b, ov)
            if opt_off is not None:
                O.OperatorAddBuiltinOptionsType(b, opt_type)
                O.OperatorAddBuiltinOptions(b, opt_off)
            if cust is not None:
                O.OperatorAddCustomOptions(b, cust)
            ops.append(O.OperatorEnd(b))
        opcodes = []
        for key in sorted(codes, key=codes.get):
            custom = isinstance(key, tuple)
            code = tflite.BuiltinOperator.CUSTOM if custom else getattr(tflite.BuiltinOperator,
                                                                         key)
            cname = b.CreateString(key[1]) if custom else None
            C = _mod("OperatorCode")
            C.OperatorCodeStart(b)
            C.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            C.OperatorCodeAddBuiltinCode(b, code)
            C.OperatorCodeAddVersion(b, 1)
            if cname is not None:
                C.OperatorCodeAddCustomCode(b, cname)
            opcodes.append(C.OperatorCodeEnd(b))

        S = _mod("SubGraph")
        tv = tvec(S.SubGraphStartTensorsVector, tensors)
        ov = tvec(S.SubGraphStartOperatorsVector, ops)
        iv, outv = ivec(inputs), ivec(outputs)
        sname = b.CreateString("main")
        S.SubGraphStart(b)
        S.SubGraphAddTensors(b, tv)
        S.SubGraphAddInputs(b, iv)
        S.SubGraphAddOutputs(b, outv)
        S.SubGraphAddOperators(b, ov)
        S.SubGraphAddName(b, sname)
        sub = S.SubGraphEnd(b)
        M = _mod("Model")
        codes_v = tvec(M.ModelStartOperatorCodesVector, opcodes)
        subs_v = tvec(M.ModelStartSubgraphsVector, [sub])
        bufs_v = tvec(M.ModelStartBuffersVector, buffers)
        desc = b.CreateString(description)
        M.ModelStart(b)
        M.ModelAddVersion(b, 3)
        M.ModelAddOperatorCodes(b, codes_v)
        M.ModelAddSubgraphs(b, subs_v)
        M.ModelAddDescription(b, desc)
        M.ModelAddBuffers(b, bufs_v)
        b.Finish(M.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _mod(name):
    return importlib.import_module("tflite." + name)


def _table(b, module, table, fields):
    """One options table; vector fields (lists) are written before the table starts."""
    vectors = {}
    for k, v in fields.items():
        if isinstance(v, (list, tuple)):
            vectors[k] = b.CreateNumpyVector(np.asarray(v, np.int32))
    getattr(module, table + "Start")(b)
    for k, v in fields.items():
        if k in vectors:
            v = vectors[k]
        elif k in _ENUMS and isinstance(v, str):
            v = _ENUMS[k][v]
        getattr(module, "%sAdd%s" % (table, k))(b, v)
    return getattr(module, table + "End")(b)


def interpreter(buf):
    """LiteRT's interpreter on ``buf`` (all tensors kept), or None where LiteRT is missing."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            return None
    it = Interpreter(model_content=buf, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it
