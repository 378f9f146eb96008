/* Videos to tokens and back, and the timestep sinusoid (osp_cuda_patchify, osp_cuda_unpatchify,
 * osp_cuda_timestep_embedding), as src/cpu/video.c; the backwards of the two moves
 * (osp_cuda_patchify_backward, osp_cuda_unpatchify_backward), as src/cpu/video_backward.c. */
#include "cuda/kernels.cuh"

namespace {

/* Where element i of the video [B, C, F, H, W] sits in the tokens [B, N, C·pt·ph·pw]: token
 * (f/pt·H' + h/ph)·W' + w/pw of sample b (H' = H/ph, W' = W/pw), at feature
 * ((c·pt + kt)·ph + kh)·pw + kw in patchify's order (channels first) or
 * ((kt·ph + kh)·pw + kw)·C + c in unpatchify's (channels last), (kt, kh, kw) being the element's
 * place in its patch. */
template <bool CHANNELS_FIRST>
__device__ int64_t token_offset(const osp_cuda_video &v, int64_t i) {
  const int64_t pt = v.patch[0], ph = v.patch[1], pw = v.patch[2];
  const int64_t w = i % v.width, h = i / v.width % v.height;
  const int64_t f = i / (v.width * v.height) % v.frames;
  const int64_t c = i / (v.width * v.height * v.frames) % v.channels;
  const int64_t b = i / (v.width * v.height * v.frames * v.channels);
  const int64_t grid_h = v.height / ph, grid_w = v.width / pw, tokens = v.frames / pt * grid_h * grid_w;
  const int64_t token = (f / pt * grid_h + h / ph) * grid_w + w / pw;
  const int64_t in_patch = (f % pt * ph + h % ph) * pw + w % pw, patch_size = pt * ph * pw;
  const int64_t feature = CHANNELS_FIRST ? c * patch_size + in_patch : in_patch * v.channels + c;
  return (b * tokens + token) * v.channels * patch_size + feature;
}

/* One thread per video element, which moves between the video and its place in the tokens (in
 * patchify's feature order where CHANNELS_FIRST, unpatchify's otherwise): into the tokens
 * (patchify; unpatchify's backward) or out of them (unpatchify; patchify's backward), copied, or
 * added to what is there (ACCUMULATE: the backwards). Reads or writes in order on the video's
 * side, scattered on the tokens'; the map is one to one, so no element has two writers. Each side
 * has its dtype. */
template <bool CHANNELS_FIRST, bool TO_TOKENS, bool ACCUMULATE>
__global__ void video_tokens_kernel(const void *src, osp_dtype src_dtype, void *dst,
                                    osp_dtype dst_dtype, osp_cuda_video v, int64_t n) {
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t token = token_offset<CHANNELS_FIRST>(v, i);
    const int64_t from = TO_TOKENS ? i : token, to = TO_TOKENS ? token : i;
    float value = osp_load(src, src_dtype, from);
    if (ACCUMULATE) value += osp_load(dst, dst_dtype, to);
    osp_put(dst, dst_dtype, to, value);
  }
}

template <bool CHANNELS_FIRST, bool TO_TOKENS, bool ACCUMULATE>
osp_status video_tokens(const char *kernel, const void *src, osp_dtype src_dtype,
                        osp_cuda_video v, void *dst, osp_dtype dst_dtype) {
  const int64_t n = v.batch * v.channels * v.frames * v.height * v.width;
  const int threads = 256;
  video_tokens_kernel<CHANNELS_FIRST, TO_TOKENS, ACCUMULATE>
      <<<osp_cuda_blocks(n, threads), threads, 0, osp_cuda_stream()>>>(src, src_dtype, dst,
                                                                       dst_dtype, v, n);
  return osp_cuda_launched(kernel);
}

/* out[b] = [cos(t_b·f_j) for j < D/2, then sin(t_b·f_j)], f_j = 10000^(−j/(D/2)): angle, cos
 * and sin in float64 as on the CPU, one thread per (b, j). */
__global__ void timestep_embedding_kernel(const float *t, void *out, osp_dtype out_dtype,
                                          int64_t B, int64_t D) {
  const int64_t half = D / 2, step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < B * half; i += step) {
    const int64_t b = i / half, j = i % half;
    const double angle = (double)t[b] * pow(10000.0, -(double)j / (double)half);
    double sin_angle, cos_angle;
    sincos(angle, &sin_angle, &cos_angle);
    osp_put(out, out_dtype, b * D + j, (float)cos_angle);
    osp_put(out, out_dtype, b * D + half + j, (float)sin_angle);
  }
}

}  // namespace

extern "C" osp_status osp_cuda_patchify(const void *latents, osp_dtype latents_dtype,
                                        osp_cuda_video video, void *patches,
                                        osp_dtype patches_dtype) {
  return video_tokens<true, true, false>("osp_cuda_patchify", latents, latents_dtype, video,
                                         patches, patches_dtype);
}

extern "C" osp_status osp_cuda_unpatchify(const void *tokens, osp_dtype tokens_dtype,
                                          osp_cuda_video video, void *out, osp_dtype out_dtype) {
  return video_tokens<false, false, false>("osp_cuda_unpatchify", tokens, tokens_dtype, video, out,
                                           out_dtype);
}

extern "C" osp_status osp_cuda_patchify_backward(const void *dpatches, osp_dtype dpatches_dtype,
                                                 osp_cuda_video video, void *dlatents,
                                                 osp_dtype dlatents_dtype) {
  return video_tokens<true, false, true>("osp_cuda_patchify_backward", dpatches, dpatches_dtype,
                                         video, dlatents, dlatents_dtype);
}

extern "C" osp_status osp_cuda_unpatchify_backward(const void *dout, osp_dtype dout_dtype,
                                                   osp_cuda_video video, void *dtokens,
                                                   osp_dtype dtokens_dtype) {
  return video_tokens<false, true, true>("osp_cuda_unpatchify_backward", dout, dout_dtype, video,
                                         dtokens, dtokens_dtype);
}

extern "C" osp_status osp_cuda_timestep_embedding(const float *t, void *out, osp_dtype out_dtype,
                                                  int64_t B, int64_t D) {
  const int threads = 256;
  timestep_embedding_kernel<<<osp_cuda_blocks(B * (D / 2), threads), threads, 0,
                              osp_cuda_stream()>>>(t, out, out_dtype, B, D);
  return osp_cuda_launched("osp_cuda_timestep_embedding");
}
