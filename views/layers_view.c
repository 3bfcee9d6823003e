/* views/layers_view.c — the layer browser: blocks as a tree, each tensor with shape, its
 * current configuration and a mark coloured by its last measured relative error. */
#include <stdio.h>
#include <string.h>

#include "core/quant/ggml_types.h"
#include "views/draw.h"
#include "views/views.h"

/* the shape column: as wide as the widest shape (so names get the rest), 5 to 11 columns */
static int shape_width(const app *a)
{
    int w = 5;
    for (int64_t i = 0; i < a->model->n_tensors; i++) {
        const qs_tensor *x = &a->model->tensors[i];
        char s[48];
        int k = snprintf(s, sizeof s, "%lldx%lld", (long long)qs_tensor_nrows(x), (long long)x->ne[0]);
        w = k > w ? k : w;
    }
    return w < 11 ? w : 11;
}

static void draw_row(const app *a, int row, int y, rect r, bool selected)
{
    int t = a->nav.rows[row];
    attr_t sel = selected ? theme(a->nav.focus == PANE_LAYERS ? TH_SEL : TH_SEL_DIM) : A_NORMAL;
    if (selected) draw_fill((rect){y, r.x, 1, r.w}, sel);
    if (t < 0) {
        int b = -t - 2;
        draw_textf(y, r.x, r.w, sel ? sel : theme(TH_HEADER), "%s blk.%d", a->nav.collapsed[b] ? "▸" : "▾", b);
        return;
    }
    const qs_tensor *x = &a->model->tensors[t];
    char name[96], shape[32], cfg[40];
    const char *full = x->gguf_name[0] ? x->gguf_name : x->name;
    if (x->block >= 0 && !strncmp(full, "blk.", 4) && strchr(full + 4, '.')) full = strchr(full + 4, '.') + 1;
    snprintf(name, sizeof name, "%.95s", full);
    size_t nl = strlen(name);
    if (nl > 7 && !strcmp(name + nl - 7, ".weight")) name[nl - 7] = '\0';
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)qs_tensor_nrows(x), (long long)x->ne[0]);
    if (app_tensor_quantizable(a, t)) qs_qconfig_describe(&a->rec.cfg[t], cfg, sizeof cfg);
    else snprintf(cfg, sizeof cfg, "%s", x->dtype);
    int indent = x->block >= 0 ? 2 : 0, cw = 12, sw = shape_width(a), nw = r.w - indent - cw - sw - 3;
    draw_text(y, r.x + indent, nw, name, sel);
    draw_textf(y, r.x + indent + nw + 1, sw, sel ? sel : theme(TH_DIM), "%*s", sw, shape);
    draw_text(y, r.x + r.w - cw - 1, cw, cfg, sel);
    /* the mark: by scan rank when a scan ran (the most sensitive third red), else by the error */
    role mark = theme_error_role(a->rec.rel_err[t]);
    if (a->jobs.scan_rank && a->jobs.scan_rank[t] >= 0)
        mark = a->jobs.scan_rank[t] * 3 < a->jobs.n_scan ? TH_BAD : a->jobs.scan_rank[t] * 3 < 2 * a->jobs.n_scan ? TH_WARN : TH_GOOD;
    draw_text(y, r.x + r.w - 1, 1, app_tensor_quantizable(a, t) ? "●" : " ", sel ? sel : theme(mark));
}

void layers_view_draw(rect r, const app *a)
{
    char title[256];
    snprintf(title, sizeof title, "Layers (%lld tensors%s%s%s%s)", (long long)a->model->n_tensors,
             a->nav.sort ? ", by " : "", a->nav.sort ? app_sort_names[a->nav.sort] : "", a->nav.filter[0] ? ", filter " : "", a->nav.filter);
    draw_pane_title(r, title, a->nav.focus == PANE_LAYERS);
    int h = r.h - 1, top = a->nav.top;
    if (a->nav.sel < top) top = a->nav.sel;
    if (a->nav.sel >= top + h) top = a->nav.sel - h + 1;
    ((app *)a)->nav.top = top < 0 ? 0 : top; /* scroll position is view state */
    for (int i = 0; i < h && top + i < a->nav.n_rows; i++) draw_row(a, top + i, r.y + 1 + i, r, top + i == a->nav.sel);
    if (!a->nav.n_rows) draw_text(r.y + 2, r.x + 1, r.w - 2, "(nothing matches the filter)", theme(TH_DIM));
}
