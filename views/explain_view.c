/* views/explain_view.c — the method's formula and a worked example with this tensor's first
 * group: its range, the scale (and zero), weights → codes → reconstructed values → errors. */
#include <stdio.h>

#include "views/draw.h"
#include "views/views.h"

/* the method's formula lines (its explain op) with this result's numbers */
static int formula(int y, rect r, const app_result *res)
{
    qs_explain_in ex = {res->ex_min, res->ex_max, res->ex_scale, res->ex_zero, res->n_levels, res->ggml_type, res->cols};
    qs_explain_line lines[QS_EXPLAIN_MAX_LINES];
    int n = qs_qconfig_explain(&res->cfg, &ex, lines);
    for (int i = 0; i < n; i++) {
        attr_t a = lines[i].style == QS_EXPLAIN_FORMULA ? A_BOLD : lines[i].style == QS_EXPLAIN_WARN ? theme(TH_WARN) : A_NORMAL;
        draw_textf(y++, r.x + 2, r.w - 4, a, "%s", lines[i].text);
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
        if (res->ex_code[i] == QS_CODE_NONE) snprintf(code, sizeof code, "-");
        else snprintf(code, sizeof code, "%d", res->ex_code[i]);
        draw_textf(y++, r.x + 2, r.w - 4, A_NORMAL, "%14.4f %8s %14.4f %12.4g", res->ex_w[i], code, res->ex_deq[i],
                   res->ex_deq[i] - res->ex_w[i]);
    }
    if (y + 1 < r.y + r.h)
        draw_textf(y + 1, r.x + 2, r.w - 4, theme(TH_DIM), "whole tensor: bpw %.4f, MSE %.4g, SQNR %.2f dB", res->bpw, res->m.mse,
                   res->m.sqnr_db);
}
