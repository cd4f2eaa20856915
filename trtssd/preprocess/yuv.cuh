// yuv.cuh: YUV input for preprocess.cu (included when YUV is set): one pixel's R, G, B from
// its Y and the chroma of its 2x2 (4:2:0) or 2x1 (4:2:2) block, as OpenCV's cvtColor computes
// them: integers, coefficients scaled by 2^YUV_SHIFT, rounded half up, saturated to 0-255.
//
// Compile-time constants (trtssd/preprocess/options.py, kernel_defines):
//   YUV                 1: 4:2:0 semi-planar (NV12/NV21: Y plane, then interleaved chroma
//                       pairs at FrameDesc c0), 2: 4:2:0 planar (I420/YV12: U plane at c0, V
//                       plane at c1), 3: packed 4:2:2 (YUYV/UYVY: 4-byte macropixels)
//   YUV_U, YUV_V        byte of U and V in a chroma pair (1) or a macropixel (3)
//   YUV_Y0, YUV_Y1      byte of the first and second Y in a macropixel (3)
//   YUV_CY, YUV_CUB, YUV_CUG, YUV_CVG, YUV_CVR, YUV_YOFF   the matrix and range:
//       R = (max(Y - YOFF, 0) CY + CVR (V - 128)) >> SHIFT, G: + CUG (U - 128) + CVG (V - 128),
//       B: + CUB (U - 128), each with 2^(SHIFT - 1) added before the shift
#ifndef YUV_SHIFT
#define YUV_SHIFT 20
#endif
#if YUV == 1 || YUV == 3
#if !defined(YUV_U) || !defined(YUV_V)
#error "YUV 1 and 3 need YUV_U and YUV_V"
#endif
#endif
#if YUV == 3 && (!defined(YUV_Y0) || !defined(YUV_Y1))
#error "YUV 3 needs YUV_Y0 and YUV_Y1"
#endif
#if !defined(YUV_CY) || !defined(YUV_CUB) || !defined(YUV_CUG) || !defined(YUV_CVG) || \
    !defined(YUV_CVR) || !defined(YUV_YOFF)
#error "YUV needs its coefficients YUV_CY, YUV_CUB, YUV_CUG, YUV_CVG, YUV_CVR, YUV_YOFF"
#endif

__device__ __forceinline__ float yuv_sat(int v)
{
    return (float)min(max(v >> YUV_SHIFT, 0), 255);
}

// rgb[0..2] = R, G, B of pixel (x, y): Y from `base` (rows `pitch` apart), chroma from c0 (rows
// c0_pitch apart) and, planar, c1 (c1_pitch); 4:2:2 reads everything from base.
__device__ __forceinline__ void yuv_pixel(const unsigned char* base, long long pitch,
                                          const unsigned char* c0, long long c0_pitch,
                                          const unsigned char* c1, long long c1_pitch,
                                          int x, int y, float* rgb)
{
#if YUV == 3
    const unsigned char* m = base + (long long)y * pitch + (long long)(x >> 1) * 4;
    const int Y = __ldg(m + ((x & 1) ? YUV_Y1 : YUV_Y0));
    const int U = __ldg(m + YUV_U), V = __ldg(m + YUV_V);
#else
    const int Y = __ldg(base + (long long)y * pitch + x);
#if YUV == 1
    const unsigned char* c = c0 + (long long)(y >> 1) * c0_pitch + (long long)(x >> 1) * 2;
    const int U = __ldg(c + YUV_U), V = __ldg(c + YUV_V);
#else
    const int U = __ldg(c0 + (long long)(y >> 1) * c0_pitch + (x >> 1));
    const int V = __ldg(c1 + (long long)(y >> 1) * c1_pitch + (x >> 1));
#endif
#endif
    const int yy = max(Y - YUV_YOFF, 0) * YUV_CY + (1 << (YUV_SHIFT - 1));
    const int u = U - 128, v = V - 128;
    rgb[0] = yuv_sat(yy + YUV_CVR * v);
    rgb[1] = yuv_sat(yy + YUV_CUG * u + YUV_CVG * v);
    rgb[2] = yuv_sat(yy + YUV_CUB * u);
}
