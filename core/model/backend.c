#include "core/model/backend.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef QS_HAVE_CUDA
#include "cuda/device.h"
#endif

void qs_backend_query(qs_backend_info *info)
{
    memset(info, 0, sizeof *info);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    info->cpu_cores = n > 0 ? (int)n : 1;
#ifdef QS_HAVE_CUDA
    info->cuda_built = true;
    info->cuda_devices = qs_cuda_device_query(info->cuda_desc, sizeof info->cuda_desc);
#else
    snprintf(info->cuda_desc, sizeof info->cuda_desc, "not built with CUDA");
#endif
}
