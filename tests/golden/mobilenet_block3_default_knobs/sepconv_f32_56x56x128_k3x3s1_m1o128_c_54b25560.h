/*
 * Auto-generated file. Do not edit!
 *   Template: sepconv.h.j2
 *   Generator: sepconv_codegen (python -m sepconv_codegen emit)
 *   Layer: {"activation": null, "bias": false, "channel_multiplier": 1, "dilation": [1, 1], "dtype": "float32", "input_shape": [1, 56, 56, 128], "kernel_size": [3, 3], "name": "block3", "out_channels": 128, "padding": "SAME", "strides": [1, 1]}
 *   Knobs: {"fused": true, "oc": 16, "order": "channels_outer", "pack": false, "pad": "inline", "px": 6, "taps": "outer", "tile_h": 2, "tile_w": 56, "unroll": true, "vec": 8}
 */
#ifndef sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_H
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560: one depthwise-separable convolution (tf.nn.separable_conv2d), float32.
 *
 *   output = pointwise(depthwise(input))
 *   kernel 3x3, strides 1x1, dilation 1x1, padding top 1, bottom 1, left 1, right 1
 *
 * Tensors are contiguous float arrays in TensorFlow layouts:
 *   input             [N, H, W, C]                 sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_INPUT_SIZE floats
 *   depthwise_filter  [KH, KW, C, M]               sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_DEPTHWISE_FILTER_SIZE floats
 *   pointwise_filter  [1, 1, C*M, O]               sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_POINTWISE_FILTER_SIZE floats
 *   bias              unused: this layer has none; pass NULL
 *   output            [N, OH, OW, O]               sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_OUTPUT_SIZE floats
 *   scratch           sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_SCRATCH_BYTES bytes, float-aligned, owned by the caller
 *                     (it may be NULL when that size is 0)
 *
 * Returns 0, or -1 (computing nothing) when a required pointer is NULL. Neither the output nor
 * the scratch may overlap any other argument (all pointers are restrict). No allocation, no
 * writable global state: calls with distinct output and scratch buffers may run concurrently.
 */
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_IN_N 1
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_IN_H 56
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_IN_W 56
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_IN_C 128
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_KERNEL_H 3
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_KERNEL_W 3
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_MULTIPLIER 1
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_OUT_N 1
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_OUT_H 56
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_OUT_W 56
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_OUT_C 128
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_HAS_BIAS 0
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_INPUT_SIZE 401408u
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_DEPTHWISE_FILTER_SIZE 1152u
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_POINTWISE_FILTER_SIZE 16384u
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_BIAS_SIZE 0u
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_OUTPUT_SIZE 401408u
#define sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_SCRATCH_BYTES 65536u

int sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560(const float *input, const float *depthwise_filter, const float *pointwise_filter,
    const float *bias, float *output, void *scratch);

#ifdef __cplusplus
}
#endif

#endif /* sepconv_f32_56x56x128_k3x3s1_m1o128_c_54b25560_H */
