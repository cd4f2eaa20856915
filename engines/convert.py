#!/usr/bin/env python3
"""Convert a TFLite SSD detector to ONNX for trtssd (no TensorFlow needed).

    python engines/convert.py detect.tflite -o model.onnx
    python engines/convert.py --synthetic -o synthetic.onnx     # random weights, timing only
"""
import argparse
import os
import sys


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(here))     # run from a checkout without installing
    from trtssd.core.errors import TrtssdError
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="the .tflite file (default: trtssd's model lookup)")
    p.add_argument("-o", "--output", help="the .onnx to write (default: beside the model)")
    p.add_argument("--synthetic", action="store_true",
                   help="write the same architecture with random weights (timing only)")
    p.add_argument("--seed", type=int, default=0, help="seed of --synthetic")
    p.add_argument("--qdq", action="store_true",
                   help="write the model's quantisation as QuantizeLinear/DequantizeLinear "
                        "pairs (not implemented yet)")
    a = p.parse_args(argv)
    try:
        from trtssd.models.convert import convert_tflite, synthetic_model
        from trtssd.models.resolve import resolve_model
        if a.qdq:
            p.error("--qdq is not implemented yet; convert without it (float ONNX)")
        if a.synthetic:
            res = synthetic_model(a.seed)
            out = a.output or "synthetic-ssd-mobilenet-v1.onnx"
        else:
            src = resolve_model(a.model)
            res = convert_tflite(src)
            out = a.output or os.path.splitext(src)[0] + ".onnx"
        res.save(out)
    except TrtssdError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print("converted %s" % res.summary())
    print("wrote %s (%.1f MB)" % (out, os.path.getsize(out) / 1e6))
    if res.spec.synthetic:
        print("WARNING: synthetic random weights: use for timing only, never for detections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
