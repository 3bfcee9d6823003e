/* views/explain_view.c — the method's formula and a worked example with this tensor's first
 * group: its range, the scale (and zero), weights → codes → reconstructed values → errors. */
#include <math.h>
#include <stdio.h>

#include "core/ggml_types.h"
#include "views/draw.h"
#include "views/views.h"

static int formula(int y, rect r, const app_result *res)
{
    const qs_qconfig *c = &res->cfg;
    int x = r.x + 2, w = r.w - 4;
    switch (c->method->kind) {
    case QS_METHOD_RTN:
        if (!c->asym) {
            int qmax = (1 << (c->bits - 1)) - 1;
            draw_textf(y++, x, w, A_BOLD, "symmetric absmax, %d bits: s = max|w| / %d;  q = round(w / s) in [-%d, %d];  w' = q · s",
                       c->bits, qmax, qmax, qmax);
            draw_textf(y++, x, w, A_NORMAL, "group 0: max|w| = %.4g  →  s = %.6g  (1/s = %.4f)",
                       fmax(fabs(res->ex_min), fabs(res->ex_max)), res->ex_scale, res->ex_scale > 0 ? 1 / res->ex_scale : 0);
        } else {
            int maxq = (1 << c->bits) - 1;
            draw_textf(y++, x, w, A_BOLD, "asymmetric min-max, %d bits: s = (max - min) / %d;  z = round(-min / s);", c->bits, maxq);
            draw_textf(y++, x, w, A_BOLD, "q = clamp(round(w / s) + z, 0, %d);  w' = (q - z) · s   (the range includes 0)", maxq);
            draw_textf(y++, x, w, A_NORMAL, "group 0: min %.4g  max %.4g  →  s = %.6g, z = %.0f", res->ex_min, res->ex_max,
                       res->ex_scale, res->ex_zero);
        }
        break;
    case QS_METHOD_NF4: case QS_METHOD_FP4:
        draw_textf(y++, x, w, A_BOLD, "%s: blocks of %d; absmax = max|w|; code = nearest of 16 %s values to w / absmax;",
                   c->method->name, c->block, c->method->kind == QS_METHOD_NF4 ? "normal-quantile" : "e2m1");
        draw_textf(y++, x, w, A_BOLD, "w' = table[code] · absmax%s", c->double_quant ? "  (absmax itself stored in 8 bits)" : "");
        draw_textf(y++, x, w, A_NORMAL, "block 0: absmax = %.6g", res->ex_scale);
        break;
    case QS_METHOD_GGML:
        draw_textf(y++, x, w, A_BOLD, "%s: %s", c->method->name, c->method->desc);
        draw_textf(y++, x, w, A_NORMAL, "llama.cpp's quantizer, byte-identical; sub-block 0 of block 0: step %.6g, grid of %d levels",
                   res->ex_scale, res->n_levels);
        if (res->ggml_type >= 0 && res->ggml_type != c->method->ggml_type)
            draw_textf(y++, x, w, theme(TH_WARN), "this tensor falls back to %s (row length %lld)", qs_type_name(res->ggml_type),
                       (long long)res->cols);
        break;
    case QS_METHOD_GPTQ:
        draw_textf(y++, x, w, A_BOLD, "GPTQ, %d bits: columns in order%s; q = clamp(round(w/s) + z, 0, %d) with the group's s, z;",
                   c->bits, c->act_order ? " of descending diag(H)" : "", (1 << c->bits) - 1);
        draw_textf(y++, x, w, A_BOLD, "the error (w - q)/d, d = U[k][k] of chol(H^-1), is subtracted from the later columns: "
                   "W[:, k:] -= err * U[k, k:]");
        draw_textf(y++, x, w, A_NORMAL, "group 0 (row 0): step s = %.6g, zero z = %.0f; damp %g of mean diag(H)", res->ex_scale,
                   res->ex_zero, c->damp * 0.001);
        break;
    case QS_METHOD_AWQ:
        draw_textf(y++, x, w, A_BOLD, "AWQ, %d bits: s[c] = mean|x[c]|^alpha%s, normalised; w' = Q(w · s) / s", c->bits,
                   c->duo ? " / mean|w[c]|^(1-alpha)" : "");
        draw_textf(y++, x, w, A_BOLD, "alpha minimises |X(W - W')^T|^2 over 0, 0.05 ... 0.95%s",
                   c->clip ? "; then each group of W·s is clipped at the shrink with the lowest output error" : "");
        draw_textf(y++, x, w, A_NORMAL, "group 0 (row 0) of W·s: step %.6g, zero %.0f (w' = (code - zero) · step / s[c])",
                   res->ex_scale, res->ex_zero);
        break;
    }
    return y;
}

void explain_view_draw(rect r, const app *a, const app_result *res)
{
    draw_fill(r, A_NORMAL);
    draw_pane_title((rect){r.y, r.x, 1, r.w}, "Explain (any key closes)", true);
    int t = app_selected_tensor(a);
    if (t < 0 || !res || res->tensor != t || !res->ok) {
        draw_text(r.y + 2, r.x + 2, r.w - 4, "select a quantized tensor first", theme(TH_DIM));
        return;
    }
    draw_textf(r.y + 2, r.x + 2, r.w - 4, theme(TH_HEADER), "%s — %lld × %lld", a->model->tensors[t].name,
               (long long)res->rows, (long long)res->cols);
    int y = formula(r.y + 4, r, res) + 1;
    draw_textf(y++, r.x + 2, r.w - 4, A_BOLD, "%14s %8s %14s %12s", "w", "code", "w'", "error");
    for (int i = 0; i < res->ex_n && y < r.y + r.h; i++) {
        char code[16];
        if (res->ex_code[i] == -999) snprintf(code, sizeof code, "-");
        else snprintf(code, sizeof code, "%d", res->ex_code[i]);
        draw_textf(y++, r.x + 2, r.w - 4, A_NORMAL, "%14.4f %8s %14.4f %12.4g", res->ex_w[i], code, res->ex_deq[i],
                   res->ex_deq[i] - res->ex_w[i]);
    }
    if (y + 1 < r.y + r.h)
        draw_textf(y + 1, r.x + 2, r.w - 4, theme(TH_DIM), "whole tensor: bpw %.4f, MSE %.4g, SQNR %.2f dB", res->bpw, res->m.mse,
                   res->m.sqnr_db);
}
