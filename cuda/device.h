/* cuda/device.h — CUDA runtime queries behind a C interface (no CUDA types leak out).
 * qs_cuda_device_query returns the number of usable devices (0 when the driver or device is
 * missing, never failing) and describes device 0, or why there is none, in buf. */
#ifndef QS_CUDA_DEVICE_H
#define QS_CUDA_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

int qs_cuda_device_query(char *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif
