/* core/quant/qdot_generic.c — the kernels of core/qdot_kernels.inc for any x86-64 (or other) CPU. */
#define QS_QDOT_TABLE qs_qdot_kernels_generic
#include "core/quant/qdot_kernels.inc"
