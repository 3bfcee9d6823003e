/* core/quant/qdot_avx512.c — the kernels of core/qdot_kernels.inc compiled with
 * -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c (Makefile); entered only after a run-time
 * CPU check (core/qdot.c). */
#define QS_QDOT_TABLE qs_qdot_kernels_avx512
#include "core/quant/qdot_kernels.inc"
