/* The exact sum's two inner loops on a CPU (see exact_sum_kernel.py and aggregation.py).
 *
 * Plain IEEE arithmetic in the same order as the torch ops they replace, so the results are bit-identical:
 * compile without -ffast-math (the loader passes -fno-trapping-math only so that the selects below can be
 * vectorized, and -ffp-contract=off). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define SCALE 1099511627776.0f          /* 2^40: values are summed as integers in units of 2^-40 */
#define INTEGRAL 8388608.0f             /* 2^23: every float32 of at least this magnitude is an integer */
#define LIMIT 1152921504606846976.0f    /* 2^60: |q| below this is in the exact sum's range */

/* One value: x = round-half-even(y), y = v·2^40, rounded as torch.round does. Below 2^23,
 * |y| + 2^23 lies where float32's spacing is 1, so the addition itself rounds (to nearest, ties to even). */
static inline float quantized(float v, int32_t *outside, int32_t *peak) {
    float y = v * SCALE;
    float m = fabsf(y);
    float r = m < INTEGRAL ? (m + INTEGRAL) - INTEGRAL : m;
    int32_t inside = m < LIMIT;  /* false for NaN and infinities too */
    *outside |= !inside;
    float kept = inside ? r : 0.0f;
    int32_t bits;
    memcpy(&bits, &kept, sizeof bits);  /* non-negative floats order as their bit patterns */
    *peak = bits > *peak ? bits : *peak;
    return copysignf(r, y);
}

/* x[i] = round((a[i] − b[i])·2^40), or of a[i]·2^40 when b is NULL. Writes max |x[i]| over the values in range
 * to *peak and returns whether any value is out of range (|x| ≥ 2^60, NaN or infinite; those are written as
 * computed, for the caller to mask). */
int32_t quantize(const float *restrict a, const float *restrict b, float *restrict x, int64_t n,
                 float *restrict peak) {
    int32_t outside = 0, top = 0;
    if (b) {
        for (int64_t i = 0; i < n; i++) x[i] = quantized(a[i] - b[i], &outside, &top);
    } else {
        for (int64_t i = 0; i < n; i++) x[i] = quantized(a[i], &outside, &top);
    }
    memcpy(peak, &top, sizeof top);
    return outside;
}

/* low[i] += weight·x[i] in float64: exact while the caller keeps the words below 2^53. */
void add_scaled(double *restrict low, const float *restrict x, int64_t n, double weight) {
    for (int64_t i = 0; i < n; i++) low[i] += weight * (double)x[i];
}
