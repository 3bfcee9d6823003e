/* core/export_hf.c — a llama GGUF as an HF-style checkpoint directory: config.json and
 * model.safetensors (F32), HF tensor names, attn_q/attn_k rows put back in HF order (the
 * inverse of spec/gguf.md §8). */
#include "export.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "safetensors.h"

static char *config_json(const qs_model *m, int32_t bos, int32_t eos)
{
    const qs_hparams *hp = &m->hp;
    cJSON *o = cJSON_CreateObject(), *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", "llama");
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "hidden_size", hp->n_embd);
    cJSON_AddNumberToObject(o, "intermediate_size", hp->n_ff);
    cJSON_AddNumberToObject(o, "num_hidden_layers", hp->n_layer);
    cJSON_AddNumberToObject(o, "num_attention_heads", hp->n_head);
    cJSON_AddNumberToObject(o, "num_key_value_heads", hp->n_head_kv);
    cJSON_AddNumberToObject(o, "head_dim", hp->head_dim);
    cJSON_AddNumberToObject(o, "max_position_embeddings", hp->n_ctx);
    cJSON_AddNumberToObject(o, "rms_norm_eps", hp->norm_eps);
    cJSON_AddNumberToObject(o, "rope_theta", hp->rope_base);
    cJSON_AddNumberToObject(o, "vocab_size", hp->n_vocab);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", hp->tied_output);
    if (bos >= 0) cJSON_AddNumberToObject(o, "bos_token_id", bos);
    if (eos >= 0) cJSON_AddNumberToObject(o, "eos_token_id", eos);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

static int write_text(const char *path, const char *text, qs_err *err)
{
    qs_afile af = {0};
    if (qs_afile_open(&af, path, err) || qs_afile_write(&af, text, strlen(text), err) || qs_afile_write(&af, "\n", 1, err))
        return qs_afile_abort(&af), -1;
    return qs_afile_commit(&af, err);
}

/* the tensor as F32 in HF row order */
static float *hf_rows(const qs_tensor *t, int n_head, int n_head_kv, qs_err *err)
{
    int64_t rows = qs_tensor_nrows(t), cols = t->ne[0];
    float *g = malloc((size_t)(rows * cols) * sizeof *g), *h = NULL;
    if (!g || qs_tensor_read_rows(t, 0, rows, g, err)) {
        if (g) free(g);
        else qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    int heads = t->role == QS_ROLE_ATTN_Q ? n_head : t->role == QS_ROLE_ATTN_K ? n_head_kv : 0;
    if (!heads || t->is_bias) return g;
    if (!(h = malloc((size_t)(rows * cols) * sizeof *h))) {
        free(g);
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    for (int64_t r = 0; r < rows; r++)
        memcpy(h + qs_qk_hf_row(r, rows, heads) * cols, g + r * cols, (size_t)cols * sizeof *h);
    free(g);
    return h;
}

int qs_export_hf_dir(const qs_model *m, int32_t bos, int32_t eos, const char *dir, qs_err *err)
{
    if (strcmp(m->hp.arch, "llama") || !m->gguf)
        return qs_err_set(err, QS_E_UNSUPPORTED, "HF export handles llama GGUF models (this is %s)", m->hp.arch);
    if (mkdir(dir, 0755) && errno != EEXIST) return qs_err_set(err, QS_E_IO, "cannot create %s: %s", dir, strerror(errno));
    int n = (int)m->n_tensors, rc = 0;
    qs_st_out *out = calloc((size_t)(n ? n : 1), sizeof *out);
    char (*names)[128] = calloc((size_t)(n ? n : 1), sizeof *names);
    if (!out || !names) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        const qs_tensor *t = &m->tensors[i];
        if (!qs_gguf_to_hf_name(t->name, names[i], sizeof names[i])) {
            rc = qs_err_set(err, QS_E_UNSUPPORTED, "%s has no HF llama name", t->name);
            break;
        }
        int64_t rows = qs_tensor_nrows(t);
        out[i] = (qs_st_out){names[i], QS_ST_F32, rows > 1 || t->n_dims > 1 ? 2 : 1, {0}, NULL};
        if (out[i].n_dims == 2) out[i].shape[0] = rows, out[i].shape[1] = t->ne[0];
        else out[i].shape[0] = t->ne[0];
        if (!(out[i].data = hf_rows(t, (int)m->hp.n_head, (int)m->hp.n_head_kv, err))) rc = -1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt"};
    if (!rc) rc = qs_st_write(path, out, n, meta, 1, err);
    char *cfg = rc ? NULL : config_json(m, bos, eos);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!rc) rc = cfg ? write_text(path, cfg, err) : qs_err_set(err, QS_E_OOM, "out of memory");
    free(cfg);
    for (int i = 0; out && i < n; i++) free((void *)out[i].data);
    free(out);
    free(names);
    return rc;
}
