/* libFuzzer harness: HF config.json → hyperparameters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    qs_hparams hp;
    qs_err err;
    qs_hf_config_parse(copy, size, &hp, &err);
    free(copy);
    return 0;
}
