/* core/model/bpe_train.h — trains a SentencePiece-style byte-fallback BPE vocabulary.
 *
 * The text is normalized the way llama.cpp's `llama` tokenizer sees it (a leading ▁, every
 * space → ▁); words start at each ▁ and newlines stand alone (they are encoded by the byte
 * token <0x0A>). Vocabulary: <unk>, <s>, </s>, the 256 byte tokens <0x00>…<0xFF>, every
 * character of the text (most frequent first), then the BPE merges in the order they were
 * learnt until vocab_size. Scores order the merges (the k-th merge scores −k, characters
 * below every merge), so llama.cpp's score-driven merging replays them. Deterministic:
 * ties go to the pair of smallest symbol ids. */
#ifndef QS_BPE_TRAIN_H
#define QS_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/util/err.h"
#include "core/util/progress.h"

typedef struct qs_spm_vocab {
    int n;
    char **pieces;    /* UTF-8, ▁ for spaces */
    float *scores;
    int32_t *types;   /* GGUF token types: 1 normal, 2 unknown, 3 control, 6 byte */
} qs_spm_vocab;

int qs_bpe_train(const char *text, size_t len, int vocab_size, qs_spm_vocab *out, qs_progress *prog, qs_err *err);
void qs_spm_vocab_free(qs_spm_vocab *v);

struct qs_gguf_writer;
/* tokenizer.ggml.* keys of a `llama` (SentencePiece) tokenizer: model, pre "default", tokens,
 * scores, token_type, bos 1, eos 2, unk 0, add_bos_token, add_eos_token, add_space_prefix. */
int qs_spm_vocab_write_keys(const qs_spm_vocab *v, struct qs_gguf_writer *w);

#endif
