// SSD postprocessing on the GPU: score activation, best class or (anchor, class) pairs, score
// threshold, box decoding, and greedy NMS (TFLite's class-agnostic "fast" NMS, or per class).
//
// The semantics are those of trtssd.postprocess.cpu (the NumPy reference); see that module's
// docstring. Up to three kernels, enqueued back to back on one stream (the host leaves out
// ssd_best_class where nothing needs it, and ssd_nms where METHOD is 'none'):
//
//   ssd_best_class  grid (ceil(A / TILE_A), N), block TILE_A * PARTS threads.
//       Stages a tile of TILE_A anchors' score rows ([TILE_A, NUM_CLASSES] floats, contiguous
//       in memory) into shared memory with coalesced loads, then PARTS threads per anchor
//       scan a strided subset of the columns each (parts merged by value, then by the lower
//       column). METHOD fast/none: the first maximum over the foreground columns (every
//       column but BACKGROUND), activated; writes best_score[N, A] and best_class[N, A].
//       METHOD per_class with softmax: the row's max and sum of exp(x - max) (best_score,
//       and best_class holding the sum's float bits), what ssd_sort needs to activate pairs.
//
//   ssd_sort  grid (N), block SORT_THREADS threads: one block per frame.
//       1. compacts the candidates into shared memory (atomicAdd on a shared counter: the
//          order is arbitrary, the sort fixes it): METHOD fast/none, anchors whose best score
//          passes the threshold (key = anchor); per_class, (anchor, foreground column) pairs
//          whose activated score passes it (key = anchor * NUM_CLASSES + column). At most
//          MAX_CAND are kept; the count of all is reported (the host refuses an overflow);
//       2. bitonic-sorts them by (score descending, key ascending): a total order, so the
//          result is deterministic and equals the reference's stable sort;
//       3. decodes the sorted candidates' boxes (BOX_FORM) into global scratch:
//          cand_box[N, MAX_CAND] (float4 ymin, xmin, ymax, xmax), cand_score, cand_key, zeroes
//          cand_rank (CAND_PER_CLASS), and writes cand_count[N] = the count of all;
//          METHOD none: writes the first MAX_DET rows of the output itself.
//
//   ssd_nms  grid (WORDS * (WORDS + 1) / 2, N), block 64 threads; WORDS = MAX_CAND / 64.
//       Block b is the tile (r, c), r <= c, of the suppression matrix: thread t computes the
//       64-bit word mask[i][c] of row i = 64 r + t, whose bit j is set when candidate
//       64 c + j > i has IoU > iou_threshold with candidate i (per_class: and the same
//       column). Tiles past the frame's candidate count exit at once (the grid is sized for
//       MAX_CAND: the host does not know the count). mask is [N, MAX_CAND, WORDS] uint64 in
//       global memory; only the words of rows < count in tiles c >= r are written, and only
//       those are read. CAND_PER_CLASS: each tile also counts, per column j, the earlier
//       candidates of j's class, and adds the counts into cand_rank[j] (the rank of j in its
//       class once every tile ran).
//       The last of a frame's tiles to finish (a counter per frame, after __threadfence, as
//       CUDA's threadFenceReduction sample does it) then runs the greedy walk over the
//       finished matrix, one chunk of 64 sorted candidates at a time (one launch fewer than a
//       kernel of its own). removed[w] (shared, thread w owns word w) holds the candidates
//       suppressed by the boxes kept in earlier chunks. Thread 0 walks the chunk's live bits
//       lowest first (ffs): keeps the candidate and clears the bits its diagonal word
//       suppresses (exactly the greedy order: a kept candidate only suppresses later ones).
//       Barrier. Each thread t then ORs into removed[t] (t > chunk) the rows of the boxes
//       just kept, while the next chunk's diagonal words (and, CAND_PER_CLASS, which of its
//       candidates rank past the cap) are prefetched. Barrier. Stops after max_det kept
//       boxes; the rows are then written by all threads.
//
//   Output per frame: out[f * OUT_STRIDE + 0] = kept count, [1] = candidate count (all, also
//   those past MAX_CAND), then rows of ROW floats from HEADER: ymin, xmin, ymax, xmax (model
//   units), score, class (score column), anchor index, 0. Only rows < count are written.
//
// No warp intrinsics and no assumption of warp-synchronous execution: every exchange goes
// through shared memory and __syncthreads (the CPU shim runs threads as fibers).
// Compile-time constants come as #defines from trtssd.postprocess.gpu.kernel_defines(spec);
// the variants CI compiles (the COCO SSD's, pytorch-ssd's, and other shapes):
// trtssd-variants: {"NUM_CLASSES": 91, "TILE_A": 64, "PARTS": 4, "SORT_THREADS": 1024, "MAX_CAND": 2048, "MAX_DET": 100} | {"NUM_CLASSES": 13, "TILE_A": 256, "PARTS": 1, "SORT_THREADS": 1024, "MAX_CAND": 4096, "MAX_DET": 100} | {"NUM_CLASSES": 21, "TILE_A": 256, "PARTS": 1, "SORT_THREADS": 1024, "MAX_CAND": 4096, "MAX_DET": 100, "BOX_FORM": 3, "METHOD": 1, "SCORE_INCLUSIVE": 0, "IOU_EPS": 1e-05, "CAND_PER_CLASS": 200} | {"NUM_CLASSES": 7, "TILE_A": 256, "PARTS": 1, "SORT_THREADS": 1024, "MAX_CAND": 4096, "MAX_DET": 100, "BOX_FORM": 4, "ACTIVATION": 2, "BACKGROUND": -1, "METHOD": 1} | {"NUM_CLASSES": 5, "TILE_A": 256, "PARTS": 1, "SORT_THREADS": 1024, "MAX_CAND": 128, "MAX_DET": 100, "BOX_FORM": 1, "ACTIVATION": 1, "METHOD": 2}

#ifndef INFINITY                // NVRTC has no math.h; nvcc and the CPU shim define it there
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NUM_CLASSES
#error "NUM_CLASSES (score columns, background included) must be defined"
#endif
#ifndef TILE_A
#define TILE_A 64
#endif
#ifndef PARTS
#define PARTS 4
#endif
#ifndef SORT_THREADS
#define SORT_THREADS 1024
#endif
#ifndef SORT_UNROLL
#define SORT_UNROLL 8       // per_class: score loads per thread in flight at once (ssd_sort)
#endif
#ifndef MAX_CAND
#define MAX_CAND 2048
#endif
#ifndef MAX_DET
#define MAX_DET 100
#endif
#ifndef BOX_FORM
#define BOX_FORM 0          // 0 encoded yxhw, 1 encoded xywh, 2 yxyx, 3 xyxy, 4 cxcywh
#endif
#ifndef ACTIVATION
#define ACTIVATION 0        // 0 none, 1 sigmoid, 2 softmax
#endif
#ifndef BACKGROUND
#define BACKGROUND 0        // the score column that is never a detection; -1: none
#endif
#ifndef METHOD
#define METHOD 0            // 0 fast (best class, class-agnostic), 1 per_class, 2 none
#endif
#ifndef SCORE_INCLUSIVE
#define SCORE_INCLUSIVE 1   // candidates need score >= threshold (1) or > threshold (0)
#endif
#ifndef IOU_EPS
#define IOU_EPS 0.0f        // added to the IoU's denominator
#endif
#ifndef CAND_PER_CLASS
#define CAND_PER_CLASS 0    // per_class: only the best this many of each class enter NMS
#endif

#define BEST_THREADS (TILE_A * PARTS)
#define ROW 8
#define HEADER 8
#define OUT_STRIDE (HEADER + MAX_DET * ROW)
#define BITS 64                        // candidates per mask word = threads of mask/scan blocks
#define WORDS (MAX_CAND / BITS)        // mask words per row
#define NO_CLASS 0x7fffffff

#if (MAX_CAND & (MAX_CAND - 1)) != 0 || MAX_CAND < BITS || MAX_CAND > BITS * BITS
#error "MAX_CAND must be a power of two in [64, 4096] (bitonic sort; one scan thread per word)"
#endif

#if METHOD != 1 && CAND_PER_CLASS != 0
#error "CAND_PER_CLASS applies to the per-class method (METHOD 1) only"
#endif

typedef unsigned long long u64;

#ifdef TRTSSD_CPU_SHIM
// The shim has no rounding intrinsics; g++ on x86-64 without -mfma does not contract.
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline int ssd_ffsll(u64 x) { return __builtin_ffsll((long long)x); }
#define SSD_LDCG(p) (*(p))
#else
__device__ __forceinline__ int ssd_ffsll(u64 x) { return __ffsll((long long)x); }
#define SSD_LDCG(p) __ldcg(p)     // through L2: data other blocks of this launch wrote
#endif

__device__ __forceinline__ bool ssd_passes(float s, float threshold)
{
#if SCORE_INCLUSIVE
    return s >= threshold;
#else
    return s > threshold;
#endif
}

__device__ __forceinline__ float ssd_sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

extern "C" __global__ void ssd_best_class(const float* __restrict__ scores, int num_anchors,
                                          float* __restrict__ best_score,
                                          int* __restrict__ best_class)
{
#if METHOD == 1 && ACTIVATION != 2
    // per_class without softmax: the pairs are activated where they are read (ssd_sort), so
    // this kernel is not launched there (trtssd.postprocess.gpu.kernel_steps).
}
#else
    __shared__ float tile[TILE_A * NUM_CLASSES];
    __shared__ float part_score[PARTS * TILE_A];
    __shared__ int part_class[PARTS * TILE_A];
#if ACTIVATION == 2
    __shared__ float part_max[PARTS * TILE_A];
#endif

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

    // Thread (a, g) scans columns g, g + PARTS, ... of anchor a. Within a warp the anchors
    // differ and the row stride NUM_CLASSES is odd for the COCO model (91), so the shared
    // reads fall in different banks.
    const int a = t % TILE_A;
    const int g = t / TILE_A;
    const float* row = tile + a * NUM_CLASSES;
    float best = -INFINITY;
    int cls = NO_CLASS;
#if ACTIVATION == 2
    float mx = -INFINITY;
#endif
    if (a < na) {
        for (int c = g; c < NUM_CLASSES; c += PARTS) {
            const float v = row[c];
#if ACTIVATION == 2
            mx = fmaxf(mx, v);
#endif
            // strict: the first (lowest) column wins a tie, as TFLite's ArgMax
            if (c != BACKGROUND && v > best) {
                best = v;
                cls = c;
            }
        }
    }
    part_score[g * TILE_A + a] = best;
    part_class[g * TILE_A + a] = cls;
#if ACTIVATION == 2
    part_max[g * TILE_A + a] = mx;
#endif
    __syncthreads();

#if ACTIVATION == 2
    // softmax: the row max over all parts, then each part's sum of exp(x - max).
    for (int q = 0; q < PARTS; ++q) mx = fmaxf(mx, part_max[q * TILE_A + a]);
    float sum = 0.0f;
    if (a < na) {
        for (int c = g; c < NUM_CLASSES; c += PARTS) sum += expf(row[c] - mx);
    }
    __syncthreads();              // every part read part_max: reuse it for the sums
    part_max[g * TILE_A + a] = sum;
    __syncthreads();
#endif

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
#if ACTIVATION == 2
        float total = 0.0f;
        for (int q = 0; q < PARTS; ++q) total += part_max[q * TILE_A + a];
#endif
#if METHOD == 1
#if ACTIVATION == 2
        best_score[o] = mx;
        best_class[o] = __float_as_int(total);
#endif
#else
#if ACTIVATION == 1
        best = ssd_sigmoid(best);
#elif ACTIVATION == 2
        best = expf(best - mx) / total;
#endif
        best_score[o] = best;
        best_class[o] = cls;
#endif
    }
}
#endif

// IoU as TFLite computes it, in float: 0 when either box has no area. The _rn intrinsics
// keep nvcc from fusing a product into an FMA, so the rounding is NumPy's, bit for bit.
__device__ __forceinline__ float ssd_area(float4 b)
{
    return __fmul_rn(b.z - b.x, b.w - b.y);
}

__device__ __forceinline__ float ssd_iou(float4 a, float area_a, float4 b, float area_b)
{
    if (area_a <= 0.0f || area_b <= 0.0f) return 0.0f;
    const float iy0 = fmaxf(a.x, b.x);
    const float ix0 = fmaxf(a.y, b.y);
    const float iy1 = fminf(a.z, b.z);
    const float ix1 = fminf(a.w, b.w);
    const float inter = __fmul_rn(fmaxf(iy1 - iy0, 0.0f), fmaxf(ix1 - ix0, 0.0f));
    float uni = __fsub_rn(__fadd_rn(area_a, area_b), inter);
    if (IOU_EPS != 0.0f) uni = __fadd_rn(uni, IOU_EPS);
    return __fdiv_rn(inter, uni);
}

// One anchor's box, (ymin, xmin, ymax, xmax) in the model's units, from its row of the box
// output: decoded against its anchor (yc, xc, h, w) for the encoded forms, converted otherwise.
__device__ __forceinline__ float4 ssd_box(const float* __restrict__ e,
                                          const float* __restrict__ an, float y_scale,
                                          float x_scale, float h_scale, float w_scale)
{
#if BOX_FORM <= 1
#if BOX_FORM == 0
    const float ty = e[0], tx = e[1], th = e[2], tw = e[3];
#else
    const float tx = e[0], ty = e[1], tw = e[2], th = e[3];
#endif
    const float yc = ty / y_scale * an[2] + an[0];
    const float xc = tx / x_scale * an[3] + an[1];
    const float hh = 0.5f * expf(th / h_scale) * an[2];
    const float hw = 0.5f * expf(tw / w_scale) * an[3];
    return make_float4(yc - hh, xc - hw, yc + hh, xc + hw);
#elif BOX_FORM == 2
    return make_float4(e[0], e[1], e[2], e[3]);
#elif BOX_FORM == 3
    return make_float4(e[1], e[0], e[3], e[2]);
#else
    const float hw = __fmul_rn(e[2], 0.5f);
    const float hh = __fmul_rn(e[3], 0.5f);
    return make_float4(__fsub_rn(e[1], hh), __fsub_rn(e[0], hw), __fadd_rn(e[1], hh),
                       __fadd_rn(e[0], hw));
#endif
}

// The anchor and score column of a candidate's key (see ssd_sort).
__device__ __forceinline__ int ssd_key_anchor(int key)
{
#if METHOD == 1
    return key / NUM_CLASSES;
#else
    return key;
#endif
}

// The greedy step of a chunk of 64 sorted candidates starting at ``lo`` (one thread): keep each
// live candidate lowest first, and clear the later ones its diagonal mask word suppresses.
// ``diag[b]`` is candidate lo + b's word of this chunk. Returns the new kept count.
__device__ __forceinline__ int ssd_keep_chunk(u64 live, int lo, int kept, int max_det, int* keep,
                                              const u64* diag)
{
    while (live != 0ull && kept < max_det) {
        const int b = ssd_ffsll(live) - 1;
        keep[kept++] = lo + b;
        live &= ~(diag[b] | (1ull << b));
    }
    return kept;
}

// One output row: ymin, xmin, ymax, xmax, score, class, anchor, 0.
__device__ __forceinline__ void ssd_write_row(float* row, float4 b, float score, int cls, int a)
{
    row[0] = b.x;
    row[1] = b.y;
    row[2] = b.z;
    row[3] = b.w;
    row[4] = score;
    row[5] = (float)cls;
    row[6] = (float)a;
    row[7] = 0.0f;
}

// A candidate's score column: its key's (per_class) or its anchor's best class.
__device__ __forceinline__ int ssd_key_class(int key, const int* __restrict__ best_class,
                                             size_t base)
{
#if METHOD == 1
    return key % NUM_CLASSES;
#else
    return best_class[base + key];
#endif
}

extern "C" __global__ void __launch_bounds__(SORT_THREADS)
ssd_sort(const float* __restrict__ box_encodings,  // [N, A, 4]
         const float* __restrict__ anchors,        // [A, 4] yc xc h w
         const float* __restrict__ scores,         // [N, A, NUM_CLASSES] (per_class reads it)
         const float* __restrict__ best_score,     // [N, A]
         const int* __restrict__ best_class,       // [N, A]
         int num_anchors, float score_threshold,
         float y_scale, float x_scale, float h_scale, float w_scale, int max_det,
         float4* __restrict__ cand_box,           // [N, MAX_CAND]
         float* __restrict__ cand_score,          // [N, MAX_CAND]
         int* __restrict__ cand_key,              // [N, MAX_CAND]
         int* __restrict__ cand_count,            // [N]: all candidates, also past MAX_CAND
         int* __restrict__ cand_rank,             // [N, MAX_CAND] (CAND_PER_CLASS)
         float* __restrict__ out)                 // [N, OUT_STRIDE]
{
    __shared__ float s_score[MAX_CAND];
    __shared__ int s_key[MAX_CAND];
    __shared__ int s_count;

    const int frame = blockIdx.x;
    const int t = threadIdx.x;
    const size_t base = (size_t)frame * num_anchors;

    if (t == 0) s_count = 0;
    __syncthreads();

    // 1. candidates that pass the threshold.
#if METHOD == 1
    // One block reads every (anchor, class) score of its frame: SORT_UNROLL loads per thread
    // are issued before any is tested, so they are in flight together (a few memory round
    // trips per frame, not one per SORT_THREADS scores). The candidates' order here does not
    // matter: the sort below orders them totally.
    const float* fs = scores + base * NUM_CLASSES;
    const int pairs = num_anchors * NUM_CLASSES;
    for (int q0 = t; q0 < pairs; q0 += SORT_THREADS * SORT_UNROLL) {
        float v[SORT_UNROLL];
#pragma unroll
        for (int u = 0; u < SORT_UNROLL; ++u) {
            const int q = q0 + u * SORT_THREADS;
            v[u] = q < pairs ? fs[q] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < SORT_UNROLL; ++u) {
            const int q = q0 + u * SORT_THREADS;
            if (q >= pairs) break;
            const int c = q % NUM_CLASSES;
            if (c == BACKGROUND) continue;
            float s = v[u];
#if ACTIVATION == 1
            s = ssd_sigmoid(s);
#elif ACTIVATION == 2
            const int a = q / NUM_CLASSES;
            s = expf(s - best_score[base + a]) / __int_as_float(best_class[base + a]);
#endif
            if (ssd_passes(s, score_threshold)) {
                const int p = atomicAdd(&s_count, 1);
                if (p < MAX_CAND) {
                    s_score[p] = s;
                    s_key[p] = q;
                }
            }
        }
    }
#else
    for (int a = t; a < num_anchors; a += SORT_THREADS) {
        const float s = best_score[base + a];
        if (ssd_passes(s, score_threshold)) {
            const int p = atomicAdd(&s_count, 1);
            s_score[p] = s;
            s_key[p] = a;
        }
    }
#endif
    __syncthreads();
    const int total = s_count;
    const int n = min(total, MAX_CAND);
    int size = 1;
    while (size < n) size <<= 1;
    for (int p = n + t; p < size; p += SORT_THREADS) {  // padding sorts after every candidate
        s_score[p] = -INFINITY;
        s_key[p] = NO_CLASS;
    }
    __syncthreads();

    // 2. bitonic sort of [0, size): "better" = higher score, then lower key. Pair q of a
    //    stage is (i, i | j) with i = q with a 0 bit inserted at bit j.
    const int half = size >> 1;
    for (int k = 2; k <= size; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int q = t; q < half; q += SORT_THREADS) {
                const int i = ((q & ~(j - 1)) << 1) | (q & (j - 1));
                const int ixj = i | j;
                const float si = s_score[i], sj = s_score[ixj];
                const int ai = s_key[i], aj = s_key[ixj];
                const bool j_better = sj > si || (sj == si && aj < ai);
                const bool i_better = si > sj || (si == sj && ai < aj);
                // (i & k) == 0: this run ends best-first; else worst-first.
                if (((i & k) == 0) ? j_better : i_better) {
                    s_score[i] = sj;
                    s_score[ixj] = si;
                    s_key[i] = aj;
                    s_key[ixj] = ai;
                }
            }
            __syncthreads();
        }
    }

    // 3. the sorted candidates' boxes.
#if METHOD == 2
    // no NMS: the first max_det candidates are the detections.
    const int kept = min(n, max_det);
    float* out_f = out + (size_t)frame * OUT_STRIDE;
    for (int p = t; p < kept; p += SORT_THREADS) {
        const int a = s_key[p];
        const float4 b = ssd_box(box_encodings + (base + a) * 4, anchors + (size_t)a * 4,
                                 y_scale, x_scale, h_scale, w_scale);
        ssd_write_row(out_f + HEADER + p * ROW, b, s_score[p], best_class[base + a], a);
    }
    if (t == 0) {
        out_f[0] = (float)kept;
        out_f[1] = (float)total;
        for (int h = 2; h < HEADER; ++h) out_f[h] = 0.0f;
        cand_count[frame] = total;
    }
#else
    const size_t cbase = (size_t)frame * MAX_CAND;
    for (int p = t; p < n; p += SORT_THREADS) {
        const int key = s_key[p];
        const int a = ssd_key_anchor(key);
        cand_box[cbase + p] = ssd_box(box_encodings + (base + a) * 4, anchors + (size_t)a * 4,
                                      y_scale, x_scale, h_scale, w_scale);
        cand_score[cbase + p] = s_score[p];
        cand_key[cbase + p] = key;
#if CAND_PER_CLASS > 0
        cand_rank[cbase + p] = 0;
#endif
    }
    if (t == 0) cand_count[frame] = total;
#endif
}

// The greedy walk over a frame's finished suppression matrix (64 threads; see ssd_nms).
// Its inputs were written by other blocks of the same launch: they are read through L2
// (SSD_LDCG), never through the read-only or L1 caches.
__device__ void ssd_scan_frame(int frame, int total, const float4* __restrict__ cand_box,
                               const float* __restrict__ cand_score,
                               const int* __restrict__ cand_key, const u64* mask,
                               const int* __restrict__ best_class, const int* cand_rank,
                               int num_anchors, int max_det, float* __restrict__ out)
{
    __shared__ u64 s_removed[WORDS];
    __shared__ u64 s_diag[2][BITS];
    __shared__ int s_keep[MAX_DET];
    __shared__ int s_kept;
    __shared__ int s_first;
#if CAND_PER_CLASS > 0
    __shared__ unsigned int s_over[2][2];  // per chunk: candidates ranked past the cap
#endif

    const int t = threadIdx.x;
    const int n = min(total, MAX_CAND);
    const int nb = (n + BITS - 1) / BITS;
    const size_t cbase = (size_t)frame * MAX_CAND;
    const u64* fmask = mask + cbase * WORDS;

    if (t < WORDS) s_removed[t] = 0;
    if (t < n) s_diag[0][t] = SSD_LDCG(fmask + (size_t)t * WORDS);
#if CAND_PER_CLASS > 0
    if (t < 4) s_over[t >> 1][t & 1] = 0u;
#endif
    if (t == 0) {
        s_kept = 0;
        s_first = 0;
    }
    __syncthreads();
#if CAND_PER_CLASS > 0
    if (t < n && SSD_LDCG(cand_rank + cbase + t) >= CAND_PER_CLASS)
        atomicOr(&s_over[0][t >> 5], 1u << (t & 31));
    __syncthreads();
#endif

    for (int c = 0; c < nb; ++c) {
        if (t == 0) {
            int kept = s_kept;
            const int lo = c * BITS;
            const int len = min(BITS, n - lo);
            const u64 valid = len == BITS ? ~0ull : ((1ull << len) - 1ull);
            u64 live = ~s_removed[c] & valid;
#if CAND_PER_CLASS > 0
            live &= ~((u64)s_over[c & 1][0] | ((u64)s_over[c & 1][1] << 32));
            s_over[c & 1][0] = 0u;      // free for chunk c + 2's prefetch
            s_over[c & 1][1] = 0u;
#endif
            s_first = kept;
            s_kept = ssd_keep_chunk(live, lo, kept, max_det, s_keep, s_diag[c & 1]);
        }
        __syncthreads();
        const int kept = s_kept;
        if (kept >= max_det) break;   // the same in every thread
        const int first = s_first;
        // Prefetch the next chunk's diagonal words; OR the new rows into the later words.
        const int nrow = (c + 1) * BITS + t;
        if (nrow < n) {
            s_diag[(c + 1) & 1][t] = SSD_LDCG(fmask + (size_t)nrow * WORDS + c + 1);
#if CAND_PER_CLASS > 0
            if (SSD_LDCG(cand_rank + cbase + nrow) >= CAND_PER_CLASS)
                atomicOr(&s_over[(c + 1) & 1][t >> 5], 1u << (t & 31));
#endif
        }
        // The (kept row, later word) pairs are spread over the whole block: thread t takes
        // word c + 1 + t % later of every groups-th new row, so its loads are independent and
        // in flight together (one L2 round trip per few rows, not one per kept row).
        const int later = nb - c - 1;
        if (later > 0) {
            const int groups = BITS / later;             // >= 1: later < WORDS <= BITS
            const int g = t / later;
            if (g < groups) {
                const int w = c + 1 + t % later;
                u64 acc = 0;
#pragma unroll 4
                for (int k = first + g; k < kept; k += groups)
                    acc |= SSD_LDCG(fmask + (size_t)s_keep[k] * WORDS + w);
                if (acc != 0) atomicOr(&s_removed[w], acc);
            }
        }
        __syncthreads();
    }

    const int kept = s_kept;
    float* out_f = out + (size_t)frame * OUT_STRIDE;
    const size_t base = (size_t)frame * num_anchors;
    for (int k = t; k < kept; k += BITS) {
        const int p = s_keep[k];
        const int key = cand_key[cbase + p];
        ssd_write_row(out_f + HEADER + k * ROW, cand_box[cbase + p], cand_score[cbase + p],
                      ssd_key_class(key, best_class, base), ssd_key_anchor(key));
    }
    if (t == 0) {
        out_f[0] = (float)kept;
        out_f[1] = (float)total;
        for (int h = 2; h < HEADER; ++h) out_f[h] = 0.0f;
    }
}

extern "C" __global__ void ssd_nms(const float4* __restrict__ cand_box,   // [N, MAX_CAND]
                                   const float* __restrict__ cand_score,  // [N, MAX_CAND]
                                   const int* __restrict__ cand_key,      // [N, MAX_CAND]
                                   const int* __restrict__ cand_count,    // [N]
                                   float iou_threshold,
                                   u64* mask,                         // [N, MAX_CAND, WORDS]
                                   int* cand_rank,                    // [N, MAX_CAND]
                                   const int* __restrict__ best_class,    // [N, A]
                                   int num_anchors, int max_det,
                                   unsigned int* tiles_done,          // [N], zero between runs
                                   float* __restrict__ out)               // [N, OUT_STRIDE]
{
    __shared__ float4 s_box[BITS];
    __shared__ float s_area[BITS];
#if METHOD == 1
    __shared__ int s_cls[BITS];
#endif
#if CAND_PER_CLASS > 0
    __shared__ int s_cnt[BITS];
#endif
    __shared__ bool s_last;

    const int frame = blockIdx.y;
    const int t = threadIdx.x;
    const int total = cand_count[frame];
    const int n = min(total, MAX_CAND);
    const int nb = (n + BITS - 1) / BITS;
    // Tile b -> (r, c), c >= r: row r of the triangle holds WORDS - r tiles.
    int r = 0;
    int rem = blockIdx.x;
    while (rem >= WORDS - r) {
        rem -= WORDS - r;
        ++r;
    }
    const int c = r + rem;
    if (nb == 0) {          // no candidate: tile 0 writes the empty result
        if (blockIdx.x == 0 && t == 0) {
            float* out_f = out + (size_t)frame * OUT_STRIDE;
            out_f[0] = 0.0f;
            out_f[1] = (float)total;
            for (int h = 2; h < HEADER; ++h) out_f[h] = 0.0f;
        }
        return;
    }
    if (c >= nb) return;   // the whole block, before any barrier: not one of the frame's tiles

    const size_t cbase = (size_t)frame * MAX_CAND;
    const int col0 = c * BITS;
    const int ncol = min(BITS, n - col0);
    if (t < ncol) {
        const float4 b = cand_box[cbase + col0 + t];
        s_box[t] = b;
        s_area[t] = ssd_area(b);
#if METHOD == 1
        s_cls[t] = cand_key[cbase + col0 + t] % NUM_CLASSES;
#endif
    }
#if CAND_PER_CLASS > 0
    s_cnt[t] = 0;
#endif
    __syncthreads();

    const int i = r * BITS + t;
    if (i < n) {
        const float4 b = cand_box[cbase + i];
        const float area = ssd_area(b);
#if METHOD == 1
        const int cls = cand_key[cbase + i] % NUM_CLASSES;
#endif
        u64 word = 0;
        for (int j = (r == c) ? t + 1 : 0; j < ncol; ++j) {
#if METHOD == 1
            if (s_cls[j] != cls) continue;
#if CAND_PER_CLASS > 0
            atomicAdd(&s_cnt[j], 1);    // i < 64 c + j, of j's class
#endif
#endif
            if (ssd_iou(b, area, s_box[j], s_area[j]) > iou_threshold) word |= 1ull << j;
        }
        mask[(cbase + i) * WORDS + c] = word;
    }
#if CAND_PER_CLASS > 0
    __syncthreads();
    if (t < ncol && s_cnt[t] != 0) atomicAdd(&cand_rank[cbase + col0 + t], s_cnt[t]);
#endif

    // The last of the frame's nb (nb + 1) / 2 tiles to finish runs the greedy scan: every
    // thread's writes are made visible device-wide first, then one counter per frame.
    __threadfence();
    __syncthreads();
    if (t == 0) {
        const unsigned int tiles = (unsigned int)(nb * (nb + 1) / 2);
        const unsigned int prev = atomicAdd(&tiles_done[frame], 1u);
        s_last = prev == tiles - 1u;
        if (s_last) tiles_done[frame] = 0u;     // ready for the next launch
    }
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    ssd_scan_frame(frame, total, cand_box, cand_score, cand_key, mask, best_class, cand_rank,
                   num_anchors, max_det, out);
}
