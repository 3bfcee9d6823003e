/* views/scan_view.c — the sensitivity ranking (S): every scanned tensor alone with one config,
 * most sensitive first, as a bar chart of mean KLD with its perplexity change. */
#include <math.h>
#include <stdio.h>

#include "core/recipe/scan.h"
#include "views/draw.h"
#include "views/views.h"

void scan_view_draw(rect r, const app *a)
{
    draw_fill(r, A_NORMAL);
    char title[128];
    snprintf(title, sizeof title, "Sensitivity%s%s (Enter selects the tensor, S rescans, Esc back)", a->jobs.n_scan ? " of " : "",
             a->jobs.n_scan ? a->jobs.scan_cfg : "");
    draw_pane_title((rect){r.y, r.x, 1, r.w}, title, true);
    if (!a->jobs.n_scan) {
        draw_text(r.y + 2, r.x + 2, r.w - 4, a->jobs.scan_running ? "scanning… (each tensor alone: KLD against the original model)"
                                                             : "no scan yet", theme(TH_DIM));
        return;
    }
    int h = r.h - 3, top = a->jobs.scan_top;
    if (a->jobs.scan_sel < top) top = a->jobs.scan_sel;
    if (a->jobs.scan_sel >= top + h) top = a->jobs.scan_sel - h + 1;
    ((app *)a)->jobs.scan_top = top < 0 ? 0 : top; /* scroll position is view state */
    draw_textf(r.y + 1, r.x + 1, r.w - 2, A_BOLD, "%4s %-28s %10s %9s %7s  %s", "rank", "tensor", "KLD", "dPPL", "bpw", "");
    double mx = a->jobs.scan[0].kld > 0 ? a->jobs.scan[0].kld : 1;
    int bw = r.w - 66 > 8 ? r.w - 66 : 8;
    for (int i = 0; i < h && top + i < a->jobs.n_scan; i++) {
        const qs_scan_row *s = &a->jobs.scan[top + i];
        int y = r.y + 2 + i, k = top + i;
        attr_t at = k == a->jobs.scan_sel ? theme(TH_SEL) : A_NORMAL;
        if (at) draw_fill((rect){y, r.x, 1, r.w}, at);
        draw_textf(y, r.x + 1, 62, at, "%4d %-28.28s %10.6f %+9.4f %7.3f", k + 1, s->unit, s->kld, s->dppl, s->bpw);
        int n = (int)lround(bw * s->kld / mx);
        role ro = k * 3 < a->jobs.n_scan ? TH_BAD : k * 3 < 2 * a->jobs.n_scan ? TH_WARN : TH_GOOD;
        for (int c = 0; c < n && c < bw; c++) draw_text(y, r.x + 64 + c, 1, "█", at ? at : theme(ro));
    }
}
