"""The CPU shim itself: grid/block indexing, barriers with shared memory, atomics, fp16, math."""
import numpy as np
import pytest

from support.kernel_shim import compile_cpu_source, parse_kernels

SRC = r'''
#include <cuda_fp16.h>

struct Pair { int a; float b; };

// Every thread writes its global linear id: checks the grid/block loops and indices.
extern "C" __global__ void __launch_bounds__(256) write_ids(int* __restrict__ out, const int n)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int z = blockIdx.z * blockDim.z + threadIdx.z;
    int w = gridDim.x * blockDim.x, h = gridDim.y * blockDim.y;
    int i = (z * h + y) * w + x;
    if (i < n) out[i] = i;
}

// Block-wide reversal through shared memory: wrong unless every thread has written its
// element before any thread reads (the barrier), and the block runs as one unit.
extern "C" __global__ void reverse_blocks(const float* in, float* out, int n)
{
    __shared__ float tile[1024];
    int t = threadIdx.x;
    int base = blockIdx.x * blockDim.x;
    tile[t] = (base + t < n) ? in[base + t] : -1.0f;
    __syncthreads();
    float v = tile[blockDim.x - 1 - t];
    __syncthreads();          // second barrier: nobody overwrites tile before all have read
    tile[t] = v * 2.0f;
    __syncthreads();
    if (base + t < n) out[base + t] = tile[t];
}

// Tree reduction in shared memory with a barrier inside a loop.
extern "C" __global__ void block_sums(const int* in, int* out, unsigned int* total, int n)
{
    __shared__ int s[512];
    unsigned int t = threadIdx.x;
    unsigned int i = blockIdx.x * blockDim.x + t;
    s[t] = i < (unsigned)n ? in[i] : 0;
    __syncthreads();
    for (unsigned int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0) { out[blockIdx.x] = s[0]; atomicAdd(total, (unsigned int)s[0]); }
}

extern "C" __global__ void atomics(const int* in, int n, int* mx, int* mn, float* fsum,
                                   int* cas_winner)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicMax(mx, in[i]);
    atomicMin(mn, in[i]);
    atomicAdd(fsum, 0.5f);
    atomicCAS(cas_winner, -1, i);
}

extern "C" __global__ void to_half(const float* in, __half* out, float* back, int n, Pair p)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    __half h = __float2half_rn(in[i] * p.b);
    out[i] = h;
    back[i] = __half2float(h) + (float)p.a;
}

extern "C" __global__ void mathfns(const float* in, float* out, int* ints, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = in[i];
    out[4 * i + 0] = fminf(fmaxf(x, -1.0f), 1.0f);
    out[4 * i + 1] = __saturatef(x);
    out[4 * i + 2] = floorf(x);
    out[4 * i + 3] = rintf(x);
    ints[2 * i + 0] = __float2int_rd(x);
    ints[2 * i + 1] = __float2int_rn(x);
}
'''


@pytest.fixture(scope="module")
def mod():
    return compile_cpu_source(SRC, "shim_selftest.cu")


def test_signature_parser():
    ks = dict(parse_kernels(SRC))
    assert ks["write_ids"] == [("int*", "out"), ("const int", "n")]
    assert ks["to_half"][-1] == ("Pair", "p")
    assert set(ks) == {"write_ids", "reverse_blocks", "block_sums", "atomics", "to_half", "mathfns"}


def test_grid_and_block_indexing(mod):
    grid, block = (3, 2, 2), (8, 4, 2)
    n = 3 * 8 * 2 * 4 * 2 * 2 - 5          # a few threads fall outside and must not write
    out = np.full(n + 7, -7, np.int32)     # poisoned, with a guard tail
    mod.launch("write_ids", grid, block, out, np.int32(n))
    np.testing.assert_array_equal(out[:n], np.arange(n))
    assert (out[n:] == -7).all()


@pytest.mark.parametrize("block,n", [(1024, 3000), (37, 200), (1, 3)])
def test_barrier_and_shared_memory(mod, block, n):
    rng = np.random.default_rng(block)
    x = rng.standard_normal(n).astype(np.float32)
    out = np.full(n, np.nan, np.float32)
    grid = (n + block - 1) // block
    mod.launch("reverse_blocks", (grid, 1, 1), (block, 1, 1), x, out, np.int32(n))
    padded = np.full(grid * block, -1.0, np.float32)
    padded[:n] = x
    expect = padded.reshape(grid, block)[:, ::-1].reshape(-1)[:n] * 2
    np.testing.assert_array_equal(out, expect)


def test_reduction_with_barrier_in_loop(mod):
    rng = np.random.default_rng(1)
    n, block = 5000, 512
    x = rng.integers(-1000, 1000, n).astype(np.int32)
    grid = (n + block - 1) // block
    sums = np.full(grid, 123456, np.int32)
    total = np.zeros(1, np.uint32)
    mod.launch("block_sums", (grid, 1, 1), (block, 1, 1), x, sums, total, np.int32(n))
    padded = np.zeros(grid * block, np.int64)
    padded[:n] = x
    np.testing.assert_array_equal(sums, padded.reshape(grid, block).sum(1))
    assert int(total[0]) == int(np.int64(x.sum()) % 2 ** 32)


def test_atomics(mod):
    rng = np.random.default_rng(2)
    n = 777
    x = rng.integers(-10 ** 6, 10 ** 6, n).astype(np.int32)
    mx = np.array([-2 ** 31], np.int32)
    mn = np.array([2 ** 31 - 1], np.int32)
    fs = np.zeros(1, np.float32)
    win = np.array([-1], np.int32)
    mod.launch("atomics", (7, 1, 1), (128, 1, 1), x, np.int32(n), mx, mn, fs, win)
    assert mx[0] == x.max() and mn[0] == x.min()
    assert fs[0] == 0.5 * n           # exact: multiples of 0.5 below 2^24
    assert 0 <= win[0] < n            # exactly one thread won the compare-and-swap


def test_half_conversion_rounds_like_numpy(mod):
    # numpy's float32 -> float16 cast rounds to nearest even, as __float2half_rn does.
    rng = np.random.default_rng(3)
    vals = np.concatenate([
        rng.standard_normal(20000).astype(np.float32) * 10.0 ** rng.integers(-9, 6, 20000),
        np.array([0.0, -0.0, 65504, 65519.9, 65520, 1e9, -1e9, np.inf, -np.inf,
                  2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 2 ** -14 * (1 - 2 ** -11),
                  1 + 2 ** -11, 1 + 3 * 2 ** -11, 6e-8, 1e-30], np.float32)]).astype(np.float32)
    n = len(vals)
    out = np.full(n, 0xFFFF, np.uint16)
    back = np.full(n, np.nan, np.float32)
    pair = np.array([(3, 1.0)], dtype=np.dtype([("a", np.int32), ("b", np.float32)]))[0]
    mod.launch("to_half", ((n + 255) // 256, 1, 1), (256, 1, 1), vals, out, back, np.int32(n), pair)
    with np.errstate(over="ignore"):          # the overflow to inf is part of the test
        expect = vals.astype(np.float16)
    np.testing.assert_array_equal(out, expect.view(np.uint16))
    np.testing.assert_array_equal(back, expect.astype(np.float32) + 3)


def test_nan_to_half(mod):
    vals = np.array([np.nan], np.float32)
    out = np.zeros(1, np.uint16)
    back = np.zeros(1, np.float32)
    pair = np.array([(0, 1.0)], dtype=np.dtype([("a", np.int32), ("b", np.float32)]))[0]
    mod.launch("to_half", (1, 1, 1), (1, 1, 1), vals, out, back, np.int32(1), pair)
    assert np.isnan(out.view(np.float16)[0]) and np.isnan(back[0])


def test_math_functions(mod):
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.2, -0.2, 1.7, 3.0, -7.25], np.float32)
    n = len(x)
    out = np.full(4 * n, np.nan, np.float32)
    ints = np.full(2 * n, -999, np.int32)
    mod.launch("mathfns", (1, 1, 1), (32, 1, 1), x, out, ints, np.int32(n))
    out = out.reshape(n, 4)
    np.testing.assert_array_equal(out[:, 0], np.clip(x, -1, 1))
    np.testing.assert_array_equal(out[:, 1], np.clip(x, 0, 1))
    np.testing.assert_array_equal(out[:, 2], np.floor(x))
    np.testing.assert_array_equal(out[:, 3], np.rint(x))          # half to even
    np.testing.assert_array_equal(ints.reshape(n, 2)[:, 0], np.floor(x).astype(np.int32))
    np.testing.assert_array_equal(ints.reshape(n, 2)[:, 1], np.rint(x).astype(np.int32))


def test_argument_checks(mod):
    out = np.zeros(4, np.int32)
    with pytest.raises(TypeError, match="4 bytes"):
        mod.launch("write_ids", (1, 1, 1), (4, 1, 1), out, np.int64(4))
    with pytest.raises(TypeError, match="numpy scalar"):
        mod.launch("write_ids", (1, 1, 1), (4, 1, 1), out, 4)
    with pytest.raises(TypeError, match="takes 2 arguments"):
        mod.launch("write_ids", (1, 1, 1), (4, 1, 1), out)
    with pytest.raises(ValueError, match="1..1024"):
        mod.launch("write_ids", (1, 1, 1), (2048, 1, 1), out, np.int32(4))

