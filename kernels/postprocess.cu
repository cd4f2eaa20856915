// SSD postprocessing on the GPU: best class per anchor, score threshold, box decoding and
// TFLite's "fast" (class-agnostic, one class per anchor) greedy NMS.
//
// The semantics are those of trtssd.postprocess.postprocess_cpu (the NumPy reference); see
// that module's docstring. Two kernels, enqueued back to back on one stream:
//
//   ssd_best_class  grid (ceil(A / TILE_A), N), block TILE_A * PARTS threads.
//       Stages a tile of TILE_A anchors' score rows ([TILE_A, NUM_CLASSES] floats, contiguous
//       in memory) into shared memory with coalesced loads, then PARTS threads per anchor
//       take the first maximum over the non-background columns 1..NUM_CLASSES-1 (each part a
//       strided subset of columns; parts merged by value, then by the lower column). Writes
//       best_score[N, A] and best_class[N, A]. This pass reads all the scores (~700 KB per
//       frame for the COCO SSD), so it spreads over many blocks instead of one per frame.
//
//   ssd_nms  grid (N), block NMS_THREADS threads: one block per frame.
//       1. compacts anchors with best_score >= score_threshold into shared memory
//          (atomicAdd on a shared counter: the order is arbitrary, the sort fixes it);
//       2. bitonic-sorts them by (score descending, anchor index ascending): a total order,
//          so the result is deterministic and equals a stable sort by score;
//       3. each thread decodes the boxes of the sorted positions it owns
//          (p = threadIdx.x + k * NMS_THREADS) into registers;
//       4. greedy NMS: every thread scans the shared "suppressed" flags for the next live
//          position i (all threads read the same flags, so all find the same i); the owner of
//          i writes the output row and publishes its box; barrier; every thread tests its
//          own live positions > i against it (IoU > iou_threshold suppresses); barrier.
//          Stops after max_det kept boxes or when no live position is left.
//       Output per frame: out[f * OUT_STRIDE + 0] = kept count, [1] = candidate count,
//       then rows of ROW floats from HEADER: ymin, xmin, ymax, xmax (normalised), score,
//       class (score column), anchor index, 0. Only rows < count are written.
//
// No warp intrinsics and no assumption of warp-synchronous execution: every exchange goes
// through shared memory and __syncthreads (the CPU shim runs threads as fibers).
// Compile-time constants come as #defines from trtssd.postprocess.kernel_defines(spec);
// the variants CI compiles (the COCO SSD's, and two other shapes):
// trtssd-variants: {"NUM_CLASSES": 91, "TILE_A": 64, "PARTS": 4, "NMS_THREADS": 512, "MAX_CAND": 2048, "MAX_DET": 100} | {"NUM_CLASSES": 13, "TILE_A": 256, "PARTS": 1, "NMS_THREADS": 512, "MAX_CAND": 4096, "MAX_DET": 100} | {"NUM_CLASSES": 2, "TILE_A": 256, "PARTS": 1, "NMS_THREADS": 512, "MAX_CAND": 512, "MAX_DET": 100}

#ifndef NUM_CLASSES
#error "NUM_CLASSES (score columns, background included) must be defined"
#endif
#ifndef TILE_A
#define TILE_A 64
#endif
#ifndef PARTS
#define PARTS 4
#endif
#ifndef NMS_THREADS
#define NMS_THREADS 512
#endif
#ifndef MAX_CAND
#define MAX_CAND 2048
#endif
#ifndef MAX_DET
#define MAX_DET 100
#endif

#define BEST_THREADS (TILE_A * PARTS)
#define ROW 8
#define HEADER 8
#define OUT_STRIDE (HEADER + MAX_DET * ROW)
#define PER_THREAD (MAX_CAND / NMS_THREADS)
#define NO_CLASS 0x7fffffff

#if (MAX_CAND % NMS_THREADS) != 0
#error "MAX_CAND must be a multiple of NMS_THREADS"
#endif
#if (MAX_CAND & (MAX_CAND - 1)) != 0
#error "MAX_CAND must be a power of two (bitonic sort)"
#endif

extern "C" __global__ void ssd_best_class(const float* __restrict__ scores, int num_anchors,
                                          float* __restrict__ best_score,
                                          int* __restrict__ best_class)
{
    __shared__ float tile[TILE_A * NUM_CLASSES];
    __shared__ float part_score[PARTS * TILE_A];
    __shared__ int part_class[PARTS * TILE_A];

    const int frame = blockIdx.y;
    const int a0 = blockIdx.x * TILE_A;
    const int t = threadIdx.x;
    int na = num_anchors - a0;
    if (na > TILE_A) na = TILE_A;

    // Coalesced copy of the tile's rows: they are contiguous in [N, A, C].
    const float* src = scores + ((size_t)frame * num_anchors + a0) * NUM_CLASSES;
    const int nfloats = na * NUM_CLASSES;
    for (int i = t; i < nfloats; i += BEST_THREADS) tile[i] = src[i];
    __syncthreads();

    // Thread (a, g) scans columns 1 + g, 1 + g + PARTS, ... of anchor a. Within a warp the
    // anchors differ and the row stride NUM_CLASSES is odd for the COCO model (91), so the
    // shared reads fall in different banks.
    const int a = t % TILE_A;
    const int g = t / TILE_A;
    float best = -INFINITY;
    int cls = NO_CLASS;
    if (a < na) {
        const float* row = tile + a * NUM_CLASSES;
        for (int c = 1 + g; c < NUM_CLASSES; c += PARTS) {
            const float v = row[c];
            if (v > best) {  // strict: the first (lowest) column wins a tie, as TFLite's ArgMax
                best = v;
                cls = c;
            }
        }
    }
    part_score[g * TILE_A + a] = best;
    part_class[g * TILE_A + a] = cls;
    __syncthreads();

    if (g == 0 && a < na) {
        for (int q = 1; q < PARTS; ++q) {
            const float s = part_score[q * TILE_A + a];
            const int c = part_class[q * TILE_A + a];
            if (s > best || (s == best && c < cls)) {
                best = s;
                cls = c;
            }
        }
        const size_t o = (size_t)frame * num_anchors + a0 + a;
        best_score[o] = best;
        best_class[o] = cls;
    }
}

// IoU as TFLite computes it, in float: 0 when either box has no area.
__device__ float ssd_iou(float ay0, float ax0, float ay1, float ax1,
                         float by0, float bx0, float by1, float bx1)
{
    const float area_a = (ay1 - ay0) * (ax1 - ax0);
    const float area_b = (by1 - by0) * (bx1 - bx0);
    if (area_a <= 0.0f || area_b <= 0.0f) return 0.0f;
    const float iy0 = fmaxf(ay0, by0);
    const float ix0 = fmaxf(ax0, bx0);
    const float iy1 = fminf(ay1, by1);
    const float ix1 = fminf(ax1, bx1);
    const float inter = fmaxf(iy1 - iy0, 0.0f) * fmaxf(ix1 - ix0, 0.0f);
    return inter / (area_a + area_b - inter);
}

extern "C" __global__ void ssd_nms(const float* __restrict__ box_encodings,  // [N, A, 4]
                                   const float* __restrict__ anchors,        // [A, 4] yc xc h w
                                   const float* __restrict__ best_score,     // [N, A]
                                   const int* __restrict__ best_class,       // [N, A]
                                   int num_anchors, float score_threshold,
                                   float iou_threshold, float y_scale, float x_scale,
                                   float h_scale, float w_scale, int max_det,
                                   float* __restrict__ out)                  // [N, OUT_STRIDE]
{
    __shared__ float s_score[MAX_CAND];
    __shared__ int s_anchor[MAX_CAND];
    __shared__ unsigned char s_dead[MAX_CAND];
    __shared__ float s_kept_box[4];
    __shared__ int s_count;

    const int frame = blockIdx.x;
    const int t = threadIdx.x;
    const size_t base = (size_t)frame * num_anchors;

    if (t == 0) s_count = 0;
    __syncthreads();

    // 1. candidates: best score >= threshold (TFLite keeps score >= threshold).
    for (int a = t; a < num_anchors; a += NMS_THREADS) {
        const float s = best_score[base + a];
        if (s >= score_threshold) {
            const int p = atomicAdd(&s_count, 1);
            s_score[p] = s;
            s_anchor[p] = a;
        }
    }
    __syncthreads();
    const int n = s_count;
    int size = 1;
    while (size < n) size <<= 1;
    for (int p = n + t; p < size; p += NMS_THREADS) {  // padding sorts after every candidate
        s_score[p] = -INFINITY;
        s_anchor[p] = NO_CLASS;
    }
    for (int p = t; p < n; p += NMS_THREADS) s_dead[p] = 0;
    __syncthreads();

    // 2. bitonic sort of [0, size): "better" = higher score, then lower anchor index.
    for (int k = 2; k <= size; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = t; i < size; i += NMS_THREADS) {
                const int ixj = i ^ j;
                if (ixj > i) {
                    const float si = s_score[i], sj = s_score[ixj];
                    const int ai = s_anchor[i], aj = s_anchor[ixj];
                    const bool j_better = sj > si || (sj == si && aj < ai);
                    const bool i_better = si > sj || (si == sj && ai < aj);
                    // (i & k) == 0: this run ends best-first; else worst-first.
                    if (((i & k) == 0) ? j_better : i_better) {
                        s_score[i] = sj;
                        s_score[ixj] = si;
                        s_anchor[i] = aj;
                        s_anchor[ixj] = ai;
                    }
                }
            }
            __syncthreads();
        }
    }

    // 3. decode the owned positions into registers.
    float y0[PER_THREAD], x0[PER_THREAD], y1[PER_THREAD], x1[PER_THREAD];
#pragma unroll
    for (int k = 0; k < PER_THREAD; ++k) {
        const int p = t + k * NMS_THREADS;
        y0[k] = x0[k] = y1[k] = x1[k] = 0.0f;
        if (p < n) {
            const int a = s_anchor[p];
            const float* e = box_encodings + (base + a) * 4;
            const float* an = anchors + (size_t)a * 4;
            const float yc = e[0] / y_scale * an[2] + an[0];
            const float xc = e[1] / x_scale * an[3] + an[1];
            const float hh = 0.5f * expf(e[2] / h_scale) * an[2];
            const float hw = 0.5f * expf(e[3] / w_scale) * an[3];
            y0[k] = yc - hh;
            x0[k] = xc - hw;
            y1[k] = yc + hh;
            x1[k] = xc + hw;
        }
    }

    // 4. greedy NMS. pos, kept and i are the same in every thread (read from shared flags
    //    that only change between the two barriers of a round, and only at positions > i).
    float* out_f = out + (size_t)frame * OUT_STRIDE;
    int kept = 0;
    int pos = 0;
    while (kept < max_det) {
        while (pos < n && s_dead[pos]) ++pos;
        if (pos >= n) break;
        const int i = pos;
        if (i % NMS_THREADS == t) {
            const int ki = i / NMS_THREADS;
        #pragma unroll
    for (int k = 0; k < PER_THREAD; ++k) {
                if (k == ki) {
                    s_kept_box[0] = y0[k];
                    s_kept_box[1] = x0[k];
                    s_kept_box[2] = y1[k];
                    s_kept_box[3] = x1[k];
                    float* row = out_f + HEADER + kept * ROW;
                    const int a = s_anchor[i];
                    row[0] = y0[k];
                    row[1] = x0[k];
                    row[2] = y1[k];
                    row[3] = x1[k];
                    row[4] = s_score[i];
                    row[5] = (float)best_class[base + a];
                    row[6] = (float)a;
                    row[7] = 0.0f;
                }
            }
        }
        __syncthreads();
        const float ky0 = s_kept_box[0], kx0 = s_kept_box[1];
        const float ky1 = s_kept_box[2], kx1 = s_kept_box[3];
    #pragma unroll
    for (int k = 0; k < PER_THREAD; ++k) {
            const int p = t + k * NMS_THREADS;
            if (p > i && p < n && !s_dead[p]) {
                if (ssd_iou(ky0, kx0, ky1, kx1, y0[k], x0[k], y1[k], x1[k]) > iou_threshold)
                    s_dead[p] = 1;
            }
        }
        __syncthreads();
        ++kept;
        pos = i + 1;
    }
    if (t == 0) {
        out_f[0] = (float)kept;
        out_f[1] = (float)n;
        for (int h = 2; h < HEADER; ++h) out_f[h] = 0.0f;
    }
}
