/* libFuzzer harness: the calibration cache reader over arbitrary bytes (with the file's own key,
 * so the checks past the key are reached). Every accepted set is turned into tensor views. The
 * checksum check (qs_calib_verify, what qs_calib_load does first) runs on every input, but the
 * parser runs whatever it says: mutated inputs never carry a matching checksum, and the parser
 * behind it must hold up on its own. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/data/calib.h"
#include "core/formats/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    qs_err err;
    qs_gguf *g = qs_gguf_open_mem(copy, size, &err);
    if (g) {
        const char *k;
        size_t kl;
        char key[64] = "";
        if (qs_gguf_get_str(g, "calib.key", &k, &kl, &err) == 0 && kl < sizeof key) memcpy(key, k, kl), key[kl] = '\0';
        qs_calib_verify(g, &err);
        qs_calib_set *s = qs_calib_load_gguf(g, key, &err);
        for (int i = 0; s && i < s->n_sites; i++) {
            qs_calib c;
            if (qs_calib_for_tensor(s, s->sites[i].names[0], s->hessians, &c, &err) == 0) qs_calib_free(&c);
        }
        qs_calib_set_free(s);
        qs_gguf_close(g);
    }
    free(copy);
    return 0;
}
