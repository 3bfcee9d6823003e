/* core/qdot.h — quantized dot products as llama.cpp's x86 CPU backend computes them
 * (TEMPORARY scalar stand-in; replaced by the qdot branch). */
#ifndef QS_QDOT_H
#define QS_QDOT_H

#include <stddef.h>
#include <stdint.h>

int qs_qdot_act_type(int weight_type, int64_t cols);
void qs_qdot_quantize_act(int act_type, const float *x, void *y, int64_t n);
void qs_qdot_round_act(int act_type, const float *x, float *x_out, float *s_err, int64_t n);
float qs_qdot_vec(int weight_type, int64_t n, const void *w, const void *a);
void qs_qdot_rows(int weight_type, int64_t n, const void *w, size_t row_bytes, int64_t nrows, const void *a, float *y);
void qs_qdot_dequantize_rows(int type, const void *src, size_t row_bytes, float *dst, int64_t nrows, int64_t n);

#endif
