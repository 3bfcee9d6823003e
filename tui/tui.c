/* tui/tui.c — terminal, loop, drawing of the frame, script mode. */
#include "tui/tui.h"

#include <csv.h>
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "core/util/escape.h"
#include "core/recipe/export.h"
#include "core/util/fileio.h"
#include "tui/settings.h"
#include "core/quant/ggml_types.h"
#include "core/recipe/recipe.h"
#include "views/actions.h"
#include "tui/app.h"
#include "tui/worker.h"
#include "views/draw.h"
#include "views/views.h"

/* ---- terminal restore on every exit path ---- */

static volatile sig_atomic_t curses_on;
static int saved_stderr = -1;
static FILE *stderr_capture;

static void restore_terminal(void)
{
    if (curses_on) {
        curses_on = 0;
        endwin();
    }
}

static void on_fatal(int sig)
{
    qs_tmp_cleanup_signal_safe();
    restore_terminal();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_term(int sig)
{
    (void)sig;
    qs_tmp_cleanup_signal_safe();
    restore_terminal();
    _exit(130);
}

static void install_signals(void)
{
    signal(SIGINT, on_term);
    signal(SIGTERM, on_term);
    signal(SIGQUIT, on_term);
    signal(SIGHUP, on_term);
    signal(SIGSEGV, on_fatal);
    signal(SIGBUS, on_fatal);
    signal(SIGFPE, on_fatal);
    signal(SIGILL, on_fatal);
    signal(SIGABRT, on_fatal);
    qs_fault_guard_install(); /* a SIGBUS in a guarded read of the mapped model is an error, others reach on_fatal */
    atexit(restore_terminal);
}

/* stderr goes to a temporary file while the screen is up, and is replayed afterwards */
static void capture_stderr(void)
{
    stderr_capture = tmpfile();
    if (!stderr_capture) return;
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(fileno(stderr_capture), 2);
}

static void replay_stderr(void)
{
    if (saved_stderr < 0) return;
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    rewind(stderr_capture);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stderr_capture)) > 0) fwrite(buf, 1, n, stderr);
    fclose(stderr_capture);
}

/* ---- frame ---- */

static void draw_title(rect r, const app *a)
{
    int64_t bytes = 0, params = 0;
    for (int64_t i = 0; i < a->model->n_tensors; i++) {
        params += qs_tensor_nelements(&a->model->tensors[i]);
        bytes += (int64_t)a->model->tensors[i].nbytes;
    }
    const char *base = strrchr(a->model->path, '/');
    draw_fill(r, theme(TH_TITLE));
    draw_textf(r.y, r.x + 1, r.w - 2, theme(TH_TITLE), "quantscope  %s  %s  %.2fM params  %.2f MiB  %.2f bpw%s",
               base ? base + 1 : a->model->path, a->model->hp.arch, (double)params / 1e6, (double)bytes / 1048576.0,
               params ? 8.0 * (double)bytes / (double)params : 0, a->rec.unsaved ? "  [recipe modified]" : "");
}

static void draw_fbar(rect r)
{
    draw_fill(r, A_NORMAL);
    int x = r.x;
    for (int i = 0; i < qs_n_actions && x < r.x + r.w; i++) {
        const action *ac = &qs_actions[i];
        if (!ac->fbar) continue;
        char key[8];
        int f = 0;
        for (int k = 0; k < 4 && ac->keys[k]; k++)
            if (ac->keys[k] >= KEY_F(1) && ac->keys[k] <= KEY_F(12)) f = ac->keys[k] - KEY_F(0);
        snprintf(key, sizeof key, f ? "F%d" : "%c", f ? f : ac->keys[0]);
        draw_text(r.y, x, r.x + r.w - x, key, theme(TH_FKEY));
        x += (int)strlen(key);
        draw_textf(r.y, x, r.x + r.w - x, theme(TH_FLABEL), "%-7s", ac->fbar);
        x += 8;
    }
}

static void draw_too_small(const layout *l)
{
    erase();
    char msg[96];
    snprintf(msg, sizeof msg, "terminal too small: %dx%d, need %dx%d", l->full.w, l->full.h, QS_MIN_COLS, QS_MIN_LINES);
    int y = l->full.h / 2 - 1, x = (l->full.w - (int)strlen(msg)) / 2, x2 = (l->full.w - 7) / 2;
    draw_text(y < 0 ? 0 : y, x < 0 ? 0 : x, l->full.w, msg, A_BOLD);
    draw_text(y + 1 < l->full.h ? y + 1 : 0, x2 < 0 ? 0 : x2, l->full.w, "q quits", A_NORMAL);
}

static void draw_all(app *a)
{
    layout l;
    layout_compute(COLS, LINES, &l);
    if (l.too_small) {
        draw_too_small(&l);
        refresh();
        return;
    }
    erase();
    pthread_mutex_lock(&a->lock);
    const app_result *res = a->res;
    draw_title(l.title, a);
    if (a->nav.mode == MODE_HELP) help_view_draw((rect){1, 0, l.full.h - 3, l.full.w});
    else if (a->nav.mode == MODE_SCAN) scan_view_draw((rect){1, 0, l.full.h - 3, l.full.w}, a);
    else if (a->nav.mode == MODE_PARETO) pareto_view_draw((rect){1, 0, l.full.h - 3, l.full.w}, a);
    else if (a->nav.mode == MODE_EXPLAIN) explain_view_draw((rect){1, 0, l.full.h - 3, l.full.w}, a, res);
    else if (a->nav.mode == MODE_RECIPE || a->nav.mode == MODE_BULK) {
        qs_recipe_table t;
        app_recipe_totals tot;
        char err[256];
        if (app_recipe_table(a, &t, &tot, err, sizeof err)) snprintf(a->screen.status, sizeof a->screen.status, "recipe: %.200s", err);
        else {
            recipe_view_draw((rect){1, 0, l.full.h - 3, l.full.w}, a, &t, &tot);
            qs_recipe_table_free(&t);
        }
    }
    else {
        layers_view_draw(l.layers, a);
        draw_vline(l.layers.y, l.layers.x + l.layers.w, l.layers.h, theme(TH_DIM));
        tensor_view_draw(l.tensor, a, res);
        draw_vline(l.knobs.y, l.knobs.x - 1, l.knobs.h, theme(TH_DIM));
        knobs_view_draw(l.knobs, a, res);
        gen_view_draw(l.gen, a);
    }
    pthread_mutex_unlock(&a->lock);
    char cs[256];
    pthread_mutex_lock(&a->lock);
    snprintf(cs, sizeof cs, "%s", a->jobs.calib_status);
    bool busy = a->jobs.calib_running;
    pthread_mutex_unlock(&a->lock);
    /* the calibration's progress while it runs, else the last message (a running job wins) */
    const char *st = busy || !a->screen.status[0] ? cs : a->screen.status;
    draw_text(l.status.y, 1, l.status.w - 2, st, a->nav.mode == MODE_CONFIRM_QUIT ? theme(TH_WARN) : busy ? theme(TH_DIM) : A_NORMAL);
    draw_fbar(l.fbar);
    refresh();
}

/* ---- recipe save ---- */

/* the per-tensor table as CSV (libcsv quoting): tensor,shape,config,type,bpw,bytes,rel_err */
static int save_table_csv(const app *a, const char *path, qs_err *err)
{
    qs_recipe_table t;
    app_recipe_totals tot;
    if (app_recipe_table(a, &t, &tot, err->msg, sizeof err->msg)) return -1;
    qs_afile af = {0};
    int rc = qs_afile_open(&af, path, err);
    if (!rc) fputs("tensor,shape,config,type,bpw,bytes,rel_err\n", af.f);
    for (int64_t i = 0; !rc && i < t.n; i++) {
        const qs_recipe_entry *e = &t.e[i];
        char cfg[128], shape[48];
        if (e->keep) snprintf(cfg, sizeof cfg, "keep");
        else qs_config_format(&e->cfg, false, cfg, sizeof cfg);
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)qs_tensor_nrows(e->t), (long long)e->t->ne[0]);
        const char *name = e->t->gguf_name[0] ? e->t->gguf_name : e->t->name;
        csv_fwrite(af.f, name, strlen(name));
        fputc(',', af.f);
        csv_fwrite(af.f, shape, strlen(shape));
        fputc(',', af.f);
        csv_fwrite(af.f, cfg, strlen(cfg));
        fprintf(af.f, ",%s,%.4f,%lld,", e->keep ? e->t->dtype : e->ggml_type >= 0 ? qs_type_name(e->ggml_type) : "",
                e->bpw, (long long)e->bytes);
        if (a->rec.rel_err[i] >= 0) fprintf(af.f, "%.6f", a->rec.rel_err[i]);
        fputc('\n', af.f);
    }
    if (!rc) rc = qs_afile_commit(&af, err);
    qs_recipe_table_free(&t);
    return rc;
}

static void save_recipe(app *a)
{
    qs_recipe r;
    qs_err err = {0};
    char path[512], csv[520];
    app_model_file(a, ".recipe.json", path, sizeof path);
    app_model_file(a, ".recipe.csv", csv, sizeof csv);
    int rc = app_build_recipe(a, &r, err.msg, sizeof err.msg);
    if (!rc) rc = qs_recipe_save(path, &r, &err);
    if (!rc && (rc = save_table_csv(a, csv, &err))) snprintf(path, sizeof path, "%.500s", csv);
    if (rc) snprintf(a->screen.status, sizeof a->screen.status, "could not save %.100s: %.120s", path, err.msg);
    else {
        snprintf(a->screen.status, sizeof a->screen.status, "saved the recipe to %.200s (table: .csv)", path);
        a->rec.unsaved = false;
    }
    qs_recipe_free(&r);
}

/* `E`: the recipe checked here (a refusal shows at once), exported by the worker */
static void export_gguf(app *a, worker *w)
{
    qs_recipe_table t = {0};
    qs_err err = {0};
    char path[512];
    app_model_file(a, ".quant.gguf", path, sizeof path);
    if (app_recipe_table(a, &t, &(app_recipe_totals){0}, err.msg, sizeof err.msg) || qs_export_gguf_check(&t, &err)) {
        snprintf(a->screen.status, sizeof a->screen.status, "cannot export: %.200s", err.msg);
        qs_recipe_table_free(&t);
        return;
    }
    a->screen.status[0] = '\0'; /* the status line follows the export */
    worker_submit_export(w, &t, path, EXPORT_GGUF);
}

/* `W`: the recipe as an HF checkpoint directory: AWQ GEMM when every quantized tensor is awq,
 * else GPTQ */
static void export_checkpoint(app *a, worker *w)
{
    qs_recipe_table t = {0};
    qs_err err = {0};
    char path[512];
    int rc = app_recipe_table(a, &t, &(app_recipe_totals){0}, err.msg, sizeof err.msg);
    bool awq = !rc;
    for (int64_t i = 0; !rc && i < t.n; i++) awq &= t.e[i].keep || t.e[i].cfg.method->ops->ckpt == QS_CKPT_AWQ;
    app_model_file(a, awq ? ".awq" : ".gptq", path, sizeof path);
    if (rc || qs_export_hf_model_check(a->model, &err) || qs_export_hf_quant_check(&t, awq ? QS_CKPT_AWQ : QS_CKPT_GPTQ, &err)) {
        snprintf(a->screen.status, sizeof a->screen.status, "cannot write a checkpoint: %.200s", err.msg);
        qs_recipe_table_free(&t);
        return;
    }
    a->screen.status[0] = '\0';
    worker_submit_export(w, &t, path, awq ? EXPORT_AWQ : EXPORT_GPTQ);
}

/* a clean exit: the settings and the recipe as they are now (errors go to stderr, shown on exit) */
static void save_session(const app *a, settings *st, const char *last)
{
    qs_err err = {0};
    qs_recipe r;
    st->log_counts = a->screen.log_counts, st->heat_mode = a->screen.heat_mode;
    if (settings_save(st, &err)) fprintf(stderr, "quantscope: settings not saved: %s\n", err.msg);
    if (!last || app_build_recipe(a, &r, err.msg, sizeof err.msg)) return;
    if (qs_recipe_save(last, &r, &err)) fprintf(stderr, "quantscope: %s: %s\n", last, err.msg);
    qs_recipe_free(&r);
}

/* ---- reactions ---- */

/* the tensor request with the view's window and the pane's heatmap grid */
static void submit_tensor(app *a, worker *w, int t)
{
    layout l;
    layout_compute(COLS, LINES, &l);
    const qs_tensor *x = &a->model->tensors[t];
    int64_t nr = a->nav.view.heat_nr > 0 ? a->nav.view.heat_nr : qs_tensor_nrows(x), nc = a->nav.view.heat_nc > 0 ? a->nav.view.heat_nc : x->ne[0];
    plot_heat_grid(l.tensor, nr, nc, APP_TILE_ROWS, APP_TILE_COLS, &a->nav.view.heat_pr, &a->nav.view.heat_pc);
    plot_heat_grid(l.tensor, INT64_MAX / 4, INT64_MAX / 4, APP_TILE_ROWS, APP_TILE_COLS, &a->screen.heat_max_r, &a->screen.heat_max_c);
    worker_submit(w, t, &a->rec.cfg[t], &a->nav.view);
}

static void request(app *a, worker *w)
{
    int t = app_selected_tensor(a);
    if (t < 0 || !app_tensor_quantizable(a, t)) return;
    pthread_mutex_lock(&a->lock);
    if (t != a->res->tensor) { /* another tensor: the heatmap shows all of it again */
        a->nav.view.heat_r0 = a->nav.view.heat_c0 = a->nav.view.heat_nr = a->nav.view.heat_nc = 0;
        a->nav.heat_cy = a->nav.heat_cx = 0;
        a->nav.heat_fr = a->nav.heat_fc = -1;
    }
    if (a->res->tensor == t && a->res->ok && !a->res->sampled) { /* a preview is no "previous value" */
        a->screen.prev_m = a->res->m;
        a->screen.prev_bpw = a->res->bpw;
        a->screen.have_prev = true;
    } else {
        a->screen.have_prev = false;
    }
    pthread_mutex_unlock(&a->lock);
    submit_tensor(a, w, t);
}

/* the same tensor and config with another view (heatmap window, histogram range): the metrics'
 * previous values stay */
static void request_view(app *a, worker *w)
{
    int t = app_selected_tensor(a);
    if (t >= 0 && app_tensor_quantizable(a, t)) submit_tensor(a, w, t);
}

static void regenerate(app *a, worker *w)
{
    if (a->jobs.gen.enabled) worker_submit_generation(w, a->rec.cfg, a->jobs.gen.prompt);
}

/* returns false to quit */
static bool react(app *a, worker *w, int key)
{
    int re = app_handle_key(a, key);
    if (re & R_QUIT) return false;
    if (re & R_SAVE) save_recipe(a);
    if (re & R_CALIBRATE) worker_submit_calibration(w, a->jobs.calib_path);
    if (re & R_SCAN) {
        int t = app_selected_tensor(a);
        if (t >= 0) worker_submit_scan(w, &a->rec.cfg[t], a->jobs.calib_path);
        a->screen.status[0] = '\0';
    }
    if (re & R_PARETO) worker_submit_pareto(w, a->jobs.calib_path);
    if (re & R_EXPORT) export_gguf(a, w);
    if (re & R_CHECKPOINT) export_checkpoint(a, w);
    if (re & R_PPL) worker_submit_ppl(w, a->rec.cfg, a->jobs.eval_path[0] ? a->jobs.eval_path : a->jobs.calib_path);
    if (re & R_CANCEL) worker_cancel(w);
    if (re & R_RECOMPUTE) request(a, w);
    else if (re & R_VIEW) request_view(a, w);
    if (re & R_REGENERATE) regenerate(a, w);
    return true;
}

/* a click, as a real mouse or a script's `:click Y X` reports it */
static void react_click(app *a, worker *w, int y, int x)
{
    layout l;
    layout_compute(COLS, LINES, &l);
    int re = app_click(a, &l, y, x);
    if (re & R_RECOMPUTE) request(a, w);
    if (re & R_REGENERATE) regenerate(a, w);
}

/* the generation pane runs when the model can: llama family, GGUF vocabulary */
/* the generation's weights in MiB: the file's (mapped, all read by the original model) and the
 * quantized copy the second model owns */
static double generation_mib(const app *a)
{
    double bytes = 0;
    for (int64_t t = 0; t < a->model->n_tensors; t++) {
        const qs_tensor *x = &a->model->tensors[t];
        double n = (double)qs_tensor_nelements(x);
        bytes += qs_tensor_bpw(x) * n / 8;
        if (app_tensor_quantizable(a, (int)t)) bytes += qs_qconfig_bpw(&a->rec.cfg[t], qs_tensor_nrows(x), x->ne[0], -1) * n / 8;
    }
    return bytes / 1048576.0;
}

/* the most the two generation models may hold (the workbench browses an 8B model in 4 GB) */
enum { GEN_BUDGET_MIB = 4096 };

static void init_generation(app *a)
{
    /* GGUF vocabularies, and HF checkpoints with a tokenizer.json (the worker converts it) */
    a->jobs.gen.enabled = a->model->hp.supported && strcmp(a->model->tok.kind, "none") != 0 &&
                     (a->model->gguf || !strncmp(a->model->tok.kind, "hf-", 3));
    snprintf(a->jobs.gen.prompt, sizeof a->jobs.gen.prompt, "%s", strstr(a->model->path, "kjv") ? "And God said" : "Once upon a time");
    if (!a->jobs.gen.enabled)
        snprintf(a->jobs.gen.error, sizeof a->jobs.gen.error, "generation needs a llama-family GGUF with a tokenizer (%.60s)",
                 a->model->hp.supported ? "no tokenizer" : a->model->hp.unsupported_why);
    else if (generation_mib(a) > GEN_BUDGET_MIB) {
        a->jobs.gen.enabled = false;
        snprintf(a->jobs.gen.error, sizeof a->jobs.gen.error, "generation off: the original and the quantized model need %.1f GiB, over "
                 "the workbench's %d GiB", generation_mib(a) / 1024, GEN_BUDGET_MIB / 1024);
    }
}

/* ---- script mode ---- */

static int script_key(const char **p)
{
    static const struct { const char *name; int key; } named[] = {
        {"<Enter>", '\n'}, {"<Esc>", 27}, {"<Tab>", '\t'}, {"<S-Tab>", KEY_BTAB}, {"<Up>", KEY_UP}, {"<Down>", KEY_DOWN},
        {"<Left>", KEY_LEFT}, {"<Right>", KEY_RIGHT}, {"<PgUp>", KEY_PPAGE}, {"<PgDn>", KEY_NPAGE}, {"<Home>", KEY_HOME},
        {"<End>", KEY_END}, {"<BS>", KEY_BACKSPACE}, {"<Space>", ' '}};
    for (size_t i = 0; i < sizeof named / sizeof *named; i++)
        if (!strncmp(*p, named[i].name, strlen(named[i].name))) {
            *p += strlen(named[i].name);
            return named[i].key;
        }
    int f;
    if (sscanf(*p, "<F%d>", &f) == 1 && f >= 1 && f <= 12) {
        *p = strchr(*p, '>') + 1;
        return KEY_F(f);
    }
    return (unsigned char)*(*p)++;
}

static void dump_screen(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return;
    for (int y = 0; y < LINES; y++) {
        char line[4096];
        size_t n = 0;
        for (int x = 0; x < COLS && n + 8 < sizeof line; x++) {
            cchar_t cc;
            wchar_t wc[CCHARW_MAX + 1];
            attr_t at;
            short pair;
            if (mvin_wch(y, x, &cc) == ERR || getcchar(&cc, wc, &at, &pair, NULL) == ERR) wc[0] = L' ';
            mbstate_t st = {0};
            size_t k = wcrtomb(line + n, wc[0] ? wc[0] : L' ', &st);
            n += k == (size_t)-1 ? 0 : k;
        }
        while (n && line[n - 1] == ' ') n--;
        fwrite(line, 1, n, f);
        fputc('\n', f);
    }
    fclose(f);
}

static bool run_script(app *a, worker *w, const char *path)
{
    size_t len;
    qs_err err = {0};
    char *text = qs_read_file(path, 1 << 20, &len, &err);
    if (!text) return false;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (line[0] == '#' || !line[0]) continue;
        if (line[0] == ':') {
            int cw, ch;
            if (!strncmp(line, ":dump ", 6)) dump_screen(line + 6);
            else if (sscanf(line, ":resize %d %d", &cw, &ch) == 2) resizeterm(ch, cw);
            else if (sscanf(line, ":click %d %d", &ch, &cw) == 2) {
                react_click(a, w, ch, cw);
                worker_wait_idle(w);
            }
            else if (sscanf(line, ":hold %d", &ch) == 1) worker_hold(w, ch); /* the next tensor job stops there */
            else if (!strcmp(line, ":release")) worker_hold(w, -1), worker_wait_idle(w);
            else if (!strcmp(line, ":quit")) break;
            draw_all(a);
            continue;
        }
        for (const char *p = line; *p;) {
            int key = script_key(&p);
            bool go = react(a, w, key);
            worker_wait_idle(w);
            draw_all(a);
            if (!go) {
                free(text);
                return true;
            }
        }
    }
    free(text);
    return true;
}

/* ---- interactive loop ---- */

static void loop(app *a, worker *w, int notify_rd)
{
    struct pollfd fds[2] = {{0, POLLIN, 0}, {notify_rd, POLLIN, 0}};
    draw_all(a);
    for (;;) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
        char buf[64];
        while (read(notify_rd, buf, sizeof buf) > 0) {}
        bool go = true;
        for (int key; go && (key = getch()) != ERR;) {
            if (key == KEY_MOUSE) {
                MEVENT ev;
                if (getmouse(&ev) != OK) continue;
                if (ev.bstate & BUTTON4_PRESSED) go = react(a, w, KEY_UP);
                else if (ev.bstate & BUTTON5_PRESSED) go = react(a, w, KEY_DOWN);
                else if (ev.bstate & BUTTON1_CLICKED) react_click(a, w, ev.y, ev.x);
                continue;
            }
            if (key != KEY_RESIZE) go = react(a, w, key);
        }
        if (!go) break;
        draw_all(a);
    }
}

int qs_tui_run(const tui_opts *o)
{
    qs_err err = {0};
    qs_model *m = qs_model_open(o->model_path, &err);
    if (!m) { /* as the CLI reports it */
        char ep[1024], em[1024];
        fprintf(stderr, "quantscope: %s: %s\n", qs_escape(o->model_path, ep, sizeof ep), qs_escape(err.msg, em, sizeof em));
        return err.code == QS_E_USAGE ? QS_EXIT_USAGE : QS_EXIT_INPUT;
    }
    app a;
    char emsg[256];
    if (app_init(&a, m, emsg, sizeof emsg)) {
        qs_model_close(m);
        fprintf(stderr, "quantscope: %s\n", emsg);
        return QS_EXIT_INPUT;
    }
    if (o->calib) snprintf(a.jobs.calib_path, sizeof a.jobs.calib_path, "%s", o->calib);
    if (o->eval) snprintf(a.jobs.eval_path, sizeof a.jobs.eval_path, "%s", o->eval);
    settings st;
    settings_load(&st);
    if (o->theme) snprintf(st.theme, sizeof st.theme, "%s", o->theme);
    a.screen.log_counts = st.log_counts, a.screen.heat_mode = st.heat_mode;
    char last[4400];
    bool have_last = settings_last_recipe_path(o->model_path, last, sizeof last);
    if (have_last && access(last, R_OK) == 0) {
        int changed;
        if (app_load_recipe(&a, last, false, &changed, emsg, sizeof emsg))
            snprintf(a.screen.status, sizeof a.screen.status, "last session's recipe not restored: %.180s", emsg);
        else snprintf(a.screen.status, sizeof a.screen.status, "restored the recipe of your last session on this model (%.150s in the "
                      "config directory)", strstr(last, "last/") ? strstr(last, "last/") : last);
    }
    int pfd[2];
    if (pipe(pfd) != 0) return QS_EXIT_INPUT;
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    setlocale(LC_ALL, "");
    draw_set_ascii(strcmp(nl_langinfo(CODESET), "UTF-8") != 0);
    SCREEN *scr = NULL;
    FILE *devnull_out = NULL, *devnull_in = NULL;
    if (o->script) {
        devnull_out = fopen("/dev/null", "w");
        devnull_in = fopen("/dev/null", "r");
        scr = newterm("xterm-256color", devnull_out, devnull_in);
        if (!scr) {
            fprintf(stderr, "quantscope: cannot create a headless screen\n");
            return QS_EXIT_INPUT;
        }
    } else {
        install_signals();
        capture_stderr();
        initscr();
    }
    curses_on = 1;
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    leaveok(stdscr, TRUE);
    if (!o->no_mouse && st.mouse && !o->script) mousemask(BUTTON1_CLICKED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
    theme_init(!o->no_color && !getenv("NO_COLOR") && !o->script && strcmp(st.theme, "mono"));
    worker *w = worker_start(&a, pfd[1]);
    init_generation(&a);
    {
        int t = app_selected_tensor(&a);
        if (t >= 0) submit_tensor(&a, w, t);
    }
    regenerate(&a, w);
    if (o->script) {
        worker_wait_idle(w);
        draw_all(&a);
        run_script(&a, w, o->script);
    } else {
        loop(&a, w, pfd[0]);
    }
    worker_stop(w);
    save_session(&a, &st, have_last ? last : NULL);
    restore_terminal();
    if (scr) delscreen(scr);
    if (devnull_out) fclose(devnull_out);
    if (devnull_in) fclose(devnull_in);
    replay_stderr();
    close(pfd[0]);
    close(pfd[1]);
    app_free(&a);
    qs_model_close(m);
    return QS_EXIT_OK;
}
