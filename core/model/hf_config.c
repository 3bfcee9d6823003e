/* core/model/hf_config.c — HF config.json → qs_hparams (cJSON). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/model/model.h"

static int get_u32(const cJSON *root, const char *key, uint32_t *out, qs_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return 1;
    double v = cJSON_IsNumber(j) ? j->valuedouble : -1;
    if (!(v >= 0 && v <= 4294967295.0) || v != (double)(uint32_t)v)
        return qs_err_set(err, QS_E_INPUT, "config.json: %s must be a non-negative integer", key);
    *out = (uint32_t)v;
    return 0;
}

static int get_f32(const cJSON *root, const char *key, float *out, qs_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return 1;
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= 0 && j->valuedouble < 1e30))
        return qs_err_set(err, QS_E_INPUT, "config.json: %s must be a non-negative number", key);
    *out = (float)j->valuedouble;
    return 0;
}

static void arch_from_config(const cJSON *root, char *arch, size_t n)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? archs->child : NULL;
    static const char *const known[][2] = {
        {"LlamaForCausalLM", "llama"}, {"MistralForCausalLM", "mistral"}, {"Qwen2ForCausalLM", "qwen2"}};
    if (cJSON_IsString(mt) && mt->valuestring[0]) {
        snprintf(arch, n, "%s", mt->valuestring);
        return;
    }
    for (size_t i = 0; cJSON_IsString(a0) && i < sizeof known / sizeof *known; i++)
        if (strcmp(a0->valuestring, known[i][0]) == 0) {
            snprintf(arch, n, "%s", known[i][1]);
            return;
        }
    snprintf(arch, n, "%s", cJSON_IsString(a0) ? a0->valuestring : "unknown");
}

int qs_hf_config_parse(const char *text, size_t len, qs_hparams *hp, qs_err *err)
{
    memset(hp, 0, sizeof *hp);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) return qs_err_set(err, QS_E_INPUT, "config.json is not valid JSON");
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qs_err_set(err, QS_E_INPUT, "config.json is not a JSON object");
    }
    arch_from_config(root, hp->arch, sizeof hp->arch);
    hp->rope_base = 10000.0f;
    hp->norm_eps = 1e-6f;
    int rc = 0;
    struct { const char *key; uint32_t *dst; } ints[] = {
        {"num_hidden_layers", &hp->n_layer}, {"hidden_size", &hp->n_embd},
        {"intermediate_size", &hp->n_ff}, {"num_attention_heads", &hp->n_head},
        {"num_key_value_heads", &hp->n_head_kv}, {"head_dim", &hp->head_dim},
        {"max_position_embeddings", &hp->n_ctx}, {"vocab_size", &hp->n_vocab}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints && rc >= 0; i++)
        rc = get_u32(root, ints[i].key, ints[i].dst, err);
    if (rc >= 0) rc = get_f32(root, "rms_norm_eps", &hp->norm_eps, err);
    if (rc >= 0) rc = get_f32(root, "rope_theta", &hp->rope_base, err);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (rc >= 0 && tie && !cJSON_IsBool(tie))
        rc = qs_err_set(err, QS_E_INPUT, "config.json: tie_word_embeddings must be true or false");
    hp->tied_output = cJSON_IsTrue(tie);
    cJSON_Delete(root);
    if (rc < 0) return rc;
    if (!hp->n_head_kv) hp->n_head_kv = hp->n_head;
    if (!hp->head_dim && hp->n_head) hp->head_dim = hp->n_embd / hp->n_head;
    hp->n_rot = hp->head_dim;
    hp->rope_style = strcmp(hp->arch, "qwen2") == 0 ? QS_ROPE_NEOX : QS_ROPE_NORM;
    return 0;
}
