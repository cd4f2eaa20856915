"""benchmarks/bench_kernel_floor.py: its kernels compile (CPU, nvcc), write what the floor
assumes (GPU) and every case is timed (GPU)."""
import json
import os
import subprocess

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOOR_CU = os.path.join(REPO, "benchmarks", "kernels", "floor.cu")


def test_floor_kernels_compile(nvcc, tmp_path):
    subprocess.run([nvcc, "-arch=sm_90", "-cubin", "-o", str(tmp_path / "floor.cubin"),
                    FLOOR_CU], check=True)


def test_floor_kernels_write_what_they_claim(cuda_context):
    # floor_store writes every output pixel (poisoned first), floor_copy reads every vector
    # (the XOR of all of them lands in its first output vector when one thread reads them all)
    from benchmarks.bench_kernel_floor import floor_kernels
    from trtssd.gpu.cuda import DeviceArray
    _, store, copy, copy4 = floor_kernels()
    w, h, n = 37, 23, 2
    out = DeviceArray((n, 3, h, w), np.float32).fill_bytes(0xFF)
    store(np.intp(out.ptr), np.int32(w), np.int32(h), block=(32, 8, 1),
          grid=(-(-w // 32), -(-h // 8), n))
    y, x = np.mgrid[:h, :w].astype(np.float32)
    want = np.stack([x + y, x + y + 1, x + y + 2])[None].repeat(n, 0)
    np.testing.assert_array_equal(out.get(), want)
    rng = np.random.default_rng(5)
    src_host = rng.integers(0, 2 ** 32, (101, 4), dtype=np.uint64).astype(np.uint32)
    src = DeviceArray(src_host.shape, np.uint32).copy_from_host(src_host)
    dst = DeviceArray((3, 4), np.uint32).fill_bytes(0xA5)
    copy(np.intp(src.ptr), np.int64(101), np.intp(dst.ptr), np.int64(3), block=(1, 1, 1),
         grid=(1, 1, 1))
    got = dst.get()
    np.testing.assert_array_equal(got[0], np.bitwise_xor.reduce(src_host, axis=0))
    assert (got[1:] == 0).all()
    # floor_copy4 on 2 threads: thread t XORs vectors t, t + 2, ... (101 is not a multiple of 8)
    dst.fill_bytes(0xA5)
    copy4(np.intp(src.ptr), np.int64(101), np.intp(dst.ptr), np.int64(3), block=(2, 1, 1),
          grid=(1, 1, 1))
    got = dst.get()
    for t in range(2):
        np.testing.assert_array_equal(got[t], np.bitwise_xor.reduce(src_host[t::2], axis=0))
    assert (got[2] == 0).all()
    for a in (out, src, dst):
        a.close()


def test_every_case_is_timed(cuda_context, tmp_path):
    from benchmarks import bench_kernel_floor
    path = tmp_path / "floor.json"
    assert bench_kernel_floor.main(["--batches", "1", "--reps", "3", "--json", str(path)]) == 0
    row = json.loads(path.read_text())["floor"]["batch_1"]
    assert row["read_mb"] == 2 * 300 * 1920 * 3 / 1e6
    for case in ("store", "copy", "copy4", "copy4_2", "memcpy", "kernel"):
        assert row[case + "_us"]["n"] == 3 and row[case + "_us"]["median"] > 0
