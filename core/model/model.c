/* core/model/model.c — format-independent model: hyperparameters, tokenizer metadata, tensor roles. */
#include "core/model/model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util/fileio.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/formats/safetensors.h"

static const char *const role_names[QS_ROLE_COUNT] = {
    "other", "token_embd", "attn_norm", "attn_q", "attn_k", "attn_v", "attn_qkv", "attn_o",
    "ffn_norm", "ffn_gate", "ffn_up", "ffn_down", "output_norm", "output", "rope_freqs"};

const char *qs_role_name(qs_role r) { return r >= 0 && r < QS_ROLE_COUNT ? role_names[r] : "?"; }

bool qs_arch_supported(const char *arch)
{
    return strcmp(arch, "llama") == 0 || strcmp(arch, "mistral") == 0 || strcmp(arch, "qwen2") == 0;
}

/* ---- names ---- */

static bool strip_suffix(char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    if (a < b || strcmp(s + a - b, suffix) != 0) return false;
    s[a - b] = '\0';
    return true;
}

bool qs_role_from_gguf_name(const char *name, qs_role *role, int *block, bool *is_bias)
{
    static const struct { const char *stem; qs_role role; } globals[] = {
        {"token_embd", QS_ROLE_TOKEN_EMBD}, {"output_norm", QS_ROLE_OUTPUT_NORM},
        {"output", QS_ROLE_OUTPUT}, {"rope_freqs", QS_ROLE_ROPE_FREQS}};
    static const struct { const char *stem; qs_role role; } blocks[] = {
        {"attn_norm", QS_ROLE_ATTN_NORM}, {"attn_q", QS_ROLE_ATTN_Q}, {"attn_k", QS_ROLE_ATTN_K},
        {"attn_v", QS_ROLE_ATTN_V}, {"attn_qkv", QS_ROLE_ATTN_QKV}, {"attn_output", QS_ROLE_ATTN_O},
        {"ffn_norm", QS_ROLE_FFN_NORM}, {"ffn_gate", QS_ROLE_FFN_GATE}, {"ffn_up", QS_ROLE_FFN_UP},
        {"ffn_down", QS_ROLE_FFN_DOWN}, {"ffn_gate_exps", QS_ROLE_FFN_GATE},
        {"ffn_up_exps", QS_ROLE_FFN_UP}, {"ffn_down_exps", QS_ROLE_FFN_DOWN}};
    char s[256];
    snprintf(s, sizeof s, "%s", name);
    *is_bias = strip_suffix(s, ".bias");
    if (!*is_bias) strip_suffix(s, ".weight");
    *role = QS_ROLE_OTHER;
    *block = -1;
    int n = 0, len = 0;
    if (sscanf(s, "blk.%d.%n", &n, &len) == 1 && len > 0 && n >= 0) {
        *block = n;
        for (size_t i = 0; i < sizeof blocks / sizeof *blocks; i++)
            if (strcmp(s + len, blocks[i].stem) == 0) { *role = blocks[i].role; return true; }
        return false;
    }
    for (size_t i = 0; i < sizeof globals / sizeof *globals; i++)
        if (strcmp(s, globals[i].stem) == 0) { *role = globals[i].role; return true; }
    return false;
}

/* HF llama names ↔ GGUF names (spec/gguf.md §7): global tensors (HF without "model.") and
 * the per-layer modules */
static const char *const hf_globals[][2] = {
    {"embed_tokens.weight", "token_embd.weight"}, {"norm.weight", "output_norm.weight"}};
static const char *const hf_layer[][2] = {
    {"input_layernorm", "attn_norm"}, {"self_attn.q_proj", "attn_q"},
    {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
    {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"}, {"mlp.down_proj", "ffn_down"}};

bool qs_hf_to_gguf_name(const char *hf, char *out, size_t n)
{
    if (strcmp(hf, "lm_head.weight") == 0) {
        snprintf(out, n, "output.weight");
        return true;
    }
    const char *s = strncmp(hf, "model.", 6) == 0 ? hf + 6 : hf;
    for (size_t i = 0; i < sizeof hf_globals / sizeof *hf_globals; i++)
        if (strcmp(s, hf_globals[i][0]) == 0) {
            snprintf(out, n, "%s", hf_globals[i][1]);
            return true;
        }
    int blk = 0, len = 0;
    if (sscanf(s, "layers.%d.%n", &blk, &len) != 1 || len == 0 || blk < 0) return false;
    char mod[256];
    snprintf(mod, sizeof mod, "%s", s + len);
    const char *suffix = strip_suffix(mod, ".weight") ? "weight" : strip_suffix(mod, ".bias") ? "bias" : NULL;
    for (size_t i = 0; suffix && i < sizeof hf_layer / sizeof *hf_layer; i++)
        if (strcmp(mod, hf_layer[i][0]) == 0) {
            snprintf(out, n, "blk.%d.%s.%s", blk, hf_layer[i][1], suffix);
            return true;
        }
    return false;
}

bool qs_gguf_to_hf_name(const char *gguf, char *out, size_t n)
{
    if (strcmp(gguf, "output.weight") == 0) return snprintf(out, n, "lm_head.weight") < (int)n;
    for (size_t i = 0; i < sizeof hf_globals / sizeof *hf_globals; i++)
        if (strcmp(gguf, hf_globals[i][1]) == 0) return snprintf(out, n, "model.%s", hf_globals[i][0]) < (int)n;
    int blk, len = 0;
    if (sscanf(gguf, "blk.%d.%n", &blk, &len) != 1 || !len) return false;
    for (size_t i = 0; i < sizeof hf_layer / sizeof *hf_layer; i++) {
        size_t l = strlen(hf_layer[i][1]);
        const char *rest = gguf + len;
        if (!strncmp(rest, hf_layer[i][1], l) && rest[l] == '.')
            return snprintf(out, n, "model.layers.%d.%s%s", blk, hf_layer[i][0], rest + l) < (int)n;
    }
    return false;
}

/* ---- hyperparameters ---- */

/* hard bounds: beyond them a header is corrupt, whatever the architecture (the key names of the
 * file's format in the message) */
static int hparams_bounds(const qs_model *m, qs_err *err)
{
    const qs_hparams *hp = &m->hp;
    bool hf = m->format == QS_FORMAT_SAFETENSORS;
    struct { uint32_t v, max; const char *gguf, *hf; } b[] = {
        {hp->n_layer, QS_MAX_LAYERS, "block_count", "num_hidden_layers"},
        {hp->n_embd, QS_MAX_EMBD, "embedding_length", "hidden_size"},
        {hp->n_ff, QS_MAX_FF, "feed_forward_length", "intermediate_size"},
        {hp->n_head, QS_MAX_HEADS, "attention.head_count", "num_attention_heads"},
        {hp->n_head_kv, QS_MAX_HEADS, "attention.head_count_kv", "num_key_value_heads"},
        {hp->head_dim, QS_MAX_HEAD_DIM, "attention.key_length", "head_dim"},
        {hp->n_rot, QS_MAX_HEAD_DIM, "rope.dimension_count", "head_dim"},
        {hp->n_vocab, QS_MAX_VOCAB, "vocab_size", "vocab_size"},
        {hp->n_ctx, QS_MAX_CTX, "context_length", "max_position_embeddings"}};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++)
        if (b[i].v > b[i].max) {
            if (hf) return qs_err_set(err, QS_E_INPUT, "config.json: %s %u is beyond the sane maximum %u", b[i].hf, b[i].v, b[i].max);
            return qs_err_set(err, QS_E_INPUT, "%s.%s %u is beyond the sane maximum %u", hp->arch, b[i].gguf, b[i].v, b[i].max);
        }
    if (!(hp->norm_eps >= 0 && hp->norm_eps < 1) || !(hp->rope_base >= 0 && hp->rope_base < 1e12f))
        return qs_err_set(err, QS_E_INPUT, "%s out of range (%g)", hp->norm_eps >= 0 && hp->norm_eps < 1 ? "rope base" : "norm epsilon",
                          hp->norm_eps >= 0 && hp->norm_eps < 1 ? (double)hp->rope_base : (double)hp->norm_eps);
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].block >= (int)QS_MAX_LAYERS)
            return qs_err_set(err, QS_E_INPUT, "tensor '%.100s': block %d is beyond the sane maximum %u", m->tensors[i].name,
                              m->tensors[i].block, QS_MAX_LAYERS);
    return 0;
}

static bool is_matrix_role(qs_role r)
{
    return r == QS_ROLE_TOKEN_EMBD || r == QS_ROLE_OUTPUT || r == QS_ROLE_ATTN_Q || r == QS_ROLE_ATTN_K ||
           r == QS_ROLE_ATTN_V || r == QS_ROLE_ATTN_QKV || r == QS_ROLE_ATTN_O || r == QS_ROLE_FFN_GATE ||
           r == QS_ROLE_FFN_UP || r == QS_ROLE_FFN_DOWN;
}

/* the shape the inference engine expects of a tensor ([rows][cols]; rows 0: any) */
static bool expected_shape(const qs_hparams *hp, const qs_tensor *t, int64_t *rows, int64_t *cols)
{
    int64_t E = hp->n_embd, F = hp->n_ff, V = hp->n_vocab, QD = (int64_t)hp->n_head * hp->head_dim,
            KD = (int64_t)hp->n_head_kv * hp->head_dim;
    if (t->is_bias) {
        *rows = 0;
        *cols = t->role == QS_ROLE_ATTN_Q ? QD : t->role == QS_ROLE_ATTN_K || t->role == QS_ROLE_ATTN_V ? KD : 0;
        return *cols > 0;
    }
    switch (t->role) {
    case QS_ROLE_TOKEN_EMBD: case QS_ROLE_OUTPUT: *rows = V, *cols = E; return true;
    case QS_ROLE_ATTN_NORM: case QS_ROLE_FFN_NORM: case QS_ROLE_OUTPUT_NORM: *rows = 0, *cols = E; return true;
    case QS_ROLE_ATTN_Q: *rows = QD, *cols = E; return true;
    case QS_ROLE_ATTN_K: case QS_ROLE_ATTN_V: *rows = KD, *cols = E; return true;
    case QS_ROLE_ATTN_O: *rows = E, *cols = QD; return true;
    case QS_ROLE_FFN_GATE: case QS_ROLE_FFN_UP: *rows = F, *cols = E; return true;
    case QS_ROLE_FFN_DOWN: *rows = E, *cols = F; return true;
    default: return false;
    }
}

/* soft checks: what the inference engine (and the exports that reorder q/k rows by head) need;
 * a model failing them still opens for browsing. why: NULL when all is well. */
static const char *hparams_consistency(const qs_model *m, char *buf, size_t n)
{
    const qs_hparams *hp = &m->hp;
    if (!qs_arch_supported(hp->arch)) return snprintf(buf, n, "unsupported architecture %s", hp->arch), buf;
    if (!hp->n_layer || !hp->n_embd || !hp->n_ff) return "missing block count, embedding or feed-forward length";
    if (!hp->n_head) return "head count 0";
    if (!hp->n_head_kv || hp->n_head % hp->n_head_kv)
        return snprintf(buf, n, "KV head count %u does not divide the head count %u", hp->n_head_kv, hp->n_head), buf;
    if (!hp->head_dim || hp->head_dim % 2)
        return snprintf(buf, n, "invalid head dimension %u (embedding %u, %u heads)", hp->head_dim, hp->n_embd, hp->n_head), buf;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 || hp->n_rot > 2048)
        return snprintf(buf, n, "rotary dimension %u does not fit the head dimension %u", hp->n_rot, hp->head_dim), buf;
    if (!hp->n_vocab) return "unknown vocabulary size";
    int64_t last_block = -1;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const qs_tensor *t = &m->tensors[i];
        const char *name = t->gguf_name[0] ? t->gguf_name : t->name;
        int64_t rows, cols;
        if (strstr(name, "_exps")) continue; /* experts: not the dense engine's (it finds no ffn_gate then) */
        if (t->block >= (int64_t)hp->n_layer && t->role != QS_ROLE_OTHER)
            return snprintf(buf, n, "tensor %.60s is beyond the block count %u", name, hp->n_layer), buf;
        if (t->role != QS_ROLE_OTHER && t->block > last_block) last_block = t->block;
        if (is_matrix_role(t->role) && !t->is_bias && (t->n_dims < 2 || qs_tensor_nrows(t) < 1 || t->ne[2] * t->ne[3] != 1))
            return snprintf(buf, n, "tensor %.60s is not a matrix (%d dimensions)", name, t->n_dims), buf;
        if (!expected_shape(hp, t, &rows, &cols)) continue;
        if (t->ne[0] != cols || (rows && qs_tensor_nrows(t) != rows) || (!rows && qs_tensor_nrows(t) != 1))
            return snprintf(buf, n, "tensor %.60s is %lld × %lld, the hyperparameters say %lld × %lld", name,
                            (long long)qs_tensor_nrows(t), (long long)t->ne[0], (long long)(rows ? rows : 1), (long long)cols),
                   buf;
    }
    /* a block count beyond the blocks the file holds (the engine would size its cache for them) */
    if (last_block >= 0 && last_block + 1 < (int64_t)hp->n_layer)
        return snprintf(buf, n, "the block count is %u but the tensors fill %lld blocks", hp->n_layer, (long long)(last_block + 1)),
               buf;
    return NULL;
}

static int hparams_finish(qs_model *m, qs_err *err)
{
    qs_hparams *hp = &m->hp;
    int rc = hparams_bounds(m, err);
    if (rc) return rc;
    char buf[sizeof hp->unsupported_why];
    const char *why = hparams_consistency(m, buf, sizeof buf);
    hp->supported = why == NULL;
    if (why) snprintf(hp->unsupported_why, sizeof hp->unsupported_why, "%s", why);
    return 0;
}

/* u32 scalar, or the first element of a per-layer integer array. */
static int gguf_u32_or_first(const qs_gguf *g, const char *key, uint32_t *out, qs_err *err)
{
    const qs_gguf_kv *kv = qs_gguf_get_kv(g, key);
    if (!kv) return 1;
    if (kv->type == QS_GGUF_ARRAY && (kv->arr_type == QS_GGUF_U32 || kv->arr_type == QS_GGUF_I32)) {
        double v = kv->n ? qs_gguf_kv_num(kv, 0) : -1;
        if (v < 0) return qs_err_set(err, QS_E_INPUT, "key %s: empty or negative per-layer array", key);
        *out = (uint32_t)v;
        return 0;
    }
    return qs_gguf_get_u32(g, key, out, err);
}

static int gguf_hparams(qs_model *m, qs_err *err)
{
    const qs_gguf *g = m->gguf;
    qs_hparams *hp = &m->hp;
    const char *arch;
    size_t alen;
    int rc = qs_gguf_get_str(g, "general.architecture", &arch, &alen, err);
    if (rc < 0) return rc;
    if (rc > 0) {
        /* not a model (an imatrix, an adapter …): still browsable */
        const char *type = "unknown";
        size_t tlen = 7;
        if (qs_gguf_get_str(g, "general.type", &type, &tlen, NULL) != 0 || tlen > 40) {
            type = "unknown";
            tlen = 7;
        }
        snprintf(hp->arch, sizeof hp->arch, "none");
        snprintf(m->warning, sizeof m->warning, "not a model file: no general.architecture (general.type %.*s)",
                 (int)tlen, type);
        return 0;
    }
    if (alen == 0 || alen >= sizeof hp->arch || memchr(arch, 0, alen))
        return qs_err_set(err, QS_E_INPUT, "general.architecture is empty or too long");
    memcpy(hp->arch, arch, alen);
    hp->arch[alen] = '\0';
    hp->rope_base = 10000.0f;
    hp->rope_style = strcmp(hp->arch, "qwen2") == 0 ? QS_ROPE_NEOX : QS_ROPE_NORM;
    char key[160];
    struct { const char *suffix; uint32_t *dst; bool per_layer; } u[] = {
        {"block_count", &hp->n_layer, false}, {"embedding_length", &hp->n_embd, false},
        {"feed_forward_length", &hp->n_ff, true}, {"attention.head_count", &hp->n_head, true},
        {"attention.head_count_kv", &hp->n_head_kv, true}, {"context_length", &hp->n_ctx, false},
        {"rope.dimension_count", &hp->n_rot, false}, {"attention.key_length", &hp->head_dim, false},
        {"vocab_size", &hp->n_vocab, false}};
    for (size_t i = 0; i < sizeof u / sizeof *u; i++) {
        snprintf(key, sizeof key, "%s.%s", hp->arch, u[i].suffix);
        rc = u[i].per_layer ? gguf_u32_or_first(g, key, u[i].dst, err) : qs_gguf_get_u32(g, key, u[i].dst, err);
        if (rc < 0) return rc;
    }
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", hp->arch);
    if ((rc = qs_gguf_get_f32(g, key, &hp->norm_eps, err)) < 0) return rc;
    snprintf(key, sizeof key, "%s.rope.freq_base", hp->arch);
    if ((rc = qs_gguf_get_f32(g, key, &hp->rope_base, err)) < 0) return rc;
    if (!hp->n_head_kv) hp->n_head_kv = hp->n_head;
    if (!hp->head_dim && hp->n_head) hp->head_dim = hp->n_embd / hp->n_head;
    if (!hp->n_rot) hp->n_rot = hp->head_dim;
    return 0;
}

static int gguf_tokinfo(qs_model *m, qs_err *err)
{
    const qs_gguf *g = m->gguf;
    qs_tokinfo *t = &m->tok;
    const char *s;
    size_t len;
    int rc = qs_gguf_get_str(g, "tokenizer.ggml.model", &s, &len, err);
    if (rc < 0) return rc;
    snprintf(t->kind, sizeof t->kind, "%.*s", rc == 0 ? (int)(len < 31 ? len : 31) : 4, rc == 0 ? s : "none");
    if ((rc = qs_gguf_get_str(g, "tokenizer.ggml.pre", &s, &len, err)) < 0) return rc;
    if (rc == 0) snprintf(t->pre, sizeof t->pre, "%.*s", (int)(len < 63 ? len : 63), s);
    static const char *const arrays[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"};
    for (int i = 0; i < 2; i++) {
        const qs_gguf_kv *kv = qs_gguf_get_kv(g, arrays[i]);
        if (!kv) continue;
        if (kv->type != QS_GGUF_ARRAY || kv->arr_type != QS_GGUF_STRING)
            return qs_err_set(err, QS_E_INPUT, "%s must be an array of strings", arrays[i]);
        *(i == 0 ? &t->n_tokens : &t->n_merges) = (uint32_t)kv->n;
    }
    const qs_gguf_kv *sc = qs_gguf_get_kv(g, "tokenizer.ggml.scores");
    if (sc && (sc->type != QS_GGUF_ARRAY || sc->arr_type != QS_GGUF_F32))
        return qs_err_set(err, QS_E_INPUT, "tokenizer.ggml.scores must be an array of float32");
    t->has_scores = sc != NULL;
    static const char *const ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                      "tokenizer.ggml.unknown_token_id"};
    int32_t *dst[] = {&t->bos, &t->eos, &t->unk};
    for (int i = 0; i < 3; i++) {
        uint32_t v;
        *dst[i] = -1;
        if ((rc = qs_gguf_get_u32(g, ids[i], &v, err)) < 0) return rc;
        if (rc == 0) *dst[i] = v < (uint32_t)INT32_MAX ? (int32_t)v : -1;
    }
    return 0;
}

static int gguf_tensors(qs_model *m, qs_err *err)
{
    const qs_gguf *g = m->gguf;
    m->tensors = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *m->tensors);
    if (!m->tensors) return qs_err_set(err, QS_E_OOM, "out of memory");
    m->n_tensors = g->n_tensors;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const qs_gguf_tensor *gt = &g->tensors[i];
        qs_tensor *t = &m->tensors[i];
        snprintf(t->name, sizeof t->name, "%s", gt->name);
        snprintf(t->gguf_name, sizeof t->gguf_name, "%s", gt->name);
        qs_role_from_gguf_name(gt->name, &t->role, &t->block, &t->is_bias);
        t->type = gt->type;
        t->dtype = qs_type_name(gt->type);
        t->n_dims = (int)gt->n_dims;
        memcpy(t->ne, gt->ne, sizeof t->ne);
        t->nbytes = gt->nbytes;
        t->data = gt->data;
    }
    return 0;
}

static int init_from_gguf(qs_model *m, qs_err *err)
{
    m->format = QS_FORMAT_GGUF;
    snprintf(m->warning, sizeof m->warning, "%s", m->gguf->warning);
    int rc = gguf_hparams(m, err);
    if (!rc) rc = gguf_tokinfo(m, err);
    if (!rc) rc = gguf_tensors(m, err);
    if (rc) return rc;
    if (!m->hp.n_vocab) {
        const qs_tensor *e = qs_model_find_tensor(m, "token_embd.weight");
        m->hp.n_vocab = m->tok.n_tokens ? m->tok.n_tokens : e ? (uint32_t)e->ne[1] : 0;
    }
    m->hp.tied_output = !qs_model_find_tensor(m, "output.weight");
    return 0;
}

/* ---- safetensors ---- */

static void hf_tokinfo(qs_model *m)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/tokenizer.json", m->st->dir);
    snprintf(m->tok.kind, sizeof m->tok.kind, "none");
    m->tok.bos = m->tok.eos = m->tok.unk = -1;
    size_t len;
    char *text = qs_read_file(path, 256u << 20, &len, NULL);
    if (!text) return;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *model = root ? cJSON_GetObjectItemCaseSensitive(root, "model") : NULL;
    const cJSON *type = model ? cJSON_GetObjectItemCaseSensitive(model, "type") : NULL;
    const cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
    const cJSON *merges = model ? cJSON_GetObjectItemCaseSensitive(model, "merges") : NULL;
    const cJSON *added = root ? cJSON_GetObjectItemCaseSensitive(root, "added_tokens") : NULL;
    if (cJSON_IsString(type)) snprintf(m->tok.kind, sizeof m->tok.kind, "hf-%s", type->valuestring);
    m->tok.n_tokens = (uint32_t)(cJSON_GetArraySize(vocab) + cJSON_GetArraySize(added));
    m->tok.n_merges = (uint32_t)cJSON_GetArraySize(merges);
    cJSON_Delete(root);
}

static int hf_config(qs_model *m, qs_err *err)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/config.json", m->st->dir);
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(m->hp.arch, sizeof m->hp.arch, "unknown");
        snprintf(m->warning, sizeof m->warning, "no config.json beside the checkpoint: hyperparameters unknown");
        return 0;
    }
    size_t len;
    char *text = qs_read_file(path, 16u << 20, &len, err);
    if (!text) return -(err ? err->code : QS_E_IO);
    int rc = qs_hf_config_parse(text, len, &m->hp, err);
    free(text);
    return rc;
}

static void hf_tensor(qs_model *m, const qs_st_tensor *s, qs_tensor *t)
{
    snprintf(t->name, sizeof t->name, "%s", s->name);
    if (qs_hf_to_gguf_name(s->name, t->gguf_name, sizeof t->gguf_name))
        qs_role_from_gguf_name(t->gguf_name, &t->role, &t->block, &t->is_bias);
    else
        t->block = -1;
    t->type = qs_st_dtype_to_type(s->dtype);
    t->dtype = qs_st_dtype_name(s->dtype);
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    /* reverse the shape; dimensions beyond the fourth fold into ne[3] */
    t->n_dims = s->n_dims < 4 ? s->n_dims : 4;
    for (int d = 0; d < s->n_dims; d++) {
        int gd = d < 4 ? d : 3;
        if (d < 4) t->ne[gd] = s->shape[s->n_dims - 1 - d];
        else t->ne[3] *= s->shape[s->n_dims - 1 - d];
    }
    t->nbytes = s->end - s->begin;
    t->data = s->data;
    bool llama_like = strcmp(m->hp.arch, "llama") == 0 || strcmp(m->hp.arch, "mistral") == 0;
    uint32_t heads = t->role == QS_ROLE_ATTN_Q ? m->hp.n_head : t->role == QS_ROLE_ATTN_K ? m->hp.n_head_kv : 0;
    int64_t rows = t->is_bias ? t->ne[0] : t->ne[1];
    if (llama_like && heads && rows % heads == 0 && (rows / heads) % 2 == 0 && t->ne[2] == 1 && t->ne[3] == 1)
        t->permute_heads = (int)heads;
}

static int open_safetensors(qs_model *m, qs_err *err)
{
    m->format = QS_FORMAT_SAFETENSORS;
    m->st = qs_st_open(m->path, err);
    if (!m->st) return -(err ? err->code : QS_E_INPUT);
    int rc = hf_config(m, err);
    if (rc) return rc;
    hf_tokinfo(m);
    m->tensors = calloc((size_t)(m->st->n_tensors ? m->st->n_tensors : 1), sizeof *m->tensors);
    if (!m->tensors) return qs_err_set(err, QS_E_OOM, "out of memory");
    m->n_tensors = m->st->n_tensors;
    for (int64_t i = 0; i < m->n_tensors; i++) hf_tensor(m, &m->st->tensors[i], &m->tensors[i]);
    if (!m->hp.n_vocab) {
        const qs_tensor *e = qs_model_find_tensor(m, "token_embd.weight");
        m->hp.n_vocab = e ? (uint32_t)e->ne[1] : m->tok.n_tokens;
    }
    if (!qs_model_find_tensor(m, "output.weight")) m->hp.tied_output = true;
    return 0;
}

/* ---- open / close / access ---- */

static bool is_gguf_file(const char *path)
{
    int fd = qs_open_regular(path, NULL, NULL);
    if (fd < 0) return false;
    char magic[4] = {0};
    bool yes = read(fd, magic, 4) == 4 && memcmp(magic, "GGUF", 4) == 0;
    close(fd);
    return yes;
}

qs_model *qs_model_open(const char *path, qs_err *err)
{
    qs_model *m = calloc(1, sizeof *m);
    if (!m) {
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    struct stat st;
    int rc;
    if (stat(path, &st) != 0)
        rc = qs_err_set(err, QS_E_IO, "no such file or directory");
    else if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        rc = qs_err_set(err, QS_E_INPUT, "not a regular file (%s)", S_ISFIFO(st.st_mode) ? "a FIFO" : "special");
    else if (S_ISDIR(st.st_mode) || strstr(path, ".safetensors") || !is_gguf_file(path))
        rc = S_ISDIR(st.st_mode) || strstr(path, ".safetensors")
                 ? open_safetensors(m, err)
                 : qs_err_set(err, QS_E_INPUT, "not a GGUF or safetensors file (unknown format)");
    else if (!(m->gguf = qs_gguf_open(path, err)))
        rc = -(err ? err->code : QS_E_INPUT);
    else
        rc = init_from_gguf(m, err);
    if (!rc) rc = hparams_finish(m, err);
    if (rc) {
        qs_model_close(m);
        return NULL;
    }
    return m;
}

qs_model *qs_model_from_gguf(struct qs_gguf *g, const char *path, qs_err *err)
{
    qs_model *m = calloc(1, sizeof *m);
    if (!m) {
        qs_gguf_close(g);
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    m->gguf = g;
    if (init_from_gguf(m, err) != 0 || hparams_finish(m, err) != 0) {
        qs_model_close(m);
        return NULL;
    }
    return m;
}

void qs_model_close(qs_model *m)
{
    if (!m) return;
    free(m->tensors);
    qs_gguf_close(m->gguf);
    qs_st_close(m->st);
    free(m);
}

const qs_tensor *qs_model_find_tensor(const qs_model *m, const char *name)
{
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0 || strcmp(m->tensors[i].gguf_name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

int64_t qs_tensor_nrows(const qs_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }
int64_t qs_tensor_nelements(const qs_tensor *t) { return t->ne[0] * qs_tensor_nrows(t); }

double qs_tensor_bpw(const qs_tensor *t)
{
    int64_t n = qs_tensor_nelements(t);
    return n ? 8.0 * (double)t->nbytes / (double)n : 0.0;
}

int64_t qs_qk_hf_row(int64_t r, int64_t rows, int heads)
{
    int64_t d = rows / heads, h = r / d, rem = r % d;
    return h * d + (rem % 2) * (d / 2) + rem / 2;
}

/* Source row (file order) of GGUF-order row r. */
static int64_t source_row(const qs_tensor *t, int64_t r)
{
    if (t->permute_heads <= 0) return r;
    return qs_qk_hf_row(r, t->is_bias ? t->ne[0] : t->ne[1], t->permute_heads);
}

typedef struct read_job {
    const qs_tensor *t;
    int64_t row0, nrows;
    float *out;
    qs_err *err;
    uint8_t *scratch; /* a row's bytes (unaligned rows), or a permuted bias's floats */
} read_job;

/* the part that touches the mapping: no allocation in here (a fault jumps out of it) */
static int read_fn(void *ctx)
{
    const read_job *j = ctx;
    const qs_tensor *t = j->t;
    if (t->is_bias && t->permute_heads > 0) {
        /* a permuted 1-D bias: permute elements instead of rows */
        float *tmp = (float *)j->scratch;
        qs_dequantize_row(t->type, t->data, tmp, t->ne[0]);
        for (int64_t i = 0; i < t->ne[0]; i++) j->out[i] = tmp[source_row(t, i)];
        return 0;
    }
    int64_t rb = qs_type_row_bytes(t->type, t->ne[0]);
    for (int64_t r = 0; r < j->nrows; r++) {
        const uint8_t *src = t->data + source_row(t, j->row0 + r) * rb;
        float *dst = j->out + r * t->ne[0];
        if ((uintptr_t)src % 4) { /* rows not aligned for the block structs (alignment-1 files) */
            memcpy(j->scratch, src, (size_t)rb);
            src = j->scratch;
        }
        qs_dequantize_row(t->type, src, dst, t->ne[0]);
        for (int64_t i = 0; i < t->ne[0]; i++)
            if (!isfinite(dst[i]))
                return qs_err_set(j->err, QS_E_INPUT, "tensor '%s': row %lld, column %lld is %s", t->name,
                                  (long long)(j->row0 + r), (long long)i, isnan(dst[i]) ? "NaN" : "infinite");
    }
    return 0;
}

/* The mapped file can be truncated under us (another program rewrites the model): the SIGBUS
 * that gives becomes an error of this read (fileio.h, qs_mapped_call). */
int qs_tensor_read_rows(const qs_tensor *t, int64_t row0, int64_t nrows, float *out, qs_err *err)
{
    if (t->type < 0 || !qs_type_get(t->type) || !qs_type_get(t->type)->can_dequantize)
        return qs_err_set(err, QS_E_UNSUPPORTED, "tensor '%s': type %s cannot be read as numbers", t->name, t->dtype);
    int64_t total = qs_tensor_nrows(t);
    if (row0 < 0 || nrows < 0 || row0 > total || nrows > total - row0)
        return qs_err_set(err, QS_E_USAGE, "tensor '%s': rows %lld..%lld outside 0..%lld", t->name,
                          (long long)row0, (long long)(row0 + nrows), (long long)total);
    int64_t rb = qs_type_row_bytes(t->type, t->ne[0]), fb = t->ne[0] * (int64_t)sizeof(float);
    read_job j = {t, row0, nrows, out, err, malloc((size_t)(rb > fb ? rb : fb) + 1)};
    if (!j.scratch) return qs_err_set(err, QS_E_OOM, "out of memory");
    int rc = qs_mapped_call(read_fn, &j, err);
    free(j.scratch);
    if (rc == -QS_E_IO) qs_err_prefix(err, "tensor '%s'", t->name);
    return rc;
}
