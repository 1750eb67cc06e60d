// GPU preprocessing: uint8 frames already on the GPU -> the network's float32 CHW input.
//
// Per output pixel (ox, oy) of the ow x oh network input and channel c (the same steps as
// streamcam/processor/preprocess.py, computed in float instead of via intermediate uint8 images):
//
//     inside the letterbox rectangle [inner_x, inner_x + inner_w) x [inner_y, inner_y + inner_h):
//         pixel = resample(frame)(ox - inner_x, oy - inner_y)      bilinear (align_corners=False,
//                 cv2 INTER_LINEAR) or area averaging (cv2 INTER_AREA, for downscaling)
//     outside: pixel = 0                                           (letterbox padding)
//     colour  = mode 0 copy | 1 BGR->RGB | 2 BGR->GRAY (0.299 R + 0.587 G + 0.114 B) | 3 GRAY->3 channels
//     out[n, c, oy, ox] = (colour_c / 255 - mean_c) * inv_std_c
//
// Layouts: frames uint8 [N, H, W, in_ch] contiguous; out float32 [N, out_ch, oh, ow].
// Launch: block = (32, 8, 1); grid = (ceil(ow / 32), ceil(oh / 8), N).

__device__ __forceinline__ void fetch(const unsigned char* frame, int W, int in_ch, int x, int y, float px[3])
{
    const unsigned char* s = frame + ((size_t)y * (size_t)W + (size_t)x) * (size_t)in_ch;
    if (in_ch == 3) {
        px[0] = (float)s[0]; px[1] = (float)s[1]; px[2] = (float)s[2];
    } else {
        px[0] = px[1] = px[2] = (float)s[0];
    }
}

extern "C" __global__ void preprocess_frames(const unsigned char* __restrict__ frames,
                                             float* __restrict__ out,
                                             int H, int W, int in_ch,
                                             int oh, int ow, int out_ch, int color_mode,
                                             int inner_x, int inner_y, int inner_w, int inner_h,
                                             int area,
                                             float mean0, float mean1, float mean2,
                                             float inv_std0, float inv_std1, float inv_std2)
{
    const int ox = blockIdx.x * blockDim.x + threadIdx.x;
    const int oy = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (ox >= ow || oy >= oh) return;
    const unsigned char* frame = frames + (size_t)n * (size_t)H * (size_t)W * (size_t)in_ch;

    float px[3] = {0.0f, 0.0f, 0.0f};  // B, G, R (or grey x3)
    const int u = ox - inner_x;
    const int v = oy - inner_y;
    if (u >= 0 && v >= 0 && u < inner_w && v < inner_h) {
        const float sx = (float)W / (float)inner_w;
        const float sy = (float)H / (float)inner_h;
        if (area) {
            // Exact area coverage: source interval [u * sx, (u + 1) * sx) on each axis.
            const float fx0 = (float)u * sx, fx1 = fminf(fx0 + sx, (float)W);
            const float fy0 = (float)v * sy, fy1 = fminf(fy0 + sy, (float)H);
            const int x_lo = (int)floorf(fx0), x_hi = min(W, (int)ceilf(fx1));
            const int y_lo = (int)floorf(fy0), y_hi = min(H, (int)ceilf(fy1));
            float acc[3] = {0.0f, 0.0f, 0.0f};
            float wsum = 0.0f;
            for (int y = y_lo; y < y_hi; ++y) {
                const float wy = fminf((float)(y + 1), fy1) - fmaxf((float)y, fy0);
                if (wy <= 1e-6f) continue;
                for (int x = x_lo; x < x_hi; ++x) {
                    const float wx = fminf((float)(x + 1), fx1) - fmaxf((float)x, fx0);
                    if (wx <= 1e-6f) continue;
                    float q[3];
                    fetch(frame, W, in_ch, x, y, q);
                    const float wgt = wx * wy;
                    acc[0] += wgt * q[0]; acc[1] += wgt * q[1]; acc[2] += wgt * q[2];
                    wsum += wgt;
                }
            }
            const float inv = wsum > 0.0f ? 1.0f / wsum : 0.0f;
            px[0] = acc[0] * inv; px[1] = acc[1] * inv; px[2] = acc[2] * inv;
        } else {
            float fx = ((float)u + 0.5f) * sx - 0.5f;
            float fy = ((float)v + 0.5f) * sy - 0.5f;
            fx = fminf(fmaxf(fx, 0.0f), (float)(W - 1));
            fy = fminf(fmaxf(fy, 0.0f), (float)(H - 1));
            const int x0 = (int)fx, y0 = (int)fy;
            const int x1 = min(x0 + 1, W - 1), y1 = min(y0 + 1, H - 1);
            const float tx = fx - (float)x0, ty = fy - (float)y0;
            float a[3], b[3], c[3], d[3];
            fetch(frame, W, in_ch, x0, y0, a);
            fetch(frame, W, in_ch, x1, y0, b);
            fetch(frame, W, in_ch, x0, y1, c);
            fetch(frame, W, in_ch, x1, y1, d);
#pragma unroll
            for (int i = 0; i < 3; ++i) {
                const float top = a[i] * (1.0f - tx) + b[i] * tx;
                const float bot = c[i] * (1.0f - tx) + d[i] * tx;
                px[i] = top * (1.0f - ty) + bot * ty;
            }
        }
    }

    float ch[3];
    switch (color_mode) {
        case 1:  // BGR -> RGB
            ch[0] = px[2]; ch[1] = px[1]; ch[2] = px[0];
            break;
        case 2:  // BGR -> GRAY (ITU-R BT.601, as cv2.COLOR_BGR2GRAY)
            ch[0] = 0.299f * px[2] + 0.587f * px[1] + 0.114f * px[0];
            ch[1] = ch[2] = ch[0];
            break;
        default:  // 0: copy (BGR->BGR, GRAY->GRAY); 3: GRAY->3 channels (px already replicated)
            ch[0] = px[0]; ch[1] = px[1]; ch[2] = px[2];
            break;
    }
    const float mean[3] = {mean0, mean1, mean2};
    const float inv_std[3] = {inv_std0, inv_std1, inv_std2};
    const size_t plane = (size_t)oh * (size_t)ow;
    float* o = out + (size_t)n * (size_t)out_ch * plane + (size_t)oy * (size_t)ow + (size_t)ox;
    for (int c = 0; c < out_ch; ++c) o[(size_t)c * plane] = (ch[c] * (1.0f / 255.0f) - mean[c]) * inv_std[c];
}
