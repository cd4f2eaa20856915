// floor.cu: what the preprocessing kernel cannot beat on a card (benchmarks/bench_kernel_floor.py).
//
// floor_store: the preprocessing kernel's grid and output (one thread per output pixel, blocks of
// 32x8, blockIdx.z the frame, three float stores NCHW), with no input: launch, one wave of
// threads and their stores.
// floor_copy: a grid-stride copy of `read_vecs` 16-byte vectors from `src`, then `write_vecs`
// vectors of zeros to `dst`: the bytes a frame's read rows and output are, at the card's best
// access pattern, no filter.

extern "C" __global__ void __launch_bounds__(256) floor_store(float* __restrict__ out,
                                                              const int out_w, const int out_h)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) return;
    const long long plane = (long long)out_w * out_h;
    float* o = out + (long long)blockIdx.z * 3 * plane + (long long)y * out_w + x;
    const float v = (float)(x + y);
    o[0] = v;
    o[plane] = v + 1.0f;
    o[2 * plane] = v + 2.0f;
}

// Each thread XORs U vectors a grid stride apart, all loaded before any is used, then writes
// its XOR (and zeros) to dst: U = 1 is one load in flight a thread, U = 4 four.
template <int U>
__device__ __forceinline__ void copy_xor(const uint4* __restrict__ src, const long long read_vecs,
                                         uint4* __restrict__ dst, const long long write_vecs)
{
    const long long step = (long long)gridDim.x * blockDim.x;
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    uint4 acc = make_uint4(0, 0, 0, 0);
    for (long long i = t; i < read_vecs; i += U * step) {
        uint4 v[U];
#pragma unroll
        for (int u = 0; u < U; ++u)
            v[u] = i + u * step < read_vecs ? __ldg(src + i + u * step) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int u = 0; u < U; ++u) {
            acc.x ^= v[u].x; acc.y ^= v[u].y; acc.z ^= v[u].z; acc.w ^= v[u].w;
        }
    }
    for (long long i = t; i < write_vecs; i += step) dst[i] = i == t ? acc : make_uint4(0, 0, 0, 0);
}

extern "C" __global__ void __launch_bounds__(256) floor_copy(const uint4* __restrict__ src,
                                                             const long long read_vecs,
                                                             uint4* __restrict__ dst,
                                                             const long long write_vecs)
{
    copy_xor<1>(src, read_vecs, dst, write_vecs);
}

// floor_copy4: 4x the bytes in flight a thread, for when floor_copy's one load at a time is
// the limit.
extern "C" __global__ void __launch_bounds__(256) floor_copy4(const uint4* __restrict__ src,
                                                              const long long read_vecs,
                                                              uint4* __restrict__ dst,
                                                              const long long write_vecs)
{
    copy_xor<4>(src, read_vecs, dst, write_vecs);
}
