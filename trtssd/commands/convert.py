"""`trtssd convert`: a TFLite detector (or network), or a TF1 Object Detection API SSD frozen
graph, to ONNX, without TensorFlow.

    trtssd convert MODEL.tflite|MODEL.pb [-o OUT.onnx] [--qdq [exact|symmetric]] [--check]
                   [--image PIC]
    trtssd convert --synthetic [-o OUT.onnx]      # random weights, timing only

``--check`` runs the official interpreter (LiteRT for a .tflite, TensorFlow for a .pb, where
installed) and ONNX Runtime on the same inputs (a random one, and PIC when given) and prints each output's largest error; the exit status is 1
when one is past its tolerance (see :mod:`trtssd.models.check`).
"""
import os
import sys


def add_arguments(p):
    p.add_argument("model", nargs="?", default=None,
                   help="the .tflite file or TF1 Object Detection API frozen graph (.pb) "
                        "(default: $TRTSSD_MODEL, or "
                        "../shared/models/detect.tflite from a checkout)")
    p.add_argument("-o", "--output", default=None,
                   help="the .onnx to write (default: beside the model, MODEL.onnx, or "
                        "MODEL.qdq.onnx with --qdq)")
    p.add_argument("--qdq", nargs="?", const="exact", default=None,
                   choices=("exact", "symmetric"),
                   help="write a quantised model's quantisation as QuantizeLinear/"
                        "DequantizeLinear instead of a float graph: 'exact' (the default) at "
                        "its own scales and zero points, as the interpreter computes; "
                        "'symmetric' int8 with zero points 0 over the same ranges, which "
                        "TensorRT's INT8 takes (write --qdq after MODEL, or as --qdq=exact)")
    p.add_argument("--check", action="store_true",
                   help="compare the ONNX (ONNX Runtime) with the TFLite interpreter (LiteRT) "
                        "and fail past the tolerance")
    p.add_argument("--image", default=None, metavar="PIC",
                   help="with --check: a picture to compare on, besides a random input")
    p.add_argument("--synthetic", action="store_true",
                   help="write the SSD-MobileNet-v1 architecture with random weights "
                        "(timing only)")
    p.add_argument("--seed", type=int, default=0, help="seed of --synthetic and of --check")


def add_parser(subparsers):
    p = subparsers.add_parser("convert", help="convert a TFLite detector to ONNX (no TensorFlow)",
                              description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args):
    from ..core.errors import InputError
    from ..models.convert import MODEL_EXTENSIONS, convert_model, synthetic_model
    from ..models.resolve import resolve_model
    if args.image and not args.check:
        raise InputError("--image is the picture that --check compares on; add --check")
    if args.synthetic:
        if args.check or args.qdq:
            raise InputError("--synthetic has no TFLite file to --check against or --qdq "
                             "scales; convert a .tflite for those")
        res = synthetic_model(args.seed)
        src = None
        out = args.output or "synthetic-ssd-mobilenet-v1.onnx"
    else:
        src = resolve_model(args.model)
        if not src.lower().endswith(MODEL_EXTENSIONS):
            raise InputError("trtssd convert reads a .tflite model or a TF1 frozen graph (.pb); "
                             "%s is neither" % src)
        res = convert_model(src, qdq=args.qdq)
        out = args.output or os.path.splitext(src)[0] + (
            {"exact": ".qdq.onnx", "symmetric": ".qdq-int8.onnx"}.get(args.qdq, ".onnx"))
    if args.image and not os.path.isfile(args.image):
        raise InputError("--image %s does not exist" % args.image)
    res.save(out)
    print("converted %s" % res.summary())
    print("wrote %s (%.1f MB)" % (out, os.path.getsize(out) / 1e6))
    if res.spec is not None and res.spec.synthetic:
        print("WARNING: synthetic random weights: use for timing only, never for detections")
    if not args.check:
        return 0
    from ..models.check import check_conversion, format_rows
    rows = check_conversion(src, res.model, image=args.image, seed=args.seed)
    print("check against %s, ONNX Runtime on the CPU:"
          % ("TensorFlow" if src.lower().endswith(".pb") else "the TFLite interpreter (LiteRT)"))
    print(format_rows(rows))
    bad = [r for r in rows if not r["ok"]]
    if bad:
        sys.stderr.write("trtssd: error: %d output%s past the tolerance: the conversion is not "
                         "right for this model; please report it with the file\n"
                         % (len(bad), "" if len(bad) == 1 else "s"))
        return 1
    return 0
