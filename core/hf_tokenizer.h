/* core/hf_tokenizer.h — an HF tokenizer.json as GGUF tokenizer keys (spec/gguf.md §6).
 *
 * Byte-level BPE models (model.type "BPE" with a ByteLevel pre-tokenizer or decoder, as GPT-2,
 * Llama 3, Qwen write them) become tokenizer.ggml.model "gpt2": tokens by id (vocab plus
 * added_tokens; ids nobody names become "[PAD<id>]", UNUSED), token_type (added special tokens
 * CONTROL, other added tokens USER_DEFINED, the rest NORMAL), merges as "left right" (either of
 * the two JSON spellings), the pre-tokenizer id from its split pattern ("llama-bpe" for Llama 3's,
 * "gpt-2" for plain ByteLevel, else "default"), bos/eos from config.json's ids and add_bos_token
 * from a post-processor template that starts with a special token. Other tokenizer models are
 * refused (give a GGUF vocabulary instead). */
#ifndef QS_HF_TOKENIZER_H
#define QS_HF_TOKENIZER_H

#include <stddef.h>

#include "err.h"
#include "gguf.h"

/* config: config.json's text or NULL */
int qs_hf_tokenizer_keys(const char *json, size_t len, const char *config, size_t config_len, qs_gguf_writer *w,
                         qs_err *err);

/* The tokenizer.json (and config.json ids) of an HF checkpoint directory as a GGUF holding only
 * the tokenizer keys, for qs_vocab_load (a temporary file, mapped and already unlinked); NULL with
 * err set when the directory has no tokenizer.json or it cannot be read. */
qs_gguf *qs_hf_tokenizer_gguf(const char *dir, qs_err *err);

#endif
