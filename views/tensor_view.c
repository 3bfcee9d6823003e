/* views/tensor_view.c — the tensor view: histogram with the quantization grid, outlier
 * heatmap (half blocks, two tile rows per text row), outlier channels. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "views/draw.h"
#include "views/views.h"

static void tab_bar(rect r, const app *a, const app_result *res)
{
    static const char *const names[TAB_COUNT] = {"1 Histogram", "2 Heatmap", "3 Channels"};
    int t = app_selected_tensor(a);
    const qs_tensor *x = t >= 0 ? &a->model->tensors[t] : NULL;
    char title[300];
    snprintf(title, sizeof title, "%s", x ? (x->gguf_name[0] ? x->gguf_name : x->name) : "");
    draw_pane_title(r, title, a->nav.focus == PANE_TENSOR);
    int cx = r.x + 1;
    for (int i = 0; i < TAB_COUNT; i++) {
        char lab[32];
        snprintf(lab, sizeof lab, i == (int)a->nav.tab ? "[%s]" : " %s ", names[i]);
        draw_text(r.y + 1, cx, r.w - (cx - r.x), lab, i == (int)a->nav.tab ? A_BOLD : theme(TH_DIM));
        cx += (int)strlen(lab) + 1;
    }
    if (res && res->tensor == t && res->rows) {
        char f[5][64], a0[24], a1[24];
        snprintf(f[0], sizeof f[0], "%s…%s", plot_fmt(res->dist.min, a0, sizeof a0), plot_fmt(res->dist.max, a1, sizeof a1));
        snprintf(f[1], sizeof f[1], "mean %s", plot_fmt(res->dist.mean, a0, sizeof a0));
        snprintf(f[2], sizeof f[2], "std %s", plot_fmt(res->dist.std, a0, sizeof a0));
        snprintf(f[3], sizeof f[3], "kurt %.1f", res->dist.kurtosis);
        snprintf(f[4], sizeof f[4], ">3σ %lld", (long long)res->dist.n_outliers);
        static const int keep[5] = {2, 3, 4, 1, 0}; /* dropped first: >3σ, kurt, the range */
        draw_fields(r.y + 2, r.x + 1, r.w - 2, theme(TH_DIM), f, keep, 5);
    }
}

/* bars of counts over w columns, `rows` text rows tall, growing upwards from y0 + rows − 1 */
static void bars(int y0, int x0, int w, int rows, const int64_t *counts, bool log, attr_t at)
{
    int64_t max = 0;
    for (int i = 0; i < w; i++) max = counts[i] > max ? counts[i] : max;
    for (int i = 0; i < w; i++) {
        int e = plot_bar_eighths(counts[i], max, rows, log);
        for (int k = 0; k < rows; k++) {
            int cell = e - 8 * k;
            if (cell <= 0) break;
            draw_text(y0 + rows - 1 - k, x0 + i, 1, plot_eighth_glyph(cell > 8 ? 8 : cell), at);
        }
    }
}

static int column_of(const qs_hist_spec *h, double v, int w)
{
    int b = qs_hist_bin(h, v);
    if (b < 0 || b >= h->nbins) return -1;
    return (int)((int64_t)b * w / h->nbins);
}

static void histogram(rect r, const app *a, const app_result *res)
{
    int w = r.w - 2, x0 = r.x + 1, avail = r.h - 4;
    if (w < 8 || avail < 6) return;
    int top = (avail - 3) / 2, bot = avail - 3 - top, y = r.y + 3;
    int64_t co[512], cd[512];
    if (w > 512) w = 512;
    plot_rebin(res->hist_orig, res->hist.nbins, w, co);
    plot_rebin(res->hist_deq, res->hist.nbins, w, cd);
    char lab[160];
    snprintf(lab, sizeof lab, "original weights%s%s", a->screen.log_counts ? " (log counts)" : "",
             res->view.tails ? ": the tails, |w| beyond 3 sigma (z: all)" : "");
    draw_text(y, x0, w, lab, theme(TH_DIM));
    bars(y + 1, x0, w, top - 1, co, a->screen.log_counts, theme(TH_BAR));
    /* the grid row: the levels of the first group, and the clip range */
    int gy = y + top;
    for (int k = 0; k < res->n_levels; k++) {
        int c = column_of(&res->hist, res->levels[k], w);
        if (c >= 0) draw_text(gy, x0 + c, 1, "┼", theme(TH_GRID));
    }
    if (res->n_levels > 1) {
        int c0 = column_of(&res->hist, res->levels[0], w), c1 = column_of(&res->hist, res->levels[res->n_levels - 1], w);
        if (c0 >= 0) draw_text(gy, x0 + c0, 1, "[", theme(TH_GRID));
        if (c1 >= 0) draw_text(gy, x0 + c1, 1, "]", theme(TH_GRID));
    }
    char g[3][64], lo[24], hi[24];
    snprintf(g[0], sizeof g[0], "grid: %d levels", res->n_levels);
    snprintf(g[1], sizeof g[1], "(group 0)");
    snprintf(g[2], sizeof g[2], "range %s…%s", plot_fmt(res->hist.lo, lo, sizeof lo), plot_fmt(res->hist.hi, hi, sizeof hi));
    static const int keep[3] = {2, 0, 1}; /* the group's name goes first, the range last */
    draw_fields(gy + 1, x0, w, theme(TH_DIM), g, keep, 3);
    draw_text(gy + 2, x0, w, "dequantized weights", theme(TH_DIM));
    bars(gy + 3, x0, w, bot - 1, cd, a->screen.log_counts, theme(TH_BAR_DEQ));
}

/* one cell: its glyph and colour (two cells per text row with half blocks when there is colour) */
static void heat_cell(int y, int x, float top, float bot, float vmax, bool cursor)
{
    static const char *const shade[5] = {" ", "░", "▒", "▓", "█"};
    attr_t extra = cursor ? A_REVERSE : 0;
    if (theme_has_colour()) {
        int lt = plot_heat_level(top, vmax, TH_HEAT_LEVELS), lb = plot_heat_level(bot, vmax, TH_HEAT_LEVELS);
        draw_text(y, x, 1, lt >= lb ? "▀" : "▄", theme((role)(TH_HEAT0 + (lt >= lb ? lt : lb))) | extra);
    } else {
        int l = plot_heat_level(top > bot ? top : bot, vmax, 5);
        draw_text(y, x, 1, cursor && l == 0 ? "+" : shade[l], A_NORMAL | extra);
    }
}

/* the tiles of the window (one per cell, two cell rows per text row), the cursor's cell
 * reversed, and what it covers */
static void heatmap(rect r, const app *a, const app_result *res)
{
    int w = r.w - 2, x0 = r.x + 1, pr = res->tile_rows, pc = res->tile_cols;
    if (w < 8 || r.h < 7 || !pr || !pc) return;
    static const char *const what[3] = {"max |w|", "|error|", "scale"};
    int hm = a->screen.heat_mode >= 0 && a->screen.heat_mode < 3 ? a->screen.heat_mode : 0;
    const float *c = hm == 2 ? res->tiles_scale : hm == 1 ? res->tiles_err : res->tiles_w;
    const app_view_req *v = &res->view;
    float vmax = 0;
    for (int i = 0; i < pr * pc; i++) vmax = c[i] > vmax ? c[i] : vmax;
    int cy = a->nav.heat_cy < pr ? a->nav.heat_cy : pr - 1, cx = a->nav.heat_cx < pc ? a->nav.heat_cx : pc - 1;
    bool focus = a->nav.focus == PANE_TENSOR;
    for (int yy = 0; yy * 2 < pr && 3 + yy < r.h - 3; yy++)
        for (int xx = 0; xx < pc && xx < w; xx++) {
            float top = c[(2 * yy) * pc + xx], bot = 2 * yy + 1 < pr ? c[(2 * yy + 1) * pc + xx] : 0;
            heat_cell(r.y + 3 + yy, x0 + xx, top, bot, vmax, focus && yy == cy / 2 && xx == cx);
        }
    int y = r.y + 3 + (pr + 1) / 2;
    if (y > r.y + r.h - 3) y = r.y + r.h - 3;
    {
        /* what a cell shows, the part of the tensor on screen, the legend: the part goes first when
         * the pane is narrow, the legend never */
        char f[3][64], vm[24];
        snprintf(f[0], sizeof f[0], "%s/cell %lldx%lld", what[hm], (long long)(v->heat_nr / pr), (long long)(v->heat_nc / pc));
        snprintf(f[1], sizeof f[1], "rows %lld-%lld cols %lld-%lld", (long long)v->heat_r0,
                 (long long)(v->heat_r0 + v->heat_nr - 1), (long long)v->heat_c0, (long long)(v->heat_c0 + v->heat_nc - 1));
        snprintf(f[2], sizeof f[2], "0 %s %s", theme_has_colour() ? "→" : "░▒▓█", plot_fmt(vmax, vm, sizeof vm));
        static const int keep[3] = {1, 0, 2};
        draw_fields(y, x0, w, theme(TH_DIM), f, keep, 3);
    }
    int64_t r0 = v->heat_r0 + (int64_t)cy * v->heat_nr / pr, r1 = v->heat_r0 + (int64_t)(cy + 1) * v->heat_nr / pr - 1;
    int64_t c0 = v->heat_c0 + (int64_t)cx * v->heat_nc / pc, c1 = v->heat_c0 + (int64_t)(cx + 1) * v->heat_nc / pc - 1;
    if (!focus) draw_text(y + 1, x0, w, "m: |w| |error| scale  Tab: cursor +- zoom", theme(TH_DIM));
    else if (r0 == r1 && c0 == c1)
        draw_textf(y + 1, x0, w, A_BOLD, "[%lld][%lld]: %s %.6g (- zooms out)", (long long)r0, (long long)c0,
                   hm == 2 ? "scale" : hm ? "|error|" : "|w|", c[cy * pc + cx]);
    else
        draw_textf(y + 1, x0, w, A_BOLD, "[%lld-%lld][%lld-%lld]: %s %.4g (+ zooms)", (long long)r0, (long long)r1,
                   (long long)c0, (long long)c1, hm == 2 ? "max scale" : hm ? "max|err|" : "max|w|", c[cy * pc + cx]);
}

static void channels(rect r, const app_result *res)
{
    int y = r.y + 3;
    /* 44 columns: the whole table fits the tensor pane of an 80- or 120-column screen */
    draw_textf(y++, r.x + 1, r.w - 2, A_BOLD, "%5s %7s %7s %5s %7s %8s", "row", "max|w|", "std", "kurt", "max/med", "RMSE");
    for (int k = 0; k < 8 && res->ch_row[k] >= 0 && y < r.y + r.h; k++)
    {
        char err[16] = "       …"; /* a preview has no error for rows outside its sample */
        if (!isnan(res->ch_err[k])) snprintf(err, sizeof err, "%8.5f", res->ch_err[k]);
        draw_textf(y++, r.x + 1, r.w - 2, res->ch[k].max_over_median > 10 ? theme(TH_WARN) : A_NORMAL,
                   "%5d %7.4f %7.4f %5.1f %7.1f %s", res->ch_row[k], res->ch[k].absmax, res->ch[k].std,
                   res->ch[k].kurtosis, res->ch[k].max_over_median, err);
    }
    draw_text(y + 1, r.x + 1, r.w - 2, "outlier rows: the largest max/median |w|", theme(TH_DIM));
}

void tensor_view_draw(rect r, const app *a, const app_result *res)
{
    int t = app_selected_tensor(a);
    tab_bar(r, a, res);
    if (t < 0) {
        draw_text(r.y + 3, r.x + 1, r.w - 2, "a block: Enter expands or collapses it", theme(TH_DIM));
        return;
    }
    if (!app_tensor_quantizable(a, t)) {
        draw_textf(r.y + 3, r.x + 1, r.w - 2, theme(TH_DIM), "%s: a vector (norm or bias), kept as it is",
                   a->model->tensors[t].dtype);
        return;
    }
    if (!res || res->tensor != t) {
        draw_text(r.y + 3, r.x + 1, r.w - 2, "computing…", theme(TH_DIM));
        return;
    }
    if (!res->rows) {
        draw_wrap(r.y + 3, r.x + 1, r.w - 2, r.h - 3, res->error, theme(TH_BAD));
        return;
    }
    if (a->nav.tab == TAB_HISTOGRAM && res->ok) histogram(r, a, res);
    else if (a->nav.tab == TAB_HEATMAP) heatmap(r, a, res);
    else if (a->nav.tab == TAB_CHANNELS && res->ok) channels(r, res);
    else draw_wrap(r.y + 3, r.x + 1, r.w - 2, r.h - 3, res->error, theme(TH_BAD));
}
