/* Every registered method through every op of its qs_method_ops (core/quant.h): the ops agree
 * with each other (bpw with the run, dequantize with the run's floats, each weight on its group's
 * grid, the integer grid's codes with the floats), the flags with what the run asks for, and the
 * knobs with what qs_qconfig_set takes. The expected values are the result's own floats
 * recomputed here from codes, scales and zeros in double precision. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/data/calib.h"
#include "core/quant/ggml_types.h"
#include "core/quant/qgrid.h"
#include "core/quant/quant.h"

enum { R = 8, C = 256, NX = 64 };

typedef struct fixture {
    float w[R * C], X[NX * C], H[C * C], mean[C], imatrix[C];
    qs_calib calib;
} fixture;

/* a deterministic pseudo-random normal-ish value (sum of four uniforms) */
static float noise(uint32_t *s)
{
    float v = 0;
    for (int k = 0; k < 4; k++) {
        *s = *s * 1664525u + 1013904223u;
        v += (float)(*s >> 8) / 16777216.0f - 0.5f;
    }
    return v;
}

static fixture *fixture_new(void)
{
    fixture *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    uint32_t s = 12345;
    for (int i = 0; i < R * C; i++) f->w[i] = 0.05f * noise(&s) + (i % 97 == 0 ? 0.3f : 0);
    for (int i = 0; i < NX * C; i++) f->X[i] = noise(&s) * (i % C < 8 ? 6.f : 1.f);
    for (int a = 0; a < C; a++) {
        double m = 0;
        for (int n = 0; n < NX; n++) m += fabs(f->X[n * C + a]);
        f->mean[a] = (float)(m / NX), f->imatrix[a] = f->mean[a] * f->mean[a];
        for (int b = 0; b < C; b++) {
            double h = 0;
            for (int n = 0; n < NX; n++) h += (double)f->X[n * C + a] * f->X[n * C + b];
            f->H[a * C + b] = (float)(2 * h / NX) + (a == b ? 1e-3f : 0);
        }
    }
    f->calib = (qs_calib){.cols = C, .H = f->H, .x_mean = f->mean, .X = f->X, .n_rows = NX};
    return f;
}

static void check_knobs(const qs_method *m)
{
    qs_qconfig c;
    qs_qconfig_default(&c, m);
    for (int k = 0; k < QS_KNOB_COUNT; k++) {
        const qs_knob_info *ki = qs_knob_get((qs_knob_id)k);
        char v[64];
        qs_knob_format((qs_knob_id)k, qs_qconfig_get(&c, (qs_knob_id)k), v, sizeof v);
        qs_err err = {0};
        qs_qconfig d = c;
        int rc = qs_qconfig_set(&d, ki->name, v, &err);
        if (qs_method_knobs(m) & (1u << k)) {
            cr_expect_eq(rc, 0, "%s: knob %s=%s: %s", m->name, ki->name, v, err.msg);
            cr_expect(qs_qconfig_equal(&c, &d), "%s: knob %s changed by setting its own value", m->name, ki->name);
        } else {
            cr_expect_neq(rc, 0, "%s takes knob %s it does not list", m->name, ki->name);
        }
    }
}

static void check_flags(const qs_method *m, const fixture *f)
{
    const qs_method_ops *o = m->ops;
    cr_assert(o && o->describe && o->check && o->bpw && o->run && o->dequantize && o->levels && o->group_scale && o->explain,
              "%s: a required op is missing", m->name);
    cr_expect_eq(qs_method_needs_calib(m), o->needs_hessian || o->needs_calib_rows, "%s", m->name);
    cr_expect(o->ckpt >= QS_CKPT_NONE && o->ckpt <= QS_CKPT_AWQ, "%s", m->name);
    cr_expect(!o->ckpt || o->to_grid || o->ckpt == QS_CKPT_NONE, "%s: a checkpoint format without a grid", m->name);
    if (o->gguf_near) cr_expect_geq(qs_type_from_name(o->gguf_near), 0, "%s: gguf_near %s", m->name, o->gguf_near);
    (void)qs_method_uses_imatrix(m);
    /* without calibration: a method needing it says so, the others run */
    qs_qconfig c;
    qs_qconfig_default(&c, m);
    qs_qresult r;
    qs_err err = {0};
    int rc = qs_quant_run(&c, f->w, R, C, NULL, NULL, 1, &r, &err);
    if (qs_method_needs_calib(m)) {
        cr_expect_eq(rc, -QS_E_USAGE, "%s ran without calibration", m->name);
        cr_expect(strstr(err.msg, "needs calibration"), "%s: %s", m->name, err.msg);
    } else {
        cr_expect_eq(rc, 0, "%s: %s", m->name, err.msg);
        qs_qresult_free(&r);
    }
}

static void check_config_ops(const qs_method *m)
{
    qs_qconfig c;
    qs_qconfig_default(&c, m);
    char d[160];
    qs_qconfig_describe(&c, d, sizeof d);
    cr_expect(!strncmp(d, m->name, strlen(m->name)), "%s describes itself as '%s'", m->name, d);
    int type = -2;
    qs_err err = {0};
    cr_assert_eq(qs_qconfig_check(&c, R, C, &type, &err), 0, "%s: %s", m->name, err.msg);
    cr_expect_eq(qs_qconfig_check(&c, 0, C, &type, &err), -QS_E_USAGE, "%s: an empty tensor passed", m->name);
    int want = qs_qconfig_ggml_request(&c);
    if (m->ggml_type >= 0) cr_expect_eq(want, m->ggml_type, "%s", m->name);
    if (m->ops->unfolded) {
        qs_qconfig u = c;
        m->ops->unfolded(&u);
        cr_expect_eq(qs_qconfig_check(&u, R, C, &type, &err), 0, "%s unfolded: %s", m->name, err.msg);
    }
    if (m->ops->desc_act) (void)m->ops->desc_act(&c);
    char why[256];
    int gt = qs_qconfig_ggml_type(&c, why, sizeof why);
    if (!m->ops->to_grid) cr_expect(gt < 0 && strstr(why, "no integer grid"), "%s: %s", m->name, why);
}

/* each weight of row 0 dequantizes onto its group's grid; the scales are finite */
static void check_grid_ops(const qs_method *m, const qs_qresult *r)
{
    float lv[256], *gs = malloc(sizeof(float) * R * C);
    cr_assert_not_null(gs);
    qs_qresult_group_scales(r, gs);
    for (int i = 0; i < R * C; i++) cr_expect(isfinite(gs[i]) && gs[i] >= 0, "%s: group scale %d = %g", m->name, i, gs[i]);
    for (int col = 0; col < C; col++) {
        int n = qs_qresult_levels(r, 0, col, lv);
        if (!r->group_len) {
            cr_expect_eq(n, 0, "%s: levels without groups", m->name);
            continue;
        }
        cr_expect(n >= 2 && n <= 256, "%s: %d levels", m->name, n);
        cr_expect_gt(gs[col], 0, "%s: column %d has scale 0", m->name, col);
        double best = INFINITY;
        for (int k = 0; k < n; k++) {
            if (k) cr_expect_leq(lv[k - 1], lv[k], "%s: levels unsorted", m->name);
            best = fmin(best, fabs((double)lv[k] - r->deq[col]));
        }
        cr_expect_leq(best, 1e-5 * (fabs(r->deq[col]) + 1e-3), "%s: w'[0][%d] = %g is %g off its grid", m->name, col,
                      (double)r->deq[col], best);
    }
    free(gs);
}

/* the integer grid: scale · (code − zero) / s[col] is the run's float */
static void check_to_grid(const qs_method *m, const qs_qresult *r)
{
    qs_qgrid g;
    qs_err err = {0};
    int rc = qs_qgrid_from_result(r, 0, R, &g, &err);
    if (!m->ops->to_grid) {
        cr_expect_eq(rc, -QS_E_UNSUPPORTED, "%s", m->name);
        return;
    }
    cr_assert_eq(rc, 0, "%s: %s", m->name, err.msg);
    for (int i = 0; g.codes && i < R * C; i++) {
        int row = i / C, col = i % C;
        int64_t k = row * g.n_groups + g.g_idx[col];
        double v = (double)g.scales[k] * ((double)g.codes[i] - g.zeros[k]) / (g.col_scale ? g.col_scale[col] : 1);
        cr_expect_leq(fabs(v - r->deq[i]), 1e-5 * (fabs(r->deq[i]) + 1e-3), "%s: grid %d: %g, run %g", m->name, i, v,
                      (double)r->deq[i]);
    }
    qs_qgrid_free(&g);
}

static void check_explain(const qs_method *m, const qs_qresult *r)
{
    qs_explain_in ex = {r->deq[0], r->deq[1], r->scales ? r->scales[0] : 0, r->zeros ? r->zeros[0] : 0, 16, r->ggml_type, C};
    qs_explain_line lines[QS_EXPLAIN_MAX_LINES];
    int n = qs_qconfig_explain(&r->cfg, &ex, lines);
    cr_expect(n >= 1 && n <= QS_EXPLAIN_MAX_LINES, "%s: %d explain lines", m->name, n);
    for (int i = 0; i < n; i++) {
        cr_expect(strlen(lines[i].text) > 10, "%s: explain line %d '%s'", m->name, i, lines[i].text);
        cr_expect(lines[i].style >= QS_EXPLAIN_FORMULA && lines[i].style <= QS_EXPLAIN_WARN, "%s", m->name);
    }
}

/* row_block: a method that says its rows quantize independently gives the same bytes and floats
 * for the first rows quantized alone (a multiple of its block) as inside the whole tensor */
static void check_row_block(const qs_method *m, const qs_qconfig *c, const fixture *f, const float *im, const qs_qresult *whole)
{
    int64_t b = qs_qconfig_row_block(c);
    cr_expect_geq(b, 0, "%s", m->name);
    if (b <= 0 || qs_method_needs_calib(m)) return;
    int64_t rows = 0;
    for (int64_t n = 1; n < R; n++)
        if ((n * C) % b == 0) {
            rows = n;
            break;
        }
    if (!rows) return;
    qs_qresult part;
    qs_err err = {0};
    cr_assert_eq(qs_quant_run(c, f->w, rows, C, NULL, im, 1, &part, &err), 0, "%s: %s", m->name, err.msg);
    cr_expect(part.nbytes > 0 && part.nbytes <= whole->nbytes && !memcmp(part.data, whole->data, part.nbytes),
              "%s: the first %lld rows alone give other bytes (row_block %lld)", m->name, (long long)rows, (long long)b);
    cr_expect(!memcmp(part.deq, whole->deq, sizeof(float) * (size_t)(rows * C)), "%s: other floats for the first rows", m->name);
    qs_qresult_free(&part);
}

static void check_run(const qs_method *m, const fixture *f)
{
    qs_qconfig c;
    qs_qconfig_default(&c, m);
    int type;
    qs_err err = {0};
    cr_assert_eq(qs_qconfig_check(&c, R, C, &type, &err), 0);
    qs_qresult r;
    const float *im = qs_method_uses_imatrix(m) ? f->imatrix : NULL;
    cr_assert_eq(qs_quant_run(&c, f->w, R, C, &f->calib, im, 1, &r, &err), 0, "%s: %s", m->name, err.msg);
    cr_expect_eq(r.bpw, qs_qconfig_bpw(&c, R, C, type), "%s: bpw %g, config %g", m->name, r.bpw, qs_qconfig_bpw(&c, R, C, type));
    cr_expect(r.bpw > 1 && r.bpw <= 16, "%s: bpw %g", m->name, r.bpw);
    cr_expect(isfinite(r.out_err) && r.out_err < 1, "%s: output error %g (1: all zeros)", m->name, r.out_err);
    cr_expect(r.nbytes > 0 && r.data, "%s", m->name);
    float *deq = malloc(sizeof(float) * R * C);
    cr_assert_not_null(deq);
    qs_qresult_dequantize(&r, deq);
    for (int i = 0; i < R * C; i++)
        cr_expect_leq(fabs((double)deq[i] - r.deq[i]), 1e-5 * (fabs(r.deq[i]) + 1e-3), "%s: dequantize %d: %g, run %g",
                      m->name, i, (double)deq[i], (double)r.deq[i]);
    free(deq);
    for (int i = 0; i < 16; i++) {
        int code = qs_qresult_code_at(&r, i);
        if (!m->ops->code_at) cr_expect_eq(code, QS_CODE_NONE, "%s", m->name);
        else cr_expect(code >= -128 && code <= 255, "%s: code %d", m->name, code);
    }
    check_grid_ops(m, &r);
    check_to_grid(m, &r);
    check_explain(m, &r);
    check_row_block(m, &c, f, im, &r);
    qs_qresult_free(&r);
}

Test(methods, every_registered_method_through_every_op, .timeout = 120)
{
    fixture *f = fixture_new();
    cr_assert_gt(qs_method_count, 0);
    for (int i = 0; i < qs_method_count; i++) {
        const qs_method *m = &qs_method_table[i];
        cr_assert_eq(qs_method_find(m->name), m, "%s: found another method by its name", m->name);
        check_flags(m, f);
        check_knobs(m);
        check_config_ops(m);
        check_run(m, f);
    }
    free(f);
}
