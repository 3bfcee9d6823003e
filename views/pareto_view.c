/* views/pareto_view.c — summed KLD (log scale) against bits per weight: the suggested K-quant mixes
 * ('*') and llama-quantize's presets (letters, with a legend), as the worker computed them. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "views/draw.h"
#include "views/views.h"

void pareto_view_draw(rect r, const app *a)
{
    draw_fill(r, A_NORMAL);
    draw_pane_title((rect){r.y, r.x, 1, r.w}, "Pareto: summed KLD against bits per weight (Esc back)", true);
    if (!a->jobs.n_pareto) {
        draw_text(r.y + 2, r.x + 2, r.w - 4, a->jobs.pareto_running ? "scanning the K-quant candidates…" : "no plot yet", theme(TH_DIM));
        return;
    }
    int lw = 30, W = r.w - 14 - lw, H = r.h - 4;
    if (W < 16 || H < 4) return;
    char grid[128 * 129];
    if (W > 128) W = 128;
    if (H > 128) H = 128;
    double rg[4];
    plot_scatter(a->jobs.pareto_x, a->jobs.pareto_y, a->jobs.pareto_mark, a->jobs.n_pareto, true, W, H, grid, rg);
    for (int y = 0; y < H; y++) {
        draw_textf(r.y + 1 + y, r.x + 1, 10, theme(TH_DIM), "%9.2g", pow(10, rg[3] - (rg[3] - rg[2]) * y / (H - 1)));
        draw_text(r.y + 1 + y, r.x + 11, 1, "│", theme(TH_DIM));
        for (int x = 0; x < W; x++) {
            char c = grid[y * (W + 1) + x];
            if (c == ' ') continue;
            char s[2] = {c, 0};
            draw_text(r.y + 1 + y, r.x + 12 + x, 1, s, c == '*' ? theme(TH_GOOD) : theme(TH_WARN) | A_BOLD);
        }
    }
    draw_textf(r.y + 1 + H, r.x + 11, W + 1, theme(TH_DIM), "└%.3g bpw%*s%.3g bpw", rg[0], W - 18 > 0 ? W - 18 : 1, "", rg[1]);
    int ly = r.y + 1, lx = r.x + 14 + W;
    draw_text(ly++, lx, lw, "* suggested mixes", theme(TH_GOOD));
    for (int i = 0; i < a->jobs.n_pareto && ly < r.y + r.h; i++) {
        char m = a->jobs.pareto_mark[i];
        if (m == '*') continue;
        draw_textf(ly++, lx, lw, theme(TH_WARN), "%c %-7s %4.2f bpw  %.2g", m, a->jobs.pareto_name[i], a->jobs.pareto_x[i], a->jobs.pareto_y[i]);
    }
}
