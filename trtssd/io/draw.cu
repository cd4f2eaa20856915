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

extern "C" __global__ void __launch_bounds__(256) draw_prims(
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
