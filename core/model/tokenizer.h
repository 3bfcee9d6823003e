/* core/model/tokenizer.h — llama.cpp-compatible tokenizers from GGUF vocabularies
 * (spec/tokenizer.md): vocabulary loading with token attributes, special-token
 * partitioning, SentencePiece-style (`llama`) encoding with byte fallback, decoding with the
 * space and clean-up rules. Byte-level BPE (`gpt2`) vocabularies load but do not encode yet
 * (QS_E_UNSUPPORTED). */
#ifndef QS_TOKENIZER_H
#define QS_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util/err.h"

struct qs_gguf;

enum qs_tok_attr {
    QS_ATTR_UNKNOWN = 1, QS_ATTR_UNUSED = 2, QS_ATTR_NORMAL = 4, QS_ATTR_CONTROL = 8,
    QS_ATTR_USER_DEFINED = 16, QS_ATTR_BYTE = 32, QS_ATTR_LSTRIP = 128, QS_ATTR_RSTRIP = 256,
};

typedef enum qs_vocab_kind { QS_VOCAB_SPM, QS_VOCAB_BPE } qs_vocab_kind;

typedef struct qs_vocab qs_vocab;

qs_vocab *qs_vocab_load(const struct qs_gguf *g, qs_err *err);
void qs_vocab_free(qs_vocab *v);

qs_vocab_kind qs_vocab_kind_of(const qs_vocab *v);
int32_t qs_vocab_size(const qs_vocab *v);
int32_t qs_vocab_bos(const qs_vocab *v);
int32_t qs_vocab_eos(const qs_vocab *v);
bool qs_vocab_add_bos(const qs_vocab *v);
bool qs_vocab_is_eog(const qs_vocab *v, int32_t id);
const char *qs_vocab_text(const qs_vocab *v, int32_t id, size_t *len);
int32_t qs_vocab_find(const qs_vocab *v, const char *text, size_t len); /* -1 if absent */

/* Encodes text; *ids is malloc'ed (free it), *n its length. */
int qs_tokenize(const qs_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                int32_t **ids, int64_t *n, qs_err *err);
/* Piece of one token (§6.1); returns its length (bytes written up to cap). */
size_t qs_token_piece(const qs_vocab *v, int32_t id, bool special, int lstrip, char *buf, size_t cap);
/* Whole-sequence decode (§6.2); returns a malloc'ed NUL-terminated string (NULL: out of memory). */
char *qs_detokenize(const qs_vocab *v, const int32_t *ids, int64_t n, bool remove_special, bool unparse_special);

#endif
