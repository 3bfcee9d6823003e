/* libFuzzer harness: HF tokenizer.json (and config.json ids) → GGUF tokenizer keys. The input is
 * split at the first NUL: tokenizer.json before it, config.json after. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/hf_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t n = nul ? (size_t)(nul - data) : size;
    char *json = malloc(n ? n : 1), *config = nul ? malloc(size - n) : NULL;
    memcpy(json, data, n);
    if (config) memcpy(config, nul + 1, size - n - 1);
    qs_gguf_writer *w = qs_gguf_writer_new();
    qs_err err;
    qs_hf_tokenizer_keys(json, n, config, config ? size - n - 1 : 0, w, &err);
    qs_gguf_writer_free(w);
    free(json);
    free(config);
    return 0;
}
