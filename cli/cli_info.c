/* cli/cli_info.c — `quantscope info MODEL [--json] [--kv]`. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf.h"
#include "core/model/model.h"
#include "core/formats/safetensors.h"
#include "cli/cli.h"

typedef struct totals {
    int64_t params;
    uint64_t bytes;
} totals;

static totals model_totals(const qs_model *m)
{
    totals t = {0, 0};
    for (int64_t i = 0; i < m->n_tensors; i++) {
        t.params += qs_tensor_nelements(&m->tensors[i]);
        t.bytes += m->tensors[i].nbytes;
    }
    return t;
}

static void shape_str(const qs_tensor *t, char *buf, size_t n)
{
    /* numpy order (rows first), like the docs: [ne1, ne0] */
    size_t o = (size_t)snprintf(buf, n, "[");
    int nd = t->n_dims < 1 ? 1 : t->n_dims;
    for (int d = nd - 1; d >= 0 && o < n; d--)
        o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, d == nd - 1 ? "" : ", ", t->ne[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

static void format_line(const qs_model *m, char *buf, size_t n)
{
    if (m->format == QS_FORMAT_GGUF)
        snprintf(buf, n, "GGUF v%" PRIu32 ", alignment %" PRIu32 "%s", m->gguf->version,
                 m->gguf->alignment, m->gguf->canonical ? "" : ", non-canonical layout");
    else
        snprintf(buf, n, "safetensors, %d file%s", m->st->n_files, m->st->n_files == 1 ? "" : "s");
}

static void print_text(const qs_model *m, bool kv)
{
    const qs_hparams *h = &m->hp;
    char fmt[128];
    format_line(m, fmt, sizeof fmt);
    printf("model:         %s\n", QS_ESC(m->path));
    printf("format:        %s\n", fmt);
    printf("architecture:  %s (inference: %s%s)\n", QS_ESC(h->arch), h->supported ? "supported" : "no — ",
           h->supported ? "" : QS_ESC(h->unsupported_why));
    printf("hyperparams:   n_layer %u  n_embd %u  n_ff %u  n_head %u  n_head_kv %u  head_dim %u  n_rot %u\n",
           h->n_layer, h->n_embd, h->n_ff, h->n_head, h->n_head_kv, h->head_dim, h->n_rot);
    printf("               n_ctx %u  n_vocab %u  rope_base %g (%s)  norm_eps %g  tied_output %s\n", h->n_ctx,
           h->n_vocab, h->rope_base, h->rope_style == QS_ROPE_NEOX ? "neox" : "norm", h->norm_eps,
           h->tied_output ? "yes" : "no");
    const qs_tokinfo *t = &m->tok;
    printf("tokenizer:     %s%s%s%s, %u tokens, %u merges, scores %s, bos %d eos %d unk %d\n", QS_ESC(t->kind),
           t->pre[0] ? " (pre " : "", QS_ESC(t->pre), t->pre[0] ? ")" : "", t->n_tokens, t->n_merges,
           t->has_scores ? "yes" : "no", t->bos, t->eos, t->unk);
    if (m->warning[0]) printf("warning:       %s\n", QS_ESC(m->warning));
    if (kv && m->gguf) {
        printf("\nmetadata (%" PRId64 " keys):\n", m->gguf->n_kv);
        for (int64_t i = 0; i < m->gguf->n_kv; i++) {
            char val[160];
            qs_gguf_kv_format(&m->gguf->kv[i], val, sizeof val);
            printf("  %-44s %-8s %s\n", QS_ESC(m->gguf->kv[i].key), qs_gguf_vtype_name(m->gguf->kv[i].type), QS_ESC(val));
        }
    }
    printf("\n%-40s %-11s %5s %-16s %-7s %12s %7s\n", "tensor", "role", "block", "shape", "type", "bytes", "bpw");
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const qs_tensor *x = &m->tensors[i];
        char shape[96], blk[16];
        shape_str(x, shape, sizeof shape);
        snprintf(blk, sizeof blk, x->block >= 0 ? "%d" : "-", x->block);
        printf("%-40s %-11s %5s %-16s %-7s %12" PRIu64 " %7.3f\n", QS_ESC(x->name), qs_role_name(x->role), blk, shape,
               QS_ESC(x->dtype), x->nbytes, qs_tensor_bpw(x));
    }
    totals tt = model_totals(m);
    printf("\ntotals:        %" PRId64 " tensors, %" PRId64 " parameters, %" PRIu64 " bytes (%.2f MiB), %.3f bits per weight\n",
           m->n_tensors, tt.params, tt.bytes, (double)tt.bytes / 1048576.0,
           tt.params ? 8.0 * (double)tt.bytes / (double)tt.params : 0.0);
}

static cJSON *json_hparams(const qs_hparams *h)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "architecture", h->arch);
    cJSON_AddBoolToObject(o, "inference_supported", h->supported);
    if (!h->supported) cJSON_AddStringToObject(o, "unsupported_why", h->unsupported_why);
    struct { const char *k; uint32_t v; } u[] = {{"n_layer", h->n_layer}, {"n_embd", h->n_embd},
        {"n_ff", h->n_ff}, {"n_head", h->n_head}, {"n_head_kv", h->n_head_kv}, {"head_dim", h->head_dim},
        {"n_rot", h->n_rot}, {"n_ctx", h->n_ctx}, {"n_vocab", h->n_vocab}};
    for (size_t i = 0; i < sizeof u / sizeof *u; i++) cJSON_AddNumberToObject(o, u[i].k, u[i].v);
    cJSON_AddNumberToObject(o, "rope_base", h->rope_base);
    cJSON_AddStringToObject(o, "rope_style", h->rope_style == QS_ROPE_NEOX ? "neox" : "norm");
    cJSON_AddNumberToObject(o, "norm_eps", h->norm_eps);
    cJSON_AddBoolToObject(o, "tied_output", h->tied_output);
    return o;
}

static cJSON *json_tokenizer(const qs_tokinfo *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", t->kind);
    cJSON_AddStringToObject(o, "pre", t->pre);
    cJSON_AddNumberToObject(o, "n_tokens", t->n_tokens);
    cJSON_AddNumberToObject(o, "n_merges", t->n_merges);
    cJSON_AddBoolToObject(o, "has_scores", t->has_scores);
    cJSON_AddNumberToObject(o, "bos", t->bos);
    cJSON_AddNumberToObject(o, "eos", t->eos);
    cJSON_AddNumberToObject(o, "unk", t->unk);
    return o;
}

static cJSON *json_tensor(const qs_tensor *x)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", x->name);
    if (x->gguf_name[0]) cJSON_AddStringToObject(o, "gguf_name", x->gguf_name);
    cJSON_AddStringToObject(o, "role", qs_role_name(x->role));
    cJSON_AddNumberToObject(o, "block", x->block);
    cJSON *shape = cJSON_AddArrayToObject(o, "ne");
    for (int d = 0; d < (x->n_dims < 1 ? 1 : x->n_dims); d++)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)x->ne[d]));
    cJSON_AddStringToObject(o, "type", x->dtype);
    cJSON_AddNumberToObject(o, "bytes", (double)x->nbytes);
    cJSON_AddNumberToObject(o, "bpw", qs_tensor_bpw(x));
    return o;
}

static void print_json(const qs_model *m, bool kv)
{
    cJSON *root = cJSON_CreateObject();
    char fmt[128];
    format_line(m, fmt, sizeof fmt);
    cJSON_AddStringToObject(root, "model", m->path);
    cJSON_AddStringToObject(root, "format", fmt);
    cJSON_AddItemToObject(root, "hparams", json_hparams(&m->hp));
    cJSON_AddItemToObject(root, "tokenizer", json_tokenizer(&m->tok));
    if (m->warning[0]) cJSON_AddStringToObject(root, "warning", m->warning);
    if (kv && m->gguf) {
        cJSON *md = cJSON_AddObjectToObject(root, "metadata");
        for (int64_t i = 0; i < m->gguf->n_kv; i++) {
            char val[512];
            qs_gguf_kv_format(&m->gguf->kv[i], val, sizeof val);
            cJSON_AddStringToObject(md, m->gguf->kv[i].key, val);
        }
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "tensors");
    for (int64_t i = 0; i < m->n_tensors; i++) cJSON_AddItemToArray(arr, json_tensor(&m->tensors[i]));
    totals tt = model_totals(m);
    cJSON *tot = cJSON_AddObjectToObject(root, "totals");
    cJSON_AddNumberToObject(tot, "tensors", (double)m->n_tensors);
    cJSON_AddNumberToObject(tot, "parameters", (double)tt.params);
    cJSON_AddNumberToObject(tot, "bytes", (double)tt.bytes);
    cJSON_AddNumberToObject(tot, "bpw", tt.params ? 8.0 * (double)tt.bytes / (double)tt.params : 0.0);
    char *s = cJSON_Print(root);
    if (s) puts(s);
    free(s);
    cJSON_Delete(root);
}

int qs_cli_info(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false, kv = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = true;
        else if (strcmp(argv[i], "--kv") == 0) kv = true;
        else if (argv[i][0] == '-') return qs_cli_usage_error("info: unknown option '%s'", argv[i]);
        else if (path) return qs_cli_usage_error("info: one MODEL only");
        else path = argv[i];
    }
    if (!path) return qs_cli_usage_error("usage: quantscope info MODEL [--json] [--kv]");
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    if (!m) return qs_cli_fail(path, &err);
    if (json) print_json(m, kv);
    else print_text(m, kv);
    qs_model_close(m);
    return QS_EXIT_OK;
}
