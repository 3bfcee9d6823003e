/* core/data/kld.c — base records, the _logits_ file, KL-divergence statistics. */
#include "core/data/kld.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/fileio.h"
#include "core/quant/ggml_quants.h"

int64_t qs_kld_record_slots(int n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }

static float max_of(const float *l, int V, int *imax)
{
    float m = l[0];
    int im = 0;
    for (int i = 1; i < V; i++)
        if (l[i] > m) m = l[i], im = i;
    if (imax) *imax = im;
    return m;
}

static float log_sum_exp(const float *l, int V, float m)
{
    double S = 0;
    for (int i = 0; i < V; i++) S += (double)expf(l[i] - m);
    return (float)log(S);
}

static void make_record(const float *l, int V, uint16_t *rec)
{
    float m = max_of(l, V, NULL), lse = log_sum_exp(l, V, m), mn = l[0];
    for (int i = 1; i < V; i++) mn = l[i] < mn ? l[i] : mn;
    float min_logit = mn > m - 16 ? mn : m - 16;
    float min_log_prob = min_logit - m - lse, scale = (m - min_logit) / 65535;
    memcpy(rec, &scale, 4);
    memcpy(rec + 2, &min_log_prob, 4);
    uint16_t *q = rec + 4;
    float inv = scale != 0 ? 1 / scale : 0;
    for (int i = 0; i < V; i++) q[i] = scale != 0 && l[i] > min_logit ? (uint16_t)qs_nearest_int(inv * (l[i] - min_logit)) : 0;
    if (V % 2) q[V] = 0;
}

typedef struct base_acc {
    qs_kld_base *out;
    const int32_t *toks;
    int64_t slots;
    double s1, s2;
} base_acc;

/* one chunk's logits → its records and the nll sums */
static int base_chunk(void *ctx, int k, const float *logits, qs_err *err)
{
    (void)err;
    base_acc *a = ctx;
    int n_ctx = a->out->n_ctx, V = a->out->n_vocab, first = n_ctx / 2, per = n_ctx - 1 - first;
    for (int j = first; j < n_ctx - 1; j++) {
        const float *lg = logits + (size_t)j * V;
        make_record(lg, V, a->out->records + ((int64_t)k * per + (j - first)) * a->slots);
        double nll = qs_token_nll(lg, V, a->toks[(int64_t)k * n_ctx + j + 1]);
        a->s1 += nll, a->s2 += nll * nll;
    }
    return 0;
}

int qs_kld_base_compute(qs_llm *l, const qs_vocab *v, const char *text, size_t len, int n_ctx, int n_chunks,
                        qs_progress *prog, qs_kld_base *out, qs_ppl *ppl, qs_err *err)
{
    memset(out, 0, sizeof *out);
    if (ppl) *ppl = (qs_ppl){0};
    int32_t *toks;
    int64_t nt;
    int nc, rc = qs_eval_prepare(l, v, text, len, n_ctx, n_chunks, &toks, &nt, &nc, err);
    if (rc) return rc;
    int V = qs_llm_n_vocab(l), first = n_ctx / 2, per = n_ctx - 1 - first;
    int64_t slots = qs_kld_record_slots(V);
    out->n_ctx = n_ctx, out->n_vocab = V, out->n_chunk = nc, out->n_records = (int64_t)nc * per;
    out->tokens = malloc((size_t)nc * (size_t)n_ctx * sizeof *out->tokens);
    out->records = malloc((size_t)(out->n_records * slots) * sizeof *out->records);
    if (!out->tokens || !out->records) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    if (!rc) memcpy(out->tokens, toks, (size_t)nc * (size_t)n_ctx * sizeof *toks);
    base_acc a = {out, toks, slots, 0, 0};
    if (!rc) rc = qs_eval_chunks(l, toks, nc, n_ctx, qs_vocab_add_bos(v) ? qs_vocab_bos(v) : -1, prog, base_chunk, &a, err);
    double s1 = a.s1, s2 = a.s2;
    free(toks);
    if (rc) {
        qs_kld_base_free(out);
        return rc;
    }
    if (ppl) {
        int64_t cnt = out->n_records;
        double mean = s1 / (double)cnt, var = s2 / (double)cnt - mean * mean;
        *ppl = (qs_ppl){exp(mean), var > 0 ? sqrt(var / (double)(cnt - 1)) * exp(mean) : 0, s1, s2, cnt, nc, n_ctx, nt};
    }
    return 0;
}

void qs_kld_base_free(qs_kld_base *b)
{
    free(b->tokens);
    free(b->records);
    memset(b, 0, sizeof *b);
}

int qs_kld_base_write(const char *path, const qs_kld_base *b, qs_err *err)
{
    qs_afile af;
    int rc = qs_afile_open(&af, path, err);
    if (rc) return rc;
    uint32_t ctx = (uint32_t)b->n_ctx;
    int32_t nv = b->n_vocab, nc = b->n_chunk;
    rc = qs_afile_write(&af, "_logits_", 8, err);
    if (!rc) rc = qs_afile_write(&af, &ctx, 4, err);
    if (!rc) rc = qs_afile_write(&af, &nv, 4, err);
    if (!rc) rc = qs_afile_write(&af, &nc, 4, err);
    if (!rc) rc = qs_afile_write(&af, b->tokens, (size_t)nc * ctx * 4, err);
    if (!rc) rc = qs_afile_write(&af, b->records, (size_t)(b->n_records * qs_kld_record_slots(nv)) * 2, err);
    if (rc) {
        qs_afile_abort(&af);
        return rc;
    }
    return qs_afile_commit(&af, err);
}

int qs_kld_base_read(const char *path, qs_kld_base *b, qs_err *err)
{
    memset(b, 0, sizeof *b);
    qs_mapping m;
    int rc = qs_map_file(path, &m, err);
    if (rc) return rc;
    uint32_t ctx;
    int32_t nv, nc;
    if (m.size < 20 || memcmp(m.data, "_logits_", 8) != 0) {
        qs_unmap_file(&m);
        return qs_err_set(err, QS_E_INPUT, "not a llama-perplexity logits file (magic _logits_)");
    }
    memcpy(&ctx, m.data + 8, 4);
    memcpy(&nv, m.data + 12, 4);
    memcpy(&nc, m.data + 16, 4);
    int64_t per = (int64_t)ctx - 1 - ctx / 2, slots = qs_kld_record_slots(nv);
    uint64_t need = 20 + (uint64_t)nc * ctx * 4 + (uint64_t)nc * (uint64_t)per * (uint64_t)slots * 2;
    if (ctx < 4 || ctx > (1u << 20) || nv < 1 || nv > (1 << 24) || nc < 1 || nc > (1 << 24) || need != m.size) {
        qs_unmap_file(&m);
        return qs_err_set(err, QS_E_INPUT, "inconsistent header: ctx %u, vocabulary %d, %d chunks for %zu bytes", ctx, nv,
                          nc, m.size);
    }
    b->n_ctx = (int)ctx, b->n_vocab = nv, b->n_chunk = nc, b->n_records = nc * per;
    b->tokens = malloc((size_t)nc * ctx * 4);
    b->records = malloc((size_t)(b->n_records * slots) * 2);
    if (!b->tokens || !b->records) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    else {
        rc = qs_mapped_copy(b->tokens, m.data + 20, (size_t)nc * ctx * 4, err);
        if (!rc) rc = qs_mapped_copy(b->records, m.data + 20 + (size_t)nc * ctx * 4, (size_t)(b->n_records * slots) * 2, err);
    }
    qs_unmap_file(&m);
    if (rc) qs_kld_base_free(b);
    return rc;
}

/* ---- comparison ---- */

typedef struct acc {
    double nll, nll2, b, b2, nb, kld, kld2, dp, dp2, dp4;
    int64_t same, count;
    float *klds, *dps;
} acc;

static void compare_position(const float *l, int V, int32_t t, const uint16_t *rec, acc *a)
{
    float scale, mlp;
    memcpy(&scale, rec, 4);
    memcpy(&mlp, rec + 2, 4);
    const uint16_t *q = rec + 4;
    int imax;
    float m = max_of(l, V, &imax), lse = log_sum_exp(l, V, m);
    float nll = m + lse - l[t], nll_base = -(scale * (float)q[t] + mlp), logZ = m + lse;
    double kld = 0;
    int ib = 0;
    for (int i = 0; i < V; i++) {
        float lp = scale * (float)q[i] + mlp;
        if (lp > -16) {
            float term = expf(lp) * ((lp - l[i]) + logZ);
            kld += term;
        }
        if (q[i] > q[ib]) ib = i;
    }
    float dp = expf(-nll) - expf(-nll_base);
    a->nll += nll, a->nll2 += (double)nll * nll, a->b += nll_base, a->b2 += (double)nll_base * nll_base;
    a->nb += (double)nll * nll_base, a->kld += kld, a->kld2 += kld * kld;
    a->dp += dp, a->dp2 += (double)dp * dp, a->dp4 += (double)dp * dp * dp * dp;
    a->same += imax == ib;
    a->klds[a->count] = (float)kld;
    a->dps[a->count] = dp;
    a->count++;
}

static void mean_unc(double sum, double sum2, int64_t n, double *mu, double *u)
{
    *mu = sum / (double)n;
    double v = sum2 / (double)n - *mu * *mu;
    *u = v > 0 && n > 10 ? sqrt(v / (double)(n - 1)) : 0;
}

static int cmpf(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return a < b ? -1 : a > b;
}

static double pct(const float *v, int64_t n, float f)
{
    if (f <= 0) return v[0];
    if (f >= 1) return v[n - 1];
    float p = f * (float)(n - 1);
    int64_t i = (int64_t)p;
    float fr = p - (float)i;
    return (double)((1 - fr) * v[i] + fr * v[i + 1 < n ? i + 1 : n - 1]);
}

static double median(const float *v, int64_t n) { return n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2] + v[n / 2 - 1]); }

static void finish(acc *a, qs_kld_stats *s)
{
    int64_t N = a->count;
    double mn, un, mb, ub, cov = N >= 10 ? (a->nb / N - (a->nll / N) * (a->b / N)) / (double)(N - 1) : 0;
    mean_unc(a->nll, a->nll2, N, &mn, &un);
    mean_unc(a->b, a->b2, N, &mb, &ub);
    s->count = N;
    s->ppl_q = exp(mn), s->ppl_q_unc = exp(mn) * un, s->ppl_base = exp(mb), s->ppl_base_unc = exp(mb) * ub;
    s->cor = un > 0 && ub > 0 ? 100 * cov / (un * ub) : 0;
    s->ln_ratio = mn - mb;
    double vr = un * un + ub * ub - 2 * cov;
    s->ln_ratio_unc = vr > 0 ? sqrt(vr) : 0;
    s->ratio = exp(s->ln_ratio), s->ratio_unc = s->ratio * s->ln_ratio_unc;
    s->diff = s->ppl_q - s->ppl_base;
    double vd = s->ppl_q_unc * s->ppl_q_unc + s->ppl_base_unc * s->ppl_base_unc - 2 * s->ppl_q * s->ppl_base * cov;
    s->diff_unc = vd > 0 ? sqrt(vd) : 0;
    mean_unc(a->kld, a->kld2, N, &s->kld_mean, &s->kld_unc);
    qsort(a->klds, (size_t)N, sizeof *a->klds, cmpf);
    qsort(a->dps, (size_t)N, sizeof *a->dps, cmpf);
    static const float kf[8] = {0.999f, 0.990f, 0.950f, 0.900f, 0.100f, 0.050f, 0.010f, 0.001f};
    static const float df[10] = {0.999f, 0.990f, 0.950f, 0.900f, 0.750f, 0.250f, 0.100f, 0.050f, 0.010f, 0.001f};
    for (int i = 0; i < 8; i++) s->kld_pct[i] = pct(a->klds, N, kf[i]);
    for (int i = 0; i < 10; i++) s->dp_pct[i] = 100 * pct(a->dps, N, df[i]);
    s->kld_max = a->klds[N - 1], s->kld_min = a->klds[0], s->kld_median = median(a->klds, N);
    s->dp_max = 100.0 * a->dps[N - 1], s->dp_min = 100.0 * a->dps[0], s->dp_median = 100 * median(a->dps, N);
    mean_unc(a->dp, a->dp2, N, &s->dp_mean, &s->dp_unc);
    s->dp_mean *= 100, s->dp_unc *= 100;
    double m2, u2;
    mean_unc(a->dp2, a->dp4, N, &m2, &u2);
    s->rms_dp = 100 * sqrt(m2), s->rms_dp_unc = m2 > 0 ? 100 * 0.5 / sqrt(m2) * u2 : 0;
    double sp = (double)a->same / (double)N;
    s->same_top = 100 * sp, s->same_top_unc = 100 * sqrt(sp * (1 - sp) / (double)(N - 1));
}

typedef struct cmp_ctx {
    const qs_kld_base *b;
    acc *a;
    int64_t slots;
} cmp_ctx;

/* one chunk's logits against the base's records */
static int cmp_chunk(void *ctx, int k, const float *logits, qs_err *err)
{
    const cmp_ctx *c = ctx;
    int V = c->b->n_vocab, n_ctx = c->b->n_ctx, first = n_ctx / 2, per = n_ctx - 1 - first;
    const int32_t *toks = c->b->tokens + (int64_t)k * n_ctx;
    for (int j = first; j < n_ctx - 1; j++) {
        int32_t t = toks[j + 1];
        if (t < 0 || t >= V) return qs_err_set(err, QS_E_INPUT, "token %d outside the vocabulary", t);
        compare_position(logits + (size_t)j * V, V, t, c->b->records + ((int64_t)k * per + (j - first)) * c->slots, c->a);
    }
    return 0;
}

int qs_kld_compare(qs_llm *l, const qs_kld_base *b, int32_t bos, qs_progress *prog, qs_kld_stats *out, qs_err *err)
{
    memset(out, 0, sizeof *out);
    int V = qs_llm_n_vocab(l), n_ctx = b->n_ctx;
    if (V != b->n_vocab) return qs_err_set(err, QS_E_INPUT, "the base has a vocabulary of %d, the model %d", b->n_vocab, V);
    if (n_ctx > qs_llm_n_ctx(l)) return qs_err_set(err, QS_E_USAGE, "context %d exceeds the model's %d", n_ctx, qs_llm_n_ctx(l));
    if (b->n_records < 100) return qs_err_set(err, QS_E_INPUT, "%lld positions: at least 100 needed", (long long)b->n_records);
    int64_t slots = qs_kld_record_slots(V);
    acc a = {0};
    a.klds = malloc((size_t)b->n_records * sizeof *a.klds);
    a.dps = malloc((size_t)b->n_records * sizeof *a.dps);
    int rc = (!a.klds || !a.dps) ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
    cmp_ctx c = {b, &a, slots};
    if (!rc) rc = qs_eval_chunks(l, b->tokens, b->n_chunk, n_ctx, bos, prog, cmp_chunk, &c, err);
    if (!rc) finish(&a, out);
    free(a.klds);
    free(a.dps);
    return rc;
}
