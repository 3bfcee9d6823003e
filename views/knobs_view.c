/* views/knobs_view.c — the configuration of the selected tensor (one line per knob of its
 * method) and its metrics, each with the previous value and the change; while the full result is
 * computed, "computing N %" above them, and numbers of a preview or of an older config dimmed
 * ("preview", "stale"). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/quant/ggml_types.h"
#include "views/draw.h"
#include "views/views.h"

static void knob_value(const qs_qconfig *c, int k, char *buf, size_t n)
{
    int v = qs_qconfig_get(c, k);
    if (qs_knob_get(k)->is_bool) snprintf(buf, n, "%s", v ? "yes" : "no");
    else qs_knob_format((qs_knob_id)k, v, buf, n);
}

/* label, value, (previous value when the pane is wide enough), change */
static void metric_line(int y, rect r, const char *label, double v, double prev, bool have_prev, bool lower_better, attr_t at)
{
    char a[24], b[24], d[32] = "";
    bool wide = r.w >= 40;
    plot_fmt(v, a, sizeof a);
    if (have_prev && isfinite(prev) && isfinite(v) && prev != v) {
        /* the arrow says better or worse; the number carries a sign only when it is not zero
         * (a change under half a percent is "<1%", never "-0%") */
        const char *arrow = (v < prev) == lower_better ? "▼" : "▲";
        double rel = prev != 0 ? (v - prev) / fabs(prev) * 100 : NAN;
        if (!isfinite(rel)) snprintf(d, sizeof d, "%s", arrow);
        else if (fabs(rel) < 0.5) snprintf(d, sizeof d, "%s<1%%", arrow);
        else snprintf(d, sizeof d, "%s%+.0f%%", arrow, rel);
    }
    draw_text(y, r.x + 1, 9, label, A_NORMAL);
    draw_text(y, r.x + 10, 10, a, at);
    if (have_prev && wide) draw_text(y, r.x + 21, 10, plot_fmt(prev, b, sizeof b), theme(TH_DIM));
    if (d[0]) draw_text(y, r.x + (wide ? 32 : 21), r.w - (wide ? 33 : 22), d, (v < prev) == lower_better ? theme(TH_GOOD) : theme(TH_BAD));
}

void knobs_view_draw(rect r, const app *a, const app_result *res)
{
    draw_pane_title(r, "Knobs + metrics", a->nav.focus == PANE_KNOBS);
    int t = app_selected_tensor(a), y = r.y + 1;
    if (t < 0) {
        draw_text(y + 1, r.x + 1, r.w - 2, "select a tensor", theme(TH_DIM));
        return;
    }
    if (!app_tensor_quantizable(a, t)) {
        draw_text(y + 1, r.x + 1, r.w - 2, "kept as is (not a matrix)", theme(TH_DIM));
        return;
    }
    const qs_qconfig *c = &a->rec.cfg[t];
    for (int i = 0; i < app_knob_count(a); i++, y++) {
        int k = app_knob_at(a, i);
        char v[32];
        if (k < 0) snprintf(v, sizeof v, "%s", c->method->name);
        else knob_value(c, k, v, sizeof v);
        attr_t at = i == a->nav.knob_sel ? theme(a->nav.focus == PANE_KNOBS ? TH_SEL : TH_SEL_DIM) : A_NORMAL;
        if (at) draw_fill((rect){y, r.x, 1, r.w}, at);
        draw_textf(y, r.x + 1, r.w - 2, at, "%-12s ◂ %s ▸", k < 0 ? "method" : qs_knob_get(k)->name, v);
    }
    y++;
    int pct = a->jobs.job_tensor == t ? a->jobs.job_pct : -1; /* its full result on the way */
    if (!res || res->tensor != t) {
        if (pct >= 0) draw_textf(y, r.x + 1, r.w - 2, theme(TH_WARN), "computing %d %%", pct);
        else draw_text(y, r.x + 1, r.w - 2, "computing…", theme(TH_DIM));
        return;
    }
    if (!res->ok) {
        draw_wrap(y, r.x + 1, r.w - 2, r.y + r.h - y, res->error, theme(TH_BAD));
        return;
    }
    if (res->ggml_type >= 0 && res->ggml_type != res->cfg.method->ggml_type)
        draw_textf(y++, r.x + 1, r.w - 2, theme(TH_WARN), "→ %s (fallback)", qs_type_name(res->ggml_type));
    /* numbers of another config (a knob changed since) or of a preview are never shown as current:
     * dimmed, and marked with what is under way */
    bool stale = !qs_qconfig_equal(&res->cfg, c);
    attr_t at = stale || res->sampled ? theme(TH_DIM) : A_BOLD;
    if (stale || res->sampled)
        draw_text(y - 1, r.x + 1, r.w - 2, stale ? "stale: previous config" : "preview: sampled rows", theme(TH_WARN));
    if (pct >= 0) draw_textf(y, r.x + 1, 19, theme(TH_WARN), "computing %d %%", pct);
    draw_text(y++, r.x + 21, r.w - 22, !a->screen.have_prev ? "" : r.w >= 40 ? "previous   change" : "change", theme(TH_DIM));
    bool hp = a->screen.have_prev;
    const qs_metrics *m = &res->m, *p = &a->screen.prev_m;
    metric_line(y++, r, "bpw", res->bpw, a->screen.prev_bpw, hp, true, at);
    draw_text(y, r.x + 1, 9, "bytes", A_NORMAL);
    draw_textf(y++, r.x + 10, r.w - 11, at, "%lld", (long long)res->bytes);
    metric_line(y++, r, "MSE", m->mse, p->mse, hp, true, at);
    metric_line(y++, r, "RMSE", m->rmse, p->rmse, hp, true, at);
    metric_line(y++, r, "SQNR dB", m->sqnr_db, p->sqnr_db, hp, false, at);
    metric_line(y++, r, "max err", m->max_abs, p->max_abs, hp, true, at);
    metric_line(y++, r, "cosine", m->cosine, p->cosine, hp, false, at);
    metric_line(y++, r, "clipped%", 100.0 * (double)res->n_clipped / (double)(res->rows * res->cols), 0, false, true, at);
    if (isfinite(res->out_err) && y < r.y + r.h) metric_line(y++, r, "out err", res->out_err, 0, false, true, at);
    if (res->report[0] && y + 1 < r.y + r.h) draw_wrap(y + 1, r.x + 1, r.w - 2, r.y + r.h - y - 1, res->report, theme(TH_DIM));
}
