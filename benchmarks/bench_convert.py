"""Conversion time of each model given (TFLite or TF1 frozen graph), on the CPU: the converter
alone (parse, translate, build the ONNX in memory), after one discarded run that loads the
libraries; best and median of --repeat runs. Pin it to one core with taskset.

    taskset -c 0 python benchmarks/bench_convert.py detect.tflite frozen_inference_graph.pb
"""
import argparse
import os
import platform
import sys
import time


def main(argv=None):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from trtssd.models.convert import convert_model
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--qdq", action="store_true", help="also time --qdq of each .tflite")
    a = p.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("python %s, %s, %d core(s) usable, %s" % (platform.python_version(),
                                                     platform.processor() or platform.machine(),
                                                     cores, time.strftime("%Y-%m-%d")))
    for path in a.models:
        for qdq in ((False, True) if a.qdq and path.endswith(".tflite") else (False,)):
            convert_model(path, qdq=qdq)
            ts = []
            for _ in range(a.repeat):
                t = time.perf_counter()
                convert_model(path, qdq=qdq)
                ts.append(time.perf_counter() - t)
            ts.sort()
            print("%-28s %-5s best %.3f s  median %.3f s  (%d runs)"
                  % (os.path.basename(path), "qdq" if qdq else "float", ts[0],
                     ts[len(ts) // 2], len(ts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
