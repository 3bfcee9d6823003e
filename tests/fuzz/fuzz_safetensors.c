/* libFuzzer harness: safetensors file image (length + JSON header + buffer). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    qs_st_set set = {0};
    qs_err err;
    if (qs_st_parse(copy, size, &set, 0, &err) == 0) {
        volatile uint8_t sink = 0;
        for (int64_t i = 0; i < set.n_tensors; i++)
            if (set.tensors[i].end > set.tensors[i].begin)
                sink ^= set.tensors[i].data[set.tensors[i].end - set.tensors[i].begin - 1];
        (void)sink;
    }
    for (int64_t i = 0; i < set.n_tensors; i++) free(set.tensors[i].name);
    free(set.tensors);
    free(copy);
    return 0;
}
