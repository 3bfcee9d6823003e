/* views/recipe_view.c — the recipe, full screen: every tensor with its config, bits per
 * weight, bytes and last measured error; the totals against the original; the preset keys. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/quant/ggml_types.h"
#include "core/recipe/recipe.h"
#include "views/draw.h"
#include "views/views.h"

static void draw_entry(const app *a, const qs_recipe_entry *e, int i, int y, rect r, bool selected)
{
    attr_t sel = selected ? theme(TH_SEL) : A_NORMAL;
    if (selected) draw_fill((rect){y, r.x, 1, r.w}, sel);
    char shape[32], cfg[48], err[16];
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)qs_tensor_nrows(e->t), (long long)e->t->ne[0]);
    if (e->keep) snprintf(cfg, sizeof cfg, "keep (%.20s)", e->t->dtype);
    else qs_qconfig_describe(&e->cfg, cfg, sizeof cfg);
    if (!e->keep && e->ggml_type >= 0 && strcasecmp(e->cfg.method->name, qs_type_name(e->ggml_type)))
        snprintf(cfg + strlen(cfg), sizeof cfg - strlen(cfg), " → %s", qs_type_name(e->ggml_type));
    if (a->rec.rel_err[i] >= 0) snprintf(err, sizeof err, "%.4f", a->rec.rel_err[i]);
    else snprintf(err, sizeof err, "%s", e->keep ? "" : "-");
    int nw = r.w - 2 - 12 - 26 - 8 - 12 - 9;
    const char *name = e->t->gguf_name[0] ? e->t->gguf_name : e->t->name;
    draw_text(y, r.x + 1, nw, name, sel);
    draw_textf(y, r.x + 1 + nw, 12, sel ? sel : theme(TH_DIM), "%11s ", shape);
    draw_text(y, r.x + 1 + nw + 12, 25, cfg, sel);
    draw_textf(y, r.x + 1 + nw + 38, 28, sel, "%7.3f %11lld", e->bpw, (long long)e->bytes);
    draw_textf(y, r.x + r.w - 9, 8, sel ? sel : theme(theme_error_role(a->rec.rel_err[i])), "%8s", err);
}

void recipe_view_draw(rect r, const app *a, const qs_recipe_table *t, const app_recipe_totals *tot)
{
    draw_fill(r, A_NORMAL);
    char title[160];
    snprintf(title, sizeof title, "Recipe — %lld tensors, %d quantized%s", (long long)t->n, tot->n_quantized,
             a->rec.unsaved ? " (unsaved)" : "");
    draw_pane_title((rect){r.y, r.x, 1, r.w}, title, true);
    int nw = r.w - 2 - 12 - 26 - 8 - 12 - 9;
    draw_textf(r.y + 1, r.x + 1, r.w - 2, theme(TH_HEADER), "%-*s%11s  %-25s%7s %11s %8s", nw, "tensor", "shape", "config",
               "bpw", "bytes", "rel.err");
    int h = r.h - 5, top = a->rec.recipe_top, sel = a->rec.recipe_sel;
    if (sel < top) top = sel;
    if (sel >= top + h) top = sel - h + 1;
    ((app *)a)->rec.recipe_top = top < 0 ? 0 : top; /* scroll position is view state */
    for (int i = 0; i < h && top + i < t->n; i++) draw_entry(a, &t->e[top + i], top + i, r.y + 2 + i, r, top + i == sel);
    double mib = (double)tot->bytes / 1048576.0, omib = (double)tot->orig_bytes / 1048576.0;
    draw_textf(r.y + r.h - 3, r.x + 1, r.w - 2, theme(TH_HEADER),
               "total %.2f MiB, %.3f bpw  (original %.2f MiB, %.3f bpw: %.1f%%)", mib,
               tot->elements ? 8.0 * (double)tot->bytes / (double)tot->elements : 0.0, omib,
               tot->elements ? 8.0 * (double)tot->orig_bytes / (double)tot->elements : 0.0,
               tot->orig_bytes ? 100.0 * (double)tot->bytes / (double)tot->orig_bytes : 0.0);
    draw_text(r.y + r.h - 2, r.x + 1, r.w - 2,
              "presets: 1 Q2_K 2 Q3_K_S 3 Q3_K_M 4 Q3_K_L 5 Q4_K_S 6 Q4_K_M 7 Q5_K_S 8 Q5_K_M 9 Q6_K 0 Q8_0"
              "  n NF4  R RTN-4 g128",
              theme(TH_DIM));
    draw_text(r.y + r.h - 1, r.x + 1, r.w - 2, "/ bulk edit (PATTERN=CONFIG)   Enter opens the tensor   u/U undo/redo   e saves JSON + CSV   Esc back", theme(TH_DIM));
}
