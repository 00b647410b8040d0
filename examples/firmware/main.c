/*
 * Runs one generated separable-convolution kernel on a test input, bare metal, and checks it:
 * prints a checksum of the output and the largest difference from the stored reference output.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "test_vectors.h"

/* The kernel's working memory: the caller owns it, so it can live wherever RAM is cheapest
 * (and be shared by layers that run one after another). */
static float scratch[MODEL_SCRATCH_BYTES / sizeof(float)];
static float output[MODEL_OUTPUT_SIZE];

/* FNV-1a over the output's bytes: equal checksums mean bit-identical outputs. */
static uint32_t checksum(const float *values, size_t count)
{
    const unsigned char *bytes = (const unsigned char *)values;
    uint32_t hash = 2166136261u;
    size_t i;
    for (i = 0; i < count * sizeof(float); ++i) {
        hash ^= bytes[i];
        hash *= 16777619u;
    }
    return hash;
}

int main(void)
{
    float max_error = 0.0f;
    size_t i;
    const int status = MODEL_RUN(test_input, output, scratch);

    for (i = 0; i < MODEL_OUTPUT_SIZE; ++i) {
        const float error = output[i] > expected_output[i] ? output[i] - expected_output[i]
                                                           : expected_output[i] - output[i];
        max_error = error > max_error ? error : max_error;
    }
    printf("kernel %s: status %d, %u outputs, scratch %u bytes\n", MODEL_NAME, status,
           (unsigned)MODEL_OUTPUT_SIZE, (unsigned)MODEL_SCRATCH_BYTES);
    printf("checksum 0x%08lx\n", (unsigned long)checksum(output, MODEL_OUTPUT_SIZE));
    printf("max abs error %.3g (tolerance %.3g)\n", (double)max_error, (double)TEST_TOLERANCE);
    if (status != 0 || !(max_error <= TEST_TOLERANCE)) {
        printf("FAIL\n");
        return 1;
    }
    printf("PASS\n");
    return 0;
}
