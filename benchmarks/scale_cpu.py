"""CPU measurements of the scale-out paths (issue 16's targets), for benchmarks/RESULTS.md.

    python benchmarks/scale_cpu.py ray  [--videos 8 --frames 60 --repeats 3]
    python benchmarks/scale_cpu.py mqtt [--rate 1000 --seconds 10]

``ray``: the same video files run (a) one after another in one process through one
``trtssd.Detector`` (what ``trtssd detect`` does for each, with the model loaded once) and (b)
with ``run_archive`` on a local Ray cluster on this machine's CPUs, 1 and 2 actors; both with
ONNX Runtime on the CPU and JSON-lines results, alternated ``--repeats`` times; throughput is
frames / seconds from the first file to the last result (model loading and cluster start
excluded on both sides, and reported apart).

``mqtt``: the JSON-lines sink and the MQTT sink (to a mosquitto on 127.0.0.1, started here)
written at a paced ``--rate`` frames a second for ``--seconds``, the same detections: time in
``write`` per frame (the caller's cost), the rate held, and for MQTT how long after the last
write the broker had acknowledged everything and whether a subscriber got every message.
Needs the real model (``$TRTSSD_MODEL`` or --model), onnxruntime, cv2, ray, paho-mqtt and
mosquitto.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def make_videos(folder, n, frames):
    import cv2
    rng = np.random.RandomState(0)
    try:
        from skimage import data
        pics = [np.ascontiguousarray(getattr(data, k)()[..., :3][..., ::-1])
                for k in ("chelsea", "astronaut", "coffee")]
    except ImportError:
        pics = [rng.randint(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(3)]
    paths = []
    for k in range(n):
        p = os.path.join(folder, "v%02d.avi" % k)
        w = cv2.VideoWriter(p, cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
        for i in range(frames):
            w.write(cv2.resize(pics[(i // 15 + k) % 3], (640, 480)))
        w.release()
        paths.append(p)
    return paths


def sequential(paths, model, out):
    import trtssd
    from trtssd.io.sinks import JsonLinesSink
    t = time.perf_counter()
    with trtssd.Detector(model, backend="onnxruntime", device="cpu") as det:
        load = time.perf_counter() - t
        t0, frames = time.perf_counter(), 0
        for p in paths:
            with JsonLinesSink(os.path.join(out, os.path.basename(p) + ".jsonl"),
                               det.labels) as sink:
                frames += det.run(p, sink).frames
        wall = time.perf_counter() - t0
    return {"frames": frames, "wall_s": wall, "fps": frames / wall, "setup_s": load}


def ray_run(paths, model, out, actors):
    from trtssd.scale.ray_archive import run_archive
    t = time.perf_counter()
    s = run_archive(paths, out, actors=actors, model=model, backend="onnxruntime",
                    device="cpu")
    return {"frames": s["frames"], "wall_s": s["wall_s"], "fps": s["fps"],
            "total_s": time.perf_counter() - t, "failures": len(s["failures"])}


def cmd_ray(args):
    import logging
    import ray
    work = tempfile.mkdtemp(prefix="trtssd-scale-")
    paths = make_videos(work, args.videos, args.frames)
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    init_s = time.perf_counter() - t
    runs = {"sequential": [], "ray-1-actor": [], "ray-2-actors": []}
    for r in range(args.repeats):
        for name in runs:
            out = os.path.join(work, "%s-%d" % (name, r))
            os.makedirs(out)
            if name == "sequential":
                res = sequential(paths, args.model, out)
            else:
                res = ray_run(paths, args.model, out, 1 if "1" in name else 2)
            runs[name].append(res)
            print("%-13s run %d: %d frames in %.2f s = %.1f FPS" % (
                name, r, res["frames"], res["wall_s"], res["fps"]), file=sys.stderr)
    ray.shutdown()
    med = {k: statistics.median(x["fps"] for x in v) for k, v in runs.items()}
    report = {"machine": _machine(), "videos": args.videos, "frames_each": args.frames,
              "size": "640x480 MJPG", "ray_init_s": init_s, "runs": runs,
              "median_fps": med,
              "ratio_vs_sequential": {k: med[k] / med["sequential"] for k in med}}
    print(json.dumps(report, indent=1))


def _detections(rng):
    from trtssd.core.detections import Detections
    k = 5
    xy = rng.uniform(0, 1000, (k, 2))
    return Detections(np.concatenate([xy, xy + rng.uniform(5, 200, (k, 2))], 1),
                      rng.uniform(0.3, 1, k), rng.randint(1, 91, k))


def paced(sink, rate, seconds, labels):
    from trtssd.io.sources import Frame
    rng = np.random.RandomState(0)
    dets = [_detections(rng) for _ in range(64)]
    n = int(rate * seconds)
    cost = np.zeros(n)
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        due = t0 + i / float(rate)
        while True:
            now = time.perf_counter()
            if now >= due:
                break
            time.sleep(min(0.0005, due - now))
        a = time.perf_counter()
        sink.write(Frame(i, None, "cam0"), dets[i % 64])
        cost[i] = time.perf_counter() - a
    wall = time.perf_counter() - t0
    return {"messages": n, "rate_held": n / wall, "write_us_p50": 1e6 * np.median(cost),
            "write_us_p99": 1e6 * np.percentile(cost, 99), "write_us_mean": 1e6 * cost.mean(),
            "cpu_s": time.process_time() - c0, "wall_s": wall}


def cmd_mqtt(args):
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "scale"))
    from broker import Broker, Subscriber      # the tests' broker and subscriber
    from trtssd.core.detections import LabelMap
    from trtssd.io.mqtt import MqttSink
    from trtssd.io.sinks import JsonLinesSink
    from trtssd.models import resolve
    labels = LabelMap.from_file(resolve.resolve_labels(None, resolve.resolve_model(args.model)))
    work = tempfile.mkdtemp(prefix="trtssd-mqtt-")
    b = Broker(work).start()
    out = {"machine": _machine(), "rate": args.rate, "seconds": args.seconds, "runs": []}
    try:
        for r in range(args.repeats):
            with JsonLinesSink(os.path.join(work, "dets-%d.jsonl" % r), labels) as js:
                res = paced(js, args.rate, args.seconds, labels)
            res["sink"] = "jsonl"
            out["runs"].append(res)
            sub = Subscriber(b.port, "bench/dets", client_id="bench-sub-%d" % r)
            sink = MqttSink("mqtt://127.0.0.1:%d/bench/dets" % b.port, labels=labels)
            res = paced(sink, args.rate, args.seconds, labels)
            t = time.perf_counter()
            sink.flush(30)
            res["acked_after_s"] = time.perf_counter() - t
            sink.close()
            res["delivered"] = sink.delivered
            res["received"] = sub.wait_for(res["messages"], 30)
            res["received_in_order"] = [m["frame"] for m in sub.messages] == list(
                range(res["messages"]))
            sub.close()
            res["sink"] = "mqtt"
            out["runs"].append(res)
            for x in out["runs"][-2:]:
                print("%-5s: %d msgs at %.0f/s held, write p50 %.1f us p99 %.1f us, CPU %.2f s"
                      % (x["sink"], x["messages"], x["rate_held"], x["write_us_p50"],
                         x["write_us_p99"], x["cpu_s"]), file=sys.stderr)
    finally:
        b.stop()
    print(json.dumps(out, indent=1))


def _machine():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except IOError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_before": os.getloadavg()[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what")
    r = sub.add_parser("ray")
    r.add_argument("--videos", type=int, default=8)
    r.add_argument("--frames", type=int, default=60)
    r.add_argument("--repeats", type=int, default=3)
    m = sub.add_parser("mqtt")
    m.add_argument("--rate", type=float, default=1000.0)
    m.add_argument("--seconds", type=float, default=10.0)
    m.add_argument("--repeats", type=int, default=3)
    for p in (r, m):
        p.add_argument("--model", default=os.environ.get("TRTSSD_MODEL"))
    args = ap.parse_args()
    if args.what == "ray":
        cmd_ray(args)
    elif args.what == "mqtt":
        cmd_mqtt(args)
    else:
        ap.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
