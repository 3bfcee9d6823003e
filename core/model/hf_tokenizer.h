/* core/model/hf_tokenizer.h — an HF tokenizer.json as GGUF tokenizer keys (spec/gguf.md §6).
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

#include "core/util/err.h"
#include "core/formats/gguf.h"

/* config: config.json's text or NULL */
int qs_hf_tokenizer_keys(const char *json, size_t len, const char *config, size_t config_len, qs_gguf_writer *w,
                         qs_err *err);

/* The keys of an HF checkpoint directory's tokenizer.json (and config.json's ids): 0 written, 1 when
 * the directory has no tokenizer.json, negative with err set ("tokenizer.json: …"). */
int qs_hf_tokenizer_dir_keys(const char *dir, qs_gguf_writer *w, qs_err *err);
/* The same as a GGUF holding only the tokenizer keys, for qs_vocab_load (a temporary file, mapped
 * and already unlinked); NULL with err set when there is no tokenizer.json or it cannot be read. */
qs_gguf *qs_hf_tokenizer_gguf(const char *dir, qs_err *err);
struct qs_model;
struct qs_vocab;
/* The vocabulary of a model: its GGUF's tokenizer, or its HF checkpoint's tokenizer.json. */
struct qs_vocab *qs_model_vocab(const struct qs_model *m, qs_err *err);

#endif
