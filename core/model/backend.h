/* core/model/backend.h — which compute backends this build and this machine offer.
 * The CPU backend always exists. The CUDA backend exists when the binary was built with nvcc
 * (QS_HAVE_CUDA) and a driver and device answer at run time; without them the binary still
 * runs, on the CPU. */
#ifndef QS_BACKEND_H
#define QS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

typedef struct qs_backend_info {
    int cpu_cores;           /* online processors */
    bool cuda_built;         /* compiled with CUDA support */
    int cuda_devices;        /* devices found at run time (0 without driver/GPU) */
    char cuda_desc[256];     /* "NVIDIA H200, sm_90, 139.8 GiB" or why none */
} qs_backend_info;

void qs_backend_query(qs_backend_info *info);

#endif
