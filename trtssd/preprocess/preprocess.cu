// preprocess.cu: camera frame(s) -> network input, in one pass.
//
// uint8 HWC frames (1, 3 or 4 channels, any row pitch), or YUV frames (yuv.cuh: each filter
// tap converted to RGB as OpenCV's cvtColor does, then blended), are resized (bilinear with OpenCV's
// INTER_LINEAR half-pixel mapping, or OpenCV's INTER_NEAREST), optionally letterboxed, and
// normalised per channel, y = (x - mean[c]) * scale[c], with the channels reordered, into
// float32 or float16, NCHW or NHWC. One thread per output pixel computes all three channels.
//
// Compile-time constants (prepended as #defines by trtssd/gpu/kernels.py):
//   IN_CH                      channels of the input: 1 (grey, expanded to 3), 3 or 4
//   OUT_C0_SRC..OUT_C2_SRC     the input channel each output channel reads
//   OUT_HALF                   1: float16 output, 0: float32
//   OUT_NHWC                   1: NHWC output, 0: NCHW
//   NEAREST                    1: nearest neighbour (OpenCV INTER_NEAREST), 0: bilinear
//   YUV                        0: packed pixels (IN_CH); 1-3: a YUV layout (yuv.cuh), the
//                              OUT_Cn_SRC then index R, G, B (0, 1, 2)
//
// Batches: blockIdx.z is the frame. Frames of one size are described once by `frame`, frame z
// starting at frame.src + z * frame_stride; frames of different sizes by a table in device
// memory (`table`, one FrameDesc per frame; when table is not NULL `frame` is ignored).
//
// trtssd-variants: {"IN_CH": 3, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 0, "NEAREST": 0} | {"IN_CH": 3, "OUT_C0_SRC": 0, "OUT_C1_SRC": 1, "OUT_C2_SRC": 2, "OUT_HALF": 1, "OUT_NHWC": 1, "NEAREST": 1}
// trtssd-variants: {"IN_CH": 4, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 1, "NEAREST": 0} | {"IN_CH": 4, "OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 1, "OUT_NHWC": 0, "NEAREST": 1}
// trtssd-variants: {"IN_CH": 1, "OUT_C0_SRC": 0, "OUT_C1_SRC": 0, "OUT_C2_SRC": 0, "OUT_HALF": 1, "OUT_NHWC": 0, "NEAREST": 0} | {"IN_CH": 1, "OUT_C0_SRC": 0, "OUT_C1_SRC": 0, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 1, "NEAREST": 1}
// trtssd-variants: {"OUT_C0_SRC": 0, "OUT_C1_SRC": 1, "OUT_C2_SRC": 2, "OUT_HALF": 0, "OUT_NHWC": 0, "NEAREST": 0, "YUV": 1, "YUV_U": 0, "YUV_V": 1, "YUV_CY": 1220542, "YUV_CUB": 2116026, "YUV_CUG": -409993, "YUV_CVG": -852492, "YUV_CVR": 1673527, "YUV_YOFF": 16} | {"OUT_C0_SRC": 0, "OUT_C1_SRC": 1, "OUT_C2_SRC": 2, "OUT_HALF": 1, "OUT_NHWC": 1, "NEAREST": 1, "YUV": 1, "YUV_U": 1, "YUV_V": 0, "YUV_CY": 1048576, "YUV_CUB": 1945738, "YUV_CUG": -196424, "YUV_CVG": -490864, "YUV_CVR": 1651297, "YUV_YOFF": 0}
// trtssd-variants: {"OUT_C0_SRC": 0, "OUT_C1_SRC": 1, "OUT_C2_SRC": 2, "OUT_HALF": 0, "OUT_NHWC": 0, "NEAREST": 0, "YUV": 2, "YUV_CY": 1220945, "YUV_CUB": 2215014, "YUV_CUG": -223607, "YUV_CVG": -558796, "YUV_CVR": 1879825, "YUV_YOFF": 16} | {"OUT_C0_SRC": 2, "OUT_C1_SRC": 1, "OUT_C2_SRC": 0, "OUT_HALF": 0, "OUT_NHWC": 0, "NEAREST": 1, "YUV": 2, "YUV_CY": 1048576, "YUV_CUB": 1858077, "YUV_CUG": -360853, "YUV_CVG": -748826, "YUV_CVR": 1470104, "YUV_YOFF": 0}
// trtssd-variants: {"OUT_C0_SRC": 0, "OUT_C1_SRC": 1, "OUT_C2_SRC": 2, "OUT_HALF": 0, "OUT_NHWC": 1, "NEAREST": 0, "YUV": 3, "YUV_Y0": 0, "YUV_U": 1, "YUV_Y1": 2, "YUV_V": 3, "YUV_CY": 1220542, "YUV_CUB": 2116026, "YUV_CUG": -409993, "YUV_CVG": -852492, "YUV_CVR": 1673527, "YUV_YOFF": 16} | {"OUT_C0_SRC": 0, "OUT_C1_SRC": 1, "OUT_C2_SRC": 2, "OUT_HALF": 1, "OUT_NHWC": 0, "NEAREST": 1, "YUV": 3, "YUV_Y0": 1, "YUV_U": 0, "YUV_Y1": 3, "YUV_V": 2, "YUV_CY": 1048576, "YUV_CUB": 1945738, "YUV_CUG": -196424, "YUV_CVG": -490864, "YUV_CVR": 1651297, "YUV_YOFF": 0}
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
#ifndef YUV
#define YUV 0
#endif
#if YUV
#if YUV != 1 && YUV != 2 && YUV != 3
#error "YUV must be 0 (packed pixels), 1, 2 or 3"
#endif
#if OUT_C0_SRC > 2 || OUT_C1_SRC > 2 || OUT_C2_SRC > 2
#error "with YUV an OUT_Cn_SRC is R, G or B: 0, 1 or 2"
#endif
#else
#if IN_CH != 1 && IN_CH != 3 && IN_CH != 4
#error "IN_CH must be 1, 3 or 4"
#endif
#if OUT_C0_SRC >= IN_CH || OUT_C1_SRC >= IN_CH || OUT_C2_SRC >= IN_CH
#error "an OUT_Cn_SRC channel index is not below IN_CH"
#endif
#endif

#if OUT_HALF
typedef __half out_t;
#define TO_OUT(v) __float2half_rn(v)
#else
typedef float out_t;
#define TO_OUT(v) (v)
#endif

// 64 bytes (96 with YUV); the host builds the same layout with numpy (trtssd/preprocess/plan.py,
// FRAME_DESC_DTYPE and YUV_FRAME_DESC_DTYPE).
struct FrameDesc {
    const unsigned char* src;   // first byte of the frame's first row
    long long pitch;            // bytes from one row to the next (any value >= in_w * IN_CH)
    double nn_x, nn_y;          // nearest: source pixels per output pixel, as OpenCV computes it
    int in_w, in_h;             // frame size in pixels
    float sx, sy;               // bilinear: source pixels per output pixel (in / inner)
    int off_x, off_y;           // letterbox: where the resized frame starts in the output
    int inner_w, inner_h;       // letterbox: size of the resized frame (out_w, out_h without)
#if YUV
    const unsigned char* c0;    // chroma: the interleaved plane (YUV 1) or the U plane (YUV 2)
    long long c0_pitch;
    const unsigned char* c1;    // the V plane (YUV 2)
    long long c1_pitch;
#endif
};

#if YUV
#include "yuv.cuh"
#endif

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

// The source rows the filter reads for output row iy of the resized frame (letterbox: inside
// it): y0 and y1 (the same row for nearest and at the edges). The kernel below and gather_rows
// both ask this, so the rows gathered are the rows read.
__device__ __forceinline__ void source_rows(int iy, float sy, double nn_y, int in_h, int& y0,
                                            int& y1, float& ay)
{
#if NEAREST
    y0 = y1 = min((int)floor((double)iy * nn_y), in_h - 1);
    ay = 0.0f;
#else
    linear_coord(iy, sy, in_h, y0, y1, ay);
#endif
}

// Bilinear blend of the four neighbours a (top left), b (top right), c, e (bottom), in float.
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

extern "C" __global__ void __launch_bounds__(256) preprocess_u8(
    const FrameDesc* __restrict__ table, const FrameDesc frame, const long long frame_stride,
    out_t* __restrict__ out, const int out_w, const int out_h,
    const float mean0, const float mean1, const float mean2,
    const float scale0, const float scale1, const float scale2,
    const float pad0, const float pad1, const float pad2)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int z = blockIdx.z;
    if (y >= out_h || x >= out_w) return;

    FrameDesc d;
    const unsigned char* base;
    if (table != NULL) {
        d = table[z];
        base = d.src;
    } else {
        d = frame;
        base = frame.src + (long long)z * frame_stride;
    }

#if YUV == 1 || YUV == 2
    // uniform batches: every plane of frame z is z * frame_stride after frame 0's
    const long long zoff = table != NULL ? 0 : (long long)z * frame_stride;
    const unsigned char* ch0 = d.c0 + zoff;
    const unsigned char* ch1 = YUV == 2 ? d.c1 + zoff : ch0;
#elif YUV == 3
    const unsigned char* ch0 = base;
    const unsigned char* ch1 = base;
#endif
#if YUV
#define YUV_TAP(x, y, rgb) yuv_pixel(base, d.pitch, ch0, d.c0_pitch, ch1, d.c1_pitch, x, y, rgb)
#endif
    const long long plane = (long long)out_w * out_h;
    out_t* o = out + (long long)z * 3 * plane;
    float v0, v1, v2;
    const int iy = y - d.off_y;
    const int ix = x - d.off_x;
    if (iy < 0 || iy >= d.inner_h || ix < 0 || ix >= d.inner_w) {
        v0 = pad0; v1 = pad1; v2 = pad2;              // already normalised by the host
    } else {
#if NEAREST
        // OpenCV INTER_NEAREST: src = min(floor(dst * (1 / (out / in))), in - 1), in double.
        int sy, sy1;
        float ay;
        source_rows(iy, d.sy, d.nn_y, d.in_h, sy, sy1, ay);
        const int sx = min((int)floor((double)ix * d.nn_x), d.in_w - 1);
#if YUV
        float p[3];
        YUV_TAP(sx, sy, p);
        v0 = p[OUT_C0_SRC];
        v1 = p[OUT_C1_SRC];
        v2 = p[OUT_C2_SRC];
#else
        const unsigned char* p = base + (long long)sy * d.pitch + (long long)sx * IN_CH;
        v0 = (float)__ldg(p + OUT_C0_SRC);
        v1 = (float)__ldg(p + OUT_C1_SRC);
        v2 = (float)__ldg(p + OUT_C2_SRC);
#endif
#else
        int y0, y1, xa, xb;
        float ay, ax;
        source_rows(iy, d.sy, d.nn_y, d.in_h, y0, y1, ay);
        linear_coord(ix, d.sx, d.in_w, xa, xb, ax);
#if YUV
        float p00[3], p01[3], p10[3], p11[3];      // R, G, B of the four taps
        YUV_TAP(xa, y0, p00);
        YUV_TAP(xb, y0, p01);
        YUV_TAP(xa, y1, p10);
        YUV_TAP(xb, y1, p11);
        v0 = blend(p00[OUT_C0_SRC], p01[OUT_C0_SRC], p10[OUT_C0_SRC], p11[OUT_C0_SRC], ax, ay);
        v1 = blend(p00[OUT_C1_SRC], p01[OUT_C1_SRC], p10[OUT_C1_SRC], p11[OUT_C1_SRC], ax, ay);
        v2 = blend(p00[OUT_C2_SRC], p01[OUT_C2_SRC], p10[OUT_C2_SRC], p11[OUT_C2_SRC], ax, ay);
#else
        const unsigned char* r0 = base + (long long)y0 * d.pitch;
        const unsigned char* r1 = base + (long long)y1 * d.pitch;
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
#endif  // YUV
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

// ---- gather_rows: the rows preprocess_u8 will read, host -> device, and no others.
//
// For up to GATHER_MAX frames in page-locked host memory (read through their unified
// addresses: a discrete GPU pulls them over PCIe), copies each source row the filter reads
// (source_rows) to the same row of the frame's device copy, which preprocess_u8 then reads:
// at 1080p -> 300 bilinear that is 600 of the 1,080 rows. Rows are moved as 16-byte vectors;
// the host launches this only when every address, pitch and row length is a multiple of 16
// and the frame's pairs of rows do not overlap (no row is copied twice). blockIdx.z is the
// frame; blocks stride over its output rows, blockDim.y rows at a time, the x threads over the
// row's vectors. The grid is small (the host aims at 8 blocks in all): it runs beside the
// network on another stream, and an SM holding one of its blocks may not fit a network block
// beside it; unrolled loads keep enough reads in flight to fill the link.
#ifndef GATHER_MAX
#define GATHER_MAX 16
#endif
#define GATHER_UNROLL 4

// 56 bytes; the host builds the same layout (trtssd/preprocess/plan.py, ROW_COPY_DTYPE).
struct RowCopy {
    const uint4* from;          // the frame's first row in host memory (its device address)
    uint4* to;                  // the first row of its device copy (FrameDesc.src)
    long long from_pitch;       // bytes from one row to the next, in host memory
    long long to_pitch;         // and in the device copy (FrameDesc.pitch)
    double nn_y;                // FrameDesc's: the rows the filter reads
    float sy;
    int in_h, inner_h;
    int row_vecs;               // 16-byte vectors in a row (in_w * IN_CH / 16)
};

struct RowCopies {
    RowCopy f[GATHER_MAX];
};

extern "C" __global__ void __launch_bounds__(256) gather_rows(const RowCopies jobs)
{
    const RowCopy& r = jobs.f[blockIdx.z];
    for (int iy = blockIdx.x * blockDim.y + threadIdx.y; iy < r.inner_h;
         iy += gridDim.x * blockDim.y) {
        int y0, y1;
        float ay;
        source_rows(iy, r.sy, r.nn_y, r.in_h, y0, y1, ay);
        const uint4* s0 = (const uint4*)((const char*)r.from + (long long)y0 * r.from_pitch);
        const uint4* s1 = (const uint4*)((const char*)r.from + (long long)y1 * r.from_pitch);
        uint4* d0 = (uint4*)((char*)r.to + (long long)y0 * r.to_pitch);
        uint4* d1 = (uint4*)((char*)r.to + (long long)y1 * r.to_pitch);
        // GATHER_UNROLL vectors of each row loaded before any is stored: the loads are in
        // flight together, so a few blocks fill the link
        const int rows = y1 != y0 ? 2 : 1;
        for (int v0 = threadIdx.x; v0 < r.row_vecs; v0 += blockDim.x * GATHER_UNROLL) {
            uint4 a[GATHER_UNROLL], b[GATHER_UNROLL];
#pragma unroll
            for (int u = 0; u < GATHER_UNROLL; ++u) {
                const int v = v0 + u * blockDim.x;
                if (v < r.row_vecs) {
                    a[u] = s0[v];
                    if (rows == 2) b[u] = s1[v];
                }
            }
#pragma unroll
            for (int u = 0; u < GATHER_UNROLL; ++u) {
                const int v = v0 + u * blockDim.x;
                if (v < r.row_vecs) {
                    d0[v] = a[u];
                    if (rows == 2) d1[v] = b[u];
                }
            }
        }
    }
}
