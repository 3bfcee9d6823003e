/* cli/cli_quant.c — `quantscope quant …` and `quantscope methods`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/data/calib.h"
#include "core/util/fileio.h"
#include "core/model/infer.h"
#include "core/model/tokenizer.h"
#include "core/quant/ggml_types.h"
#include "core/data/imatrix.h"
#include "core/model/model.h"
#include "core/quant/quant.h"
#include "core/quant/stats.h"
#include "cli/cli.h"

/* a knob's range and default as users type them (damp 0.01, alpha 0.5 or search, ggml q4_K or grid) */
static void knob_range(const qs_knob_info *k, const qs_qconfig *def, qs_knob_id id, char *buf, size_t n)
{
    char d[32], lo[32], hi[32];
    qs_knob_format(id, qs_qconfig_get(def, id), d, sizeof d);
    if (k->is_bool) {
        snprintf(buf, n, "true|false (default %s)", d);
    } else if (id == QS_KNOB_GROUP) {
        snprintf(buf, n, "tensor|row|G dividing the row (default %s)", d);
    } else if (id == QS_KNOB_GGML && k->steps) {
        size_t used = (size_t)snprintf(buf, n, "grid");
        for (int i = 0; i < k->n_steps && used < n; i++)
            if (k->steps[i] >= 0) {
                qs_knob_format(id, k->steps[i], lo, sizeof lo);
                used += (size_t)snprintf(buf + used, n - used, "|%s", lo);
            }
        if (used < n) snprintf(buf + used, n - used, " (default %s)", d);
    } else {
        /* a negative minimum is a word (alpha: search), the numbers start at 0 */
        int min = k->min < 0 ? 0 : k->min;
        char word[40] = "";
        qs_knob_format(id, k->min, lo, sizeof lo);
        if (k->min < 0) snprintf(word, sizeof word, "%s|", lo);
        qs_knob_format(id, min, lo, sizeof lo);
        qs_knob_format(id, k->max, hi, sizeof hi);
        snprintf(buf, n, "%s%s-%s (default %s)", word, lo, hi, d);
    }
}

int qs_cli_methods(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) return qs_cli_usage_error("methods takes no arguments");
    for (int i = 0; i < qs_method_count; i++) {
        const qs_method *m = &qs_method_table[i];
        qs_qconfig def;
        qs_qconfig_default(&def, m);
        printf("%-8s %s%s\n", m->name, m->desc, qs_method_uses_imatrix(m) ? " [uses --imatrix]" : "");
        for (int k = 0; k < QS_KNOB_COUNT; k++) {
            if (!(qs_method_knobs(m) & (1u << k))) continue;
            char range[256];
            knob_range(qs_knob_get(k), &def, k, range, sizeof range);
            printf("         --%-13s %s; %s\n", qs_knob_get(k)->name, range, qs_knob_get(k)->desc);
        }
    }
    return QS_EXIT_OK;
}

typedef struct quant_opts {
    const char *path, *tensor, *method, *imatrix, *out;
    const char *knob_names[8], *knob_values[8];
    char knob_buf[8][32];
    int n_knobs, threads;
    bool compare;
    qs_cli_calib calib;
} quant_opts;

static int parse_quant_args(int argc, char **argv, quant_opts *o)
{
    static const char *const valued[] = {"--bits", "--group", "--block", "--damp", "--alpha"};
    static const char *const flags[] = {"--asym", "--clip", "--double-quant", "--act-order", "--static-groups", "--duo"};
    memset(o, 0, sizeof *o);
    qs_cli_calib_init(&o->calib);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_next = i + 1 < argc;
        int ca = qs_cli_calib_arg(argc, argv, &i, &o->calib);
        if (ca < 0) return qs_cli_usage_error("quant: '%s' needs a value", a);
        if (ca) continue;
        const char *eq = strchr(a, '=');
        bool is_flag = false;
        for (size_t k = 0; k < sizeof flags / sizeof *flags; k++) is_flag |= !strcmp(a, flags[k]);
        if ((!strcmp(a, "--method") || !strcmp(a, "--type")) && has_next) o->method = argv[++i];
        else if (!strcmp(a, "--imatrix") && has_next) o->imatrix = argv[++i];
        else if (!strcmp(a, "--out") && has_next) o->out = argv[++i];
        else if (!strcmp(a, "--threads") && has_next) o->threads = atoi(argv[++i]);
        else if (!strcmp(a, "--compare")) o->compare = true;
        else if (is_flag || (a[0] == '-' && a[1] == '-' && eq)) {
            /* --act-order, --clip=false: the knob's name with '_' for '-' */
            if (o->n_knobs == 8) return qs_cli_usage_error("quant: too many knobs");
            size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            char *b = o->knob_buf[o->n_knobs];
            snprintf(b, sizeof o->knob_buf[0], "%.*s", (int)n, a + 2);
            for (char *p = b; *p; p++) *p = *p == '-' ? '_' : *p;
            o->knob_names[o->n_knobs] = b;
            o->knob_values[o->n_knobs++] = eq ? eq + 1 : "true";
        } else if (a[0] == '-' && a[1] == '-') {
            bool ok = false;
            for (size_t k = 0; k < sizeof valued / sizeof *valued; k++)
                if (!strcmp(a, valued[k]) && has_next && o->n_knobs < 8) {
                    o->knob_names[o->n_knobs] = a + 2;
                    o->knob_values[o->n_knobs++] = argv[++i];
                    ok = true;
                }
            if (!ok) return qs_cli_usage_error("quant: unknown or incomplete option '%s'", a);
        } else if (!o->path) o->path = a;
        else if (!o->tensor) o->tensor = a;
        else return qs_cli_usage_error("quant: unexpected argument '%s'", a);
    }
    if (!o->path || !o->tensor || (!o->method && !o->compare))
        return qs_cli_usage_error("usage: quantscope quant MODEL TENSOR (--method NAME | --type T | --compare) "
                                  "[--bits B] [--group G] [--asym] [--clip] [--block B] [--double-quant] "
                                  "[--damp D] [--act-order] [--static-groups] [--alpha A|search] [--duo] [--KNOB=VALUE] "
                                  "[--calib TEXT [--calib-chunks N] [--calib-ctx N] [--calib-rows N]] "
                                  "[--imatrix FILE] [--out FILE] [--threads N]");
    return QS_EXIT_OK;
}

static void print_result(const qs_qresult *r, const qs_metrics *m)
{
    char cfg[96];
    qs_qconfig_describe(&r->cfg, cfg, sizeof cfg);
    printf("config:   %s%s%s\n", cfg, r->fell_back ? " → " : "", r->fell_back ? qs_type_name(r->ggml_type) : "");
    printf("bpw:      %.4f (%.0f bytes with scales and zeros)\n", r->bpw,
           r->bpw * (double)(r->rows * r->cols) / 8.0);
    printf("MSE %.6g  RMSE %.6g  max err %.6g  SQNR %.2f dB  cosine %.6f  clipped %.3f%%\n", m->mse, m->rmse,
           m->max_abs, m->sqnr_db, m->cosine, 100.0 * (double)r->n_clipped / (double)(r->rows * r->cols));
    if (isfinite(r->out_err))
        printf("output:   relative output error %.6g (|X(W-Q)^T|^2 / |XW^T|^2 on the calibration rows)\n", r->out_err);
    if (r->report[0]) printf("note:     %s\n", r->report);
}

typedef struct cmp_row {
    const char *name;
    char cfg[96], why[256];
    double bpw;
    qs_metrics m;
    bool ok;
} cmp_row;

static int cmp_rows(const void *a, const void *b)
{
    const cmp_row *x = a, *y = b;
    if (x->ok != y->ok) return x->ok ? -1 : 1;
    return x->m.mse < y->m.mse ? -1 : x->m.mse > y->m.mse;
}

static void run_compare(const float *w, int64_t rows, int64_t cols, const float *qw, int threads)
{
    cmp_row *t = calloc((size_t)qs_method_count, sizeof *t);
    for (int i = 0; i < qs_method_count; i++) {
        qs_qconfig c;
        qs_qconfig_default(&c, &qs_method_table[i]);
        qs_qresult r;
        qs_err err = {0};
        t[i].name = qs_method_table[i].name;
        qs_qconfig_describe(&c, t[i].cfg, sizeof t[i].cfg);
        if (qs_quant_run(&c, w, rows, cols, NULL, qw, threads, &r, &err) != 0) {
            snprintf(t[i].why, sizeof t[i].why, "%s", err.msg);
            continue;
        }
        if (r.fell_back) snprintf(t[i].cfg + strlen(t[i].cfg), sizeof t[i].cfg - strlen(t[i].cfg), " → %s",
                                  qs_type_name(r.ggml_type));
        qs_stats_compare(w, r.deq, rows * cols, &t[i].m);
        t[i].bpw = r.bpw;
        t[i].ok = true;
        qs_qresult_free(&r);
    }
    qsort(t, (size_t)qs_method_count, sizeof *t, cmp_rows);
    printf("%-8s %-24s %8s %12s %9s %12s %10s\n", "method", "config", "bpw", "MSE", "SQNR dB", "max err", "cosine");
    for (int i = 0; i < qs_method_count; i++) {
        if (t[i].ok)
            printf("%-8s %-24s %8.4f %12.5g %9.2f %12.5g %10.6f\n", t[i].name, t[i].cfg, t[i].bpw, t[i].m.mse,
                   t[i].m.sqnr_db, t[i].m.max_abs, t[i].m.cosine);
        else
            printf("%-8s %-24s n/a: %s\n", t[i].name, t[i].cfg, t[i].why);
    }
    free(t);
}

static int write_bytes(const char *path, const qs_qresult *r)
{
    qs_afile af;
    qs_err err = {0};
    if (qs_afile_open(&af, path, &err) || qs_afile_write(&af, r->data, r->nbytes, &err)) {
        if (af.f) qs_afile_abort(&af);
        return qs_cli_fail(path, &err);
    }
    if (qs_afile_commit(&af, &err)) return qs_cli_fail(path, &err);
    printf("wrote:    %s (%zu bytes)\n", path, r->nbytes);
    return QS_EXIT_OK;
}

static const float *imatrix_for(const qs_imatrix *im, const qs_tensor *t, const char *path, int *rc)
{
    *rc = QS_EXIT_OK;
    if (!im) return NULL;
    const qs_imatrix_entry *e = qs_imatrix_find(im, t->gguf_name[0] ? t->gguf_name : t->name);
    if (!e) {
        fprintf(stderr, "quantscope: %s: no entry for %s: quantizing without importance weights\n", QS_ESC(path), QS_ESC(t->name));
        return NULL;
    }
    if (e->n != t->ne[0]) {
        fprintf(stderr, "quantscope: %s: entry for %s has %lld values, the tensor has %lld columns\n", path,
                t->name, (long long)e->n, (long long)t->ne[0]);
        *rc = QS_EXIT_INPUT;
        return NULL;
    }
    return e->values;
}

static int quant_tensor(const quant_opts *o, const qs_tensor *t, const float *qw, const qs_calib *cal)
{
    int64_t rows = qs_tensor_nrows(t), cols = t->ne[0];
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    qs_err err = {0};
    int rc = QS_EXIT_OK;
    if (!w) return qs_cli_fail(o->path, &(qs_err){QS_E_OOM, "out of memory"});
    if (qs_tensor_read_rows(t, 0, rows, w, &err)) {
        free(w);
        return qs_cli_fail(o->path, &err);
    }
    printf("tensor:   %s [%lld, %lld] %s%s\n", QS_ESC(t->name), (long long)rows, (long long)cols, t->dtype,
           qw ? " (with imatrix)" : "");
    if (o->compare) {
        run_compare(w, rows, cols, qw, o->threads);
    } else {
        const qs_method *m = qs_method_find(o->method);
        qs_qconfig c;
        if (!m) {
            free(w);
            return qs_cli_usage_error("quant: unknown method '%s' (see `quantscope methods`)", o->method);
        }
        qs_qconfig_default(&c, m);
        for (int k = 0; k < o->n_knobs && rc == QS_EXIT_OK; k++)
            if (qs_qconfig_set(&c, o->knob_names[k], o->knob_values[k], &err)) rc = qs_cli_fail("quant", &err);
        qs_qresult r;
        if (rc == QS_EXIT_OK && qs_quant_run(&c, w, rows, cols, cal, qw, o->threads, &r, &err) != 0)
            rc = qs_cli_fail(t->name, &err);
        else if (rc == QS_EXIT_OK) {
            qs_metrics mt;
            qs_stats_compare(w, r.deq, rows * cols, &mt);
            print_result(&r, &mt);
            if (o->out) rc = write_bytes(o->out, &r);
            qs_qresult_free(&r);
        }
    }
    free(w);
    return rc;
}

/* the statistics of the tensor's input from a run over --calib TEXT, into *set (the caller frees
 * it after the view it takes), and the tensor's view of them */
static int calib_for(const quant_opts *o, const qs_model *m, const qs_tensor *t, qs_calib_set **set, qs_calib *out)
{
    qs_err err = {0};
    qs_vocab *v;
    qs_llm *l;
    qs_calib_set *s = NULL;
    int rc = qs_cli_vocab_llm(o->path, m, o->calib.ctx, &v, &l);
    if (!rc) rc = qs_cli_collect(l, v, &o->calib, t->gguf_name, true, &s);
    if (!rc && qs_calib_for_tensor(s, t->gguf_name, true, out, &err)) rc = qs_cli_fail(t->name, &err);
    *set = s;
    qs_llm_free(l);
    qs_vocab_free(v);
    return rc;
}

int qs_cli_quant(int argc, char **argv)
{
    quant_opts o;
    int rc = parse_quant_args(argc, argv, &o);
    if (rc) return rc;
    qs_err err = {0};
    qs_imatrix *im = NULL;
    if (o.imatrix && !(im = qs_imatrix_load(o.imatrix, &err))) return qs_cli_fail(o.imatrix, &err);
    qs_model *m = qs_model_open(o.path, &err);
    if (!m) {
        qs_imatrix_free(im);
        return qs_cli_fail(o.path, &err);
    }
    const qs_tensor *t = qs_model_find_tensor(m, o.tensor);
    if (!t) {
        fprintf(stderr, "quantscope: %s: no tensor named '%s'\n", QS_ESC(o.path), QS_ESC(o.tensor));
        rc = QS_EXIT_INPUT;
    } else {
        const float *qw = imatrix_for(im, t, o.imatrix, &rc);
        qs_calib cal = {0};
        qs_calib_set *set = NULL;
        if (rc == QS_EXIT_OK && o.calib.text) rc = calib_for(&o, m, t, &set, &cal);
        if (rc == QS_EXIT_OK) rc = quant_tensor(&o, t, qw, o.calib.text ? &cal : NULL);
        qs_calib_free(&cal);
        qs_calib_set_free(set);
    }
    qs_model_close(m);
    qs_imatrix_free(im);
    return rc;
}
