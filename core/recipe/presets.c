/* core/recipe/presets.c — llama-quantize's type selection per preset. */
#include "core/recipe/presets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/quant/ggml_types.h"
#include "core/quant/quant.h"

enum ftype {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9, FT_Q2_K = 10,
    FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15, FT_Q5_K_S = 16, FT_Q5_K_M = 17,
    FT_Q6_K = 18, FT_Q2_K_S = 21, FT_IQ4_NL = 25, FT_IQ4_XS = 30, FT_BF16 = 32
};

/* name, llama_ftype id, default type; main: the ftype a file of mostly that type is named by */
static const struct { const char *name; int ftype, type; bool main; } table[] = {
    {"F32", FT_F32, QS_TYPE_F32, true},         {"F16", FT_F16, QS_TYPE_F16, true},
    {"BF16", FT_BF16, QS_TYPE_BF16, true},      {"Q4_0", FT_Q4_0, QS_TYPE_Q4_0, true},
    {"Q4_1", FT_Q4_1, QS_TYPE_Q4_1, true},      {"Q8_0", FT_Q8_0, QS_TYPE_Q8_0, true},
    {"Q5_0", FT_Q5_0, QS_TYPE_Q5_0, true},      {"Q5_1", FT_Q5_1, QS_TYPE_Q5_1, true},
    {"Q2_K", FT_Q2_K, QS_TYPE_Q2_K, true},      {"Q2_K_S", FT_Q2_K_S, QS_TYPE_Q2_K, false},
    {"Q3_K_S", FT_Q3_K_S, QS_TYPE_Q3_K, false}, {"Q3_K_M", FT_Q3_K_M, QS_TYPE_Q3_K, true},
    {"Q3_K", FT_Q3_K_M, QS_TYPE_Q3_K, false},   {"Q3_K_L", FT_Q3_K_L, QS_TYPE_Q3_K, false},
    {"Q4_K_S", FT_Q4_K_S, QS_TYPE_Q4_K, false}, {"Q4_K_M", FT_Q4_K_M, QS_TYPE_Q4_K, true},
    {"Q4_K", FT_Q4_K_M, QS_TYPE_Q4_K, false},   {"Q5_K_S", FT_Q5_K_S, QS_TYPE_Q5_K, false},
    {"Q5_K_M", FT_Q5_K_M, QS_TYPE_Q5_K, true},  {"Q5_K", FT_Q5_K_M, QS_TYPE_Q5_K, false},
    {"Q6_K", FT_Q6_K, QS_TYPE_Q6_K, true},      {"IQ4_NL", FT_IQ4_NL, QS_TYPE_IQ4_NL, true},
    {"IQ4_XS", FT_IQ4_XS, QS_TYPE_IQ4_XS, true}};

int qs_preset_ftype(const char *name)
{
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strcasecmp(table[i].name, name)) return table[i].ftype;
    return -1;
}

int qs_preset_ftype_of_type(int type)
{
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (table[i].main && table[i].type == type) return table[i].ftype;
    return -1;
}

const char *qs_preset_name(int ftype)
{
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (table[i].main && table[i].ftype == ftype) return table[i].name;
    return NULL;
}

static int default_type(int ftype)
{
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (table[i].ftype == ftype) return table[i].type;
    return -1;
}

typedef enum cat { C_OTHER, C_OUTPUT, C_TOKEN_EMBD, C_QKV, C_KV_B, C_V, C_K, C_Q, C_O, C_UP, C_GATE, C_DOWN } cat;

static cat category(const char *n)
{
    if (!strcmp(n, "output.weight")) return C_OUTPUT;
    if (!strcmp(n, "token_embd.weight") || !strcmp(n, "per_layer_token_embd.weight")) return C_TOKEN_EMBD;
    if (strstr(n, "attn_qkv.weight")) return C_QKV;
    if (strstr(n, "attn_kv_b.weight")) return C_KV_B;
    if (strstr(n, "attn_v.weight")) return C_V;
    if (strstr(n, "attn_k.weight")) return C_K;
    if (strstr(n, "attn_q.weight")) return C_Q;
    if (strstr(n, "attn_output.weight")) return C_O;
    if (strstr(n, "ffn_up")) return C_UP;
    if (strstr(n, "ffn_gate")) return C_GATE;
    if (strstr(n, "ffn_down")) return C_DOWN;
    return C_OTHER;
}

static bool v_like(cat c) { return c == C_V || c == C_QKV || c == C_KV_B; }

static int n_dims(const int64_t ne[4])
{
    int d = 1;
    for (int i = 1; i < 4; i++)
        if (ne[i] > 1) d = i + 1;
    return d;
}

bool qs_preset_quantizable(const char *name, const int64_t ne[4])
{
    static const char *const never[] = {
        "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj", "ssm_conv1d",
        "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight", "time_mix_first.weight",
        "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
        "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
        "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
        "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
        ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"};
    size_t l = strlen(name);
    if (n_dims(ne) < 2 || l < 6 || strcmp(name + l - 6, "weight") || strstr(name, "_norm.weight")) return false;
    for (size_t i = 0; i < sizeof never / sizeof *never; i++)
        if (strstr(name, never[i])) return false;
    return strcmp(name, "position_embd.weight") && strcmp(name, "token_types.weight");
}

static bool quantizable(const qs_preset_tensor *t) { return qs_preset_quantizable(t->name, t->ne); }

static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

typedef struct state {
    int n_attention_wv, i_attention_wv, i_ffn_down, i_ffn_gate, i_ffn_up, n_gqa;
    bool tied, is_70b;
} state;

/* §5, the in-scope ftypes */
static int mix(int ftype, int nt, const qs_preset_tensor *t, const qs_preset_model *pm, state *s)
{
    cat c = category(t->name);
    int n = pm->n_layer;
    if (c == C_OUTPUT || (s->tied && c == C_TOKEN_EMBD)) {
        if (t->ne[0] % qs_type_get(nt)->block_size) return QS_TYPE_Q8_0;
        return nt != QS_TYPE_Q8_0 ? QS_TYPE_Q6_K : nt;
    }
    if (c == C_TOKEN_EMBD) return nt;
    if (v_like(c)) {
        int i = s->i_attention_wv;
        if (ftype == FT_Q2_K) nt = s->n_gqa >= 4 ? QS_TYPE_Q4_K : QS_TYPE_Q3_K;
        else if (ftype == FT_Q2_K_S && s->n_gqa >= 4) nt = QS_TYPE_Q4_K;
        else if (ftype == FT_Q3_K_M) nt = i < 2 ? QS_TYPE_Q5_K : QS_TYPE_Q4_K;
        else if (ftype == FT_Q3_K_L) nt = QS_TYPE_Q5_K;
        else if ((ftype == FT_IQ4_NL || ftype == FT_IQ4_XS) && s->n_gqa >= 4) nt = QS_TYPE_Q5_K;
        else if ((ftype == FT_Q4_K_M || ftype == FT_Q5_K_M) && more_bits(i, s->n_attention_wv)) nt = QS_TYPE_Q6_K;
        else if (ftype == FT_Q4_K_S && i < 4) nt = QS_TYPE_Q5_K;
        if (s->is_70b && (nt == QS_TYPE_Q3_K || nt == QS_TYPE_Q4_K)) nt = QS_TYPE_Q5_K;
        if (pm->n_expert == 8) nt = QS_TYPE_Q8_0;
        s->i_attention_wv++;
        return nt;
    }
    if (c == C_K) return pm->n_expert == 8 ? QS_TYPE_Q8_0 : nt;
    if (c == C_Q) return nt;
    if (c == C_DOWN) {
        int i = s->i_ffn_down;
        if (pm->n_expert > 1) sscanf(t->name, "blk.%d.", &i);
        if (ftype == FT_Q2_K) nt = QS_TYPE_Q3_K;
        else if (ftype == FT_Q2_K_S) { if (i < n / 8) nt = QS_TYPE_Q4_K; }
        else if (ftype == FT_Q3_K_M) nt = i < n / 16 ? QS_TYPE_Q5_K : QS_TYPE_Q4_K;
        else if (ftype == FT_Q3_K_L) nt = QS_TYPE_Q5_K;
        else if (ftype == FT_Q4_K_M) { if (more_bits(i, n)) nt = QS_TYPE_Q6_K; }
        else if (i < n / 8 && (ftype == FT_IQ4_NL || ftype == FT_IQ4_XS) && !pm->has_imatrix) nt = QS_TYPE_Q5_K;
        else if (ftype == FT_Q5_K_M && more_bits(i, n)) nt = QS_TYPE_Q6_K;
        else if (ftype == FT_Q4_K_S && i < n / 8) nt = QS_TYPE_Q5_K;
        else if ((ftype == FT_Q4_0 || ftype == FT_Q5_0) && pm->has_imatrix && i < n / 8)
            nt = ftype == FT_Q4_0 ? QS_TYPE_Q4_1 : QS_TYPE_Q5_1;
        s->i_ffn_down++;
        return nt;
    }
    if (c == C_O) {
        static const int moe5[] = {FT_Q2_K, FT_Q3_K_S, FT_Q3_K_M, FT_IQ4_NL, FT_Q4_K_S, FT_Q4_K_M, FT_IQ4_XS};
        if (pm->n_expert == 8) {
            for (size_t k = 0; k < sizeof moe5 / sizeof *moe5; k++)
                if (ftype == moe5[k]) return QS_TYPE_Q5_K;
            return nt;
        }
        if (ftype == FT_Q2_K) return QS_TYPE_Q3_K;
        if (ftype == FT_Q3_K_M) return QS_TYPE_Q4_K;
        if (ftype == FT_Q3_K_L) return QS_TYPE_Q5_K;
        return nt;
    }
    if (c == C_GATE) s->i_ffn_gate++;
    if (c == C_UP) s->i_ffn_up++;
    return nt;
}

static int layer_of(const char *name)
{
    int n, len = 0;
    return sscanf(name, "blk.%d.%n", &n, &len) == 1 && len > 0 ? n : -1;
}

int qs_llama_tensor_cmp(const char *x, const char *y)
{
    int lx = layer_of(x), ly = layer_of(y);
    return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

static int cmp_order(const void *a, const void *b, void *ctx)
{
    const qs_preset_tensor *t = ctx;
    return qs_llama_tensor_cmp(t[*(const int *)a].name, t[*(const int *)b].name);
}

int qs_preset_types(int ftype, const qs_preset_model *pm, int *out, qs_err *err)
{
    int def = default_type(ftype);
    if (def < 0) return qs_err_set(err, QS_E_USAGE, "preset %d is not supported", ftype);
    state s = {0};
    s.n_gqa = pm->n_head_kv > 0 ? pm->n_head / pm->n_head_kv : 1;
    s.tied = true;
    for (int i = 0; i < pm->n; i++) {
        if (!strcmp(pm->t[i].name, "output.weight")) s.tied = false;
        if (v_like(category(pm->t[i].name))) s.n_attention_wv++;
    }
    s.is_70b = pm->arch && !strcmp(pm->arch, "llama") && pm->n_layer == 80 && pm->n_head != pm->n_head_kv;
    int *order = malloc((size_t)(pm->n ? pm->n : 1) * sizeof *order);
    if (!order) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int i = 0; i < pm->n; i++) order[i] = i;
    qsort_r(order, (size_t)pm->n, sizeof *order, cmp_order, (void *)pm->t);
    int rc = 0;
    for (int k = 0; k < pm->n && !rc; k++) {
        const qs_preset_tensor *t = &pm->t[order[k]];
        int nt = def;
        if (!quantizable(t)) nt = t->type;
        else if (def != QS_TYPE_F32 && def != QS_TYPE_F16 && def != QS_TYPE_BF16) {
            nt = mix(ftype, def, t, pm, &s);
            int fb = qs_ggml_fallback_type(nt, t->ne[0]);
            if (fb < 0) rc = qs_err_set(err, QS_E_INPUT, "%s: %lld columns, and %s has no fallback type", t->name,
                                        (long long)t->ne[0], qs_type_name(nt));
            nt = fb;
        }
        out[order[k]] = nt;
    }
    free(order);
    return rc;
}
