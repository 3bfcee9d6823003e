/* tui/app.c — state, the layer list, and key handling (reactions, no drawing). */
#include "tui/app.h"

#include "core/data/calib.h"
#include "core/recipe/scan.h"

#include <curses.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/quant/ggml_types.h"
#include "core/recipe/recipe.h"
#include "core/util/rx.h"
#include "views/actions.h"

int app_init(app *a, qs_model *m, char *err, size_t errn)
{
    memset(a, 0, sizeof *a);
    a->model = m;
    a->nav.heat_fr = a->nav.heat_fc = -1;
    int64_t n = m->n_tensors;
    a->rec.cfg = calloc((size_t)(n ? n : 1), sizeof *a->rec.cfg);
    a->rec.rel_err = malloc((size_t)(n ? n : 1) * sizeof *a->rec.rel_err);
    a->nav.rows = malloc((size_t)(2 * n + 4) * sizeof *a->nav.rows);
    a->res = calloc(1, sizeof *a->res);
    a->jobs.job_tensor = a->jobs.job_pct = -1;
    int maxb = -1;
    for (int64_t i = 0; i < n; i++) maxb = m->tensors[i].block > maxb ? m->tensors[i].block : maxb;
    a->nav.n_blocks = maxb + 1;
    a->nav.collapsed = calloc((size_t)(a->nav.n_blocks + 1), sizeof *a->nav.collapsed);
    if (!a->rec.cfg || !a->rec.rel_err || !a->nav.rows || !a->res || !a->nav.collapsed) {
        snprintf(err, errn, "out of memory");
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        qs_qconfig_default(&a->rec.cfg[i], qs_method_find("q4_K"));
        a->rec.rel_err[i] = -1;
    }
    a->res->tensor = -1;
    pthread_mutex_init(&a->lock, NULL);
    app_rebuild_rows(a);
    /* start on the first quantizable tensor */
    for (int r = 0; r < a->nav.n_rows; r++)
        if (a->nav.rows[r] >= 0 && app_tensor_quantizable(a, a->nav.rows[r])) {
            a->nav.sel = r;
            break;
        }
    const char *base = strrchr(m->path, '/');
    snprintf(a->screen.status, sizeof a->screen.status, "%.180s: %lld tensors — ? for help", base ? base + 1 : m->path, (long long)n);
    return 0;
}

void app_free(app *a)
{
    qs_rx_free(a->nav.filter_rx);
    a->nav.filter_rx = NULL;
    qs_calib_set_free(a->jobs.calib);
    free(a->jobs.scan);
    free(a->jobs.scan_rank);
    free(a->rec.cfg);
    free(a->rec.rel_err);
    free(a->nav.rows);
    free(a->res);
    free(a->nav.collapsed);
    free(a->rec.undo);
    pthread_mutex_destroy(&a->lock);
}

/* the filter, compiled when it changed (never per redraw or per tensor); a filter that is no
 * regular expression (or one beyond the engine's limits) is searched as a substring */
static void compile_filter(app *a)
{
    if (a->nav.filter_rx && !strcmp(a->nav.filter_rx_of, a->nav.filter)) return;
    qs_rx_free(a->nav.filter_rx);
    a->nav.filter_rx = NULL;
    snprintf(a->nav.filter_rx_of, sizeof a->nav.filter_rx_of, "%s", a->nav.filter);
    if (a->nav.filter[0]) a->nav.filter_rx = qs_rx_compile(a->nav.filter, QS_RX_ICASE, NULL);
}

static bool matches(const app *a, const qs_tensor *t)
{
    if (!a->nav.filter[0]) return true;
    const char *name = t->gguf_name[0] ? t->gguf_name : t->name;
    int hit = a->nav.filter_rx ? qs_rx_search(a->nav.filter_rx, name, NULL) : -1;
    return hit < 0 ? strstr(name, a->nav.filter) != NULL : hit == 1;
}

/* the order of two tensors under the app's sort (ties keep file order) */
static int cmp_rows(const void *x, const void *y, void *ctx)
{
    const app *a = ctx;
    int i = *(const int *)x, j = *(const int *)y;
    const qs_tensor *s = &a->model->tensors[i], *t = &a->model->tensors[j];
    int c = 0;
    if (a->nav.sort == SORT_NAME) c = strcmp(s->gguf_name[0] ? s->gguf_name : s->name, t->gguf_name[0] ? t->gguf_name : t->name);
    else if (a->nav.sort == SORT_SIZE) c = s->nbytes > t->nbytes ? -1 : s->nbytes < t->nbytes;
    else if (a->nav.sort == SORT_ERROR) c = a->rec.rel_err[i] > a->rec.rel_err[j] ? -1 : a->rec.rel_err[i] < a->rec.rel_err[j]; /* unmeasured last */
    return c ? c : i - j;
}

/* globals first, then each block: a header row and its tensors; inside each group in the sort's order */
void app_rebuild_rows(app *a)
{
    const qs_model *m = a->model;
    int keep = app_selected_tensor(a);
    compile_filter(a);
    a->nav.n_rows = 0;
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].block < 0 && matches(a, &m->tensors[i])) a->nav.rows[a->nav.n_rows++] = (int)i;
    qsort_r(a->nav.rows, (size_t)a->nav.n_rows, sizeof *a->nav.rows, cmp_rows, a);
    for (int b = 0; b < a->nav.n_blocks; b++) {
        int header = a->nav.n_rows, count = 0;
        a->nav.rows[a->nav.n_rows++] = -(b + 2);
        for (int64_t i = 0; i < m->n_tensors; i++)
            if (m->tensors[i].block == b && matches(a, &m->tensors[i])) {
                count++;
                if (!a->nav.collapsed[b]) a->nav.rows[a->nav.n_rows++] = (int)i;
            }
        qsort_r(a->nav.rows + header + 1, (size_t)(a->nav.n_rows - header - 1), sizeof *a->nav.rows, cmp_rows, a);
        if (!count) a->nav.n_rows = header; /* a block with nothing matching disappears */
    }
    a->nav.sel = a->nav.n_rows ? 0 : -1;
    for (int r = 0; r < a->nav.n_rows; r++)
        if (a->nav.rows[r] == keep) a->nav.sel = r;
    if (a->nav.top > a->nav.sel) a->nav.top = a->nav.sel > 0 ? a->nav.sel : 0;
}

/* ---- changes with undo ---- */

static void push_undo(app *a, int t, const qs_qconfig *before)
{
    a->rec.unsaved = true;
    if (a->rec.undo_pos == a->rec.undo_cap) {
        int cap = a->rec.undo_cap ? 2 * a->rec.undo_cap : 64;
        undo_entry *p = realloc(a->rec.undo, (size_t)cap * sizeof *p);
        if (!p) { /* the change stands; it cannot be undone */
            snprintf(a->screen.status, sizeof a->screen.status, "out of memory: this change cannot be undone");
            return;
        }
        a->rec.undo = p, a->rec.undo_cap = cap;
    }
    a->rec.undo[a->rec.undo_pos++] = (undo_entry){t, *before, a->rec.cfg[t], a->rec.undo_group};
    a->rec.n_undo = a->rec.undo_pos; /* a new change drops the redo tail */
}

static int change_knob(app *a, int dir)
{
    int t = app_selected_tensor(a);
    if (t < 0 || !app_tensor_quantizable(a, t)) {
        snprintf(a->screen.status, sizeof a->screen.status, "this entry has no quantization settings");
        return R_REDRAW;
    }
    qs_qconfig before = a->rec.cfg[t];
    int k = app_knob_at(a, a->nav.knob_sel);
    if (k < 0) {
        int i = (int)(a->rec.cfg[t].method - qs_method_table);
        i = (i + (dir > 0 ? 1 : qs_method_count - 1)) % qs_method_count;
        qs_qconfig c;
        qs_qconfig_default(&c, &qs_method_table[i]);
        a->rec.cfg[t] = c;
    } else if (!qs_qconfig_step(&a->rec.cfg[t], (qs_knob_id)k, dir)) {
        snprintf(a->screen.status, sizeof a->screen.status, "%s: end of its range", qs_knob_get(k)->name);
        return R_REDRAW;
    }
    a->rec.undo_group++;
    push_undo(a, t, &before);
    if (a->nav.knob_sel >= app_knob_count(a)) a->nav.knob_sel = app_knob_count(a) - 1;
    return R_REDRAW | R_RECOMPUTE | R_REGENERATE;
}

/* undoes or redoes one edit: every entry of its group */
static int undo_redo(app *a, bool redo)
{
    if (redo ? a->rec.undo_pos >= a->rec.n_undo : a->rec.undo_pos <= 0) {
        snprintf(a->screen.status, sizeof a->screen.status, redo ? "nothing to redo" : "nothing to undo");
        return R_REDRAW;
    }
    int group = redo ? a->rec.undo[a->rec.undo_pos].group : a->rec.undo[a->rec.undo_pos - 1].group, n = 0;
    undo_entry *e = NULL;
    while (redo ? a->rec.undo_pos < a->rec.n_undo && a->rec.undo[a->rec.undo_pos].group == group
                : a->rec.undo_pos > 0 && a->rec.undo[a->rec.undo_pos - 1].group == group) {
        e = redo ? &a->rec.undo[a->rec.undo_pos++] : &a->rec.undo[--a->rec.undo_pos];
        a->rec.cfg[e->tensor] = redo ? e->after : e->before;
        n++;
    }
    if (a->nav.mode != MODE_RECIPE)
        for (int r = 0; r < a->nav.n_rows; r++)
            if (a->nav.rows[r] == e->tensor) a->nav.sel = r;
    a->rec.unsaved = true;
    if (n > 1) snprintf(a->screen.status, sizeof a->screen.status, "%s %d tensors", redo ? "redo:" : "undo:", n);
    else snprintf(a->screen.status, sizeof a->screen.status, "%s %.200s", redo ? "redo:" : "undo:", a->model->tensors[e->tensor].name);
    return R_REDRAW | R_RECOMPUTE | R_REGENERATE;
}

/* ---- the recipe ---- */

int app_build_recipe(const app *a, qs_recipe *r, char *err, size_t errn)
{
    qs_recipe_init(r, a->model);
    for (int64_t i = 0; i < a->model->n_tensors; i++) {
        if (!app_tensor_quantizable(a, (int)i)) continue;
        char cfg[128];
        const qs_tensor *t = &a->model->tensors[i];
        qs_config_format(&a->rec.cfg[i], false, cfg, sizeof cfg);
        qs_recipe_rule *nv = realloc(r->overrides, (size_t)(r->n_overrides + 1) * sizeof *nv);
        char *name = strdup(t->gguf_name[0] ? t->gguf_name : t->name);
        if (!nv || !name) {
            free(name);
            if (nv) r->overrides = nv;
            snprintf(err, errn, "out of memory");
            return -1;
        }
        r->overrides = nv;
        nv[r->n_overrides++] = (qs_recipe_rule){name, a->rec.cfg[i], false, NULL};
    }
    return 0;
}

int app_recipe_table(const app *a, qs_recipe_table *t, app_recipe_totals *tot, char *err, size_t errn)
{
    qs_recipe r;
    qs_err e = {0};
    int rc = app_build_recipe(a, &r, err, errn);
    if (!rc && qs_recipe_resolve(&r, a->model, true, t, &e)) rc = -1, snprintf(err, errn, "%s", e.msg);
    qs_recipe_free(&r);
    memset(tot, 0, sizeof *tot);
    for (int64_t i = 0; !rc && i < t->n; i++) {
        tot->bytes += t->e[i].bytes;
        tot->orig_bytes += (int64_t)t->e[i].t->nbytes;
        tot->elements += qs_tensor_nelements(t->e[i].t);
        tot->n_quantized += !t->e[i].keep;
    }
    return rc;
}

static const struct { int key; const char *name, *config; } presets[] = {
    {'1', "Q2_K", NULL},   {'2', "Q3_K_S", NULL}, {'3', "Q3_K_M", NULL}, {'4', "Q3_K_L", NULL},
    {'5', "Q4_K_S", NULL}, {'6', "Q4_K_M", NULL}, {'7', "Q5_K_S", NULL}, {'8', "Q5_K_M", NULL},
    {'9', "Q6_K", NULL},   {'0', "Q8_0", NULL},   {'n', "NF4", "nf4"},   {'R', "RTN-4 g128", "rtn:bits=4,group=128"}};

const char *app_preset_for_key(int key)
{
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++)
        if (presets[i].key == key) return presets[i].name;
    return NULL;
}

static void set_cfg(app *a, int t, const qs_qconfig *c, int *changed)
{
    if (qs_qconfig_equal(&a->rec.cfg[t], c)) return;
    qs_qconfig before = a->rec.cfg[t];
    a->rec.cfg[t] = *c;
    push_undo(a, t, &before);
    ++*changed;
}

/* a llama-quantize preset (its per-tensor choice) or one config for every tensor, as one edit */
static int apply_preset(app *a, int key)
{
    size_t p = 0;
    while (p < sizeof presets / sizeof *presets && presets[p].key != key) p++;
    qs_err err = {0};
    qs_recipe r;
    int changed = 0;
    a->rec.undo_group++;
    qs_recipe_init(&r, a->model);
    if (presets[p].config) {
        qs_qconfig c, g;
        bool keep;
        qs_config_parse(presets[p].config, &c, &keep, &err);
        for (int t = 0; t < a->model->n_tensors; t++) {
            if (!app_tensor_quantizable(a, t)) continue;
            g = c;
            /* a group that does not divide the row falls back to one scale per row */
            if (g.group > 0 && a->model->tensors[t].ne[0] % g.group) g.group = 0;
            set_cfg(a, t, &g, &changed);
        }
    } else if (qs_recipe_from_preset(&r, a->model, presets[p].name, false, &err)) {
        snprintf(a->screen.status, sizeof a->screen.status, "%s: %.200s", presets[p].name, err.msg);
        qs_recipe_free(&r);
        return R_REDRAW;
    }
    for (int i = 0; i < r.n_overrides; i++) {
        const qs_tensor *t = qs_model_find_tensor(a->model, r.overrides[i].pattern);
        int ti = t ? (int)(t - a->model->tensors) : -1;
        if (ti >= 0 && !r.overrides[i].keep && app_tensor_quantizable(a, ti)) set_cfg(a, ti, &r.overrides[i].cfg, &changed);
    }
    qs_recipe_free(&r);
    snprintf(a->screen.status, sizeof a->screen.status, "%s applied: %d tensors changed (u undoes)", presets[p].name, changed);
    return changed ? R_REDRAW | R_RECOMPUTE | R_REGENERATE : R_REDRAW;
}

void app_model_file(const app *a, const char *suffix, char *out, size_t n)
{
    const char *base = strrchr(a->model->path, '/');
    snprintf(out, n, "%.480s%s", base ? base + 1 : a->model->path, suffix);
}

/* O: the recipe `e` saved (MODEL.recipe.json in the current directory) loaded back, as one edit */
int app_load_recipe(app *a, const char *path, bool undoable, int *changed, char *err, size_t errn)
{
    qs_recipe r;
    qs_recipe_table t;
    qs_err e = {0};
    *changed = 0;
    int rc = qs_recipe_load(path, &r, &e);
    if (!rc) {
        rc = qs_recipe_resolve(&r, a->model, false, &t, &e);
        qs_recipe_free(&r);
    }
    if (rc) return snprintf(err, errn, "%s", e.msg), -1;
    if (undoable) a->rec.undo_group++;
    for (int64_t i = 0; i < t.n && i < a->model->n_tensors; i++) {
        if (t.e[i].keep || !app_tensor_quantizable(a, (int)i)) continue;
        if (undoable) set_cfg(a, (int)i, &t.e[i].cfg, changed);
        else if (!qs_qconfig_equal(&a->rec.cfg[i], &t.e[i].cfg)) a->rec.cfg[i] = t.e[i].cfg, ++*changed;
    }
    qs_recipe_table_free(&t);
    if (!undoable) a->rec.unsaved = false;
    return 0;
}

static int load_saved_recipe(app *a)
{
    char path[512], err[256];
    int changed;
    app_model_file(a, ".recipe.json", path, sizeof path);
    if (app_load_recipe(a, path, true, &changed, err, sizeof err)) {
        snprintf(a->screen.status, sizeof a->screen.status, "cannot load %.100s: %.140s", path, err);
        return R_REDRAW;
    }
    snprintf(a->screen.status, sizeof a->screen.status, "loaded %.200s: %d tensors changed (u undoes)", path, changed);
    return changed ? R_REDRAW | R_RECOMPUTE | R_REGENERATE : R_REDRAW;
}

/* PATTERN=CONFIG: the config for every quantizable tensor whose name the regex finds */
static int apply_bulk(app *a)
{
    char buf[sizeof a->rec.bulk];
    snprintf(buf, sizeof buf, "%s", a->rec.bulk);
    char *eq = strchr(buf, '='); /* like llama-quantize: a pattern cannot hold "=" */
    qs_qconfig c;
    bool keep;
    qs_err err = {0};
    if (!eq) {
        snprintf(a->screen.status, sizeof a->screen.status, "bulk edit: PATTERN=CONFIG, e.g. blk\\.[0-3]\\.ffn_down=q6_K");
        return R_REDRAW;
    }
    *eq = '\0';
    if (qs_config_parse(eq + 1, &c, &keep, &err) || keep) {
        snprintf(a->screen.status, sizeof a->screen.status, "bulk edit: %.200s", keep ? "keep is not a config here" : err.msg);
        return R_REDRAW;
    }
    qs_rx *re = qs_rx_compile(buf, 0, &err);
    if (!re) {
        snprintf(a->screen.status, sizeof a->screen.status, "bulk edit: %.200s",
                 strstr(err.msg, "too complex") ? err.msg : "not a regular expression");
        return R_REDRAW;
    }
    int changed = 0, matched = 0, refused = 0;
    a->rec.undo_group++;
    for (int t = 0; t < a->model->n_tensors; t++) {
        const qs_tensor *x = &a->model->tensors[t];
        if (!app_tensor_quantizable(a, t)) continue;
        int found = qs_rx_search(re, x->gguf_name[0] ? x->gguf_name : x->name, &err);
        if (found < 0) {
            qs_rx_free(re);
            snprintf(a->screen.status, sizeof a->screen.status, "bulk edit: rule '%.100s' is too complex", buf);
            return R_REDRAW;
        }
        if (!found) continue;
        int eff;
        matched++;
        if (qs_qconfig_check(&c, qs_tensor_nrows(x), x->ne[0], &eff, &err)) refused++;
        else set_cfg(a, t, &c, &changed);
    }
    qs_rx_free(re);
    snprintf(a->screen.status, sizeof a->screen.status, "%.60s → %.40s: %d tensors match, %d changed%s", buf, eq + 1, matched, changed,
             refused ? " (some refused: the config does not fit their shape)" : "");
    return changed ? R_REDRAW | R_RECOMPUTE | R_REGENERATE : R_REDRAW;
}

static int bulk_key(app *a, int key)
{
    size_t n = strlen(a->rec.bulk);
    a->nav.mode = MODE_BULK;
    if (key == 27) a->nav.mode = MODE_RECIPE, snprintf(a->screen.status, sizeof a->screen.status, "bulk edit cancelled");
    else if (key == '\n' || key == '\r' || key == KEY_ENTER) {
        a->nav.mode = MODE_RECIPE;
        return apply_bulk(a);
    } else if ((key == KEY_BACKSPACE || key == 127 || key == 8) && n) a->rec.bulk[n - 1] = '\0';
    else if (key >= 32 && key < 127 && n + 1 < sizeof a->rec.bulk) a->rec.bulk[n] = (char)key, a->rec.bulk[n + 1] = '\0';
    else return R_NONE;
    if (a->nav.mode == MODE_BULK)
        snprintf(a->screen.status, sizeof a->screen.status, "bulk edit PATTERN=CONFIG (Enter applies, Esc cancels): %s", a->rec.bulk);
    return R_REDRAW;
}

static int recipe_key(app *a, int key)
{
    int n = (int)a->model->n_tensors, s = a->rec.recipe_sel;
    if (app_preset_for_key(key)) return apply_preset(a, key);
    switch (qs_action_for_key(key)) {
    case ACT_UP: s--; break;
    case ACT_DOWN: s++; break;
    case ACT_PAGE_UP: s -= 10; break;
    case ACT_PAGE_DOWN: s += 10; break;
    case ACT_FIRST: s = 0; break;
    case ACT_LAST: s = n - 1; break;
    case ACT_UNDO: return undo_redo(a, false);
    case ACT_REDO: return undo_redo(a, true);
    case ACT_SAVE: return R_REDRAW | R_SAVE;
    case ACT_LOAD: return load_saved_recipe(a);
    case ACT_EXPORT: return R_REDRAW | R_EXPORT;
    case ACT_CHECKPOINT: return R_REDRAW | R_CHECKPOINT;
    case ACT_HELP: a->nav.mode = MODE_HELP; return R_REDRAW;
    case ACT_FILTER: /* in the recipe view, / starts a bulk edit */
        a->rec.bulk[0] = '\0';
        a->nav.mode = MODE_BULK;
        snprintf(a->screen.status, sizeof a->screen.status, "bulk edit PATTERN=CONFIG (Enter applies, Esc cancels): ");
        return R_REDRAW;
    case ACT_OPEN: /* open the tensor in the workbench */
        a->nav.filter[0] = '\0';
        a->nav.collapsed[a->model->tensors[s].block >= 0 ? a->model->tensors[s].block : 0] = false;
        app_rebuild_rows(a);
        for (int r = 0; r < a->nav.n_rows; r++)
            if (a->nav.rows[r] == s) a->nav.sel = r;
        a->nav.mode = MODE_NORMAL;
        return R_REDRAW | R_RECOMPUTE;
    default:
        if (key == 27 || key == 'r' || key == 'q' || key == KEY_F(6)) {
            a->nav.mode = MODE_NORMAL;
            return R_REDRAW;
        }
        return R_NONE;
    }
    a->rec.recipe_sel = s < 0 ? 0 : s >= n ? n - 1 : s;
    return R_REDRAW;
}

/* ---- movement ---- */

static int move_sel(app *a, int d)
{
    if (a->nav.focus == PANE_KNOBS) {
        int n = app_knob_count(a), s = a->nav.knob_sel + d;
        a->nav.knob_sel = s < 0 ? 0 : s >= n ? n - 1 : s;
        return R_REDRAW;
    }
    if (!a->nav.n_rows) return R_NONE;
    int s = a->nav.sel + d;
    s = s < 0 ? 0 : s >= a->nav.n_rows ? a->nav.n_rows - 1 : s;
    if (s == a->nav.sel) return R_NONE;
    a->nav.sel = s;
    a->nav.knob_sel = 0;
    return R_REDRAW | R_RECOMPUTE;
}

static int toggle_block(app *a)
{
    int r = a->nav.sel >= 0 ? a->nav.rows[a->nav.sel] : 0;
    if (r >= 0) return R_NONE;
    int b = -r - 2;
    a->nav.collapsed[b] = !a->nav.collapsed[b];
    app_rebuild_rows(a);
    for (int i = 0; i < a->nav.n_rows; i++)
        if (a->nav.rows[i] == r) a->nav.sel = i;
    return R_REDRAW;
}

static int filter_key(app *a, int key)
{
    size_t n = strlen(a->nav.filter);
    if (key == 27) {
        a->nav.filter[0] = '\0';
        a->nav.mode = MODE_NORMAL;
    } else if (key == '\n' || key == '\r' || key == KEY_ENTER) {
        a->nav.mode = MODE_NORMAL;
    } else if ((key == KEY_BACKSPACE || key == 127 || key == 8) && n) {
        a->nav.filter[n - 1] = '\0';
    } else if (key >= 32 && key < 127 && n + 1 < sizeof a->nav.filter) {
        a->nav.filter[n] = (char)key;
        a->nav.filter[n + 1] = '\0';
    } else {
        return R_NONE;
    }
    app_rebuild_rows(a);
    if (a->nav.filter[0]) snprintf(a->screen.status, sizeof a->screen.status, "filter: %s (%d rows)", a->nav.filter, a->nav.n_rows);
    else snprintf(a->screen.status, sizeof a->screen.status, "no filter (%d rows)", a->nav.n_rows);
    return R_REDRAW | R_RECOMPUTE;
}

/* typing the generation prompt: Enter makes it the prompt (both models continue it), Esc drops it */
static int prompt_key(app *a, int key)
{
    size_t n = strlen(a->nav.prompt_edit);
    if (key == 27) {
        a->nav.mode = MODE_NORMAL;
        snprintf(a->screen.status, sizeof a->screen.status, "prompt unchanged");
        return R_REDRAW;
    }
    if (key == '\n' || key == '\r' || key == KEY_ENTER) {
        a->nav.mode = MODE_NORMAL;
        if (!n) return snprintf(a->screen.status, sizeof a->screen.status, "an empty prompt: unchanged"), R_REDRAW;
        pthread_mutex_lock(&a->lock);
        snprintf(a->jobs.gen.prompt, sizeof a->jobs.gen.prompt, "%s", a->nav.prompt_edit);
        a->jobs.gen.ready = false;
        pthread_mutex_unlock(&a->lock);
        snprintf(a->screen.status, sizeof a->screen.status, "prompt: %.200s", a->nav.prompt_edit);
        return R_REDRAW | R_REGENERATE;
    }
    if ((key == KEY_BACKSPACE || key == 127 || key == 8) && n) a->nav.prompt_edit[n - 1] = '\0';
    else if (key >= 32 && key < 127 && n + 1 < sizeof a->nav.prompt_edit) a->nav.prompt_edit[n] = (char)key, a->nav.prompt_edit[n + 1] = '\0';
    else return R_NONE;
    snprintf(a->screen.status, sizeof a->screen.status, "prompt (Enter generates, Esc cancels): %.180s_", a->nav.prompt_edit);
    return R_REDRAW;
}

/* ---- the scan view ---- */

int app_scan_tensor(const app *a, int i)
{
    if (i < 0 || i >= a->jobs.n_scan) return -1;
    const qs_tensor *t = qs_model_find_tensor(a->model, a->jobs.scan[i].unit);
    return t ? (int)(t - a->model->tensors) : -1;
}

/* S: opens the scan view, scanning with the selected tensor's config unless that scan exists */
static int start_scan(app *a)
{
    int t = app_selected_tensor(a);
    a->nav.mode = MODE_SCAN;
    if (t < 0 || !app_tensor_quantizable(a, t)) {
        snprintf(a->screen.status, sizeof a->screen.status, "select a quantizable tensor: the scan uses its config");
        return R_REDRAW;
    }
    char cfg[64];
    qs_config_format(&a->rec.cfg[t], false, cfg, sizeof cfg);
    if (qs_method_needs_calib(a->rec.cfg[t].method)) {
        snprintf(a->screen.status, sizeof a->screen.status, "the scan takes configs without calibration: pick e.g. q3_K or rtn");
        return R_REDRAW;
    }
    snprintf(a->screen.status, sizeof a->screen.status, "sensitivity of %s: Enter selects a tensor, S rescans, Esc back", cfg);
    if (a->jobs.scan_running || (a->jobs.n_scan && !strcmp(a->jobs.scan_cfg, cfg))) return R_REDRAW;
    return R_REDRAW | R_SCAN;
}

static int scan_key(app *a, int key)
{
    switch (qs_action_for_key(key)) {
    case ACT_UP: a->jobs.scan_sel -= a->jobs.scan_sel > 0; return R_REDRAW;
    case ACT_DOWN: a->jobs.scan_sel += a->jobs.scan_sel + 1 < a->jobs.n_scan; return R_REDRAW;
    case ACT_FIRST: a->jobs.scan_sel = 0; return R_REDRAW;
    case ACT_LAST: a->jobs.scan_sel = a->jobs.n_scan ? a->jobs.n_scan - 1 : 0; return R_REDRAW;
    case ACT_SCAN: {
        a->jobs.scan_cfg[0] = '\0'; /* rescan */
        return start_scan(a);
    }
    case ACT_OPEN: {
        int t = app_scan_tensor(a, a->jobs.scan_sel);
        a->nav.mode = MODE_NORMAL;
        for (int r = 0; t >= 0 && r < a->nav.n_rows; r++)
            if (a->nav.rows[r] == t) a->nav.sel = r;
        return R_REDRAW | R_RECOMPUTE;
    }
    case ACT_CANCEL:
        if (a->jobs.scan_running) return R_CANCEL | R_REDRAW;
        a->nav.mode = MODE_NORMAL;
        return R_REDRAW;
    case ACT_QUIT: a->nav.mode = MODE_NORMAL; return R_REDRAW;
    default: return R_NONE;
    }
}

/* the heatmap's cursor and zoom (focus on the tensor pane, heatmap tab): arrows move the cursor
 * over the cells, + zooms in on the cell under it (half the window each way), - zooms out */
static int heat_key(app *a, action_id act)
{
    pthread_mutex_lock(&a->lock);
    app_view_req v = a->res->view;
    int pr = a->res->tile_rows, pc = a->res->tile_cols;
    int64_t rows = a->res->rows, cols = a->res->cols;
    pthread_mutex_unlock(&a->lock);
    if (pr <= 0 || pc <= 0) return R_NONE;
    int dy = act == ACT_UP ? -1 : act == ACT_DOWN ? 1 : 0, dx = act == ACT_LEFT ? -1 : act == ACT_RIGHT ? 1 : 0;
    if (dy || dx) {
        int cy = a->nav.heat_cy + dy, cx = a->nav.heat_cx + dx;
        /* past an edge of a zoomed window: the window pans by one cell */
        int64_t sr = v.heat_nr / pr > 0 ? v.heat_nr / pr : 1, sc = v.heat_nc / pc > 0 ? v.heat_nc / pc : 1;
        int64_t r0 = v.heat_r0 + (cy < 0 ? -sr : cy >= pr ? sr : 0), c0 = v.heat_c0 + (cx < 0 ? -sc : cx >= pc ? sc : 0);
        r0 = r0 < 0 ? 0 : r0 + v.heat_nr > rows ? rows - v.heat_nr : r0;
        c0 = c0 < 0 ? 0 : c0 + v.heat_nc > cols ? cols - v.heat_nc : c0;
        a->nav.heat_cy = cy < 0 ? 0 : cy >= pr ? pr - 1 : cy;
        a->nav.heat_cx = cx < 0 ? 0 : cx >= pc ? pc - 1 : cx;
        a->nav.heat_fr = a->nav.heat_fc = -1;
        if (r0 == v.heat_r0 && c0 == v.heat_c0) return R_REDRAW;
        a->nav.view.heat_r0 = r0, a->nav.view.heat_c0 = c0, a->nav.view.heat_nr = v.heat_nr, a->nav.view.heat_nc = v.heat_nc;
        snprintf(a->screen.status, sizeof a->screen.status, "heatmap: rows %lld–%lld, columns %lld–%lld (panned)", (long long)r0,
                 (long long)(r0 + v.heat_nr - 1), (long long)c0, (long long)(c0 + v.heat_nc - 1));
        return R_REDRAW | R_VIEW;
    }
    bool in = act == ACT_INC;
    if (!in && v.heat_nr == rows && v.heat_nc == cols) return R_NONE;
    if (in && v.heat_nr == 1 && v.heat_nc == 1) return R_NONE;
    /* the centre of the cursor's cell, in weights */
    int64_t cr = v.heat_r0 + (2 * (int64_t)a->nav.heat_cy + 1) * v.heat_nr / (2 * pr);
    int64_t cc = v.heat_c0 + (2 * (int64_t)a->nav.heat_cx + 1) * v.heat_nc / (2 * pc);
    if (a->nav.heat_fr >= 0) cr = a->nav.heat_fr, cc = a->nav.heat_fc; /* keep zooming about the same weight */
    a->nav.heat_fr = cr, a->nav.heat_fc = cc;
    int64_t nr = in ? (v.heat_nr + 1) / 2 : v.heat_nr * 2, nc = in ? (v.heat_nc + 1) / 2 : v.heat_nc * 2;
    nr = nr > rows ? rows : nr, nc = nc > cols ? cols : nc;
    int64_t r0 = cr - nr / 2, c0 = cc - nc / 2;
    r0 = r0 < 0 ? 0 : r0 + nr > rows ? rows - nr : r0;
    c0 = c0 < 0 ? 0 : c0 + nc > cols ? cols - nc : c0;
    a->nav.view.heat_r0 = r0, a->nav.view.heat_c0 = c0, a->nav.view.heat_nr = nr, a->nav.view.heat_nc = nc;
    /* the cursor stays on the same weights (the grid keeps its size while the window is larger) */
    int mr = a->screen.heat_max_r > 0 ? a->screen.heat_max_r : pr, mc = a->screen.heat_max_c > 0 ? a->screen.heat_max_c : pc;
    int npr = (int)(mr < nr ? mr : nr), npc = (int)(mc < nc ? mc : nc);
    a->nav.heat_cy = (int)((cr - r0) * npr / nr), a->nav.heat_cx = (int)((cc - c0) * npc / nc);
    snprintf(a->screen.status, sizeof a->screen.status, "heatmap: rows %lld–%lld, columns %lld–%lld (+ zooms in, - out)", (long long)r0,
             (long long)(r0 + nr - 1), (long long)c0, (long long)(c0 + nc - 1));
    return R_REDRAW | R_VIEW;
}

int app_handle_key(app *a, int key)
{
    if (a->nav.mode == MODE_SCAN) return scan_key(a, key);
    if (a->nav.mode == MODE_PARETO) {
        if (qs_action_for_key(key) == ACT_CANCEL && a->jobs.pareto_running) return R_CANCEL | R_REDRAW;
        a->nav.mode = MODE_NORMAL;
        return R_REDRAW;
    }
    if (a->nav.mode == MODE_FILTER) return filter_key(a, key);
    if (a->nav.mode == MODE_PROMPT) return prompt_key(a, key);
    if (a->nav.mode == MODE_RECIPE) return recipe_key(a, key);
    if (a->nav.mode == MODE_BULK) return bulk_key(a, key);
    if (a->nav.mode == MODE_HELP || a->nav.mode == MODE_EXPLAIN) {
        a->nav.mode = MODE_NORMAL;
        return R_REDRAW;
    }
    if (a->nav.mode == MODE_CONFIRM_QUIT) {
        if (key == 'y' || key == 'Y') return R_QUIT;
        a->nav.mode = MODE_NORMAL;
        snprintf(a->screen.status, sizeof a->screen.status, "quit cancelled");
        return R_REDRAW;
    }
    action_id act = qs_action_for_key(key);
    if (a->nav.focus == PANE_TENSOR && a->nav.tab == TAB_HEATMAP &&
        (act == ACT_UP || act == ACT_DOWN || act == ACT_LEFT || act == ACT_RIGHT || act == ACT_INC || act == ACT_DEC))
        return heat_key(a, act);
    switch (act) {
    case ACT_QUIT:
        if (!a->rec.unsaved) return R_QUIT;
        a->nav.mode = MODE_CONFIRM_QUIT;
        snprintf(a->screen.status, sizeof a->screen.status, "the recipe has unsaved changes: quit anyway? (y/n)");
        return R_REDRAW;
    case ACT_HELP: a->nav.mode = MODE_HELP; return R_REDRAW;
    case ACT_EXPLAIN: a->nav.mode = MODE_EXPLAIN; return R_REDRAW;
    case ACT_RECIPE:
        a->nav.mode = MODE_RECIPE;
        if (app_selected_tensor(a) >= 0) a->rec.recipe_sel = app_selected_tensor(a);
        snprintf(a->screen.status, sizeof a->screen.status, "recipe: 1-0 llama-quantize presets, n NF4, R RTN-4 g128, Enter opens, Esc back");
        return R_REDRAW;
    case ACT_NEXT_PANE: a->nav.focus = (app_pane)((a->nav.focus + 1) % PANE_COUNT); return R_REDRAW;
    case ACT_PREV_PANE: a->nav.focus = (app_pane)((a->nav.focus + PANE_COUNT - 1) % PANE_COUNT); return R_REDRAW;
    case ACT_UP: return move_sel(a, -1);
    case ACT_DOWN: return move_sel(a, 1);
    case ACT_PAGE_UP: return move_sel(a, -10);
    case ACT_PAGE_DOWN: return move_sel(a, 10);
    case ACT_FIRST: return move_sel(a, -1000000);
    case ACT_LAST: return move_sel(a, 1000000);
    case ACT_LEFT:
        if (a->nav.focus == PANE_KNOBS) return change_knob(a, -1);
        a->nav.focus = a->nav.focus ? (app_pane)(a->nav.focus - 1) : a->nav.focus;
        return R_REDRAW;
    case ACT_RIGHT:
        if (a->nav.focus == PANE_KNOBS) return change_knob(a, 1);
        a->nav.focus = a->nav.focus < PANE_KNOBS ? (app_pane)(a->nav.focus + 1) : a->nav.focus;
        return R_REDRAW;
    case ACT_INC: return change_knob(a, 1);
    case ACT_DEC: return change_knob(a, -1);
    case ACT_OPEN:
        if (a->nav.sel >= 0 && a->nav.rows[a->nav.sel] < 0) return toggle_block(a);
        return a->nav.focus == PANE_KNOBS ? change_knob(a, 1) : R_NONE;
    case ACT_FILTER:
        a->nav.mode = MODE_FILTER;
        snprintf(a->screen.status, sizeof a->screen.status, "filter (regex, Enter to keep, Esc to clear): %s", a->nav.filter);
        return R_REDRAW;
    case ACT_TAB_HIST: a->nav.tab = TAB_HISTOGRAM; return R_REDRAW;
    case ACT_TAB_HEAT: a->nav.tab = TAB_HEATMAP; return R_REDRAW;
    case ACT_TAB_CHANNELS: a->nav.tab = TAB_CHANNELS; return R_REDRAW;
    case ACT_NEXT_TAB: a->nav.tab = (app_tab)((a->nav.tab + 1) % TAB_COUNT); return R_REDRAW;
    case ACT_LOG: a->screen.log_counts = !a->screen.log_counts; return R_REDRAW;
    case ACT_TAILS:
        a->nav.view.tails = !a->nav.view.tails;
        snprintf(a->screen.status, sizeof a->screen.status, "histogram: %s", a->nav.view.tails ? "the tails, |w| beyond 3 sigma" : "the whole range");
        return R_REDRAW | R_VIEW;
    case ACT_HEAT_MODE: a->screen.heat_mode = (a->screen.heat_mode + 1) % 3; return R_REDRAW;
    case ACT_PROMPT:
        pthread_mutex_lock(&a->lock);
        snprintf(a->nav.prompt_edit, sizeof a->nav.prompt_edit, "%s", a->jobs.gen.prompt);
        bool can = a->jobs.gen.enabled;
        pthread_mutex_unlock(&a->lock);
        if (!can) return snprintf(a->screen.status, sizeof a->screen.status, "no generation for this model"), R_REDRAW;
        a->nav.mode = MODE_PROMPT;
        snprintf(a->screen.status, sizeof a->screen.status, "prompt (Enter generates, Esc cancels): %.180s_", a->nav.prompt_edit);
        return R_REDRAW;
    case ACT_SORT:
        a->nav.sort = (a->nav.sort + 1) % SORT_COUNT;
        app_rebuild_rows(a);
        snprintf(a->screen.status, sizeof a->screen.status, "layers sorted by %s (inside each block)", app_sort_names[a->nav.sort]);
        return R_REDRAW;
    case ACT_UNDO: return undo_redo(a, false);
    case ACT_REDO: return undo_redo(a, true);
    case ACT_SAVE: return R_REDRAW | R_SAVE;
    case ACT_EXPORT: return R_REDRAW | R_EXPORT;
    case ACT_CHECKPOINT: return R_REDRAW | R_CHECKPOINT;
    case ACT_LOAD: return load_saved_recipe(a);
    case ACT_PPL:
        if (!a->jobs.eval_path[0] && !a->jobs.calib_path[0]) {
            snprintf(a->screen.status, sizeof a->screen.status, "no text to evaluate on: start the workbench with --eval FILE");
            return R_REDRAW;
        }
        return R_REDRAW | R_PPL;
    case ACT_CALIBRATE:
        if (!a->jobs.calib_path[0]) {
            snprintf(a->screen.status, sizeof a->screen.status, "no calibration text: start the workbench with --calib FILE");
            return R_REDRAW;
        }
        a->screen.status[0] = '\0'; /* the status line follows the calibration until the next message */
        return R_REDRAW | R_CALIBRATE;
    case ACT_CANCEL: return R_CANCEL | R_REDRAW;
    case ACT_SCAN: return start_scan(a);
    case ACT_PARETO:
        a->nav.mode = MODE_PARETO;
        snprintf(a->screen.status, sizeof a->screen.status, "Pareto plot (Esc back)");
        if (a->jobs.n_pareto || a->jobs.pareto_running) return R_REDRAW;
        a->screen.status[0] = '\0';
        return R_REDRAW | R_PARETO;
    default: return R_NONE;
    }
}

/* ---- mouse ---- */

static bool inside(rect r, int y, int x) { return y >= r.y && y < r.y + r.h && x >= r.x && x < r.x + r.w; }

int app_click(app *a, const layout *l, int y, int x)
{
    if (l->too_small) return R_NONE;
    if (a->nav.mode == MODE_RECIPE) {
        int row = a->rec.recipe_top + (y - 3); /* the recipe view's rows start below its title and header */
        if (y < 3 || row >= a->model->n_tensors) return R_NONE;
        a->rec.recipe_sel = row;
        return R_REDRAW;
    }
    if (a->nav.mode != MODE_NORMAL) return R_NONE;
    if (inside(l->layers, y, x)) {
        a->nav.focus = PANE_LAYERS;
        int row = a->nav.top + (y - l->layers.y - 1);
        if (y == l->layers.y || row >= a->nav.n_rows) return R_REDRAW;
        bool same = row == a->nav.sel;
        a->nav.sel = row;
        a->nav.knob_sel = 0;
        if (a->nav.rows[row] < 0) return toggle_block(a);
        return same ? R_REDRAW : R_REDRAW | R_RECOMPUTE;
    }
    if (inside(l->knobs, y, x)) {
        a->nav.focus = PANE_KNOBS;
        int k = y - l->knobs.y - 1;
        if (k < 0 || k >= app_knob_count(a)) return R_REDRAW;
        if (k == a->nav.knob_sel) return change_knob(a, 1);
        a->nav.knob_sel = k;
        return R_REDRAW;
    }
    if (inside(l->tensor, y, x)) {
        a->nav.focus = PANE_TENSOR;
        return R_REDRAW;
    }
    return R_NONE;
}
