"""What `trtssd bench` prints and writes: the terminal table, the JSON file and the PNG chart.

The bench builds one plain, JSON-able dict (the *result*) and every output here is made from
it, so the table, the JSON and the chart always show the same numbers::

    {
      "schema": "trtssd.bench/1",
      "environment": {...},            # GPU, driver, CUDA, backend + version, Python, ...
      "config": {...},                 # source, resolution, precision, batch, frames, ...
      "model": {"path", "onnx", "name", "synthetic"},
      "ceilings": [ceiling_result(...)],   # network-only, one per batch size used
      "modes": [mode_result(...) | skipped_mode(...) | failed_mode(...)],
      "notes": [str, ...],
    }

Two kinds of figure, always labelled as such:
- **network-only**: the network alone on the same backend, precision and batch, timed around
  many back-to-back enqueues (CUDA events on a GPU, host clocks on the CPU). The ceiling.
- **end-to-end**: frames through a whole pipeline mode, capture to result, wall clock.

Each mode's FPS is also given as a fraction of the ceiling at the mode's batch size.
matplotlib is imported only by :func:`write_chart` (Agg backend); without it the chart is
skipped and the caller is told why.
"""
import json
import math
import os

from ..core.stats import STAGES, summarize

SCHEMA = "trtssd.bench/1"
END_TO_END = "end-to-end"
NETWORK_ONLY = "network-only"


# ---------------------------------------------------------------------------------------------
# building the result
# ---------------------------------------------------------------------------------------------

def ceiling_result(times_ms, batch, clock, per="enqueue", streams=1):
    """Network-only figure from per-enqueue durations in ms of one batch of ``batch`` images.

    ``clock`` is 'cuda-event' or 'host'. FPS is images per second at the median time.
    ``streams``: batches in flight at once (on their own streams, enqueued round robin by one
    thread); with several, ``times_ms`` are wall-clock ms per enqueue in the steady state, so
    the FPS is that of all streams together.
    """
    s = summarize(times_ms)
    med = s.get("p50")
    fps = (batch * 1000.0 / med) if med else 0.0
    return {"label": NETWORK_ONLY, "batch": int(batch), "streams": int(streams),
            "clock": clock, "per": per, "ms": s, "fps": fps}


def ceiling_name(c):
    """How a ceiling is named in the table and the chart: 'batch 8 x 2 streams'."""
    n = int(c.get("streams", 1) or 1)
    return "batch %d x %d stream%s" % (c.get("batch", 1), n, "" if n == 1 else "s")


def ceiling_for(result_or_ceilings, batch, streams=1):
    """The network-only ceiling dict for ``batch`` images per enqueue with ``streams`` batches
    in flight (1: the reference rows), or None. A result dict is searched in its reference
    ``ceilings`` and its ``ceilings_in_flight``."""
    ceilings = result_or_ceilings
    if isinstance(result_or_ceilings, dict):
        ceilings = (list(result_or_ceilings.get("ceilings", []))
                    + list(result_or_ceilings.get("ceilings_in_flight", [])))
    for c in ceilings:
        if c.get("batch") == batch and int(c.get("streams", 1) or 1) == int(streams):
            return c
    return None


def source_ceiling(decode_fps, network):
    """The ceiling of a mode on a real source: the lower of the source's own rate (its
    decode-only row, ``decode_fps``) and the network-only ceiling dict ``network``, as a
    ceiling dict saying which one it is."""
    if network is None or not decode_fps:
        return network
    if network.get("fps") and network["fps"] <= decode_fps:
        return dict(network, limited_by="network")
    return {"label": "decode-only", "batch": network.get("batch", 1),
            "streams": network.get("streams", 1), "clock": "host", "fps": float(decode_fps),
            "limited_by": "decode", "network_fps": network.get("fps")}


def fraction_of(fps, ceiling_fps):
    """End-to-end FPS as a fraction of the network-only FPS, or None when there is no ceiling."""
    if not ceiling_fps or ceiling_fps <= 0 or fps is None:
        return None
    return float(fps) / float(ceiling_fps)


def mode_result(name, stats, ceiling=None, depth=None, batch=1, sources=1):
    """One mode's entry from its ``trtssd.core.stats.RunStats`` and the ceiling at its batch size.

    ``ceiling`` is a :func:`ceiling_result` dict (or None when none was measured).
    """
    s = stats.summary()
    entry = {"name": name, "mode": stats.mode, "status": "ok", "label": END_TO_END,
             "depth": depth, "batch": int(batch), "sources": int(sources)}
    entry.update(s)
    entry["mode"] = stats.mode
    entry["ceiling_fps"] = ceiling["fps"] if ceiling else None
    entry["ceiling_batch"] = ceiling["batch"] if ceiling else None
    entry["ceiling_streams"] = int(ceiling.get("streams", 1) or 1) if ceiling else None
    entry["ceiling_name"] = _held_to(ceiling)
    entry["fraction_of_ceiling"] = fraction_of(entry["fps"], entry["ceiling_fps"])
    frames, cpu_s = entry.get("frames") or 0, entry.get("cpu_s")
    entry["cpu_ms_per_frame"] = (cpu_s * 1e3 / frames) if frames and cpu_s is not None else None
    return entry


def _held_to(ceiling):
    if not ceiling:
        return None
    if ceiling.get("limited_by") == "decode":
        return "decode-only"
    return "network %s" % ceiling_name(ceiling)


def skipped_mode(name, mode, reason, depth=None, batch=1, sources=1):
    """A mode that cannot run here, kept in every output with the reason."""
    return {"name": name, "mode": mode, "status": "skipped", "reason": str(reason),
            "label": END_TO_END, "depth": depth, "batch": int(batch), "sources": int(sources)}


def failed_mode(name, mode, error, depth=None, batch=1, sources=1):
    """A mode that raised; the error text is kept so the run still reports the others."""
    return {"name": name, "mode": mode, "status": "failed", "reason": str(error),
            "label": END_TO_END, "depth": depth, "batch": int(batch), "sources": int(sources)}


def new_result(environment, config, model, notes=None):
    return {"schema": SCHEMA, "environment": dict(environment), "config": dict(config),
            "model": dict(model), "ceilings": [], "ceilings_in_flight": [], "decode_only": [],
            "modes": [], "notes": list(notes or [])}


def decode_result(name, frames, wall_s, cpu_s, sessions=1, decode="cpu", source=None):
    """A decode-only row: frames read from a source (``sessions`` at once, one thread each)
    and handed back, nothing else; the source's own ceiling."""
    fps = frames / wall_s if wall_s > 0 else 0.0
    return {"name": name, "label": "decode-only", "decode": decode, "sessions": int(sessions),
            "source": source, "frames": int(frames), "wall_s": wall_s, "fps": fps,
            "cpu_util": (cpu_s / wall_s) if wall_s > 0 else None,
            "cpu_ms_per_frame": (cpu_s * 1e3 / frames) if frames else None}


# ---------------------------------------------------------------------------------------------
# terminal table
# ---------------------------------------------------------------------------------------------

def _f(v, fmt="%.1f", none="-"):
    if v is None:
        return none
    try:
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            return none
    except TypeError:
        pass
    return fmt % v


def _pct(v):
    return _f(None if v is None else 100.0 * v, "%.0f%%")


def _table(headers, rows, right=None):
    right = set(range(1, len(headers))) if right is None else set(right)
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))

    def line(cells):
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def _stage_cell(entry, stage):
    stages = entry.get("stages") or {}
    st = stages.get(stage)
    gpu = stages.get("draw-gpu") if stage == "draw" else None
    if gpu and gpu.get("n"):        # drawn on the GPU by the slots: ms per batch
        cpu = "%.3fh" % st["p50"] if st and st.get("n") else "-"
        return "%s+gpu %.3f%s" % (cpu, gpu["p50"], "e" if gpu.get("clock") == "cuda-event"
                                  else "h")
    if not st or not st.get("n"):
        return "-"
    mark = "e" if st.get("clock") == "cuda-event" else "h"
    return "%.3f%s" % (st["p50"], mark)


def header_lines(result):
    """The lines above the tables: what ran, where, and warnings (synthetic weights)."""
    env, cfg, model = result.get("environment", {}), result.get("config", {}), result.get("model", {})
    lines = []
    if model.get("synthetic"):
        lines.append("!! SYNTHETIC WEIGHTS: the model file was not found; timing only, "
                     "detections are meaningless !!")
    lines.append("trtssd bench  %s" % env.get("date", ""))
    lines.append("device: %s | backend: %s%s on %s | precision %s | batch %s | cuda graph %s"
                 % (env.get("gpu_name") or "no GPU (CPU only)", cfg.get("backend", "?"),
                    (" " + env["backend_version"]) if env.get("backend_version") else "",
                    cfg.get("device", "?"),
                    cfg.get("precision", "?"), cfg.get("batch", "?"),
                    ("on" if cfg.get("cuda_graph") else "off") if cfg.get("device") == "cuda"
                    else "n/a"))
    lines.append("source: %s (%sx%s) | %s per mode | model: %s%s"
                 % (cfg.get("source", "?"), cfg.get("width", "?"), cfg.get("height", "?"),
                    ("%s frames" % cfg["frames"]) if cfg.get("frames") else
                    ("%s s" % cfg.get("seconds")), model.get("name") or model.get("path", "?"),
                    "" if "draw" not in cfg else
                    " | drawing %s" % ("on" if cfg["draw"] else "off")))
    return lines


def _ceiling_row(figure, c):
    """A network-only ceiling as a table row: figure, img/s, ms p50/p5/p95, samples, clock."""
    ms = c.get("ms", {})
    return [figure, _f(c.get("fps")), _f(ms.get("p50"), "%.3f"), _f(ms.get("p5"), "%.3f"),
            _f(ms.get("p95"), "%.3f"), str(ms.get("n", 0)), c.get("clock", "?")]


def format_table(result):
    """The whole terminal report as one string."""
    out = list(header_lines(result))
    out.append("")
    ceilings = result.get("ceilings", [])
    if ceilings:
        rows = [_ceiling_row("network-only batch %d" % c["batch"], c) for c in ceilings]
        out.append("NETWORK-ONLY ceiling (the network alone, same backend/precision/batch; "
                   "1 stream = the reference rows)")
        out.append(_table(["figure", "img/s", "ms p50", "p5", "p95", "n", "clock"], rows))
        out.append("")
    inflight = result.get("ceilings_in_flight", [])
    if inflight:
        rows = [_ceiling_row("network-only " + ceiling_name(c), c) for c in inflight]
        out.append("NETWORK-ONLY at each mode's concurrency (its batches in flight on their own "
                   "streams, enqueued round robin by one thread; wall clock, steady state)")
        out.append(_table(["figure", "img/s", "ms/enqueue p50", "p5", "p95", "n", "clock"],
                          rows))
        out.append("")
    dec = result.get("decode_only", [])
    if dec:
        rows = [[d["name"], d.get("decode", "?"), str(d.get("sessions", 1)), _f(d.get("fps")),
                 _f(d.get("cpu_ms_per_frame"), "%.3f"), _pct(d.get("cpu_util")),
                 str(d.get("frames", 0))] for d in dec]
        out.append("DECODE-ONLY (the source alone: frames read and given back; a real "
                   "source's own ceiling)")
        out.append(_table(["figure", "decode", "sessions", "FPS", "CPU ms/frame", "CPU",
                           "frames"], rows))
        out.append("")
    rows, others = [], []
    for m in result.get("modes", []):
        if m.get("status") != "ok":
            others.append(m)
            continue
        lat = m.get("latency_ms", {})
        rows.append([m["name"], _f(m.get("fps")), _pct(m.get("fraction_of_ceiling")),
                     m.get("ceiling_name") or "-", _f(m.get("cpu_ms_per_frame"), "%.3f"),
                     _f(lat.get("p50"), "%.2f"), _f(lat.get("p95"), "%.2f"),
                     _f(lat.get("p99"), "%.2f"), _pct(m.get("gpu_busy")),
                     _pct(m.get("cpu_util")), str(m.get("dropped", 0)),
                     str(m.get("frames", 0)), str(m.get("batch", 1)),
                     _f(m.get("wall_s"), "%.2f")])
    out.append("END-TO-END per mode (capture -> result; % ceil = end-to-end FPS / the "
               "ceiling named in 'held to': the network alone at the mode's batch and batches "
               "in flight, or a real source's decode-only rate when lower)")
    out.append(_table(["mode", "FPS e2e", "% ceil", "held to", "CPU ms/fr", "lat p50", "p95",
                       "p99", "GPU busy", "CPU", "dropped", "frames", "batch", "wall s"], rows,
                      right=[1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]))
    w = max([len("mode")] + [len(m["name"]) for m in result.get("modes", [])])
    for m in others:
        out.append("%s  %s: %s" % (m["name"].ljust(w), m["status"].upper(), m.get("reason", "")))
    out.append("latency in ms; CPU = process CPU time / wall time (100% = one core); CPU "
               "ms/fr = process CPU time per frame")
    out.append("")
    rows = []
    for m in result.get("modes", []):
        if m.get("status") == "ok":
            rows.append([m["name"]] + [_stage_cell(m, s) for s in STAGES])
    if rows:
        out.append("TIME PER STAGE, ms p50 per call (e = CUDA events, h = host clock; stages "
                   "overlap in pipelined modes)")
        out.append(_table(["mode"] + list(STAGES), rows))
    notes = list(result.get("notes", []))
    by_text = []          # a note several modes share is printed once, naming them all
    for m in result.get("modes", []):
        for n in m.get("notes", []) or []:
            for entry in by_text:
                if entry[0] == n:
                    entry[1].append(m["name"])
                    break
            else:
                by_text.append((n, [m["name"]]))
    notes.extend("%s: %s" % (", ".join(names), n) for n, names in by_text)
    if notes:
        out.append("")
        out.extend("note: " + n for n in notes)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------

def _clean(obj):
    """JSON-safe copy: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return None if (math.isnan(obj) or math.isinf(obj)) else obj
    if hasattr(obj, "item") and hasattr(obj, "dtype"):   # numpy scalar
        return _clean(obj.item())
    return obj


def write_json(result, path):
    """Write the result (every number and the environment) as indented JSON; returns path."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        os.makedirs(d)
    with open(path, "w") as f:
        json.dump(_clean(result), f, indent=2, sort_keys=False)
        f.write("\n")
    return path


# ---------------------------------------------------------------------------------------------
# PNG chart
# ---------------------------------------------------------------------------------------------

def stage_means(entry, per_frame=False):
    """Mean ms per call of each stage of one mode entry, in STAGES order (0 where absent);
    ``per_frame``: the stages a whole batch shares (everything but capture and draw, which are
    per frame already) divided by the entry's batch, so a batched mode compares per frame."""
    st = entry.get("stages") or {}
    vals = [float((st.get(s) or {}).get("mean") or 0.0) for s in STAGES]
    batch = max(1, int(entry.get("batch") or 1))
    if per_frame and batch > 1:
        vals = [v if s in PER_FRAME_STAGES else v / batch for s, v in zip(STAGES, vals)]
    return vals


# stages timed once per frame even in batched modes (the others once per batch)
PER_FRAME_STAGES = ("capture", "draw")


def chart_title(result):
    """The chart's title: the model, the card, backend, precision and the source."""
    env, cfg, model = result.get("environment", {}), result.get("config", {}), result.get("model", {})
    title = "trtssd bench: %s on %s, %s %s on %s, %s, %s (%sx%s)" % (
        model.get("name") or model.get("path") or "model", env.get("gpu_name") or "CPU only",
        cfg.get("backend"), cfg.get("device"), env.get("date", "")[:10], cfg.get("precision"),
        cfg.get("source"), cfg.get("width"), cfg.get("height"))
    if model.get("synthetic"):
        title += "\nSYNTHETIC WEIGHTS (model file missing): timing only"
    return title


def write_chart(result, path):
    """FPS per mode (end-to-end bars, each with a mark at the ceiling it is held to) and a
    stacked stage breakdown per frame. Legends sit outside the plots, never over the bars.

    Returns ``(path, None)`` when written, ``(None, reason)`` when it could not be (matplotlib
    missing); never raises for that.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return None, ("matplotlib is not installed (%s); no chart written. Install it with "
                      "`pip install matplotlib` (or `pip install trtssd[bench]`)" % e)
    modes = result.get("modes", [])
    names = [m["name"] for m in modes]
    ok = [m for m in modes if m.get("status") == "ok"]
    height = max(5.5, 2.5 + 0.32 * max(len(modes), len(ok)))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(16, height),
                                   gridspec_kw={"width_ratios": [1.1, 1.0]})
    try:
        xs = list(range(len(modes)))
        fps = [(m.get("fps") or 0.0) if m.get("status") == "ok" else 0.0 for m in modes]
        bars = ax1.bar(xs, fps, color="#4878a8", label="end-to-end FPS")
        styles = {}          # one legend entry per kind of ceiling
        top = max(fps + [0.0])
        for x, m, b in zip(xs, modes, bars):
            if m.get("status") != "ok":
                ax1.text(x, 0, m["status"], rotation=90, ha="center", va="bottom",
                         fontsize=8, color="#a04040")
                continue
            c = m.get("ceiling_fps")
            if c:
                kind = ("decode-only (the source's own rate)"
                        if m.get("ceiling_name") == "decode-only" else
                        "network-only at the mode's batch and batches in flight")
                color = "#c04000" if kind.startswith("decode") else "black"
                ax1.plot([x - 0.4, x + 0.4], [c, c], color=color, linewidth=2,
                         label=None if kind in styles else "ceiling: " + kind)
                styles[kind] = True
                top = max(top, c)
                frac = m.get("fraction_of_ceiling")
                if frac is not None:
                    ax1.text(x, b.get_height(), "%.0f%%" % (100 * frac), ha="center",
                             va="bottom", fontsize=7)
        for c in result.get("ceilings", []):
            if c.get("batch") == 1 and int(c.get("streams", 1) or 1) == 1 and c.get("fps"):
                ax1.axhline(c["fps"], color="#808080", linestyle=":", linewidth=1,
                            label="reference: network-only batch 1, 1 stream")
                top = max(top, c["fps"])
                break
        ax1.set_ylim(0, top * 1.12 if top > 0 else 1)
        ax1.set_xticks(xs)
        ax1.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax1.set_ylabel("frames per second")
        ax1.set_title("End-to-end FPS per mode; % = of the ceiling it is held to", fontsize=10,
                      pad=42)
        if modes:
            ax1.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=2,
                       frameon=False)
        ys = list(range(len(ok)))
        left = [0.0] * len(ok)
        cmap = plt.get_cmap("tab10")
        per = [stage_means(m, per_frame=True) for m in ok]
        for i, s in enumerate(STAGES):
            vals = [p[i] for p in per]
            if not any(vals):
                continue
            ax2.barh(ys, vals, left=left, color=cmap(i % 10), label=s)
            left = [a + b for a, b in zip(left, vals)]
        ax2.set_yticks(ys)
        ax2.set_yticklabels(["%s%s" % (m["name"], " (/%d)" % m["batch"]
                                       if int(m.get("batch") or 1) > 1 else "") for m in ok],
                            fontsize=8)
        ax2.invert_yaxis()
        ax2.set_xlabel("ms per frame, mean (a batch's stages divided by its frames; stages "
                       "overlap in pipelined modes)", fontsize=8)
        ax2.set_title("Time per stage, per frame", fontsize=10, pad=42)
        if ok:
            ax2.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5),
                       frameon=False)
        fig.suptitle(chart_title(result), fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            os.makedirs(d)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path, None
