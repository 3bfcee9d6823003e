/* core/recipe/qat.c — quantization-aware training on core/train.c (see qat.h). */
#include "core/recipe/qat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/fp16.h"
#include "core/quant/ggml_types.h"
#include "core/quant/quant.h"
#include "core/model/train.h"

typedef struct qat_entry {
    const qs_recipe_entry *e;
    int param;                   /* the trainer's tensor */
    int64_t rows, cols;
    float *fq;                   /* the fake-quantized weights the forward pass reads */
} qat_entry;

struct qs_qat {
    const qs_model *m;
    const qs_recipe_table *t;
    qs_qat_config c;
    qs_trainer *tr;
    qat_entry *q;
    int64_t n_q;
    double last_loss;
    qs_model view;               /* qs_qat_model's */
    void **view_owned;           /* [view.n_tensors] converted kept tensors */
};

void qs_qat_config_default(qs_qat_config *c)
{
    *c = (qs_qat_config){.batch = 8, .seq = 128, .steps = 300, .warmup = 20, .lr = 1e-4f, .min_lr = 1e-5f,
                         .weight_decay = 0.0f, .clip = 1.0f, .seed = 1234, .n_threads = 0};
}

/* the trainer's configuration for m's shape and c's schedule */
static int trainer_config(const qs_model *m, const qs_qat_config *c, int bos, qs_train_config *tc, qs_err *err)
{
    const qs_hparams *hp = &m->hp;
    if (!hp->supported) return qs_err_set(err, QS_E_UNSUPPORTED, "the model cannot run: %s", hp->unsupported_why);
    if (strcmp(hp->arch, "llama"))
        return qs_err_set(err, QS_E_UNSUPPORTED, "QAT trains llama models; this one is '%s'", hp->arch);
    if (hp->rope_style != QS_ROPE_NORM || hp->n_rot != hp->head_dim || hp->head_dim * hp->n_head != hp->n_embd)
        return qs_err_set(err, QS_E_UNSUPPORTED, "QAT's trainer rotates whole heads (normal RoPE, head_dim·heads = embedding)");
    if (c->seq > (int)hp->n_ctx)
        return qs_err_set(err, QS_E_USAGE, "a window of %d tokens is longer than the model's context (%u)", c->seq, hp->n_ctx);
    qs_err e2 = {0};
    qs_train_preset("tiny", tc, &e2);
    tc->dim = (int)hp->n_embd, tc->n_layers = (int)hp->n_layer, tc->n_heads = (int)hp->n_head;
    tc->n_kv_heads = (int)hp->n_head_kv, tc->ff = (int)hp->n_ff, tc->ctx = (int)hp->n_ctx, tc->vocab = (int)hp->n_vocab;
    tc->tied = hp->tied_output, tc->rope_base = hp->rope_base, tc->norm_eps = hp->norm_eps;
    tc->batch = c->batch, tc->seq = c->seq, tc->steps = c->steps, tc->warmup = c->warmup, tc->lr = c->lr;
    tc->min_lr = c->min_lr, tc->weight_decay = c->weight_decay, tc->clip = c->clip, tc->seed = c->seed, tc->bos = bos;
    return qs_train_config_check(tc, err);
}

static bool is_float_type(int type) { return type == QS_TYPE_F32 || type == QS_TYPE_F16 || type == QS_TYPE_BF16; }

/* the model's tensors into the trainer's weights; every tensor of the model must be one of them */
static int load_masters(qs_qat *q, qs_err *err)
{
    int n_p = qs_trainer_n_params(q->tr);
    for (int i = 0; i < n_p; i++) {
        float *w, *g;
        int64_t n;
        const char *name = qs_trainer_param(q->tr, i, &w, &g, &n);
        const qs_tensor *t = qs_model_find_tensor(q->m, name);
        if (!t) return qs_err_set(err, QS_E_INPUT, "the model has no tensor %s", name);
        if (!is_float_type(t->type))
            return qs_err_set(err, QS_E_UNSUPPORTED, "%s is %s: QAT starts from a float model (F32, F16, BF16)", name, t->dtype);
        if (qs_tensor_nelements(t) != n) return qs_err_set(err, QS_E_INPUT, "%s: unexpected shape", name);
        if (qs_tensor_read_rows(t, 0, qs_tensor_nrows(t), w, err)) return -1;
    }
    if (q->m->n_tensors != n_p) {
        for (int64_t k = 0; k < q->m->n_tensors; k++) {
            const qs_tensor *t = &q->m->tensors[k];
            int i = 0;
            float *w, *g;
            int64_t n;
            while (i < n_p && strcmp(qs_trainer_param(q->tr, i, &w, &g, &n), t->gguf_name)) i++;
            if (i == n_p) return qs_err_set(err, QS_E_UNSUPPORTED, "QAT's trainer has no use for tensor %s", t->gguf_name);
        }
        return qs_err_set(err, QS_E_INPUT, "the model's tensor table does not match its shape");
    }
    return 0;
}

static int find_param(qs_trainer *tr, const char *name)
{
    for (int i = 0; i < qs_trainer_n_params(tr); i++) {
        float *w, *g;
        int64_t n;
        if (!strcmp(qs_trainer_param(tr, i, &w, &g, &n), name)) return i;
    }
    return -1;
}

/* one qat_entry per quantized entry of the recipe, its forward buffer installed */
static int plan_entries(qs_qat *q, qs_err *err)
{
    q->q = calloc((size_t)(q->t->n ? q->t->n : 1), sizeof *q->q);
    if (!q->q) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int64_t i = 0; i < q->t->n; i++) {
        const qs_recipe_entry *e = &q->t->e[i];
        if (e->keep) continue;
        const char *name = e->t->gguf_name[0] ? e->t->gguf_name : e->t->name;
        if (qs_method_needs_calib(e->cfg.method))
            return qs_err_set(err, QS_E_UNSUPPORTED, "%s: %s needs calibration on every step; QAT takes rtn, nf4, fp4 or GGML types",
                              name, e->cfg.method->name);
        int p = find_param(q->tr, name);
        if (p < 0) return qs_err_set(err, QS_E_INPUT, "the recipe quantizes %s, which the trainer does not hold", name);
        qat_entry *x = &q->q[q->n_q++];
        x->e = e, x->param = p, x->rows = qs_tensor_nrows(e->t), x->cols = e->t->ne[0];
        if (!(x->fq = malloc((size_t)(x->rows * x->cols) * sizeof *x->fq))) return qs_err_set(err, QS_E_OOM, "out of memory");
        qs_trainer_set_forward(q->tr, p, x->fq);
    }
    return 0;
}

qs_qat *qs_qat_new(const qs_model *m, const qs_recipe_table *t, const qs_qat_config *c, int bos, qs_err *err)
{
    qs_train_config tc;
    if (trainer_config(m, c, bos, &tc, err)) return NULL;
    qs_qat *q = calloc(1, sizeof *q);
    if (!q) {
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    q->m = m, q->t = t, q->c = *c, q->last_loss = NAN;
    if (!(q->tr = qs_trainer_new(&tc, err)) || load_masters(q, err) || plan_entries(q, err)) {
        qs_qat_free(q);
        return NULL;
    }
    return q;
}

static void free_view(qs_qat *q)
{
    for (int64_t i = 0; q->view_owned && i < q->view.n_tensors; i++) free(q->view_owned[i]);
    free(q->view_owned);
    free(q->view.tensors);
    q->view_owned = NULL;
    q->view.tensors = NULL;
}

void qs_qat_free(qs_qat *q)
{
    if (!q) return;
    free_view(q);
    for (int64_t i = 0; i < q->n_q; i++) free(q->q[i].fq);
    free(q->q);
    qs_trainer_free(q->tr);
    free(q);
}

qs_trainer *qs_qat_trainer(qs_qat *q) { return q->tr; }
int64_t qs_qat_step_no(const qs_qat *q) { return qs_trainer_step_no(q->tr); }
int64_t qs_qat_n_quantized(const qs_qat *q) { return q->n_q; }
double qs_qat_last_loss(const qs_qat *q) { return q->last_loss; }

float *qs_qat_forward_weights(qs_qat *q, const char *name, int64_t *n)
{
    int p = find_param(q->tr, name);
    for (int64_t i = 0; p >= 0 && i < q->n_q; i++)
        if (q->q[i].param == p) {
            *n = q->q[i].rows * q->q[i].cols;
            return q->q[i].fq;
        }
    return NULL;
}

int qs_qat_fake_quant(qs_qat *q, qs_err *err)
{
    for (int64_t i = 0; i < q->n_q; i++) {
        qat_entry *x = &q->q[i];
        float *w, *g;
        int64_t n;
        const char *name = qs_trainer_param(q->tr, x->param, &w, &g, &n);
        qs_qresult r = {0};
        if (qs_quant_run(&x->e->cfg, w, x->rows, x->cols, NULL, NULL, q->c.n_threads, &r, err))
            return qs_err_prefix(err, "%s", name);
        memcpy(x->fq, r.deq, (size_t)n * sizeof *x->fq);
        qs_qresult_free(&r);
    }
    return 0;
}

int qs_qat_step(qs_qat *q, const int32_t *stream, int64_t n, double *loss, qs_err *err)
{
    if (qs_qat_fake_quant(q, err) || qs_trainer_step(q->tr, stream, n, loss, err)) return -1;
    q->last_loss = *loss;
    return 0;
}

int qs_qat_run(qs_qat *q, const int32_t *stream, int64_t n, qs_progress *prog, qs_err *err)
{
    int64_t total = q->c.steps;
    if (!qs_progress_step(prog, qs_qat_step_no(q), total)) return qs_err_set(err, QS_E_CANCELLED, "cancelled");
    while (qs_qat_step_no(q) < total) {
        double loss;
        if (qs_qat_step(q, stream, n, &loss, err)) return -1;
        if (!qs_progress_step(prog, qs_qat_step_no(q), total)) return qs_err_set(err, QS_E_CANCELLED, "cancelled");
    }
    return 0;
}

double qs_qat_eval_loss(qs_qat *q, const int32_t *ids, int64_t n, int max_windows, qs_err *err)
{
    const qs_train_config *c = qs_trainer_config(q->tr);
    int W = c->seq + 1, lead = c->bos >= 0;
    if (qs_qat_fake_quant(q, err)) return NAN;
    int32_t *win = malloc((size_t)W * sizeof *win);
    if (!win) {
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NAN;
    }
    double sum = 0;
    int k = 0;
    for (int64_t s = 0; s + W - lead <= n && k < max_windows; s += W - lead, k++) {
        if (lead) win[0] = c->bos;
        memcpy(win + lead, ids + s, (size_t)(W - lead) * sizeof *win);
        for (int i = 0; i < W; i++)
            if (win[i] < 0 || win[i] >= c->vocab) {
                qs_err_set(err, QS_E_INPUT, "token id %d outside the vocabulary of %d", win[i], c->vocab);
                free(win);
                return NAN;
            }
        sum += qs_trainer_loss(q->tr, win, 1, false);
    }
    free(win);
    if (!k) qs_err_set(err, QS_E_INPUT, "%lld tokens of text; a window needs %d", (long long)n, W - lead);
    return k ? sum / k : NAN;
}

/* the view's tensor for a kept master: in the original's float type (converted copy when not F32) */
static int view_kept(qs_tensor *t, const float *w, int64_t n, void **owned, qs_err *err)
{
    if (t->type == QS_TYPE_F32) {
        t->data = (const uint8_t *)w;
        return 0;
    }
    uint16_t *h = malloc((size_t)n * sizeof *h);
    if (!h) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int64_t j = 0; j < n; j++) h[j] = t->type == QS_TYPE_F16 ? qs_f32_to_f16(w[j]) : qs_f32_to_bf16(w[j]);
    t->data = (const uint8_t *)h;
    *owned = h;
    return 0;
}

const qs_model *qs_qat_model(qs_qat *q, qs_err *err)
{
    free_view(q);
    q->view = *q->m;
    q->view.tensors = malloc((size_t)(q->m->n_tensors ? q->m->n_tensors : 1) * sizeof *q->view.tensors);
    q->view_owned = calloc((size_t)(q->m->n_tensors ? q->m->n_tensors : 1), sizeof *q->view_owned);
    if (!q->view.tensors || !q->view_owned) {
        free_view(q);
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    memcpy(q->view.tensors, q->m->tensors, (size_t)q->m->n_tensors * sizeof *q->view.tensors);
    for (int64_t k = 0; k < q->m->n_tensors; k++) {
        qs_tensor *t = &q->view.tensors[k];
        t->permute_heads = 0; /* the masters are in GGUF row order */
        int p = find_param(q->tr, t->gguf_name);
        float *w, *g;
        int64_t n;
        qs_trainer_param(q->tr, p, &w, &g, &n);
        bool quantized = false;
        for (int64_t i = 0; i < q->n_q; i++) quantized |= q->q[i].param == p;
        if (quantized) t->type = QS_TYPE_F32, t->dtype = qs_type_get(QS_TYPE_F32)->name, t->data = (const uint8_t *)w;
        else if (view_kept(t, w, n, &q->view_owned[k], err)) {
            free_view(q);
            return NULL;
        }
        t->nbytes = (uint64_t)qs_type_row_bytes(t->type, t->ne[0]) * (uint64_t)qs_tensor_nrows(t);
    }
    return &q->view;
}
