// Fused Class Activation Map overlay: ONE kernel launch from features to blended frames.
//
// For every (frame n, selected class s) pair and every output pixel (x, y) of an H x W frame:
//
//     M[p]   = sum_k W[c, k] * F[n, k, y0 + py, x0 + px]   p = (py, px) over the h x w window of the
//                                                           fh x fw feature map, c = classes[n, s]
//                                                           -> raw_out[n, s] unless it is null (boxes)
//     lo, hi = min M, max M                                 (over the h x w window)
//     m[p]   = (M[p] - lo) / (hi - lo)   (0 if hi == lo)    -> lowres_out[n, s]  (for the stabilizer's peaks)
//     v      = clip(bilinear(m)(x, y), 0, 1)                align_corners=False: src = (dst + 0.5) * in / out - 0.5,
//                                                           clamped to [0, in - 1]  (cv2 INTER_LINEAR)
//     heat   = lut[rint(255 * v)]                           256-entry BGR colour map (cv2.COLORMAP_JET)
//     out    = sat_u8(rint((1 - alpha) * frame(x, y) + alpha * heat))
//
// Why one launch with no grid-wide synchronisation: the low-res map is small (h * w <= 8192 cells,
// 32 KiB of shared memory), so every block recomputes it (phase 1) in shared memory, reduces min/max there, and then
// writes its own band of output rows (phase 2). Blocks never wait on each other, so there is no
// cooperative launch and no spin-wait that could deadlock. The redundant work is
// (blocks per pair) x h*w*K multiply-adds; the host sizes the bands so a frame gets only a few
// blocks per SM (see streamcam/gpu/fused_cam.py and docs/gpu.md for the cost model).
//
// The window (y0, x0, h, w) is the part of the feature map that covers the frame: the whole map
// for a stretched input, the map without its letterbox padding otherwise (what
// streamcam.processor.preprocess.crop_to_frame keeps on the CPU path).
//
// Layouts (all contiguous):
//   features   float32 [N, K, fh, fw]     weights float32 [C, K]       classes int32 [N, S]
//   frames     uint8   [N, H, W, ch]      ch = 3 (BGR) or 1 (grey, replicated to B = G = R)
//   lut        uint8   [256, 3] BGR       out uint8 [N, S, H, W, 3]    lowres_out float32 [N, S, h, w]
//   raw_out    float32 [N, S, h, w] or nullptr (0 from the host)
//
// Launch: block = (CAM_THREADS, 1, 1); grid = (ceil(H / rows_per_block), N * S, 1).
// Compiled by pycuda's SourceModule(no_extern_c=True) and by `nvcc -ptx` in the tests.

#define CAM_THREADS 256
#define CAM_MAX_LOWRES 8192   // streamcam/gpu/fused_cam.py MAX_LOWRES; shared: 32 KiB map + 4 KiB weights + LUT < 48 KiB
#define CAM_K_CHUNK 1024

__device__ __forceinline__ unsigned char sat_u8(float x)
{
    int v = __float2int_rn(x);
    return (unsigned char)(v < 0 ? 0 : (v > 255 ? 255 : v));
}

__device__ __forceinline__ void axis_coord(int dst, float scale, int n_in, int* i0, int* i1, float* t)
{
    float src = ((float)dst + 0.5f) * scale - 0.5f;
    src = fminf(fmaxf(src, 0.0f), (float)(n_in - 1));
    int a = (int)src;  // src >= 0, so truncation is floor
    *i0 = a;
    *i1 = min(a + 1, n_in - 1);
    *t = src - (float)a;
}

extern "C" __global__ void __launch_bounds__(CAM_THREADS)
cam_fused_overlay(const float* __restrict__ features,
                  const float* __restrict__ weights,
                  const int* __restrict__ classes,
                  const unsigned char* __restrict__ frames,
                  const unsigned char* __restrict__ lut,
                  unsigned char* __restrict__ out,
                  float* __restrict__ lowres_out,
                  float* __restrict__ raw_out,
                  int K, int fh, int fw, int y0w, int x0w, int h, int w,
                  int S, int H, int W, int channels,
                  int rows_per_block, float alpha)
{
    __shared__ float s_map[CAM_MAX_LOWRES];
    __shared__ float s_w[CAM_K_CHUNK];
    __shared__ unsigned char s_lut[256 * 3];
    __shared__ float s_lo[CAM_THREADS / 32];
    __shared__ float s_hi[CAM_THREADS / 32];

    const int tid = threadIdx.x;
    const int pair = blockIdx.y;        // n * S + s
    const int n = pair / S;
    const int cls = classes[pair];
    const int hw = h * w;
    const int fhw = fh * fw;
    const float* f = features + (size_t)n * (size_t)K * (size_t)fhw;
    const float* wc = weights + (size_t)cls * (size_t)K;

    for (int i = tid; i < 256 * 3; i += CAM_THREADS) s_lut[i] = lut[i];

    // ---- phase 1: the low-res CAM, accumulated in shared memory ----
    // Thread tid owns cells p = tid, tid + CAM_THREADS, ... in every loop below, so no cell is
    // touched by two threads and only the weight chunks need barriers. (Accumulating in shared
    // memory rather than registers is what lifts the map limit to CAM_MAX_LOWRES cells: the
    // shipped 60 x 80 thermal map has 4,800.) Summation order per cell is k = 0 .. K-1, as in
    // streamcam/gpu/reference.py's einsum up to float rounding.
    for (int p = tid; p < hw; p += CAM_THREADS) s_map[p] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += CAM_K_CHUNK) {
        const int kn = min(CAM_K_CHUNK, K - k0);
        __syncthreads();  // previous chunk fully consumed
        for (int i = tid; i < kn; i += CAM_THREADS) s_w[i] = wc[k0 + i];
        __syncthreads();
        for (int p = tid; p < hw; p += CAM_THREADS) {
            // consecutive p: mostly consecutive cells of one feature plane (coalesced reads)
            const float* fp = f + (size_t)k0 * (size_t)fhw + (size_t)((y0w + p / w) * fw + x0w + p % w);
            float a = s_map[p];
#pragma unroll 8
            for (int k = 0; k < kn; ++k) a = fmaf(s_w[k], fp[(size_t)k * (size_t)fhw], a);
            s_map[p] = a;
        }
    }

    // ---- min / max of the low-res map: per-thread over its own cells, warp shuffles, then across warps ----
    float lo = __int_as_float(0x7f800000);   // +inf
    float hi = -lo;
    for (int p = tid; p < hw; p += CAM_THREADS) {
        lo = fminf(lo, s_map[p]);
        hi = fmaxf(hi, s_map[p]);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, off));
        hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, off));
    }
    if ((tid & 31) == 0) {
        s_lo[tid >> 5] = lo;
        s_hi[tid >> 5] = hi;
    }
    __syncthreads();
    lo = s_lo[0];
    hi = s_hi[0];
#pragma unroll
    for (int i = 1; i < CAM_THREADS / 32; ++i) {
        lo = fminf(lo, s_lo[i]);
        hi = fmaxf(hi, s_hi[i]);
    }
    const float span = hi - lo;

    // ---- normalise in place (each thread its own cells); block x == 0 also publishes the maps ----
    for (int p = tid; p < hw; p += CAM_THREADS) {
        const float raw = s_map[p];
        const float v = span > 0.0f ? (raw - lo) / span : 0.0f;
        s_map[p] = v;
        if (blockIdx.x == 0) {
            lowres_out[(size_t)pair * (size_t)hw + p] = v;
            if (raw_out != nullptr) raw_out[(size_t)pair * (size_t)hw + p] = raw;
        }
    }
    __syncthreads();

    // ---- phase 2: this block's band of output rows ----
    const int y_begin = blockIdx.x * rows_per_block;
    const int y_end = min(H, y_begin + rows_per_block);
    if (y_begin >= y_end) return;
    const float scale_y = (float)h / (float)H;
    const float scale_x = (float)w / (float)W;
    const float beta = 1.0f - alpha;
    const int npix = (y_end - y_begin) * W;
    const unsigned char* frame = frames + (size_t)n * (size_t)H * (size_t)W * (size_t)channels;
    unsigned char* dst = out + (size_t)pair * (size_t)H * (size_t)W * 3;

    for (int i = tid; i < npix; i += CAM_THREADS) {
        const int dy = i / W;
        const int y = y_begin + dy;
        const int x = i - dy * W;
        int y0, y1, x0, x1;
        float ty, tx;
        axis_coord(y, scale_y, h, &y0, &y1, &ty);
        axis_coord(x, scale_x, w, &x0, &x1, &tx);
        const float top = s_map[y0 * w + x0] * (1.0f - tx) + s_map[y0 * w + x1] * tx;
        const float bot = s_map[y1 * w + x0] * (1.0f - tx) + s_map[y1 * w + x1] * tx;
        float v = top * (1.0f - ty) + bot * ty;
        v = fminf(fmaxf(v, 0.0f), 1.0f);
        const int idx = __float2int_rn(v * 255.0f);
        const size_t pix = (size_t)y * (size_t)W + (size_t)x;
        float b, g, r;
        if (channels == 3) {
            const unsigned char* s = frame + pix * 3;
            b = (float)s[0]; g = (float)s[1]; r = (float)s[2];
        } else {
            b = g = r = (float)frame[pix];
        }
        unsigned char* d = dst + pix * 3;
        d[0] = sat_u8(beta * b + alpha * (float)s_lut[idx * 3 + 0]);
        d[1] = sat_u8(beta * g + alpha * (float)s_lut[idx * 3 + 1]);
        d[2] = sat_u8(beta * r + alpha * (float)s_lut[idx * 3 + 2]);
    }
}
