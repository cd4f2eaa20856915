// cpu_shim.h: compile a kernels/*.cu file as C++ and run its kernels on the CPU.
//
// Used only by the tests (tests/kernel_shim.py): g++ -x c++ -include kernels/cpu_shim.h, with
// the same #defines the GPU loader (trtssd/kernel_loader.py) prepends, so CI executes the
// kernels' real source on a machine without a GPU.
//
// What it models
// - The grid as loops: blocks run one after another (x fastest, then y, then z), and the
//   threads of a block one after another in the same order.
// - __syncthreads(): when the source uses it, each thread of a block is a cooperative fiber
//   (ucontext) that runs until it reaches a barrier or returns; the block proceeds past a
//   barrier only when every thread has reached it (or exited). Blocks up to 1024 threads.
// - __shared__ becomes `static`: one storage, reused by each block in turn. It is NOT reset
//   between blocks (on a GPU it starts undefined, so a kernel must not rely on either).
//   `extern __shared__` (dynamic shared memory) is not supported.
// - Atomics are plain read-modify-writes: only one thread runs at a time, and fibers switch
//   only at barriers, so they are atomic here. Only the overloads CUDA has are declared.
// - __half is a 16-bit struct; __float2half_rn rounds to nearest even as the GPU does.
// - Math: the usual single-precision functions map to the C library (the GPU's fast
//   intrinsics such as __expf are approximations there, exact here: allow for it in
//   tolerances). nvcc may fuse a*b+c into an FMA; g++ at -O1 on x86-64 does not.
//
// What it does NOT model
// - Warps: no warp-synchronous execution, no __shfl*/__ballot*/__any*/__activemask, no
//   warpSize. Kernels must not use warp intrinsics (they do not compile here, on purpose).
// - The memory model: no races, no caches, no memory-ordering or visibility effects; a data
//   race that is wrong on a GPU may pass here. Out-of-bounds accesses are not detected
//   (the GPU tests run compute-sanitizer for that).
// - Kernel parameter signatures must be plain: no #if inside the parameter list, no templates.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ucontext.h>

#define TRTSSD_CPU_SHIM 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static
#define __constant__
#define __align__(n) __attribute__((aligned(n)))

// ---------------------------------------------------------------- vector types
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uchar2 { unsigned char x, y; };
struct uchar3 { unsigned char x, y, z; };
struct __align__(4) uchar4 { unsigned char x, y, z, w; };
struct __align__(8) float2 { float x, y; };
struct float3 { float x, y, z; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(8) int2 { int x, y; };
struct int3 { int x, y, z; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned int x, y; };
struct __align__(16) uint4 { unsigned int x, y, z, w; };

static inline uchar2 make_uchar2(unsigned char x, unsigned char y) { uchar2 r = {x, y}; return r; }
static inline uchar3 make_uchar3(unsigned char x, unsigned char y, unsigned char z) { uchar3 r = {x, y, z}; return r; }
static inline uchar4 make_uchar4(unsigned char x, unsigned char y, unsigned char z, unsigned char w) { uchar4 r = {x, y, z, w}; return r; }
static inline float2 make_float2(float x, float y) { float2 r = {x, y}; return r; }
static inline float3 make_float3(float x, float y, float z) { float3 r = {x, y, z}; return r; }
static inline float4 make_float4(float x, float y, float z, float w) { float4 r = {x, y, z, w}; return r; }
static inline int2 make_int2(int x, int y) { int2 r = {x, y}; return r; }
static inline int3 make_int3(int x, int y, int z) { int3 r = {x, y, z}; return r; }
static inline int4 make_int4(int x, int y, int z, int w) { int4 r = {x, y, z, w}; return r; }
static inline uint2 make_uint2(unsigned int x, unsigned int y) { uint2 r = {x, y}; return r; }
static inline uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) { uint3 r = {x, y, z}; return r; }
static inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) { uint4 r = {x, y, z, w}; return r; }

// ---------------------------------------------------------------- launch state
namespace trtssd_shim {
static uint3 thread_idx, block_idx;
static dim3 block_dim, grid_dim;
}
#define threadIdx (trtssd_shim::thread_idx)
#define blockIdx (trtssd_shim::block_idx)
#define blockDim (trtssd_shim::block_dim)
#define gridDim (trtssd_shim::grid_dim)

// ---------------------------------------------------------------- fp16
struct __half { unsigned short __x; };

static inline unsigned int trtssd_float_bits(float f) { unsigned int u; std::memcpy(&u, &f, 4); return u; }
static inline float trtssd_bits_float(unsigned int u) { float f; std::memcpy(&f, &u, 4); return f; }

static inline __half __float2half_rn(float f) {
    unsigned int x = trtssd_float_bits(f);
    unsigned int sign = (x >> 16) & 0x8000u;
    unsigned int ax = x & 0x7fffffffu;
    unsigned int h;
    if (ax >= 0x7f800000u) {                 // inf or NaN (NaN stays a quiet NaN)
        h = 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u);
    } else if (ax >= 0x477ff000u) {          // >= 65520 rounds to infinity
        h = 0x7c00u;
    } else if (ax < 0x38800000u) {           // below 2^-14: half subnormal or zero
        // Adding 0.5 puts the value's multiples of 2^-24 (the subnormal step) into the low
        // mantissa bits, rounded to nearest even by the FPU.
        float t = trtssd_bits_float(ax) + 0.5f;
        h = trtssd_float_bits(t) - 0x3f000000u;
    } else {                                 // normal: rebias exponent, round to nearest even
        unsigned int odd = (ax >> 13) & 1u;
        ax += 0xc8000fffu + odd;             // (15 - 127) << 23, plus half an ulp minus one, plus odd
        h = ax >> 13;
    }
    __half r; r.__x = (unsigned short)(sign | h); return r;
}
static inline __half __float2half(float f) { return __float2half_rn(f); }
static inline float __half2float(__half h) {
    unsigned int s = ((unsigned int)h.__x & 0x8000u) << 16;
    unsigned int e = ((unsigned int)h.__x >> 10) & 0x1fu;
    unsigned int m = (unsigned int)h.__x & 0x3ffu;
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-08f;   // m * 2^-24, exact
        return s ? -v : v;
    }
    if (e == 31) return trtssd_bits_float(s | 0x7f800000u | (m << 13));
    return trtssd_bits_float(s | ((e + 112u) << 23) | (m << 13));
}

// ---------------------------------------------------------------- math
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
static inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
static inline unsigned int min(int a, unsigned int b) { return min((unsigned int)a, b); }
static inline unsigned int max(int a, unsigned int b) { return max((unsigned int)a, b); }
static inline unsigned int min(unsigned int a, int b) { return min(a, (unsigned int)b); }
static inline unsigned int max(unsigned int a, int b) { return max(a, (unsigned int)b); }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

// glibc declares __expf/__logf/__powf itself; macros avoid the clash.
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __powf(x, y) powf((x), (y))
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline int __float2int_rd(float x) { return (int)floorf(x); }
static inline int __float2int_ru(float x) { return (int)ceilf(x); }
static inline int __float2int_rz(float x) { return (int)x; }
static inline int __float2int_rn(float x) { return (int)nearbyintf(x); }   // default mode: to even
static inline unsigned int __float2uint_rn(float x) { return (unsigned int)nearbyintf(x); }
static inline float __int2float_rn(int x) { return (float)x; }
static inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
static inline unsigned int __float_as_uint(float f) { return trtssd_float_bits(f); }
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned int u) { return trtssd_bits_float(u); }
template <typename T> static inline T __ldg(const T* p) { return *p; }

// ---------------------------------------------------------------- atomics (CUDA's overloads)
#define TRTSSD_ATOMIC_RMW(NAME, T, EXPR) \
    static inline T NAME(T* address, T val) { T old = *address; *address = (EXPR); return old; }
TRTSSD_ATOMIC_RMW(atomicAdd, int, old + val)
TRTSSD_ATOMIC_RMW(atomicAdd, unsigned int, old + val)
TRTSSD_ATOMIC_RMW(atomicAdd, unsigned long long, old + val)
TRTSSD_ATOMIC_RMW(atomicAdd, float, old + val)
TRTSSD_ATOMIC_RMW(atomicAdd, double, old + val)
TRTSSD_ATOMIC_RMW(atomicSub, int, old - val)
TRTSSD_ATOMIC_RMW(atomicSub, unsigned int, old - val)
TRTSSD_ATOMIC_RMW(atomicMax, int, old > val ? old : val)
TRTSSD_ATOMIC_RMW(atomicMax, unsigned int, old > val ? old : val)
TRTSSD_ATOMIC_RMW(atomicMax, long long, old > val ? old : val)
TRTSSD_ATOMIC_RMW(atomicMax, unsigned long long, old > val ? old : val)
TRTSSD_ATOMIC_RMW(atomicMin, int, old < val ? old : val)
TRTSSD_ATOMIC_RMW(atomicMin, unsigned int, old < val ? old : val)
TRTSSD_ATOMIC_RMW(atomicMin, long long, old < val ? old : val)
TRTSSD_ATOMIC_RMW(atomicMin, unsigned long long, old < val ? old : val)
TRTSSD_ATOMIC_RMW(atomicExch, int, val)
TRTSSD_ATOMIC_RMW(atomicExch, unsigned int, val)
TRTSSD_ATOMIC_RMW(atomicExch, unsigned long long, val)
TRTSSD_ATOMIC_RMW(atomicExch, float, val)
TRTSSD_ATOMIC_RMW(atomicOr, int, old | val)
TRTSSD_ATOMIC_RMW(atomicOr, unsigned int, old | val)
TRTSSD_ATOMIC_RMW(atomicOr, unsigned long long, old | val)
TRTSSD_ATOMIC_RMW(atomicAnd, int, old & val)
TRTSSD_ATOMIC_RMW(atomicAnd, unsigned int, old & val)
#undef TRTSSD_ATOMIC_RMW
#define TRTSSD_ATOMIC_CAS(T) \
    static inline T atomicCAS(T* address, T compare, T val) { \
        T old = *address; if (old == compare) *address = val; return old; }
TRTSSD_ATOMIC_CAS(int)
TRTSSD_ATOMIC_CAS(unsigned int)
TRTSSD_ATOMIC_CAS(unsigned long long)
#undef TRTSSD_ATOMIC_CAS

static inline void __threadfence() {}
static inline void __threadfence_block() {}

// ---------------------------------------------------------------- the launcher
namespace trtssd_shim {

typedef void (*thread_fn)(void** args);

enum { RUNNING = 0, AT_BARRIER = 1, DONE = 2 };
struct Fiber { ucontext_t ctx; uint3 tid; int state; };

static const size_t kStack = 256 * 1024;
static Fiber* fibers = 0;
static char* stacks = 0;
static unsigned int fiber_capacity = 0;
static unsigned int current = 0;
static int fiber_mode = 0;
static ucontext_t scheduler;
static thread_fn g_fn = 0;
static void** g_args = 0;

static void fiber_entry(unsigned int lo) {
    g_fn(g_args);
    fibers[lo].state = DONE;   // returning resumes the scheduler through uc_link
}

static int ensure_fibers(unsigned int n) {
    if (n <= fiber_capacity) return 0;
    std::free(fibers); std::free(stacks);
    fibers = (Fiber*)std::calloc(n, sizeof(Fiber));
    stacks = (char*)std::malloc((size_t)n * kStack);
    if (!fibers || !stacks) { fiber_capacity = 0; return -1; }
    fiber_capacity = n;
    return 0;
}

}  // namespace trtssd_shim

static inline void __syncthreads() {
    using namespace trtssd_shim;
    if (!fiber_mode) {
        std::fprintf(stderr, "cpu_shim: __syncthreads() called but the launcher did not run "
                             "the block as fibers (the source text must contain __syncthreads)\n");
        std::abort();
    }
    fibers[current].state = AT_BARRIER;
    swapcontext(&fibers[current].ctx, &scheduler);
}

namespace trtssd_shim {

// Returns 0 on success, -1 if fibers could not be allocated, -2 for a bad configuration.
static int launch(dim3 grid, dim3 block, int use_fibers, thread_fn fn, void** args) {
    unsigned long long nthreads = (unsigned long long)block.x * block.y * block.z;
    if (nthreads == 0 || nthreads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0) return -2;
    grid_dim = grid; block_dim = block; g_fn = fn; g_args = args;
    fiber_mode = use_fibers;
    if (use_fibers && ensure_fibers((unsigned int)nthreads) != 0) return -1;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
    for (unsigned int bx = 0; bx < grid.x; ++bx) {
        block_idx.x = bx; block_idx.y = by; block_idx.z = bz;
        if (!use_fibers) {
            for (unsigned int tz = 0; tz < block.z; ++tz)
            for (unsigned int ty = 0; ty < block.y; ++ty)
            for (unsigned int tx = 0; tx < block.x; ++tx) {
                thread_idx.x = tx; thread_idx.y = ty; thread_idx.z = tz;
                fn(args);
            }
            continue;
        }
        unsigned int n = 0;
        for (unsigned int tz = 0; tz < block.z; ++tz)
        for (unsigned int ty = 0; ty < block.y; ++ty)
        for (unsigned int tx = 0; tx < block.x; ++tx, ++n) {
            Fiber& f = fibers[n];
            f.tid.x = tx; f.tid.y = ty; f.tid.z = tz;
            f.state = RUNNING;
            getcontext(&f.ctx);
            f.ctx.uc_stack.ss_sp = stacks + (size_t)n * kStack;
            f.ctx.uc_stack.ss_size = kStack;
            f.ctx.uc_link = &scheduler;
            makecontext(&f.ctx, (void (*)())fiber_entry, 1, n);
        }
        for (;;) {
            unsigned int done = 0;
            for (unsigned int i = 0; i < n; ++i) {
                if (fibers[i].state == DONE) { ++done; continue; }
                fibers[i].state = RUNNING;
                current = i;
                thread_idx = fibers[i].tid;
                swapcontext(&scheduler, &fibers[i].ctx);
            }
            if (done == n) break;
        }
    }
    fiber_mode = 0;
    return 0;
}

}  // namespace trtssd_shim
