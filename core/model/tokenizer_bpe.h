/* core/model/tokenizer_bpe.h — internal to the tokenizer: BPE pre-tokenization and byte map. */
#ifndef QS_TOKENIZER_BPE_H
#define QS_TOKENIZER_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* index of the pre type named pre[0..n) (n = 0: default) and its flags; -1 if unsupported */
int qs_bpe_pre_find(const char *pre, size_t n, bool *clean_spaces, bool *ignore_merges, bool *add_bos);
/* (NULL and *nw = 0: out of memory) */
int *qs_bpe_pretokenize(int pre, const uint32_t *cp, int n, int *nw);
uint32_t qs_bpe_byte_to_cp(uint8_t b);
int qs_bpe_cp_to_byte(uint32_t cp); /* -1 outside the map */

#endif
