/* core/quant/ggml_ksearch.h — internal to the GGML quantizers: the K-quant / IQ4 block quantizers
 * split into a search (the sub-block scale searches, nearly all of the work) and a finish
 * (super-block scales, requantization, packing). ggml_quants_simd.c runs the search for 8
 * blocks at once, one block per SIMD lane, with the same operation sequence per lane as
 * qs_ksearch_block, so the bytes do not change. */
#ifndef QS_GGML_KSEARCH_H
#define QS_GGML_KSEARCH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct qs_ksearch {
    float scales[16], mins[16], sw[16];
    uint8_t L[256];
} qs_ksearch;

/* types: Q2_K … Q6_K, IQ4_NL, IQ4_XS; x and qw (NULL or the block's importance) at the block */
void qs_ksearch_block(int type, const float *x, const float *qw, qs_ksearch *s);
void qs_kfinish_block(int type, const float *x, const float *qw, qs_ksearch *s, void *y);

/* 8 blocks at once (x[l], qw[l] for lane l; qw all NULL or all set). AVX2 code: call it only
 * when qs_ksearch_simd_available() (checked in code compiled for the baseline CPU). */
bool qs_ksearch_simd_available(void);
void qs_ksearch_block8(int type, const float *const x[8], const float *const qw[8], qs_ksearch s[8]);

#endif
