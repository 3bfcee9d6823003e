/* core/model/hf_tokenizer.c — tokenizer.json (byte-level BPE) → GGUF tokenizer keys. */
#include "core/model/hf_tokenizer.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util/fileio.h"
#include "core/model/model.h"
#include "core/formats/safetensors.h"
#include "core/model/tokenizer.h"

enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5 };

static const cJSON *item(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static bool has_type(const cJSON *o, const char *type)
{
    const cJSON *t = item(o, "type");
    if (cJSON_IsString(t) && !strcmp(t->valuestring, type)) return true;
    const cJSON *seq = item(o, "pretokenizers");
    if (!seq) seq = item(o, "decoders");
    const cJSON *e;
    cJSON_ArrayForEach(e, seq) if (has_type(e, type)) return true;
    return false;
}

/* the Split pattern of a pre-tokenizer (sequence), or NULL */
static const char *split_pattern(const cJSON *o)
{
    const cJSON *t = item(o, "type"), *p = item(o, "pattern");
    if (cJSON_IsString(t) && !strcmp(t->valuestring, "Split") && p && cJSON_IsString(item(p, "Regex")))
        return item(p, "Regex")->valuestring;
    const cJSON *e;
    cJSON_ArrayForEach(e, item(o, "pretokenizers"))
    {
        const char *s = split_pattern(e);
        if (s) return s;
    }
    return NULL;
}

static const char *pre_name(const cJSON *pre)
{
    const char *pat = pre ? split_pattern(pre) : NULL;
    if (pat && strstr(pat, "\\p{N}{1,3}") && strstr(pat, "(?i:'s|'t|'re|'ve|'m|'ll|'d)")) return "llama-bpe";
    if (!pat && pre && has_type(pre, "ByteLevel")) return "gpt-2";
    return "default";
}

/* a post-processor template that puts a special token first */
static bool adds_bos(const cJSON *post)
{
    const cJSON *single = post ? item(post, "single") : NULL;
    if (!single && post) {
        const cJSON *e;
        cJSON_ArrayForEach(e, item(post, "processors")) if (adds_bos(e)) return true;
    }
    const cJSON *first = cJSON_GetArrayItem(single, 0);
    return first && item(first, "SpecialToken");
}

static int config_id(const char *config, size_t n, const char *key)
{
    cJSON *c = config ? cJSON_ParseWithLength(config, n) : NULL;
    const cJSON *v = c ? item(c, key) : NULL;
    int id = cJSON_IsNumber(v) && v->valueint >= 0 ? v->valueint : -1;
    cJSON_Delete(c);
    return id;
}

typedef struct vocab_arrays {
    char **tokens;
    int32_t *types;
    int n;
} vocab_arrays;

static int put_token(vocab_arrays *v, int id, const char *text, int type, qs_err *err)
{
    if (id < 0 || id >= v->n) return qs_err_set(err, QS_E_INPUT, "token id %d is outside the vocabulary of %d", id, v->n);
    free(v->tokens[id]);
    if (!(v->tokens[id] = strdup(text))) return qs_err_set(err, QS_E_OOM, "out of memory");
    v->types[id] = type;
    return 0;
}

/* ids are dense in a real tokenizer.json (holes are padded with placeholders): a vocabulary may
 * reach at most this many ids beyond its entries, so one huge id cannot make millions of
 * placeholder tokens */
#define MAX_ID_HOLES 1024

static bool valid_id(const cJSON *e)
{
    return cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble <= (1 << 24) && e->valuedouble == (double)e->valueint;
}

static int vocab_fill(const cJSON *vocab, const cJSON *added, vocab_arrays *v, qs_err *err)
{
    int n = 0, entries = cJSON_GetArraySize(vocab) + cJSON_GetArraySize(added);
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab)
    {
        if (!valid_id(e))
            return qs_err_set(err, QS_E_INPUT, "model.vocab: '%.60s' has no valid id", e->string ? e->string : "?");
        if (e->valueint + 1 > n) n = e->valueint + 1;
    }
    cJSON_ArrayForEach(e, added)
    {
        const cJSON *id = item(e, "id");
        if (!valid_id(id) || !cJSON_IsString(item(e, "content")))
            return qs_err_set(err, QS_E_INPUT, "added_tokens: an entry without id or content");
        if (id->valueint + 1 > n) n = id->valueint + 1;
    }
    if (n > entries + MAX_ID_HOLES)
        return qs_err_set(err, QS_E_INPUT, "token id %d is far beyond the %d entries of the vocabulary", n - 1, entries);
    v->n = n;
    v->tokens = calloc((size_t)(n ? n : 1), sizeof *v->tokens);
    v->types = calloc((size_t)(n ? n : 1), sizeof *v->types);
    if (!v->tokens || !v->types) return qs_err_set(err, QS_E_OOM, "out of memory");
    int rc = 0;
    cJSON_ArrayForEach(e, vocab) if (!rc) rc = put_token(v, e->valueint, e->string, TT_NORMAL, err);
    cJSON_ArrayForEach(e, added)
    {
        if (rc) break;
        rc = put_token(v, item(e, "id")->valueint, item(e, "content")->valuestring,
                       cJSON_IsTrue(item(e, "special")) ? TT_CONTROL : TT_USER, err);
    }
    char pad[32];
    for (int i = 0; !rc && i < n; i++)
        if (!v->tokens[i]) snprintf(pad, sizeof pad, "[PAD%d]", i), rc = put_token(v, i, pad, TT_UNUSED, err);
    return rc;
}

/* "a b" strings or ["a", "b"] pairs, as "a b" */
static char **merge_strings(const cJSON *merges, int *n, qs_err *err)
{
    *n = cJSON_GetArraySize(merges);
    char **m = calloc((size_t)(*n ? *n : 1), sizeof *m);
    if (!m) return qs_err_set(err, QS_E_OOM, "out of memory"), NULL;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges)
    {
        const cJSON *a = cJSON_GetArrayItem(e, 0), *b = cJSON_GetArrayItem(e, 1);
        if (cJSON_IsString(e)) m[i] = strdup(e->valuestring);
        else if (cJSON_IsString(a) && cJSON_IsString(b) && (m[i] = malloc(strlen(a->valuestring) + strlen(b->valuestring) + 2)))
            sprintf(m[i], "%s %s", a->valuestring, b->valuestring);
        else if (!cJSON_IsString(a) || !cJSON_IsString(b)) {
            qs_err_set(err, QS_E_INPUT, "model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", i);
            break;
        }
        if (!m[i]) {
            qs_err_set(err, QS_E_OOM, "out of memory");
            break;
        }
        i++;
    }
    if (i < *n) {
        for (int k = 0; k < i; k++) free(m[k]);
        free(m);
        return NULL;
    }
    return m;
}

static int write_keys(const cJSON *root, const char *config, size_t clen, const vocab_arrays *v, char **merges, int nm,
                      qs_gguf_writer *w, qs_err *err)
{
    int bos = config_id(config, clen, "bos_token_id"), eos = config_id(config, clen, "eos_token_id");
    int rc = qs_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2") ||
             qs_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre_name(item(root, "pre_tokenizer"))) ||
             qs_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, (uint64_t)v->n) ||
             qs_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", QS_GGUF_I32, v->types, (uint64_t)v->n) ||
             qs_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, (uint64_t)nm);
    if (!rc && bos >= 0 && bos < v->n) rc = qs_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (!rc && eos >= 0 && eos < v->n) rc = qs_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (!rc && adds_bos(item(root, "post_processor"))) rc = qs_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    return rc ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
}

int qs_hf_tokenizer_keys(const char *json, size_t len, const char *config, size_t config_len, qs_gguf_writer *w,
                         qs_err *err)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return qs_err_set(err, QS_E_INPUT, "tokenizer.json is not JSON");
    const cJSON *model = item(root, "model"), *type = model ? item(model, "type") : NULL;
    const cJSON *vocab = model ? item(model, "vocab") : NULL, *merges = model ? item(model, "merges") : NULL;
    bool byte_level = has_type(item(root, "pre_tokenizer"), "ByteLevel") || has_type(item(root, "decoder"), "ByteLevel");
    int rc = 0;
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") || !cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        rc = qs_err_set(err, QS_E_UNSUPPORTED, "tokenizer.json: only BPE models with a vocab and merges are read");
    else if (!byte_level || cJSON_IsTrue(item(model, "byte_fallback")))
        rc = qs_err_set(err, QS_E_UNSUPPORTED,
                        "tokenizer.json: a SentencePiece-style BPE has no scores here; give its GGUF vocabulary (--vocab)");
    vocab_arrays v = {0};
    char **m = NULL;
    int nm = 0;
    if (!rc) rc = vocab_fill(vocab, item(root, "added_tokens"), &v, err);
    if (!rc && !(m = merge_strings(merges, &nm, err))) rc = -QS_E_INPUT;
    if (!rc) rc = write_keys(root, config, config_len, &v, m, nm, w, err);
    for (int i = 0; i < v.n && v.tokens; i++) free(v.tokens[i]);
    for (int i = 0; m && i < nm; i++) free(m[i]);
    free(v.tokens), free(v.types), free(m);
    cJSON_Delete(root);
    return rc;
}

int qs_hf_tokenizer_dir_keys(const char *dir, qs_gguf_writer *w, qs_err *err)
{
    char path[4200];
    size_t len, clen = 0;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *json = qs_read_file(path, (size_t)1 << 30, &len, NULL);
    if (!json) return 1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *config = qs_read_file(path, 16u << 20, &clen, NULL);
    int rc = qs_hf_tokenizer_keys(json, len, config, clen, w, err);
    free(json), free(config);
    return rc;
}

qs_gguf *qs_hf_tokenizer_gguf(const char *dir, qs_err *err)
{
    char tmp[] = "/tmp/quantscope-tokenizer-XXXXXX";
    qs_gguf_writer *w = qs_gguf_writer_new();
    int fd = mkstemp(tmp);
    int rc = !w ? qs_err_set(err, QS_E_OOM, "out of memory") : fd < 0 ? qs_err_set(err, QS_E_IO, "cannot create %s", tmp) : 0;
    if (fd >= 0) close(fd);
    if (!rc) rc = qs_gguf_writer_set_str(w, "general.architecture", "llama") ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
    if (!rc && (rc = qs_hf_tokenizer_dir_keys(dir, w, err)) > 0)
        rc = qs_err_set(err, QS_E_UNSUPPORTED, "no tokenizer: no tokenizer.json beside the checkpoint");
    if (!rc) rc = qs_gguf_writer_write(w, tmp, err);
    qs_gguf *g = rc ? NULL : qs_gguf_open(tmp, err);
    if (fd >= 0) unlink(tmp);
    qs_gguf_writer_free(w);
    return g;
}

qs_vocab *qs_model_vocab(const qs_model *m, qs_err *err)
{
    if (m->gguf) return qs_vocab_load(m->gguf, err);
    if (!m->st)
        return qs_err_set(err, QS_E_UNSUPPORTED, "no tokenizer: give a GGUF vocabulary with --vocab"), NULL;
    qs_gguf *g = qs_hf_tokenizer_gguf(m->st->dir, err);
    qs_vocab *v = g ? qs_vocab_load(g, err) : NULL;
    qs_gguf_close(g);
    return v;
}
