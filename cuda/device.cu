// cuda/device.cu — device discovery for the optional CUDA backend.
#include "cuda/device.h"

#include <cstdio>
#include <cuda_runtime.h>

extern "C" int qs_cuda_device_query(char *buf, size_t n)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        snprintf(buf, n, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        cudaGetLastError();
        return 0;
    }
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
        snprintf(buf, n, "%d device(s), properties unavailable", count);
        return count;
    }
    snprintf(buf, n, "%s, sm_%d%d, %.1f GiB", p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return count;
}
