/* core/quant/qdot_avx2.c — the kernels of core/qdot_kernels.inc compiled with -mavx2 -mfma -mf16c
 * (Makefile); entered only after a run-time CPU check (core/qdot.c). */
#define QS_QDOT_TABLE qs_qdot_kernels_avx2
#include "core/quant/qdot_kernels.inc"
