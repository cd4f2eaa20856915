// Drawing a list of primitives into a BGR uint8 frame in place (trtssd/io/draw_gpu.py).
//
// A primitive is a rectangle of frame pixels, corners inclusive, in one colour: solid (every
// pixel takes the colour) or masked by an 8-bit coverage atlas (a glyph rendered once by
// OpenCV, a box corner), blended dst = dst * (1 - a) + colour * a with a = atlas / 255, rounded
// to nearest. A box outline arrives as four bands and four corner masks, a label tag as one
// solid rectangle, a text run as one masked rectangle per glyph (draw_gpu.expand).
//
// Primitives overlap (a box over another detection's tag), and OpenCV draws them one after
// another, so order matters. Each block takes a TILE_W x TILE_H tile of the frame and walks the
// whole list in order; within the tile each pixel always belongs to the same thread (columns
// threadIdx.x + k * blockDim.x, rows threadIdx.y + k * blockDim.y), so a pixel sees the
// primitives in list order with no barrier and no race. Tiles no primitive touches cost one
// pass over the list of rectangle tests.

// trtssd-variants: {"TILE_W": 64, "TILE_H": 32}
#ifndef TILE_W
#define TILE_W 64
#endif
#ifndef TILE_H
#define TILE_H 32
#endif

struct Prim {
    int x0, y0, x1, y1;   // frame pixels, inclusive; may lie partly outside the frame
    int ax, ay;           // atlas pixel of (x0, y0); ax < 0: solid
    int bgr;              // blue | green << 8 | red << 16
    int pad;
};

// The rasterisation of primitives [0, n) for the block's tile (see above).
__device__ __forceinline__ void draw_list(
    const Prim* __restrict__ prims, int n, const unsigned char* __restrict__ atlas,
    int atlas_pitch, unsigned char* __restrict__ frame, long long pitch, int width, int height)
{
    const int tx0 = (int)blockIdx.x * TILE_W, ty0 = (int)blockIdx.y * TILE_H;
    const int tx1 = min(tx0 + TILE_W, width) - 1, ty1 = min(ty0 + TILE_H, height) - 1;
    const int fx = tx0 + (int)threadIdx.x, fy = ty0 + (int)threadIdx.y;
    const int sx = (int)blockDim.x, sy = (int)blockDim.y;
    for (int p = 0; p < n; ++p) {
        const Prim q = prims[p];
        const int x0 = max(q.x0, tx0), x1 = min(q.x1, tx1);
        const int y0 = max(q.y0, ty0), y1 = min(q.y1, ty1);
        if (x0 > x1 || y0 > y1) continue;
        const int c0 = q.bgr & 255, c1 = (q.bgr >> 8) & 255, c2 = (q.bgr >> 16) & 255;
        for (int y = fy; y <= y1; y += sy) {
            if (y < y0) continue;
            unsigned char* row = frame + (long long)y * pitch;
            // the atlas pixel of frame pixel (x, y) is abase + x (only read when ax >= 0)
            const long long abase = (long long)(q.ay + y - q.y0) * atlas_pitch + (q.ax - q.x0);
            for (int x = fx; x <= x1; x += sx) {
                if (x < x0) continue;
                unsigned char* px = row + 3 * x;
                const int a = q.ax >= 0 ? (int)atlas[abase + x] : 255;
                if (a == 0) continue;
                if (a == 255) {
                    px[0] = (unsigned char)c0; px[1] = (unsigned char)c1; px[2] = (unsigned char)c2;
                } else {
                    const int r = 255 - a;
                    px[0] = (unsigned char)((px[0] * r + c0 * a + 127) / 255);
                    px[1] = (unsigned char)((px[1] * r + c1 * a + 127) / 255);
                    px[2] = (unsigned char)((px[2] * r + c2 * a + 127) / 255);
                }
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(256) draw_prims(
    const Prim* __restrict__ prims, int n, const unsigned char* __restrict__ atlas,
    int atlas_pitch, unsigned char* __restrict__ frame, long long pitch, int width, int height)
{
    draw_list(prims, n, atlas, atlas_pitch, frame, pitch, width, height);
}

// The same with the count in device memory, written by layout_detections on the same stream.
extern "C" __global__ void __launch_bounds__(256) draw_prims_counted(
    const Prim* __restrict__ prims, const int* __restrict__ count,
    const unsigned char* __restrict__ atlas, int atlas_pitch, unsigned char* __restrict__ frame,
    long long pitch, int width, int height)
{
    draw_list(prims, *count, atlas, atlas_pitch, frame, pitch, width, height);
}

// ---------------------------------------------------------------------------------------
// layout_detections: trtssd.io.draw.layout_detections + draw_gpu.expand on the device, from
// the GPU postprocessing's kept rows of one frame (trtssd/postprocess/postprocess.cu's output:
// a header whose first float is the count, then ROW floats per box: ymin, xmin, ymax, xmax in
// the model's units, score, class). One block, one thread per box: each counts its
// primitives, a scan over the block gives each its place, and each writes its own, so the
// list is in box order as the host's is. Everything text-dependent comes from tables the host
// made once with OpenCV (trtssd.io.draw_device): per class its colour and whether it is drawn;
// per (class, score in hundredths) the label's tag size and glyph rectangles; the box outline
// as a template of rectangles whose corners follow the box's (source corner + offset).
//
// The box in frame pixels is computed as trtssd.core.geometry.boxes_to_frame does it, in
// double, then float; then rounded half to even as Python's round() (rint).
#ifndef LAYOUT_THREADS
#define LAYOUT_THREADS 128
#endif
#ifndef HEADER
#define HEADER 8
#endif
#ifndef ROW
#define ROW 8
#endif
#ifndef NORMALIZED
#define NORMALIZED 1
#endif

// The style table (int32 words), made by trtssd.io.draw_device.
#define ST_NUM_CLASSES 0
#define ST_NUM_SCORES 1      // 101 when the score is written, else 1
#define ST_BOX_ROWS 2        // rows of the box template (0: no outline)
#define ST_WORDS 3
// A box template row: for x0, y0, x1, y1 a source (0..3: the box's x1, y1, x2, y2) and an
// offset, then ax, ay: 10 words.
#define TPL_WORDS 10
// A (class, score) entry: glyph row offset, glyph rows (-1: no tag at all), tw, th, base.
#define ENTRY_WORDS 5

__device__ __forceinline__ int frame_px(float v, double net, double pad, double scale,
                                        double limit)
{
    double d = (double)v;
#if !NORMALIZED
    d = d / net;
#endif
    d = d * net;
    d = (d - pad) / scale;
    d = d > 0.0 ? d : 0.0;
    d = d < limit ? d : limit;
    const float f = (float)d;           // boxes_to_frame returns float32
    return (int)rint((double)f);        // round half to even, as Python's round()
}

extern "C" __global__ void __launch_bounds__(LAYOUT_THREADS) layout_detections(
    const float* __restrict__ rows, const int* __restrict__ style,
    const int* __restrict__ box_template, const int* __restrict__ classes,
    const int* __restrict__ entries, const Prim* __restrict__ glyphs, double net_w,
    double net_h, double pad_x, double pad_y, double scale_x, double scale_y, int width,
    int height, Prim* __restrict__ out, int* __restrict__ count, int max_prims)
{
    __shared__ int scan[LAYOUT_THREADS];
    const int i = (int)threadIdx.x;
    const int num_classes = style[ST_NUM_CLASSES], num_scores = style[ST_NUM_SCORES];
    const int box_rows = style[ST_BOX_ROWS];
    int kept = (int)rows[0];
    kept = kept < 0 ? 0 : (kept > LAYOUT_THREADS ? LAYOUT_THREADS : kept);
    int n = 0, c[4] = {0, 0, 0, 0}, colour = 0;
    const int* entry = 0;
    if (i < kept) {
        const float* r = rows + HEADER + i * ROW;
        const int cls = (int)r[5];
        if (cls >= 0 && cls < num_classes && classes[2 * cls + 1]) {
            colour = classes[2 * cls];
            int x1 = frame_px(r[1], net_w, pad_x, scale_x, (double)width);
            int y1 = frame_px(r[0], net_h, pad_y, scale_y, (double)height);
            int x2 = frame_px(r[3], net_w, pad_x, scale_x, (double)width);
            int y2 = frame_px(r[2], net_h, pad_y, scale_y, (double)height);
            x1 = max(0, min(x1, width - 1)); x2 = max(0, min(x2, width - 1));
            y1 = max(0, min(y1, height - 1)); y2 = max(0, min(y2, height - 1));
            c[0] = min(x1, x2); c[2] = max(x1, x2);
            c[1] = min(y1, y2); c[3] = max(y1, y2);
            int s = 0;
            if (num_scores > 1) {               // "%.2f": v * 100 is exact in double
                s = (int)rint((double)r[4] * 100.0);
                s = s < 0 ? 0 : (s > num_scores - 1 ? num_scores - 1 : s);
            }
            entry = entries + (cls * num_scores + s) * ENTRY_WORDS;
            n = box_rows + (entry[1] >= 0 ? 1 + entry[1] : 0);
        }
    }
    scan[i] = n;
    __syncthreads();
    for (int step = 1; step < LAYOUT_THREADS; step <<= 1) {
        const int add = i >= step ? scan[i - step] : 0;
        __syncthreads();
        scan[i] += add;
        __syncthreads();
    }
    // the boxes whose primitives all fit are drawn; the count is the end of the last of them
    // (one thread writes it: the one whose end fits and whose successor's does not)
    const int end = scan[i];
    const int next = i + 1 < LAYOUT_THREADS ? scan[i + 1] : max_prims + 1;
    if (end <= max_prims && next > max_prims) *count = end;
    if (i == 0 && end > max_prims) *count = 0;
    if (n == 0 || end > max_prims) return;
    Prim* o = out + (end - n);
    for (int k = 0; k < box_rows; ++k) {
        const int* t = box_template + k * TPL_WORDS;
        Prim q;
        q.x0 = c[t[0]] + t[1]; q.y0 = c[t[2]] + t[3];
        q.x1 = c[t[4]] + t[5]; q.y1 = c[t[6]] + t[7];
        q.ax = t[8]; q.ay = t[9]; q.bgr = colour; q.pad = 0;
        *o++ = q;
    }
    if (entry[1] < 0) return;
    // the tag above the box, or inside its top when there is no room above
    const int tw = entry[2], th = entry[3], base = entry[4];
    const int x1 = c[0], y1 = c[1];
    const int ty = y1 - th - base - 2 >= 0 ? y1 - 2 : min(height - 1, y1 + th + base + 2);
    Prim tag;
    tag.x0 = x1; tag.y0 = ty - th - base; tag.x1 = min(width - 1, x1 + tw + 2); tag.y1 = ty;
    tag.ax = -1; tag.ay = 0; tag.bgr = colour; tag.pad = 0;
    *o++ = tag;
    const int ox = x1 + 1, oy = ty - base;
    const Prim* g = glyphs + entry[0];
    for (int k = 0; k < entry[1]; ++k) {
        Prim q = g[k];
        q.x0 += ox; q.x1 += ox; q.y0 += oy; q.y1 += oy;
        q.bgr = 0;                      // the text is black
        *o++ = q;
    }
}
