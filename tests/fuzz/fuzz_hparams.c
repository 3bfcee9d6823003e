/* libFuzzer harness: hyperparameter validation (issue 16). The input describes a llama model:
 * hyperparameters (small values or raw 32-bit ones), which keys are present, and the shapes of
 * its tensors (as the keys say, or perturbed: other sizes, 1-D, missing). The model is written
 * as a GGUF or as an HF checkpoint (config.json + model.safetensors), opened with
 * qs_model_open, and then goes wherever a command would take it: qs_llm_new (and one forward
 * pass), the HF export, and the GPTQ checkpoint check. Nothing may overflow, divide by zero or
 * allocate beyond the model's own size. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/recipe/export.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/formats/safetensors.h"

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static uint8_t byte(rd *r)
{
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

static uint32_t u32(rd *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)byte(r) << (8 * i);
    return v;
}

enum { N_HP = 9 };
static const char *const gguf_keys[N_HP] = {"block_count", "embedding_length", "feed_forward_length",
                                            "attention.head_count", "attention.head_count_kv", "attention.key_length",
                                            "context_length", "vocab_size", "rope.dimension_count"};
static const char *const hf_keys[N_HP] = {"num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                                          "num_key_value_heads", "head_dim", "max_position_embeddings", "vocab_size", NULL};

static const char *const roles[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                    "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};

static char dir[64];

static void rm_dir(void)
{
    static const char *const files[] = {"m.gguf", "model.safetensors", "config.json", "hf/model.safetensors", "hf/config.json"};
    char p[128];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) snprintf(p, sizeof p, "%s/%s", dir, files[i]), unlink(p);
    snprintf(p, sizeof p, "%s/hf", dir);
    rmdir(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/qs-fuzz-hparams-XXXXXX");
        if (!mkdtemp(dir)) return 0;
    }
    rd r = {data, size};
    uint8_t mode = byte(&r), present = byte(&r), raw = byte(&r);
    uint32_t hp[N_HP];
    /* small values (1 … 64 as a sum of bytes) unless the raw bit of a key is set */
    static const uint32_t dflt[N_HP] = {2, 16, 32, 4, 2, 0, 64, 0, 0};
    for (int i = 0; i < N_HP; i++) {
        if (raw & (1u << (i % 8)) && i < 8) hp[i] = u32(&r);
        else hp[i] = byte(&r) < 160 ? dflt[i] : byte(&r) % 65;
    }
    uint32_t H = hp[3] ? hp[3] : 1, D = hp[5] ? hp[5] : hp[1] / H, Hkv = hp[4] ? hp[4] : H;
    /* the tensors' sizes: what the keys say when small, else small stand-ins */
    int64_t L = hp[0] <= 4 ? hp[0] : 1 + byte(&r) % 4, E = hp[1] && hp[1] <= 64 ? hp[1] : 1 + byte(&r) % 64;
    int64_t F = hp[2] && hp[2] <= 128 ? hp[2] : 1 + byte(&r) % 128, V = hp[7] && hp[7] <= 64 ? hp[7] : 8 + byte(&r) % 56;
    uint64_t qd = (uint64_t)H * D, kd = (uint64_t)Hkv * D;
    int64_t QR = qd && qd <= 256 ? (int64_t)qd : 1 + byte(&r) % 64, KR = kd && kd <= 256 ? (int64_t)kd : 1 + byte(&r) % 64;
    bool hf = mode & 1;
    int n_t = 0;
    char names[2 + 4 * 9][64];
    int64_t shapes[2 + 4 * 9][2];
    int dims[2 + 4 * 9];
    /* per tensor one byte: bit 0 missing, bit 1 1-D, bits 2-3 perturb rows / cols by one */
#define ADD(nm, c, rw)                                                                                                 \
    do {                                                                                                               \
        uint8_t b_ = byte(&r);                                                                                         \
        if (b_ & 1 && b_ > 200) break;                                                                                 \
        snprintf(names[n_t], sizeof names[n_t], "%s", nm);                                                             \
        shapes[n_t][0] = (c) + (b_ & 4 ? 1 : 0), shapes[n_t][1] = (rw) + (b_ & 8 ? 1 : 0);                             \
        dims[n_t] = (b_ & 2 && b_ > 220) || shapes[n_t][1] == 0 ? 1 : 2;                                               \
        if (dims[n_t] == 1) shapes[n_t][0] *= shapes[n_t][1] ? shapes[n_t][1] : 1, shapes[n_t][1] = 1;                 \
        n_t++;                                                                                                         \
    } while (0)
    ADD("token_embd.weight", E, V);
    ADD("output_norm.weight", E, 0);
    for (int64_t b = 0; b < L; b++)
        for (int k = 0; k < 9; k++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", (int)b, roles[k]);
            int64_t c = k == 4 ? QR : k == 8 ? F : E;
            int64_t rw = k == 0 || k == 5 ? 0 : k == 1 ? QR : k == 2 || k == 3 ? KR : k == 4 || k == 8 ? E : F;
            ADD(nm, c, rw);
        }
#undef ADD
    int64_t total = 0;
    for (int i = 0; i < n_t; i++) total += shapes[i][0] * shapes[i][1];
    float *w = malloc((size_t)(total ? total : 1) * sizeof *w);
    for (int64_t i = 0; i < total; i++) w[i] = (float)((i * 37 + mode) % 17) / 64.0f - 0.125f;
    qs_err err = {0};
    char path[128];
    int rc = 0;
    if (!hf) {
        qs_gguf_writer *g = qs_gguf_writer_new();
        qs_gguf_writer_set_str(g, "general.architecture", "llama");
        for (int i = 0; i < N_HP; i++) {
            char key[96];
            snprintf(key, sizeof key, "llama.%s", gguf_keys[i]);
            if (present & (1u << (i % 8)) || i < 2) qs_gguf_writer_set_u32(g, key, hp[i]);
        }
        qs_gguf_writer_set_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
        int64_t off = 0;
        for (int i = 0; i < n_t; i++) {
            int64_t ne[4] = {shapes[i][0], shapes[i][1], 1, 1};
            qs_gguf_writer_add_tensor(g, names[i], QS_TYPE_F32, (uint32_t)dims[i], ne, w + off, &err);
            off += shapes[i][0] * shapes[i][1];
        }
        snprintf(path, sizeof path, "%s/m.gguf", dir);
        rc = qs_gguf_writer_write(g, path, &err);
        qs_gguf_writer_free(g);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model_type", "llama");
        for (int i = 0; i < N_HP; i++)
            if (hf_keys[i] && (present & (1u << (i % 8)) || i < 2)) cJSON_AddNumberToObject(o, hf_keys[i], hp[i]);
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        snprintf(path, sizeof path, "%s/config.json", dir);
        FILE *f = fopen(path, "w");
        if (f && text) fputs(text, f);
        if (f) fclose(f);
        free(text);
        qs_st_out out[2 + 4 * 9];
        char hfn[2 + 4 * 9][128];
        int64_t off = 0;
        int n = 0;
        for (int i = 0; i < n_t; i++) {
            const float *d = w + off;
            off += shapes[i][0] * shapes[i][1];
            if (!qs_gguf_to_hf_name(names[i], hfn[n], sizeof hfn[n])) continue;
            out[n] = (qs_st_out){hfn[n], QS_ST_F32, dims[i], {0}, d};
            if (dims[i] == 2) out[n].shape[0] = shapes[i][1], out[n].shape[1] = shapes[i][0];
            else out[n].shape[0] = shapes[i][0];
            n++;
        }
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        const char *meta[] = {"format", "pt"};
        rc = qs_st_write(path, out, n, meta, 1, &err);
        snprintf(path, sizeof path, "%s", dir);
    }
    free(w);
    qs_model *m = rc ? NULL : qs_model_open(path, &err);
    if (m) {
        /* what every command does with a model: run it, export it */
        qs_llm *l = qs_llm_new(m, 8, &err);
        if (l) {
            int32_t tok[2] = {0, (int32_t)(m->hp.n_vocab > 1)};
            float *logits = malloc((size_t)qs_llm_n_vocab(l) * 2 * sizeof *logits);
            if (logits) qs_llm_eval(l, tok, 2, 0, logits, &err);
            free(logits);
            qs_llm_free(l);
        }
        if (qs_export_hf_model_check(m, &err) == 0 && m->gguf) {
            char out[128];
            snprintf(out, sizeof out, "%s/hf", dir);
            qs_export_hf_dir(m, -1, -1, out, &err);
        }
        qs_model_close(m);
    }
    rm_dir();
    return 0;
}
