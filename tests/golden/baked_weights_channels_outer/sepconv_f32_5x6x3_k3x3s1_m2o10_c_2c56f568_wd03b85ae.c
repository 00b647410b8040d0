/*
 * Auto-generated file. Do not edit!
 *   Template: sepconv.c.j2
 *   Generator: sepconv_codegen (python -m sepconv_codegen emit)
 *   Layer: {"activation": "relu6", "bias": true, "channel_multiplier": 2, "dilation": [1, 1], "dtype": "float32", "input_shape": [1, 5, 6, 3], "kernel_size": [3, 3], "name": "golden_small", "out_channels": 10, "padding": "SAME", "strides": [1, 1]}
 *   Knobs: {"fused": true, "oc": 8, "order": "channels_outer", "pack": false, "pad": "inline", "px": 4, "taps": "outer", "tile_h": 1, "tile_w": 6, "unroll": true, "vec": 8}
 */
#include <stddef.h>

#include "sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae.h"

/* AVX2+FMA (x86-64, -mavx2 -mfma or -march=native) register tiles when the compiler targets them,
 * unless -DSEPCONV_GENERIC asks for the portable C. */
#if !defined(SEPCONV_GENERIC) && defined(__AVX2__) && defined(__FMA__)
#define USE_AVX2 1
#include <immintrin.h>
#endif
/* NEON (AArch64) register tiles when the compiler targets them,
 * unless -DSEPCONV_GENERIC asks for the portable C. */
#if !defined(SEPCONV_GENERIC) && defined(__ARM_NEON) && defined(__aarch64__)
#define USE_NEON 1
#include <arm_neon.h>
#endif

/* This layer's geometry and tiling (#undef'd at the end of the file). */
#define BATCH 1
#define IN_H 5
#define IN_W 6
#define IN_C 3
#define MULTIPLIER 2
#define DW_C 6
#define DW_BLOCK 3
#define OUT_H 5
#define OUT_W 6
#define OUT_C 10
#define KERNEL_H 3
#define KERNEL_W 3
#define STRIDE_H 1
#define STRIDE_W 1
#define DILATION_H 1
#define DILATION_W 1
#define PAD_TOP 1
#define PAD_LEFT 1
#define TILE_H 1
#define TILE_W 6
#define TILE_PX 4
#define TILE_OC 8
#define FULL_C 8
#define FILTER_STRIDE 8

/* Weights compiled in (TF layouts): depthwise [KERNEL_H, KERNEL_W, IN_C, MULTIPLIER],
 * pointwise [1, 1, DW_C, OUT_C], bias [OUT_C]. */
static const float sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_depthwise_filter[54] = {
    -1.0f, -0.5625f, -0.125f, 0.3125f, 0.75f, -0.875f, -0.4375f, 0.0f,
    0.4375f, 0.875f, -0.75f, -0.3125f, 0.125f, 0.5625f, 1.0f, -0.625f,
    -0.1875f, 0.25f, 0.6875f, -0.9375f, -0.5f, -0.0625f, 0.375f, 0.8125f,
    -0.8125f, -0.375f, 0.0625f, 0.5f, 0.9375f, -0.6875f, -0.25f, 0.1875f,
    0.625f, -1.0f, -0.5625f, -0.125f, 0.3125f, 0.75f, -0.875f, -0.4375f,
    0.0f, 0.4375f, 0.875f, -0.75f, -0.3125f, 0.125f, 0.5625f, 1.0f,
    -0.625f, -0.1875f, 0.25f, 0.6875f, -0.9375f, -0.5f,
};
static const float sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_pointwise_filter[60] = {
    -1.0f, -0.5625f, -0.125f, 0.3125f, 0.75f, -0.875f, -0.4375f, 0.0f,
    0.4375f, 0.875f, -0.75f, -0.3125f, 0.125f, 0.5625f, 1.0f, -0.625f,
    -0.1875f, 0.25f, 0.6875f, -0.9375f, -0.5f, -0.0625f, 0.375f, 0.8125f,
    -0.8125f, -0.375f, 0.0625f, 0.5f, 0.9375f, -0.6875f, -0.25f, 0.1875f,
    0.625f, -1.0f, -0.5625f, -0.125f, 0.3125f, 0.75f, -0.875f, -0.4375f,
    0.0f, 0.4375f, 0.875f, -0.75f, -0.3125f, 0.125f, 0.5625f, 1.0f,
    -0.625f, -0.1875f, 0.25f, 0.6875f, -0.9375f, -0.5f, -0.0625f, 0.375f,
    0.8125f, -0.8125f, -0.375f, 0.0625f,
};
static const float sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_bias[10] = {
    -1.0f, -0.5625f, -0.125f, 0.3125f, 0.75f, -0.875f, -0.4375f, 0.0f,
    0.4375f, 0.875f,
};

/* First tap k whose input index origin + k*dilation is inside the input (>= 0). */
static size_t sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_first_tap(ptrdiff_t origin, ptrdiff_t dilation)
{
    return origin >= 0 ? 0 : (size_t)((-origin + dilation - 1) / dilation);
}

/* One past the last tap k < taps whose input index origin + k*dilation is < size. */
static size_t sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_end_tap(ptrdiff_t origin, ptrdiff_t dilation, ptrdiff_t size, size_t taps)
{
    size_t end;
    if (origin >= size)
        return 0;
    end = (size_t)((size - origin + dilation - 1) / dilation);
    return end < taps ? end : taps;
}

/*
 * Depthwise step for one output pixel whose window starts at input (ih0, iw0); only the taps
 * kh_begin..kh_end x kw_begin..kw_end fall inside the image (the rest multiply zero padding), so
 * the channel loops carry no bounds checks. Blocks of DW_BLOCK input channels accumulate in
 * registers over all taps.
 *   image   [IN_H, IN_W, IN_C]
 *   filter  [KERNEL_H, KERNEL_W, IN_C, MULTIPLIER]
 *   out     DW_C floats; channel c*MULTIPLIER + m
 */
static void sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_depthwise_pixel(const float *restrict image, const float *restrict filter,
    float *restrict out, ptrdiff_t ih0, ptrdiff_t iw0, size_t kh_begin, size_t kh_end,
    size_t kw_begin, size_t kw_end)
{
    size_t c0, c, m, kh, kw;
    for (c0 = 0; c0 + DW_BLOCK <= IN_C; c0 += DW_BLOCK) {
        float acc[DW_BLOCK * MULTIPLIER];
        for (c = 0; c < DW_BLOCK * MULTIPLIER; ++c)
            acc[c] = 0.0f;
        for (kh = kh_begin; kh < kh_end; ++kh) {
            const size_t ih = (size_t)(ih0 + (ptrdiff_t)(kh * DILATION_H));
            for (kw = kw_begin; kw < kw_end; ++kw) {
                const size_t iw = (size_t)(iw0 + (ptrdiff_t)(kw * DILATION_W));
                const float *restrict x = image + (ih * IN_W + iw) * IN_C + c0;
                const float *restrict w = filter + (kh * KERNEL_W + kw) * DW_C + c0 * MULTIPLIER;
                for (c = 0; c < DW_BLOCK; ++c)
                    for (m = 0; m < MULTIPLIER; ++m)
                        acc[c * MULTIPLIER + m] += x[c] * w[c * MULTIPLIER + m];
            }
        }
        for (c = 0; c < DW_BLOCK * MULTIPLIER; ++c)
            out[c0 * MULTIPLIER + c] = acc[c];
    }
}

/*
 * Depthwise step for rows x cols output pixels from (oh0, ow0) of one image.
 *   dst     [rows][cols][DW_C], its rows dst_row_stride floats apart
 */
static void sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_depthwise(const float *restrict image, const float *restrict filter,
    float *restrict dst, size_t dst_row_stride, size_t oh0, size_t ow0, size_t rows, size_t cols)
{
    size_t i, j;
    for (i = 0; i < rows; ++i) {
        const ptrdiff_t ih0 = (ptrdiff_t)((oh0 + i) * STRIDE_H) - PAD_TOP;
        const size_t kh_begin = sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_first_tap(ih0, DILATION_H);
        const size_t kh_end = sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_end_tap(ih0, DILATION_H, IN_H, KERNEL_H);
        for (j = 0; j < cols; ++j) {
            const ptrdiff_t iw0 = (ptrdiff_t)((ow0 + j) * STRIDE_W) - PAD_LEFT;
            sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_depthwise_pixel(image, filter, dst + i * dst_row_stride + j * DW_C, ih0, iw0,
                kh_begin, kh_end, sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_first_tap(iw0, DILATION_W),
                sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_end_tap(iw0, DILATION_W, IN_W, KERNEL_W));
        }
    }
}

/*
 * Register tile: 4 pixels x TILE_OC output channels.
 *   src     4 consecutive pixels of the intermediate, DW_C floats each
 *   filter  this tile's TILE_OC columns of the pointwise filter, rows FILTER_STRIDE floats apart
 *   dst     4 consecutive output pixels, OUT_C floats apart, from the same channel
 */
static void sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_tile_4x8(const float *restrict src,
    const float *restrict filter, const float *restrict bias, float *restrict dst)
{
    size_t k;
#if defined(USE_AVX2)
    __m256 acc0_0 = _mm256_loadu_ps(bias + 0);
    __m256 acc1_0 = _mm256_loadu_ps(bias + 0);
    __m256 acc2_0 = _mm256_loadu_ps(bias + 0);
    __m256 acc3_0 = _mm256_loadu_ps(bias + 0);
    for (k = 0; k < DW_C; ++k) {
        const float *restrict w = filter + k * FILTER_STRIDE;
        const __m256 w0 = _mm256_loadu_ps(w + 0);
        const __m256 x0 = _mm256_broadcast_ss(src + 0 * DW_C + k);
        acc0_0 = _mm256_fmadd_ps(x0, w0, acc0_0);
        const __m256 x1 = _mm256_broadcast_ss(src + 1 * DW_C + k);
        acc1_0 = _mm256_fmadd_ps(x1, w0, acc1_0);
        const __m256 x2 = _mm256_broadcast_ss(src + 2 * DW_C + k);
        acc2_0 = _mm256_fmadd_ps(x2, w0, acc2_0);
        const __m256 x3 = _mm256_broadcast_ss(src + 3 * DW_C + k);
        acc3_0 = _mm256_fmadd_ps(x3, w0, acc3_0);
    }
    _mm256_storeu_ps(dst + 0 * OUT_C + 0, _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(_mm256_setzero_ps(), acc0_0)));
    _mm256_storeu_ps(dst + 1 * OUT_C + 0, _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(_mm256_setzero_ps(), acc1_0)));
    _mm256_storeu_ps(dst + 2 * OUT_C + 0, _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(_mm256_setzero_ps(), acc2_0)));
    _mm256_storeu_ps(dst + 3 * OUT_C + 0, _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(_mm256_setzero_ps(), acc3_0)));
#elif defined(USE_NEON)
    float32x4_t acc0_0 = vld1q_f32(bias + 0);
    float32x4_t acc0_4 = vld1q_f32(bias + 4);
    float32x4_t acc1_0 = vld1q_f32(bias + 0);
    float32x4_t acc1_4 = vld1q_f32(bias + 4);
    float32x4_t acc2_0 = vld1q_f32(bias + 0);
    float32x4_t acc2_4 = vld1q_f32(bias + 4);
    float32x4_t acc3_0 = vld1q_f32(bias + 0);
    float32x4_t acc3_4 = vld1q_f32(bias + 4);
    for (k = 0; k < DW_C; ++k) {
        const float *restrict w = filter + k * FILTER_STRIDE;
        const float32x4_t w0 = vld1q_f32(w + 0);
        const float32x4_t w4 = vld1q_f32(w + 4);
        const float x0 = src[0 * DW_C + k];
        acc0_0 = vfmaq_n_f32(acc0_0, w0, x0);
        acc0_4 = vfmaq_n_f32(acc0_4, w4, x0);
        const float x1 = src[1 * DW_C + k];
        acc1_0 = vfmaq_n_f32(acc1_0, w0, x1);
        acc1_4 = vfmaq_n_f32(acc1_4, w4, x1);
        const float x2 = src[2 * DW_C + k];
        acc2_0 = vfmaq_n_f32(acc2_0, w0, x2);
        acc2_4 = vfmaq_n_f32(acc2_4, w4, x2);
        const float x3 = src[3 * DW_C + k];
        acc3_0 = vfmaq_n_f32(acc3_0, w0, x3);
        acc3_4 = vfmaq_n_f32(acc3_4, w4, x3);
    }
    vst1q_f32(dst + 0 * OUT_C + 0, vminq_f32(vmaxq_f32(acc0_0, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
    vst1q_f32(dst + 0 * OUT_C + 4, vminq_f32(vmaxq_f32(acc0_4, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
    vst1q_f32(dst + 1 * OUT_C + 0, vminq_f32(vmaxq_f32(acc1_0, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
    vst1q_f32(dst + 1 * OUT_C + 4, vminq_f32(vmaxq_f32(acc1_4, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
    vst1q_f32(dst + 2 * OUT_C + 0, vminq_f32(vmaxq_f32(acc2_0, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
    vst1q_f32(dst + 2 * OUT_C + 4, vminq_f32(vmaxq_f32(acc2_4, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
    vst1q_f32(dst + 3 * OUT_C + 0, vminq_f32(vmaxq_f32(acc3_0, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
    vst1q_f32(dst + 3 * OUT_C + 4, vminq_f32(vmaxq_f32(acc3_4, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
#else
    size_t o;
    float acc0[TILE_OC];
    float acc1[TILE_OC];
    float acc2[TILE_OC];
    float acc3[TILE_OC];
    for (o = 0; o < TILE_OC; ++o) {
        acc0[o] = bias[o];
        acc1[o] = bias[o];
        acc2[o] = bias[o];
        acc3[o] = bias[o];
    }
    for (k = 0; k < DW_C; ++k) {
        const float *restrict w = filter + k * FILTER_STRIDE;
        const float x0 = src[0 * DW_C + k];
        const float x1 = src[1 * DW_C + k];
        const float x2 = src[2 * DW_C + k];
        const float x3 = src[3 * DW_C + k];
        for (o = 0; o < TILE_OC; ++o) {
            acc0[o] += x0 * w[o];
            acc1[o] += x1 * w[o];
            acc2[o] += x2 * w[o];
            acc3[o] += x3 * w[o];
        }
    }
    for (o = 0; o < TILE_OC; ++o) {
        dst[0 * OUT_C + o] = (acc0[o] < 0.0f ? 0.0f : acc0[o] > 6.0f ? 6.0f : acc0[o]);
        dst[1 * OUT_C + o] = (acc1[o] < 0.0f ? 0.0f : acc1[o] > 6.0f ? 6.0f : acc1[o]);
        dst[2 * OUT_C + o] = (acc2[o] < 0.0f ? 0.0f : acc2[o] > 6.0f ? 6.0f : acc2[o]);
        dst[3 * OUT_C + o] = (acc3[o] < 0.0f ? 0.0f : acc3[o] > 6.0f ? 6.0f : acc3[o]);
    }
#endif
}

/*
 * Register tile: 2 pixels x TILE_OC output channels.
 *   src     2 consecutive pixels of the intermediate, DW_C floats each
 *   filter  this tile's TILE_OC columns of the pointwise filter, rows FILTER_STRIDE floats apart
 *   dst     2 consecutive output pixels, OUT_C floats apart, from the same channel
 */
static void sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_tile_2x8(const float *restrict src,
    const float *restrict filter, const float *restrict bias, float *restrict dst)
{
    size_t k;
#if defined(USE_AVX2)
    __m256 acc0_0 = _mm256_loadu_ps(bias + 0);
    __m256 acc1_0 = _mm256_loadu_ps(bias + 0);
    for (k = 0; k < DW_C; ++k) {
        const float *restrict w = filter + k * FILTER_STRIDE;
        const __m256 w0 = _mm256_loadu_ps(w + 0);
        const __m256 x0 = _mm256_broadcast_ss(src + 0 * DW_C + k);
        acc0_0 = _mm256_fmadd_ps(x0, w0, acc0_0);
        const __m256 x1 = _mm256_broadcast_ss(src + 1 * DW_C + k);
        acc1_0 = _mm256_fmadd_ps(x1, w0, acc1_0);
    }
    _mm256_storeu_ps(dst + 0 * OUT_C + 0, _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(_mm256_setzero_ps(), acc0_0)));
    _mm256_storeu_ps(dst + 1 * OUT_C + 0, _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(_mm256_setzero_ps(), acc1_0)));
#elif defined(USE_NEON)
    float32x4_t acc0_0 = vld1q_f32(bias + 0);
    float32x4_t acc0_4 = vld1q_f32(bias + 4);
    float32x4_t acc1_0 = vld1q_f32(bias + 0);
    float32x4_t acc1_4 = vld1q_f32(bias + 4);
    for (k = 0; k < DW_C; ++k) {
        const float *restrict w = filter + k * FILTER_STRIDE;
        const float32x4_t w0 = vld1q_f32(w + 0);
        const float32x4_t w4 = vld1q_f32(w + 4);
        const float x0 = src[0 * DW_C + k];
        acc0_0 = vfmaq_n_f32(acc0_0, w0, x0);
        acc0_4 = vfmaq_n_f32(acc0_4, w4, x0);
        const float x1 = src[1 * DW_C + k];
        acc1_0 = vfmaq_n_f32(acc1_0, w0, x1);
        acc1_4 = vfmaq_n_f32(acc1_4, w4, x1);
    }
    vst1q_f32(dst + 0 * OUT_C + 0, vminq_f32(vmaxq_f32(acc0_0, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
    vst1q_f32(dst + 0 * OUT_C + 4, vminq_f32(vmaxq_f32(acc0_4, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
    vst1q_f32(dst + 1 * OUT_C + 0, vminq_f32(vmaxq_f32(acc1_0, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
    vst1q_f32(dst + 1 * OUT_C + 4, vminq_f32(vmaxq_f32(acc1_4, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f)));
#else
    size_t o;
    float acc0[TILE_OC];
    float acc1[TILE_OC];
    for (o = 0; o < TILE_OC; ++o) {
        acc0[o] = bias[o];
        acc1[o] = bias[o];
    }
    for (k = 0; k < DW_C; ++k) {
        const float *restrict w = filter + k * FILTER_STRIDE;
        const float x0 = src[0 * DW_C + k];
        const float x1 = src[1 * DW_C + k];
        for (o = 0; o < TILE_OC; ++o) {
            acc0[o] += x0 * w[o];
            acc1[o] += x1 * w[o];
        }
    }
    for (o = 0; o < TILE_OC; ++o) {
        dst[0 * OUT_C + o] = (acc0[o] < 0.0f ? 0.0f : acc0[o] > 6.0f ? 6.0f : acc0[o]);
        dst[1 * OUT_C + o] = (acc1[o] < 0.0f ? 0.0f : acc1[o] > 6.0f ? 6.0f : acc1[o]);
    }
#endif
}

/*
 * Edge tile: the last OUT_C % TILE_OC = 2 output channels, for up to TILE_PX pixels.
 * Portable C with run-time bounds, reading the filter in place; register tiles cover the rest.
 */
static void sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_edge_tile(size_t pixels, const float *restrict src,
    const float *restrict filter, const float *restrict bias, float *restrict dst)
{
    float acc[TILE_PX][OUT_C % TILE_OC];
    size_t p, o, k;
    for (p = 0; p < pixels; ++p)
        for (o = 0; o < OUT_C % TILE_OC; ++o)
            acc[p][o] = bias[o];
    for (k = 0; k < DW_C; ++k) {
        const float *restrict w = filter + k * OUT_C;
        for (p = 0; p < pixels; ++p) {
            const float x = src[p * DW_C + k];
            for (o = 0; o < OUT_C % TILE_OC; ++o)
                acc[p][o] += x * w[o];
        }
    }
    for (p = 0; p < pixels; ++p)
        for (o = 0; o < OUT_C % TILE_OC; ++o)
            dst[p * OUT_C + o] = (acc[p][o] < 0.0f ? 0.0f : acc[p][o] > 6.0f ? 6.0f : acc[p][o]);
}

/* The register tile for `pixels` consecutive pixels (TILE_PX, or fewer at the end of a row). */
static void sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_register_tile(size_t pixels, const float *restrict src,
    const float *restrict filter, const float *restrict bias, float *restrict dst)
{
    if (pixels == 2) {
        sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_tile_2x8(src, filter, bias, dst);
        return;
    }
    sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_tile_4x8(src, filter, bias, dst);
}

/* Copy TILE_OC columns of the pointwise filter [DW_C, OUT_C] into a contiguous panel [DW_C, TILE_OC]. */
static void sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_pack_panel(const float *restrict filter, float *restrict panel)
{
    size_t k, o;
    for (k = 0; k < DW_C; ++k)
        for (o = 0; o < TILE_OC; ++o)
            panel[k * TILE_OC + o] = filter[k * OUT_C + o];
}

/*
 * Pointwise step for rows x cols output pixels.
 *   src     their intermediate: rows of cols*DW_C floats, src_row_stride floats apart
 *   filter  [DW_C, OUT_C]
 *   dst     their output: rows of cols*OUT_C floats, dst_row_stride floats apart
 *   panel   DW_C*TILE_OC floats of scratch
 * Loop order "channels_outer": each block of TILE_OC filter columns is packed into `panel`, which
 * stays in cache while every pixel of the tile streams past it.
 */
static void sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_pointwise(const float *restrict src, size_t src_row_stride,
    const float *restrict filter, const float *restrict bias, float *restrict dst, size_t dst_row_stride,
    size_t rows, size_t cols, float *restrict panel)
{
    size_t i, j, o;
    for (o = 0; o < FULL_C; o += TILE_OC) {
        sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_pack_panel(filter + o, panel);
        for (i = 0; i < rows; ++i)
            for (j = 0; j < cols; j += TILE_PX)
                sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_register_tile(cols - j, src + i * src_row_stride + j * DW_C,
                    panel, bias + o, dst + i * dst_row_stride + j * OUT_C + o);
    }
    for (i = 0; i < rows; ++i)
        for (j = 0; j < cols; j += TILE_PX)
            sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_edge_tile(cols - j < TILE_PX ? cols - j : TILE_PX,
                src + i * src_row_stride + j * DW_C, filter + FULL_C, bias + FULL_C,
                dst + i * dst_row_stride + j * OUT_C + FULL_C);
}

/*
 * The layer, tile by tile (fused).
 * Each TILE_H x TILE_W output tile computes its depthwise result into `intermediate` (at most
 * TILE_H*TILE_W*DW_C floats) and the pointwise step consumes it at once.
 * Scratch holds the packed filter panel (DW_C*TILE_OC floats), then the intermediate.
 */
static void sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_compute(const float *restrict input, const float *restrict depthwise_filter,
    const float *restrict pointwise_filter, const float *restrict bias, float *restrict output,
    float *restrict scratch)
{
    float *restrict panel = scratch;
    float *restrict intermediate = scratch + (size_t)DW_C * TILE_OC;
    size_t b, oh0, ow0;

    /* Tiles span whole output rows, so a tile's pixels are consecutive in the intermediate and
     * in the output: the pointwise step walks them as one run of rows * cols pixels. */
    for (b = 0; b < BATCH; ++b) {
        for (oh0 = 0; oh0 < OUT_H; oh0 += TILE_H) {
            const size_t rows = OUT_H - oh0 < TILE_H ? OUT_H - oh0 : TILE_H;
            for (ow0 = 0; ow0 < OUT_W; ow0 += TILE_W) {
                const size_t cols = OUT_W - ow0 < TILE_W ? OUT_W - ow0 : TILE_W;
                const size_t first_pixel = (b * OUT_H + oh0) * OUT_W + ow0;
                sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_depthwise(input + b * ((size_t)IN_H * IN_W * IN_C), depthwise_filter,
                    intermediate, cols * DW_C, oh0, ow0, rows, cols);
                sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_pointwise(intermediate, cols * DW_C, pointwise_filter, bias,
                    output + first_pixel * OUT_C, (size_t)OUT_W * OUT_C, 1, rows * cols, panel);
            }
        }
    }
}

int sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae(const float *input, float *output, void *scratch)
{
    if (input == NULL || output == NULL || (sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_SCRATCH_BYTES > 0 && scratch == NULL))
        return -1;
    sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_compute(input, sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_depthwise_filter, sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_pointwise_filter, sepconv_f32_5x6x3_k3x3s1_m2o10_c_2c56f568_wd03b85ae_bias,
        output, (float *)scratch);
    return 0;
}

#undef BATCH
#undef IN_H
#undef IN_W
#undef IN_C
#undef MULTIPLIER
#undef DW_C
#undef DW_BLOCK
#undef OUT_H
#undef OUT_W
#undef OUT_C
#undef KERNEL_H
#undef KERNEL_W
#undef STRIDE_H
#undef STRIDE_W
#undef DILATION_H
#undef DILATION_W
#undef PAD_TOP
#undef PAD_LEFT
#undef TILE_H
#undef TILE_W
#undef TILE_PX
#undef TILE_OC
#undef FULL_C
#undef FILTER_STRIDE
#undef USE_AVX2
#undef USE_NEON
