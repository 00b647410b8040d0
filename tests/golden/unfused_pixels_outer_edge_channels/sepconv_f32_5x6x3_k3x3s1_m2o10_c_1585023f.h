/*
 * Auto-generated file. Do not edit!
 *   Template: sepconv.h.j2
 *   Generator: sepconv_codegen (python -m sepconv_codegen emit)
 *   Layer: {"activation": "relu6", "bias": true, "channel_multiplier": 2, "dilation": [1, 1], "dtype": "float32", "input_shape": [1, 5, 6, 3], "kernel_size": [3, 3], "name": "golden_small", "out_channels": 10, "padding": "SAME", "strides": [1, 1]}
 *   Knobs: {"fused": false, "oc": 8, "order": "pixels_outer", "pack": false, "pad": "inline", "px": 3, "taps": "outer", "tile_h": 2, "tile_w": 4, "unroll": true, "vec": 8}
 */
#ifndef sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_H
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f: one depthwise-separable convolution (tf.nn.separable_conv2d), float32.
 *
 *   output = relu6(pointwise(depthwise(input)) + bias)
 *   kernel 3x3, strides 1x1, dilation 1x1, padding top 1, bottom 1, left 1, right 1
 *
 * Tensors are contiguous float arrays in TensorFlow layouts:
 *   input             [N, H, W, C]                 sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_INPUT_SIZE floats
 *   depthwise_filter  [KH, KW, C, M]               sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_DEPTHWISE_FILTER_SIZE floats
 *   pointwise_filter  [1, 1, C*M, O]               sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_POINTWISE_FILTER_SIZE floats
 *   bias              [O]                          sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_BIAS_SIZE floats (required)
 *   output            [N, OH, OW, O]               sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_OUTPUT_SIZE floats
 *   scratch           sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_SCRATCH_BYTES bytes, float-aligned, owned by the caller
 *                     (it may be NULL when that size is 0)
 *
 * Returns 0, or -1 (computing nothing) when a required pointer is NULL. Neither the output nor
 * the scratch may overlap any other argument (all pointers are restrict). No allocation, no
 * writable global state: calls with distinct output and scratch buffers may run concurrently.
 */
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_IN_N 1
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_IN_H 5
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_IN_W 6
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_IN_C 3
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_KERNEL_H 3
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_KERNEL_W 3
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_MULTIPLIER 2
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_OUT_N 1
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_OUT_H 5
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_OUT_W 6
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_OUT_C 10
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_HAS_BIAS 1
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_INPUT_SIZE 90u
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_DEPTHWISE_FILTER_SIZE 54u
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_POINTWISE_FILTER_SIZE 60u
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_BIAS_SIZE 10u
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_OUTPUT_SIZE 300u
#define sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_SCRATCH_BYTES 720u

int sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f(const float *input, const float *depthwise_filter, const float *pointwise_filter,
    const float *bias, float *output, void *scratch);

#ifdef __cplusplus
}
#endif

#endif /* sepconv_f32_5x6x3_k3x3s1_m2o10_c_1585023f_H */
