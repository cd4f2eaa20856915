// preprocess.cu: camera frame(s) -> network input, in one pass.
//
// uint8 HWC frames (1, 3 or 4 channels, any row pitch) are resized (bilinear with OpenCV's
// INTER_LINEAR half-pixel mapping, or OpenCV's INTER_NEAREST), optionally letterboxed, and
// normalised per channel, y = (x - mean[c]) * scale[c], with the channels reordered, into
// float32 or float16, NCHW or NHWC. One thread per output pixel computes all three channels.
//
// Compile-time constants (prepended as #defines by trtssd/kernel_loader.py):
//   IN_CH                      channels of the input: 1 (grey, expanded to 3), 3 or 4
//   OUT_C0_SRC..OUT_C2_SRC     the input channel each output channel reads
//   OUT_HALF                   1: float16 output, 0: float32
//   OUT_NHWC                   1: NHWC output, 0: NCHW
//   NEAREST                    1: nearest neighbour (OpenCV INTER_NEAREST), 0: bilinear
//   PIX_PER_THREAD             output pixels per thread, along x, blockDim.x apart (default 1;
//                              the host's grid is ceil(out_w / (blockDim.x * PIX_PER_THREAD)))
//   WIDE_LOADS                 1: the bilinear path for 3- and 4-channel input reads a pixel
//                              pair's bytes of a row with 32-bit loads of the aligned words
//                              holding them (see row_pair) instead of byte loads; same result
//                              bit for bit. No effect on nearest or grey input. Default 0.
//   SMEM_ROWS                  1: the bilinear path for 3- and 4-channel input first copies, per
//                              block, the two source rows of each of its output rows (the
//                              bytes of the column span its output columns need) into shared
//                              memory with aligned 16-byte loads (byte loads at row edges that
//                              are not 16-byte aligned), then blends from there; same result
//                              bit for bit. A block whose span does not fit PP_SMEM_ROW_BYTES
//                              (strong downscales, wide blocks) reads global memory as the
//                              default does. No effect on nearest or grey input. Default 0.
//
// Batches: blockIdx.z is the frame. Frames of one size are described once by `frame`, frame z
// starting at frame.src + z * frame_stride; frames of different sizes by a table in device
// memory (`table`, one FrameDesc per frame; when table is not NULL `frame` is ignored).
//
// trtssd-variants: {"IN_CH": 3, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 0, "NEAREST": 0} | {"IN_CH": 3, "OUT_C0_SRC": 0, "OUT_C1_SRC": 1, "OUT_C2_SRC": 2, "OUT_HALF": 1, "OUT_NHWC": 1, "NEAREST": 1}
// trtssd-variants: {"IN_CH": 4, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 1, "NEAREST": 0} | {"IN_CH": 4, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 1, "OUT_NHWC": 0, "NEAREST": 1}
// trtssd-variants: {"IN_CH": 1, "OUT_C0_SRC": 0, "OUT_C1_SRC": 0, "OUT_C2_SRC": 0, "OUT_HALF": 1, "OUT_NHWC": 0, "NEAREST": 0} | {"IN_CH": 1, "OUT_C0_SRC": 0, "OUT_C1_SRC": 0, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 1, "NEAREST": 1}
// trtssd-variants: {"IN_CH": 3, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 0, "NEAREST": 0, "PIX_PER_THREAD": 2} | {"IN_CH": 4, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 1, "OUT_NHWC": 1, "NEAREST": 1, "PIX_PER_THREAD": 4}
// trtssd-variants: {"IN_CH": 3, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 0, "NEAREST": 0, "WIDE_LOADS": 1} | {"IN_CH": 4, "OUT_C0_SRC": 0, "OUT_C1_SRC": 1, "OUT_C2_SRC": 3, "OUT_HALF": 1, "OUT_NHWC": 1, "NEAREST": 0, "WIDE_LOADS": 1, "PIX_PER_THREAD": 2}
// trtssd-variants: {"IN_CH": 1, "OUT_C0_SRC": 0, "OUT_C1_SRC": 0, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 0, "NEAREST": 0, "WIDE_LOADS": 1} | {"IN_CH": 3, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 0, "NEAREST": 1, "WIDE_LOADS": 1}
// trtssd-variants: {"IN_CH": 3, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 0, "NEAREST": 0, "SMEM_ROWS": 1} | {"IN_CH": 4, "OUT_C0_SRC": 0, "OUT_C1_SRC": 1, "OUT_C2_SRC": 3, "OUT_HALF": 1, "OUT_NHWC": 1, "NEAREST": 0, "SMEM_ROWS": 1, "WIDE_LOADS": 1, "PIX_PER_THREAD": 2}
// trtssd-variants: {"IN_CH": 1, "OUT_C0_SRC": 0, "OUT_C1_SRC": 0, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 0, "NEAREST": 0, "SMEM_ROWS": 1} | {"IN_CH": 3, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 1, "OUT_NHWC": 1, "NEAREST": 1, "SMEM_ROWS": 1, "PIX_PER_THREAD": 4}
#include <cuda_fp16.h>

#ifndef IN_CH
#define IN_CH 3
#endif
#ifndef OUT_C0_SRC
#define OUT_C0_SRC 2
#endif
#ifndef OUT_C1_SRC
#define OUT_C1_SRC 1
#endif
#ifndef OUT_C2_SRC
#define OUT_C2_SRC 0
#endif
#ifndef OUT_HALF
#define OUT_HALF 0
#endif
#ifndef OUT_NHWC
#define OUT_NHWC 0
#endif
#ifndef NEAREST
#define NEAREST 0
#endif
#ifndef PIX_PER_THREAD
#define PIX_PER_THREAD 1
#endif

#ifndef WIDE_LOADS
#define WIDE_LOADS 0
#endif
#ifndef SMEM_ROWS
#define SMEM_ROWS 0
#endif

#if PIX_PER_THREAD < 1
#error "PIX_PER_THREAD must be >= 1"
#endif
#if IN_CH != 1 && IN_CH != 3 && IN_CH != 4
#error "IN_CH must be 1, 3 or 4"
#endif
#if OUT_C0_SRC >= IN_CH || OUT_C1_SRC >= IN_CH || OUT_C2_SRC >= IN_CH
#error "an OUT_Cn_SRC channel index is not below IN_CH"
#endif

// Wide loads apply to the bilinear path of 3- and 4-channel input only.
#if WIDE_LOADS && IN_CH > 1 && !NEAREST
#define PP_WIDE 1
#else
#define PP_WIDE 0
#endif
// Shared-memory rows likewise (and they take precedence over wide loads when both are set).
#if SMEM_ROWS && IN_CH > 1 && !NEAREST
#define PP_SMEM 1
#undef PP_WIDE
#define PP_WIDE 0
#else
#define PP_SMEM 0
#endif
// SMEM_ROWS: the tile, 2 source rows for each of up to PP_SMEM_MAX_Y output rows of a block,
// each row slot PP_SMEM_ROW_BYTES (a multiple of 16) long: 16 x 1280 = 20 KiB.
#define PP_SMEM_MAX_Y 8
#define PP_SMEM_ROW_BYTES 1280
// The highest input channel an output channel reads.
#if OUT_C0_SRC >= OUT_C1_SRC && OUT_C0_SRC >= OUT_C2_SRC
#define PP_MAX_SRC OUT_C0_SRC
#elif OUT_C1_SRC >= OUT_C2_SRC
#define PP_MAX_SRC OUT_C1_SRC
#else
#define PP_MAX_SRC OUT_C2_SRC
#endif

#if OUT_HALF
typedef __half out_t;
#define TO_OUT(v) __float2half_rn(v)
#else
typedef float out_t;
#define TO_OUT(v) (v)
#endif

// 64 bytes; the host builds the same layout with numpy (trtssd/preprocess.py FRAME_DESC_DTYPE).
struct FrameDesc {
    const unsigned char* src;   // first byte of the frame's first row
    long long pitch;            // bytes from one row to the next (any value >= in_w * IN_CH)
    double nn_x, nn_y;          // nearest: source pixels per output pixel, as OpenCV computes it
    int in_w, in_h;             // frame size in pixels
    float sx, sy;               // bilinear: source pixels per output pixel (in / inner)
    int off_x, off_y;           // letterbox: where the resized frame starts in the output
    int inner_w, inner_h;       // letterbox: size of the resized frame (out_w, out_h without)
};

// One source coordinate of the bilinear filter with OpenCV's INTER_LINEAR edge handling:
// src = (dst + 0.5) * scale - 0.5; left of the first pixel centre or right of the last one,
// the weight of the neighbour is 0 (OpenCV sets fx = 0 and clamps the index).
__device__ __forceinline__ void linear_coord(int dst, float scale, int size, int& i0, int& i1,
                                             float& a)
{
    float f = ((float)dst + 0.5f) * scale - 0.5f;
    int i = __float2int_rd(f);
    a = f - (float)i;
    if (i < 0) { i = 0; a = 0.0f; }
    if (i >= size - 1) { i = size - 1; a = 0.0f; }
    i0 = i;
    i1 = min(i + 1, size - 1);
}

// Bilinear blend of the four neighbours a (top left), b (top right), c, e (bottom), in float.
// Both load paths blend through this one expression, so they give the same bits.
__device__ __forceinline__ float blend(float a, float b, float c, float e, float ax, float ay)
{
    const float top = a + ax * (b - a);
    const float bot = c + ax * (e - c);
    return top + ay * (bot - top);
}

// The same from the four neighbours' bytes p00 (top left), p01, p10, p11.
__device__ __forceinline__ float bilerp(const unsigned char* p00, const unsigned char* p01,
                                        const unsigned char* p10, const unsigned char* p11,
                                        float ax, float ay)
{
    return blend((float)__ldg(p00), (float)__ldg(p01), (float)__ldg(p10), (float)__ldg(p11),
                 ax, ay);
}

#if PP_WIDE || PP_SMEM
#ifdef TRTSSD_CPU_SHIM
// CPU shim only (tests/test_preprocess_kernel_cpu.py): the byte range [lo, hi) row_pair (or
// the SMEM_ROWS copy) may read, set by the test to the frame's first and one past its last
// byte, the number of reads that left it, and the word, byte and 16-byte loads made, so a
// test can tell that nothing outside the frame was read and which path ran.
extern "C" {
unsigned long long trtssd_pp_lo = 0, trtssd_pp_hi = ~0ull, trtssd_pp_outside = 0;
unsigned long long trtssd_pp_words = 0, trtssd_pp_bytes = 0;
#if PP_SMEM
unsigned long long trtssd_pp_vec16 = 0;
#endif
}
static inline void trtssd_pp_read(const unsigned char* a, unsigned long long n,
                                  unsigned long long& counter)
{
    const unsigned long long u = (unsigned long long)(size_t)a;
    if (u < trtssd_pp_lo || u + n > trtssd_pp_hi) ++trtssd_pp_outside;
    ++counter;
}
#endif

// One aligned 32-bit word of frame memory (read-only path).
__device__ __forceinline__ unsigned int load_word(const unsigned char* a)
{
#ifdef TRTSSD_CPU_SHIM
    trtssd_pp_read(a, 4, trtssd_pp_words);
    unsigned int w;                      // the shim's C++: no type punning through a cast
    std::memcpy(&w, a, 4);
    return w;
#else
    return __ldg((const unsigned int*)a);
#endif
}

// One byte of frame memory, as a float (row_pair's fallback).
__device__ __forceinline__ float load_byte(const unsigned char* a)
{
#ifdef TRTSSD_CPU_SHIM
    trtssd_pp_read(a, 1, trtssd_pp_bytes);
#endif
    return (float)__ldg(a);
}
#endif

#if PP_SMEM
// The 16 bytes at a (16-byte aligned) of frame memory into shared memory at t (16-aligned).
__device__ __forceinline__ void copy_vec16(unsigned char* t, const unsigned char* a)
{
#ifdef TRTSSD_CPU_SHIM
    trtssd_pp_read(a, 16, trtssd_pp_vec16);
    std::memcpy(t, a, 16);
#else
    *(uint4*)t = __ldg((const uint4*)a);
#endif
}

// One byte of frame memory into shared memory (the copy's fallback at unaligned row edges).
__device__ __forceinline__ void copy_byte(unsigned char* t, const unsigned char* a)
{
#ifdef TRTSSD_CPU_SHIM
    trtssd_pp_read(a, 1, trtssd_pp_bytes);
#endif
    *t = __ldg(a);
}
#endif

#if PP_WIDE
// Channel bytes OUT_C0_SRC..OUT_C2_SRC of the pixels at p and p + dx * IN_CH (dx 0 or 1) of
// one row, as floats: va* of the first pixel, vb* of the second. The bytes [p, p + need) are
// read with 32-bit loads of the 1-3 aligned words that hold them, and shifted into one 64-bit
// little-endian window whose byte k is p[k]. Those words may hold bytes outside [p, p + need);
// they are used only when they lie within the row's pixel bytes [row, row_end), else (a row
// start that is not 4-byte aligned, the frame's last bytes, frames 1 or 2 pixels wide) the
// bytes are read one by one: nothing outside the frame is ever read.
__device__ __forceinline__ void row_pair(const unsigned char* row, const unsigned char* row_end,
                                         long long c, int dx,
                                         float& va0, float& va1, float& va2,
                                         float& vb0, float& vb1, float& vb2)
{
    const unsigned char* p = row + c;
    const int sb = dx * IN_CH;                                  // second pixel's byte offset
    const int need = sb + PP_MAX_SRC + 1;                       // 1..8 bytes from p
    const unsigned int s = (unsigned int)((size_t)p & 3u);      // p's byte within its word
    const int nw = ((int)s + need + 3) >> 2;                    // words holding them, 1..3
    const size_t a = (size_t)p - s;
    if (a >= (size_t)row && a + 4u * (size_t)nw <= (size_t)row_end) {
        const unsigned char* q = p - s;
        const unsigned int w0 = load_word(q);
        const unsigned int w1 = nw > 1 ? load_word(q + 4) : 0u;
        const unsigned int w2 = nw > 2 ? load_word(q + 8) : 0u;
        unsigned long long w = (((unsigned long long)w1 << 32) | w0) >> (8u * s);
        if (s != 0u) w |= (unsigned long long)w2 << (64u - 8u * s);
        const unsigned int shb = 8u * (unsigned int)sb;
        va0 = (float)(unsigned int)((w >> (8 * OUT_C0_SRC)) & 0xffu);
        va1 = (float)(unsigned int)((w >> (8 * OUT_C1_SRC)) & 0xffu);
        va2 = (float)(unsigned int)((w >> (8 * OUT_C2_SRC)) & 0xffu);
        vb0 = (float)(unsigned int)((w >> (shb + 8 * OUT_C0_SRC)) & 0xffu);
        vb1 = (float)(unsigned int)((w >> (shb + 8 * OUT_C1_SRC)) & 0xffu);
        vb2 = (float)(unsigned int)((w >> (shb + 8 * OUT_C2_SRC)) & 0xffu);
    } else {
        va0 = load_byte(p + OUT_C0_SRC);
        va1 = load_byte(p + OUT_C1_SRC);
        va2 = load_byte(p + OUT_C2_SRC);
        vb0 = load_byte(p + sb + OUT_C0_SRC);
        vb1 = load_byte(p + sb + OUT_C1_SRC);
        vb2 = load_byte(p + sb + OUT_C2_SRC);
    }
}
#endif

extern "C" __global__ void __launch_bounds__(256) preprocess_u8(
    const FrameDesc* __restrict__ table, const FrameDesc frame, const long long frame_stride,
    out_t* __restrict__ out, const int out_w, const int out_h,
    const float mean0, const float mean1, const float mean2,
    const float scale0, const float scale1, const float scale2,
    const float pad0, const float pad1, const float pad2)
{
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int z = blockIdx.z;
#if !PP_SMEM
    if (y >= out_h) return;
#endif

    FrameDesc d;
    const unsigned char* base;
    if (table != NULL) {
        d = table[z];
        base = d.src;
    } else {
        d = frame;
        base = frame.src + (long long)z * frame_stride;
    }

    // The row's share of the work, done once for the thread's PIX_PER_THREAD pixels.
    const int iy = y - d.off_y;
#if PP_SMEM
    const bool row_in = y < out_h && iy >= 0 && iy < d.inner_h;   // every thread reaches the barrier
#else
    const bool row_in = iy >= 0 && iy < d.inner_h;
#endif
#if NEAREST
    // OpenCV INTER_NEAREST: src = min(floor(dst * (1 / (out / in))), in - 1), in double.
    const int sy = row_in ? min((int)floor((double)iy * d.nn_y), d.in_h - 1) : 0;
    const unsigned char* r0 = base + (long long)sy * d.pitch;
#else
    int y0 = 0, y1 = 0;
    float ay = 0.0f;
    if (row_in) linear_coord(iy, d.sy, d.in_h, y0, y1, ay);
    const unsigned char* r0 = base + (long long)y0 * d.pitch;
    const unsigned char* r1 = base + (long long)y1 * d.pitch;
#if PP_WIDE || PP_SMEM
    const long long row_bytes = (long long)d.in_w * IN_CH;      // a row's pixel bytes
#endif
#if PP_SMEM
    // Row slot 2 * ty (+ 1) of the tile holds the bytes [c_lo, c_lo + span) of source row y0
    // (y1) of the block's output row ty, starting at byte ((row + c_lo) & 15) of the slot, so
    // that the copy's 16-byte loads are aligned in both memories. [c_lo, c_lo + span): from the
    // left pixel of the block's first output column inside the resized frame to the right
    // pixel of its last one (linear_coord is monotonic). Block-uniform: use_smem, c_lo, span.
    __shared__ __align__(16) unsigned char tile[2 * PP_SMEM_MAX_Y][PP_SMEM_ROW_BYTES];
    const int bx0 = blockIdx.x * blockDim.x * PIX_PER_THREAD;
    const int ix_lo = max(bx0, d.off_x) - d.off_x;
    const int ix_hi = min(min(bx0 + (int)blockDim.x * PIX_PER_THREAD, out_w),
                          d.off_x + d.inner_w) - 1 - d.off_x;
    long long c_lo = 0, span = 0;
    bool use_smem = false;
    if (ix_lo <= ix_hi && blockDim.y <= PP_SMEM_MAX_Y) {
        int xa, xb;
        float ax;
        linear_coord(ix_lo, d.sx, d.in_w, xa, xb, ax);
        c_lo = (long long)xa * IN_CH;
        linear_coord(ix_hi, d.sx, d.in_w, xa, xb, ax);
        span = (long long)(xb + 1) * IN_CH - c_lo;
        use_smem = span + 15 <= PP_SMEM_ROW_BYTES;
    }
    if (use_smem) {
        // Chunk k of a slot: the aligned 16 bytes at ((row + c_lo) & ~15) + 16 k, copied whole
        // when they lie within the row's pixel bytes, else only their bytes in the span, one
        // by one: nothing outside the frame is read. Rows outside the frame: not copied.
        const int nslot = 2 * (int)blockDim.y;
        const int nchunk = (int)((span + 30) >> 4);             // most chunks a slot needs
        const int nthreads = (int)(blockDim.x * blockDim.y);
        for (int i = threadIdx.y * blockDim.x + threadIdx.x; i < nslot * nchunk; i += nthreads) {
            const int slot = i / nchunk, k = i - slot * nchunk;
            const int ty = (int)(blockIdx.y * blockDim.y) + (slot >> 1);
            const int tiy = ty - d.off_y;
            if (ty >= out_h || tiy < 0 || tiy >= d.inner_h) continue;
            int t0, t1;
            float tay;
            linear_coord(tiy, d.sy, d.in_h, t0, t1, tay);
            const size_t row = (size_t)(base + (long long)((slot & 1) ? t1 : t0) * d.pitch);
            const size_t lo = row + (size_t)c_lo, hi = lo + (size_t)span;
            const size_t a = (lo & ~(size_t)15) + 16u * (size_t)k;
            if (a >= hi) continue;
            unsigned char* t = &tile[slot][16 * k];
            if (a >= row && a + 16u <= row + (size_t)row_bytes) {
                copy_vec16(t, (const unsigned char*)a);
            } else {
                const size_t b1 = a + 16u < hi ? a + 16u : hi;
                for (size_t b = a < lo ? lo : a; b < b1; ++b)
                    copy_byte(t + (b - a), (const unsigned char*)b);
            }
        }
    }
    __syncthreads();
    if (y >= out_h) return;
    // this thread's two slots, and where byte c_lo of its rows sits in them
    const unsigned char* tr0 = tile[2 * threadIdx.y];
    const unsigned char* tr1 = tile[2 * threadIdx.y + 1];
    const long long q0 = (long long)(((size_t)r0 + (size_t)c_lo) & 15u) - c_lo;
    const long long q1 = (long long)(((size_t)r1 + (size_t)c_lo) & 15u) - c_lo;
#endif
#endif
    const long long plane = (long long)out_w * out_h;
    out_t* o = out + (long long)z * 3 * plane;

    // Pixels x0, x0 + blockDim.x, ...: a warp's stores stay contiguous for each of them.
    const int x0 = blockIdx.x * blockDim.x * PIX_PER_THREAD + threadIdx.x;
#pragma unroll
    for (int j = 0; j < PIX_PER_THREAD; ++j) {
        const int x = x0 + j * (int)blockDim.x;
        if (x >= out_w) break;
        float v0, v1, v2;
        const int ix = x - d.off_x;
        if (!row_in || ix < 0 || ix >= d.inner_w) {
            v0 = pad0; v1 = pad1; v2 = pad2;          // already normalised by the host
        } else {
#if NEAREST
            const int sx = min((int)floor((double)ix * d.nn_x), d.in_w - 1);
            const unsigned char* p = r0 + (long long)sx * IN_CH;
            v0 = (float)__ldg(p + OUT_C0_SRC);
            v1 = (float)__ldg(p + OUT_C1_SRC);
            v2 = (float)__ldg(p + OUT_C2_SRC);
#else
            int xa, xb;
            float ax;
            linear_coord(ix, d.sx, d.in_w, xa, xb, ax);
#if PP_SMEM
            if (use_smem) {
                const long long c0 = (long long)xa * IN_CH, c1 = (long long)xb * IN_CH;
                const unsigned char* p00 = tr0 + (q0 + c0);
                const unsigned char* p01 = tr0 + (q0 + c1);
                const unsigned char* p10 = tr1 + (q1 + c0);
                const unsigned char* p11 = tr1 + (q1 + c1);
                v0 = blend((float)p00[OUT_C0_SRC], (float)p01[OUT_C0_SRC], (float)p10[OUT_C0_SRC],
                           (float)p11[OUT_C0_SRC], ax, ay);
                v1 = blend((float)p00[OUT_C1_SRC], (float)p01[OUT_C1_SRC], (float)p10[OUT_C1_SRC],
                           (float)p11[OUT_C1_SRC], ax, ay);
                v2 = blend((float)p00[OUT_C2_SRC], (float)p01[OUT_C2_SRC], (float)p10[OUT_C2_SRC],
                           (float)p11[OUT_C2_SRC], ax, ay);
            } else {
                const long long c0 = (long long)xa * IN_CH, c1 = (long long)xb * IN_CH;
                v0 = bilerp(r0 + c0 + OUT_C0_SRC, r0 + c1 + OUT_C0_SRC, r1 + c0 + OUT_C0_SRC,
                            r1 + c1 + OUT_C0_SRC, ax, ay);
                v1 = bilerp(r0 + c0 + OUT_C1_SRC, r0 + c1 + OUT_C1_SRC, r1 + c0 + OUT_C1_SRC,
                            r1 + c1 + OUT_C1_SRC, ax, ay);
                v2 = bilerp(r0 + c0 + OUT_C2_SRC, r0 + c1 + OUT_C2_SRC, r1 + c0 + OUT_C2_SRC,
                            r1 + c1 + OUT_C2_SRC, ax, ay);
            }
#elif PP_WIDE
            float a0, a1, a2, b0, b1, b2, c0v, c1v, c2v, e0, e1, e2;
            row_pair(r0, r0 + row_bytes, (long long)xa * IN_CH, xb - xa, a0, a1, a2, b0, b1, b2);
            row_pair(r1, r1 + row_bytes, (long long)xa * IN_CH, xb - xa, c0v, c1v, c2v, e0, e1, e2);
            v0 = blend(a0, b0, c0v, e0, ax, ay);
            v1 = blend(a1, b1, c1v, e1, ax, ay);
            v2 = blend(a2, b2, c2v, e2, ax, ay);
#else
            const long long c0 = (long long)xa * IN_CH, c1 = (long long)xb * IN_CH;
            v0 = bilerp(r0 + c0 + OUT_C0_SRC, r0 + c1 + OUT_C0_SRC, r1 + c0 + OUT_C0_SRC,
                        r1 + c1 + OUT_C0_SRC, ax, ay);
#if IN_CH == 1
            v1 = v0;
            v2 = v0;
#else
            v1 = bilerp(r0 + c0 + OUT_C1_SRC, r0 + c1 + OUT_C1_SRC, r1 + c0 + OUT_C1_SRC,
                        r1 + c1 + OUT_C1_SRC, ax, ay);
            v2 = bilerp(r0 + c0 + OUT_C2_SRC, r0 + c1 + OUT_C2_SRC, r1 + c0 + OUT_C2_SRC,
                        r1 + c1 + OUT_C2_SRC, ax, ay);
#endif
#endif  // PP_SMEM / PP_WIDE
#endif  // NEAREST
            v0 = (v0 - mean0) * scale0;
            v1 = (v1 - mean1) * scale1;
            v2 = (v2 - mean2) * scale2;
        }
#if OUT_NHWC
        const long long i = ((long long)y * out_w + x) * 3;
        o[i] = TO_OUT(v0);
        o[i + 1] = TO_OUT(v1);
        o[i + 2] = TO_OUT(v2);
#else
        const long long i = (long long)y * out_w + x;
        o[i] = TO_OUT(v0);
        o[i + plane] = TO_OUT(v1);
        o[i + 2 * plane] = TO_OUT(v2);
#endif
    }
}
