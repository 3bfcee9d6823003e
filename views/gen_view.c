/* views/gen_view.c — the generation pane: the original model's greedy continuation beside
 * the quantized model's, the first diverging token on highlighted. */
#include <stdio.h>
#include <string.h>

#include "views/draw.h"
#include "views/views.h"

/* text with newlines shown as ↵, the part from `diverge` (byte offset, -1: none) highlighted,
 * wrapped over `lines` rows of width w starting at (y, x) */
static void continuation(int y, int x, int w, int lines, const char *text, int diverge)
{
    char buf[2048];
    size_t o = 0;
    int mark = -1;
    for (size_t i = 0; text[i] && o + 4 < sizeof buf; i++) {
        if ((int)i == diverge) mark = (int)o;
        if (text[i] == '\n') memcpy(buf + o, "↵", 3), o += 3;
        else buf[o++] = text[i];
    }
    buf[o] = '\0';
    /* split by columns (one column per character), at word boundaries: a word longer than the
     * row is the only thing ever split */
    const char *p = buf;
    for (int row = 0; row < lines && *p; row++) {
        /* (a row broken at a space starts with it, lined up with the first row, whose text starts
         * with the continuation's space) */
        const char *s = p, *brk = NULL;
        int cols = 0, at_mark = -1, brk_mark = -1;
        while (*p && cols < w) {
            if (*p == ' ' && p > s) brk = p, brk_mark = at_mark;
            if (mark >= 0 && p - buf == mark) at_mark = cols;
            p += (*p & 0x80) ? ((*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : 4) : 1;
            cols++;
        }
        if (*p && *p != ' ' && brk) p = brk, at_mark = brk_mark; /* the row ends inside a word */
        char line[1024];
        size_t len = (size_t)(p - s) < sizeof line - 1 ? (size_t)(p - s) : sizeof line - 1;
        memcpy(line, s, len);
        line[len] = '\0';
        draw_text(y + row, x, w, line, A_NORMAL);
        if (mark >= 0 && (s - buf) >= mark) draw_text(y + row, x, w, line, theme(TH_BAD));
        else if (at_mark >= 0) {
            size_t off = (size_t)(buf + mark - s);
            draw_text(y + row, x + at_mark, w - at_mark, line + off, theme(TH_BAD) | A_UNDERLINE);
        }
    }
}

void gen_view_draw(rect r, const app *a)
{
    char title[512], ppl[200] = "";
    if (a->jobs.ppl.running) snprintf(ppl, sizeof ppl, "   p: measuring…");
    else if (a->jobs.ppl.ready)
        snprintf(ppl, sizeof ppl, "   p: PPL %.3f → %.3f (%+.2f%%)  KLD %.5f  top %.1f%%  %d×%d", a->jobs.ppl.base,
                 a->jobs.ppl.quant, 100.0 * (a->jobs.ppl.quant / a->jobs.ppl.base - 1), a->jobs.ppl.kld, a->jobs.ppl.same_top, a->jobs.ppl.n_chunks,
                 a->jobs.ppl.n_ctx);
    else if (a->jobs.ppl.error[0]) snprintf(ppl, sizeof ppl, "   p: %.150s", a->jobs.ppl.error);
    snprintf(title, sizeof title, "Generation — greedy, prompt \"%s\"%s%s", a->jobs.gen.prompt,
             a->jobs.gen.ready ? "" : a->jobs.gen.enabled && !a->jobs.gen.error[0] ? "  (computing…)" : "", ppl);
    draw_pane_title((rect){r.y, r.x, 1, r.w}, title, false);
    if (a->jobs.gen.error[0]) {
        draw_text(r.y + 1, r.x + 1, r.w - 2, a->jobs.gen.error, theme(TH_DIM));
        return;
    }
    if (!a->jobs.gen.ready) return;
    int lines = (r.h - 1) / 2;
    draw_text(r.y + 1, r.x + 1, 10, "original", theme(TH_DIM));
    continuation(r.y + 1, r.x + 11, r.w - 12, lines, a->jobs.gen.base, a->jobs.gen.diverge_base);
    draw_text(r.y + 1 + lines, r.x + 1, 10, "quantized", theme(TH_DIM));
    continuation(r.y + 1 + lines, r.x + 11, r.w - 12, lines, a->jobs.gen.quant, a->jobs.gen.diverge_quant);
}
