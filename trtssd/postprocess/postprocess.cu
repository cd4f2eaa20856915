// SSD postprocessing on the GPU: best class per anchor, score threshold, box decoding and
// TFLite's "fast" (class-agnostic, one class per anchor) greedy NMS.
//
// The semantics are those of trtssd.postprocess.postprocess_cpu (the NumPy reference); see
// that module's docstring. Four kernels, enqueued back to back on one stream:
//
//   ssd_best_class  grid (ceil(A / TILE_A), N), block TILE_A * PARTS threads.
//       Stages a tile of TILE_A anchors' score rows ([TILE_A, NUM_CLASSES] floats, contiguous
//       in memory) into shared memory with coalesced loads, then PARTS threads per anchor
//       take the first maximum over the non-background columns 1..NUM_CLASSES-1 (each part a
//       strided subset of columns; parts merged by value, then by the lower column). Writes
//       best_score[N, A] and best_class[N, A]. This pass reads all the scores (~700 KB per
//       frame for the COCO SSD), so it spreads over many blocks instead of one per frame.
//
//   ssd_sort  grid (N), block SORT_THREADS threads: one block per frame.
//       1. compacts anchors with best_score >= score_threshold into shared memory
//          (atomicAdd on a shared counter: the order is arbitrary, the sort fixes it);
//       2. bitonic-sorts them by (score descending, anchor index ascending): a total order,
//          so the result is deterministic and equals a stable sort by score;
//       3. n > FUSED_MAX candidates: decodes the sorted candidates into global scratch:
//          cand_box[N, MAX_CAND] (float4 ymin, xmin, ymax, xmax), cand_score, cand_anchor,
//          and cand_count[N] = n, for the two kernels below;
//       3'. n <= FUSED_MAX (512; the host cannot know n, so the GPU decides per frame): the
//          whole NMS in this block. The candidates are decoded into shared memory, the
//          suppression matrix (n x ceil(n / 64) words, 32 KB at 512) is computed there as
//          ssd_nms_mask computes it, the greedy scan of ssd_nms_scan runs over it, the output
//          rows are written, and cand_count[N] = -1 tells the two kernels below to exit at
//          once. One kernel instead of three (each launch costs several us on its own).
//
//   ssd_nms_mask  grid (WORDS * (WORDS + 1) / 2, N), block 64 threads; WORDS = MAX_CAND / 64.
//       Block b is the tile (r, c), r <= c, of the suppression matrix: thread t computes the
//       64-bit word mask[i][c] of row i = 64 r + t, whose bit j is set when candidate
//       64 c + j > i has IoU > iou_threshold with candidate i. Tiles past the frame's
//       candidate count exit at once (the grid is sized for MAX_CAND: the host does not know
//       the count). mask is [N, MAX_CAND, WORDS] uint64 in global memory; only the words of
//       rows < count in tiles c >= r are written, and only those are read.
//
//   ssd_nms_scan  grid (N), block 64 threads: the greedy walk over the matrix, one chunk of
//       64 sorted candidates at a time. removed[w] (shared, thread w owns word w) holds the
//       candidates suppressed by the boxes kept in earlier chunks. Thread 0 walks the chunk's
//       live bits lowest first (ffs): keeps the candidate and clears the bits its diagonal
//       word suppresses (exactly the greedy order: a kept candidate only suppresses later
//       ones). Barrier. Each thread t then ORs into removed[t] (t > chunk) the rows of the
//       boxes just kept, while the next chunk's diagonal words are prefetched. Barrier.
//       Stops after max_det kept boxes; the rows are then written by all threads.
//       Output per frame: out[f * OUT_STRIDE + 0] = kept count, [1] = candidate count,
//       then rows of ROW floats from HEADER: ymin, xmin, ymax, xmax (normalised), score,
//       class (score column), anchor index, 0. Only rows < count are written.
//
// No warp intrinsics and no assumption of warp-synchronous execution: every exchange goes
// through shared memory and __syncthreads (the CPU shim runs threads as fibers).
// ssd_nms_mask and ssd_nms_scan are still launched every time; frames done by the fused path
// (cand_count -1) cost them only a read and an exit.
// Compile-time constants come as #defines from trtssd.postprocess.kernel_defines(spec);
// the variants CI compiles (the COCO SSD's, and two other shapes):
// trtssd-variants: {"NUM_CLASSES": 91, "TILE_A": 64, "PARTS": 4, "SORT_THREADS": 1024, "MAX_CAND": 2048, "MAX_DET": 100, "FUSED_MAX": 512} | {"NUM_CLASSES": 13, "TILE_A": 256, "PARTS": 1, "SORT_THREADS": 1024, "MAX_CAND": 4096, "MAX_DET": 100, "FUSED_MAX": 512} | {"NUM_CLASSES": 2, "TILE_A": 256, "PARTS": 1, "SORT_THREADS": 1024, "MAX_CAND": 64, "MAX_DET": 100, "FUSED_MAX": 64} | {"NUM_CLASSES": 91, "TILE_A": 64, "PARTS": 4, "SORT_THREADS": 1024, "MAX_CAND": 2048, "MAX_DET": 100, "FUSED_MAX": 0}

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
#ifndef MAX_CAND
#define MAX_CAND 2048
#endif
#ifndef MAX_DET
#define MAX_DET 100
#endif
#ifndef FUSED_MAX
#define FUSED_MAX 512
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

#if FUSED_MAX < 0 || FUSED_MAX % BITS != 0 || FUSED_MAX > MAX_CAND || FUSED_MAX > SORT_THREADS
#error "FUSED_MAX must be a multiple of 64 in [0, min(MAX_CAND, SORT_THREADS)] (0: no fused path)"
#endif

typedef unsigned long long u64;

#ifdef TRTSSD_CPU_SHIM
// The shim has no rounding intrinsics; g++ on x86-64 without -mfma does not contract.
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline int ssd_ffsll(u64 x) { return __builtin_ffsll((long long)x); }
#else
__device__ __forceinline__ int ssd_ffsll(u64 x) { return __ffsll((long long)x); }
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
    return __fdiv_rn(inter, __fsub_rn(__fadd_rn(area_a, area_b), inter));
}

// The greedy step of a chunk of 64 sorted candidates starting at ``lo`` (one thread): keep each
// live candidate lowest first, and clear the later ones its diagonal mask word suppresses.
// ``diag[b * stride]`` is candidate lo + b's word of this chunk. Returns the new kept count.
__device__ __forceinline__ int ssd_keep_chunk(u64 live, int lo, int kept, int max_det, int* keep,
                                              const u64* diag, size_t stride)
{
    while (live != 0ull && kept < max_det) {
        const int b = ssd_ffsll(live) - 1;
        keep[kept++] = lo + b;
        live &= ~(diag[(size_t)b * stride] | (1ull << b));
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

// The fused path of ssd_sort (n <= FUSED_MAX candidates): the sorted candidates, their
// suppression matrix and the greedy scan all in shared memory, one block per frame.
#define FUSED_WORDS (FUSED_MAX / BITS)
#define SORT_BYTES (8 * MAX_CAND)                          // s_score + s_anchor
#define FUSED_BYTES (24 * FUSED_MAX + 8 * FUSED_MAX * FUSED_WORDS)
#define SORT_SMEM (SORT_BYTES > FUSED_BYTES ? SORT_BYTES : FUSED_BYTES)

extern "C" __global__ void __launch_bounds__(SORT_THREADS)
ssd_sort(const float* __restrict__ box_encodings,  // [N, A, 4]
         const float* __restrict__ anchors,        // [A, 4] yc xc h w
         const float* __restrict__ best_score,     // [N, A]
         const int* __restrict__ best_class,       // [N, A]
         int num_anchors, float score_threshold,
         float y_scale, float x_scale, float h_scale, float w_scale,
         float iou_threshold, int max_det,
         float4* __restrict__ cand_box,           // [N, MAX_CAND]
         float* __restrict__ cand_score,          // [N, MAX_CAND]
         int* __restrict__ cand_anchor,           // [N, MAX_CAND]
         int* __restrict__ cand_count,            // [N]; -1: done here (fused path)
         float* __restrict__ out)                 // [N, OUT_STRIDE]
{
    // One raw buffer: the sort's arrays, then (fused path) box/score/anchor/mask over them.
    __shared__ __align__(16) unsigned char s_raw[SORT_SMEM];
    __shared__ int s_count;
    float* s_score = (float*)s_raw;
    int* s_anchor = (int*)(s_raw + 4 * MAX_CAND);

    const int frame = blockIdx.x;
    const int t = threadIdx.x;
    const size_t base = (size_t)frame * num_anchors;

    if (t == 0) s_count = 0;
    __syncthreads();

    // 1. candidates: best score >= threshold (TFLite keeps score >= threshold).
    for (int a = t; a < num_anchors; a += SORT_THREADS) {
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
    for (int p = n + t; p < size; p += SORT_THREADS) {  // padding sorts after every candidate
        s_score[p] = -INFINITY;
        s_anchor[p] = NO_CLASS;
    }
    __syncthreads();

    // 2. bitonic sort of [0, size): "better" = higher score, then lower anchor index. Pair q
    //    of a stage is (i, i | j) with i = q with a 0 bit inserted at bit j.
    const int half = size >> 1;
    for (int k = 2; k <= size; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int q = t; q < half; q += SORT_THREADS) {
                const int i = ((q & ~(j - 1)) << 1) | (q & (j - 1));
                const int ixj = i | j;
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
            __syncthreads();
        }
    }

    if (FUSED_MAX == 0 || n > FUSED_MAX) {   // the same in every thread: s_count is shared
        // 3. decode the sorted candidates into the scratch arrays for ssd_nms_mask/_scan.
        const size_t cbase = (size_t)frame * MAX_CAND;
        for (int p = t; p < n; p += SORT_THREADS) {
            const int a = s_anchor[p];
            const float* e = box_encodings + (base + a) * 4;
            const float* an = anchors + (size_t)a * 4;
            const float yc = e[0] / y_scale * an[2] + an[0];
            const float xc = e[1] / x_scale * an[3] + an[1];
            const float hh = 0.5f * expf(e[2] / h_scale) * an[2];
            const float hw = 0.5f * expf(e[3] / w_scale) * an[3];
            cand_box[cbase + p] = make_float4(yc - hh, xc - hw, yc + hh, xc + hw);
            cand_score[cbase + p] = s_score[p];
            cand_anchor[cbase + p] = a;
        }
        if (t == 0) cand_count[frame] = n;
        return;
    }
#if FUSED_MAX > 0
    // Fused path: n <= FUSED_MAX <= SORT_THREADS, so thread p owns sorted candidate p.
    __shared__ u64 s_removed[FUSED_WORDS];
    __shared__ int s_keep[MAX_DET];
    __shared__ int s_kept;
    __shared__ int s_first;
    // 3'. move score and anchor to registers, then lay the candidates out anew over s_raw.
    float4* f_box = (float4*)s_raw;                                  // [FUSED_MAX]
    float* f_score = (float*)(s_raw + 16 * FUSED_MAX);               // [FUSED_MAX]
    int* f_anchor = (int*)(s_raw + 20 * FUSED_MAX);                  // [FUSED_MAX]
    u64* f_mask = (u64*)(s_raw + 24 * FUSED_MAX);                    // [FUSED_MAX, WORDS]
    float my_score = 0.0f;
    int my_anchor = 0;
    if (t < n) {
        my_score = s_score[t];
        my_anchor = s_anchor[t];
    }
    __syncthreads();
    if (t < n) {
        const int a = my_anchor;
        const float* e = box_encodings + (base + a) * 4;
        const float* an = anchors + (size_t)a * 4;
        const float yc = e[0] / y_scale * an[2] + an[0];
        const float xc = e[1] / x_scale * an[3] + an[1];
        const float hh = 0.5f * expf(e[2] / h_scale) * an[2];
        const float hw = 0.5f * expf(e[3] / w_scale) * an[3];
        f_box[t] = make_float4(yc - hh, xc - hw, yc + hh, xc + hw);
        f_score[t] = my_score;
        f_anchor[t] = a;
    }
    if (t < FUSED_WORDS) s_removed[t] = 0;
    if (t == 0) {
        s_kept = 0;
        s_first = 0;
    }
    __syncthreads();

    // 4'. the suppression matrix, as ssd_nms_mask computes it: item (i, w) is word w of row
    //     i, w >= i / 64 (only those are read), bit j: candidate 64 w + j > i has IoU >
    //     iou_threshold with candidate i.
    const int nb = (n + BITS - 1) / BITS;
    for (int q = t; q < n * nb; q += SORT_THREADS) {
        const int i = q / nb;
        const int w = q - i * nb;
        if (w < (i >> 6)) continue;
        const float4 b = f_box[i];
        const float area = ssd_area(b);
        const int col0 = w * BITS;
        const int ncol = min(BITS, n - col0);
        u64 word = 0;
        for (int j = (w == (i >> 6)) ? (i & (BITS - 1)) + 1 : 0; j < ncol; ++j) {
            const float4 o = f_box[col0 + j];
            if (ssd_iou(b, area, o, ssd_area(o)) > iou_threshold) word |= 1ull << j;
        }
        f_mask[i * FUSED_WORDS + w] = word;
    }
    __syncthreads();

    // 5'. the greedy scan of ssd_nms_scan over the shared matrix.
    for (int c = 0; c < nb; ++c) {
        if (t == 0) {
            int kept = s_kept;
            const int lo = c * BITS;
            const int len = min(BITS, n - lo);
            const u64 valid = len == BITS ? ~0ull : ((1ull << len) - 1ull);
            u64 live = ~s_removed[c] & valid;
            s_first = kept;
            s_kept = ssd_keep_chunk(live, lo, kept, max_det, s_keep,
                                    f_mask + (size_t)lo * FUSED_WORDS + c, FUSED_WORDS);
        }
        __syncthreads();
        const int kept = s_kept;
        if (kept >= max_det) break;   // the same in every thread
        const int first = s_first;
        if (t > c && t < nb) {
            u64 acc = 0;
            for (int k = first; k < kept; ++k) acc |= f_mask[s_keep[k] * FUSED_WORDS + t];
            s_removed[t] |= acc;
        }
        __syncthreads();
    }

    // 6'. the output rows, as ssd_nms_scan writes them.
    const int kept = s_kept;
    float* out_f = out + (size_t)frame * OUT_STRIDE;
    for (int k = t; k < kept; k += SORT_THREADS) {
        const int p = s_keep[k];
        const int a = f_anchor[p];
        ssd_write_row(out_f + HEADER + k * ROW, f_box[p], f_score[p], best_class[base + a], a);
    }
    if (t == 0) {
        out_f[0] = (float)kept;
        out_f[1] = (float)n;
        for (int h = 2; h < HEADER; ++h) out_f[h] = 0.0f;
        cand_count[frame] = -1;   // ssd_nms_mask and ssd_nms_scan skip this frame
    }
#endif
}

extern "C" __global__ void ssd_nms_mask(const float4* __restrict__ cand_box,   // [N, MAX_CAND]
                                        const int* __restrict__ cand_count,    // [N]
                                        float iou_threshold,
                                        u64* __restrict__ mask)           // [N, MAX_CAND, WORDS]
{
    __shared__ float4 s_box[BITS];
    __shared__ float s_area[BITS];

    const int frame = blockIdx.y;
    const int t = threadIdx.x;
    const int n = cand_count[frame];
    if (n < 0) return;     // done by ssd_sort's fused path: the whole block, before any barrier
    const int nb = (n + BITS - 1) / BITS;
    // Tile b -> (r, c), c >= r: row r of the triangle holds WORDS - r tiles.
    int r = 0;
    int rem = blockIdx.x;
    while (rem >= WORDS - r) {
        rem -= WORDS - r;
        ++r;
    }
    const int c = r + rem;
    if (c >= nb) return;   // the whole block: before any barrier

    const size_t cbase = (size_t)frame * MAX_CAND;
    const int col0 = c * BITS;
    const int ncol = min(BITS, n - col0);
    if (t < ncol) {
        const float4 b = cand_box[cbase + col0 + t];
        s_box[t] = b;
        s_area[t] = ssd_area(b);
    }
    __syncthreads();

    const int i = r * BITS + t;
    if (i < n) {
        const float4 b = cand_box[cbase + i];
        const float area = ssd_area(b);
        u64 word = 0;
        for (int j = (r == c) ? t + 1 : 0; j < ncol; ++j) {
            if (ssd_iou(b, area, s_box[j], s_area[j]) > iou_threshold) word |= 1ull << j;
        }
        mask[(cbase + i) * WORDS + c] = word;
    }
}

extern "C" __global__ void ssd_nms_scan(const float4* __restrict__ cand_box,    // [N, MAX_CAND]
                                        const float* __restrict__ cand_score,   // [N, MAX_CAND]
                                        const int* __restrict__ cand_anchor,    // [N, MAX_CAND]
                                        const int* __restrict__ cand_count,     // [N]
                                        const u64* __restrict__ mask,   // [N, MAX_CAND, WORDS]
                                        const int* __restrict__ best_class,     // [N, A]
                                        int num_anchors, int max_det,
                                        float* __restrict__ out)                // [N, OUT_STRIDE]
{
    __shared__ u64 s_removed[WORDS];
    __shared__ u64 s_diag[2][BITS];
    __shared__ int s_keep[MAX_DET];
    __shared__ int s_kept;
    __shared__ int s_first;

    const int frame = blockIdx.x;
    const int t = threadIdx.x;
    const int n = cand_count[frame];
    if (n < 0) return;     // done by ssd_sort's fused path: the whole block, before any barrier
    const int nb = (n + BITS - 1) / BITS;
    const size_t cbase = (size_t)frame * MAX_CAND;
    const u64* fmask = mask + cbase * WORDS;

    if (t < WORDS) s_removed[t] = 0;
    if (t < n) s_diag[0][t] = fmask[(size_t)t * WORDS];
    if (t == 0) {
        s_kept = 0;
        s_first = 0;
    }
    __syncthreads();

    for (int c = 0; c < nb; ++c) {
        if (t == 0) {
            int kept = s_kept;
            const int lo = c * BITS;
            const int len = min(BITS, n - lo);
            const u64 valid = len == BITS ? ~0ull : ((1ull << len) - 1ull);
            u64 live = ~s_removed[c] & valid;
            s_first = kept;
            s_kept = ssd_keep_chunk(live, lo, kept, max_det, s_keep, s_diag[c & 1], 1);
        }
        __syncthreads();
        const int kept = s_kept;
        if (kept >= max_det) break;   // the same in every thread
        const int first = s_first;
        // Prefetch the next chunk's diagonal words; OR the new rows into the later words.
        const int nrow = (c + 1) * BITS + t;
        if (nrow < n) s_diag[(c + 1) & 1][t] = fmask[(size_t)nrow * WORDS + c + 1];
        if (t > c && t < nb) {
            u64 acc = 0;
#pragma unroll 4
            for (int k = first; k < kept; ++k) acc |= fmask[(size_t)s_keep[k] * WORDS + t];
            s_removed[t] |= acc;
        }
        __syncthreads();
    }

    const int kept = s_kept;
    float* out_f = out + (size_t)frame * OUT_STRIDE;
    for (int k = t; k < kept; k += BITS) {
        const int p = s_keep[k];
        const int a = cand_anchor[cbase + p];
        ssd_write_row(out_f + HEADER + k * ROW, cand_box[cbase + p], cand_score[cbase + p],
                      best_class[(size_t)frame * num_anchors + a], a);
    }
    if (t == 0) {
        out_f[0] = (float)kept;
        out_f[1] = (float)n;
        for (int h = 2; h < HEADER; ++h) out_f[h] = 0.0f;
    }
}
