/* The workbench, headless (spec/tui.md §6.2): every tests/ui/NAME.script is run against
 * the bundled sample_models/kjv-tiny.gguf at 120×30 with QUANTSCOPE_SCRIPT; each `:dump FILE` it writes must equal
 * tests/ui/FILE (reviewed screens; UPDATE_GOLDEN=1 rewrites those that differ and fails them as
 * "updated", so a rewrite never counts as a pass). The workbench gets tu_timeout(60) seconds
 * (scaled under the sanitizers). Also the pure
 * view-model helpers of views/plot.c. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/testutil.h"
#include "views/plot.h"

/* runs the script in dir (its working directory, cache and config home) and compares its dumps */
static void run_script_at(const char *script, const char *dir)
{
    const char *bin = getenv("QS_BIN");
    if (!bin) tu_skip("QS_BIN not set (make test sets it)");
    char model[4096], absmodel[PATH_MAX], absscript[PATH_MAX], uidir[PATH_MAX];
    snprintf(model, sizeof model, "sample_models/kjv-tiny.gguf");
    if (!realpath(model, absmodel)) tu_skip("%s missing", model);
    cr_assert_not_null(realpath(script, absscript));
    cr_assert_not_null(realpath("tests/ui", uidir));
    /* a first line "# args: …" adds options; $ROOT is the checkout */
    char args[1024] = "", root[PATH_MAX];
    cr_assert_not_null(realpath(".", root));
    FILE *sf = fopen(script, "r");
    char first[512] = "";
    if (sf && fgets(first, sizeof first, sf) && !strncmp(first, "# args:", 7)) {
        size_t o = 0;
        for (const char *p = first + 7; *p && *p != '\n' && o + 1 < sizeof args; p++) {
            if (!strncmp(p, "$ROOT", 5)) o += (size_t)snprintf(args + o, sizeof args - o, "%s", root), p += 4;
            else args[o++] = *p, args[o] = '\0';
        }
    }
    if (sf) fclose(sf);
    for (const char *f = strstr(args, "build/kjv/"); f; f = strstr(f + 1, "build/kjv/")) { /* texts make sample-data writes */
        char cp[PATH_MAX + 64];
        snprintf(cp, sizeof cp, "%s/%.*s", root, (int)strcspn(f, " "), f);
        FILE *c = fopen(cp, "r");
        if (!c) tu_skip("%s missing (make sample-data)", cp);
        fclose(c);
    }
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "cd %s && XDG_CACHE_HOME=%s/cache XDG_CONFIG_HOME=%s/config QUANTSCOPE_SCRIPT=%s LINES=30 COLUMNS=120 LC_ALL=C.UTF-8 TERM=xterm-256color timeout %d %s %s%s",
             dir, dir, dir, absscript, tu_timeout(60), bin, absmodel, args);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the workbench failed on %s (status %d)", script, st);
    /* compare every dump the script names */
    size_t n;
    char *text = (char *)tu_read(script, &n);
    text = realloc(text, n + 1);
    text[n] = '\0';
    int dumps = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, ":dump ", 6)) continue;
        char got_path[8192], want_path[8192];
        snprintf(got_path, sizeof got_path, "%s/%s", dir, line + 6);
        snprintf(want_path, sizeof want_path, "%s/%s", uidir, line + 6);
        size_t gn, wn;
        uint8_t *got = tu_read(got_path, &gn);
        cr_assert_not_null(got, "%s: no dump %s", script, line + 6);
        /* whatever the golden says: no signed zero change ("▲-0%"), no clipped statistics line */
        char *screen = strndup((const char *)got, gn);
        static const char *const bad[] = {"-0%", "+0%", "std │", "std 0 │"};
        for (size_t b = 0; b < sizeof bad / sizeof *bad; b++)
            cr_expect(!strstr(screen, bad[b]), "%s: '%s' on the screen %s", script, bad[b], line + 6);
        free(screen);
        uint8_t *want = tu_read(want_path, &wn);
        if (getenv("UPDATE_GOLDEN") && (!want || gn != wn || memcmp(got, want, gn))) {
            /* a rewritten screen is no pass: it has to be looked at, then the run repeated without
             * UPDATE_GOLDEN */
            FILE *f = fopen(want_path, "wb");
            cr_assert_not_null(f, "cannot write %s", want_path);
            fwrite(got, 1, gn, f);
            fclose(f);
            cr_expect_fail("UPDATE_GOLDEN: updated %s — review it, then run the tests without UPDATE_GOLDEN", want_path);
            free(got);
            free(want);
            dumps++;
            continue;
        }
        cr_assert_not_null(want, "missing expected screen %s (UPDATE_GOLDEN=1 writes it)", want_path);
        cr_expect(gn == wn && !memcmp(got, want, gn), "%s: screen differs from %s:\n%.*s", script, want_path, (int)gn, got);
        free(got);
        free(want);
        dumps++;
    }
    cr_assert_gt(dumps, 0);
    free(text);
}

static void run_script(const char *script)
{
    char *dir = tu_tmpdir();
    run_script_at(script, dir);
    tu_rmtree(dir);
    free(dir);
}

/* settings and the recipe survive a clean exit: the second session starts with them */
Test(tui, session_restored, .timeout = 900)
{
    char *dir = tu_tmpdir();
    run_script_at("tests/ui/session-a.script", dir);
    run_script_at("tests/ui/session-b.script", dir);
    tu_rmtree(dir);
    free(dir);
}

Test(tui, navigate, .timeout = 600) { run_script("tests/ui/navigate.script"); }
Test(tui, knobs, .timeout = 600) { run_script("tests/ui/knobs.script"); }
Test(tui, resize_and_quit, .timeout = 600) { run_script("tests/ui/resize_quit.script"); }
Test(tui, recipe_presets_and_undo, .timeout = 600) { run_script("tests/ui/recipe.script"); }
Test(tui, mouse_clicks, .timeout = 600) { run_script("tests/ui/mouse.script"); }
Test(tui, calibration_gptq_awq, .timeout = 600) { run_script("tests/ui/calib.script"); }
Test(tui, sensitivity_scan, .timeout = 600) { run_script("tests/ui/scan.script"); }
Test(tui, pareto_plot, .timeout = 600) { run_script("tests/ui/pareto.script"); }
Test(tui, export_gguf, .timeout = 600) { run_script("tests/ui/export.script"); }
Test(tui, perplexity_of_the_recipe, .timeout = 600) { run_script("tests/ui/ppl.script"); }
Test(tui, prompt_and_sort, .timeout = 600) { run_script("tests/ui/prompt.script"); }
Test(tui, heatmap_cursor_zoom_and_tails, .timeout = 600) { run_script("tests/ui/heatmap.script"); }
Test(tui, load_saved_recipe, .timeout = 600) { run_script("tests/ui/load.script"); }
Test(tui, progress_and_stale_marks, .timeout = 600) { run_script("tests/ui/progress.script"); }

Test(tui, layout_sizes)
{
    layout l;
    layout_compute(80, 24, &l);
    cr_assert_not(l.too_small);
    cr_assert_eq(l.layers.x, 0);
    cr_assert_eq(l.tensor.x, l.layers.w + 1, "a separator column between panes");
    cr_assert_eq(l.knobs.x + l.knobs.w, 80);
    cr_assert_eq(l.tensor.x + l.tensor.w + 1, l.knobs.x);
    cr_assert_eq(l.status.y, 22);
    cr_assert_eq(l.fbar.y, 23);
    cr_assert_eq(l.layers.h, 17);
    cr_assert_eq(l.gen.y, 18, "the generation pane under the three panes");
    cr_assert_eq(l.gen.h, 4);
    layout_compute(120, 30, &l);
    cr_assert_eq(l.gen.h, 6, "taller screens give generation two lines per model");
    layout_compute(79, 24, &l);
    cr_assert(l.too_small);
    layout_compute(40, 12, &l);
    cr_assert(l.too_small);
    layout_compute(1, 1, &l);
    cr_assert(l.too_small);
    layout_compute(300, 80, &l);
    cr_assert_leq(l.layers.w, 48);
    cr_assert_gt(l.tensor.w, 150, "wide screens give the room to the tensor view");
}

Test(tui, plot_helpers)
{
    int64_t c[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, out[4];
    plot_rebin(c, 10, 4, out);
    cr_assert(out[0] == 3 && out[1] == 12 && out[2] == 13 && out[3] == 27, "%lld %lld %lld %lld", (long long)out[0],
              (long long)out[1], (long long)out[2], (long long)out[3]);
    int64_t total = 0;
    for (int i = 0; i < 4; i++) total += out[i];
    cr_assert_eq(total, 55, "re-binning keeps every count");
    cr_assert_eq(plot_bar_eighths(100, 100, 5, false), 40);
    cr_assert_eq(plot_bar_eighths(50, 100, 5, false), 20);
    cr_assert_eq(plot_bar_eighths(1, 1000000, 5, false), 1, "a non-empty bin is never invisible");
    cr_assert_eq(plot_bar_eighths(0, 100, 5, false), 0);
    cr_assert_gt(plot_bar_eighths(10, 1000, 4, true), plot_bar_eighths(10, 1000, 4, false), "log lifts small counts");
    cr_assert_str_eq(plot_eighth_glyph(0), " ");
    cr_assert_str_eq(plot_eighth_glyph(8), "█");
    cr_assert_str_eq(plot_eighth_glyph(4), "▄");
    cr_assert_eq(plot_heat_level(0, 1, 8), 0);
    cr_assert_eq(plot_heat_level(1, 1, 8), 7);
    cr_assert_eq(plot_heat_level(0.5f, 1, 8), 4);
    char b[32];
    cr_assert_str_eq(plot_fmt(1.234e-5, b, sizeof b), "1.234e-5");
    cr_assert_str_eq(plot_fmt(0.5, b, sizeof b), "0.5");
    cr_assert_str_eq(plot_fmt(123456.0, b, sizeof b), "1.235e5");
}

/* a real terminal (tests/tmux_smoke.sh): start, resize storm, Ctrl-C restores the terminal */
Test(tui, tmux_smoke, .timeout = 120)
{
    const char *bin = getenv("QS_BIN");
    char model[4096], absmodel[PATH_MAX];
    snprintf(model, sizeof model, "sample_models/kjv-tiny.gguf");
    if (!bin || !realpath(model, absmodel)) tu_skip("QS_BIN or %s missing", model);
    if (system("command -v tmux >/dev/null 2>&1") != 0) cr_skip_test("tmux is not installed");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "tests/tmux_smoke.sh %s %s > /tmp/qs-tmux-smoke.log 2>&1", bin, absmodel);
    int st = system(cmd);
    size_t n;
    char *log = (char *)tu_read("/tmp/qs-tmux-smoke.log", &n);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "tmux smoke test failed:\n%.*s", log ? (int)n : 0, log ? log : "");
    free(log);
}
Test(tui, generation_diverges, .timeout = 600) { run_script("tests/ui/generation.script"); }

/* the scatter plot's placement: ends of both axes, log scale, labels over plain points */
Test(tui, scatter_plot_cells)
{
    double x[4] = {2, 8, 5, 8}, y[4] = {1, 0.001, 0.0316, 0.001};
    char mark[4] = {'*', '*', '*', 'A'}, grid[5 * 11];
    double rg[4];
    cr_assert_eq(plot_scatter(x, y, mark, 4, true, 10, 5, grid, rg), 4);
    cr_expect_float_eq(rg[0], 2, 1e-12);
    cr_expect_float_eq(rg[1], 8, 1e-12);
    cr_expect_float_eq(rg[2], -3, 1e-12);
    cr_expect_float_eq(rg[3], 0, 1e-12);
    cr_expect_eq(grid[0 * 11 + 0], '*', "(2, 1) top left");
    cr_expect_eq(grid[4 * 11 + 9], 'A', "(8, 0.001) bottom right: the label wins over '*'");
    /* 0.0316 = 10^-1.5: half way down (row 2 of 0…4), x 5 half way across (column 4.5 → 5) */
    cr_expect_eq(grid[2 * 11 + 5], '*');
    cr_expect_eq(grid[2 * 11 + 10], '\0', "rows are NUL-terminated");
    double z[1] = {0};
    cr_expect_eq(plot_scatter(x, z, mark, 1, true, 10, 5, grid, rg), 0, "log scale leaves y <= 0 out");
}

Test(tui, ascii_fallback)
{
    char out[256];
    cr_expect_eq(plot_ascii("a▁▂▃▄▅▆▇█b", out, sizeof out), 10);
    cr_expect_str_eq(out, "a..::++##b");
    plot_ascii("│─┼●◂▸▲▼→↵…⠿×", out, sizeof out);
    cr_expect_str_eq(out, "|-+*<>^v>~~:x");
    plot_ascii("\xe2\x96", out, sizeof out); /* a truncated sequence */
    cr_expect_str_eq(out, "?" "?");
    plot_ascii("x\xff\xc3y", out, sizeof out);
    cr_expect_str_eq(out, "x?" "?y");
    plot_ascii("abcdef", out, 4);
    cr_expect_str_eq(out, "abc", "bounded by the buffer");
}

/* in a terminal whose codeset is not UTF-8 every glyph on the screen is ASCII */
Test(tui, ascii_screen_in_the_c_locale, .timeout = 600)
{
    const char *bin = getenv("QS_BIN");
    if (!bin) tu_skip("QS_BIN not set (make test sets it)");
    if (access("sample_models/kjv-tiny.gguf", R_OK)) tu_skip("sample_models/kjv-tiny.gguf missing");
    char *dir = tu_tmpdir(), script[4200], cmd[16384], dump[4300], model[PATH_MAX];
    cr_assert_not_null(realpath("sample_models/kjv-tiny.gguf", model));
    snprintf(script, sizeof script, "%s/s.script", dir);
    FILE *f = fopen(script, "w");
    fputs("jjjj\n2\n:dump screen.txt\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && XDG_CACHE_HOME=%s/cache XDG_CONFIG_HOME=%s/config QUANTSCOPE_SCRIPT=%s LINES=30 COLUMNS=120 "
             "LC_ALL=C TERM=xterm-256color timeout %d %s %s", dir, dir, dir, script, tu_timeout(60), bin, model);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    snprintf(dump, sizeof dump, "%s/screen.txt", dir);
    size_t n;
    uint8_t *text = tu_read(dump, &n);
    cr_assert_not_null(text);
    size_t high = 0;
    for (size_t i = 0; i < n; i++) high += text[i] >= 0x80;
    cr_expect_eq(high, 0, "%zu non-ASCII bytes:\n%.*s", high, (int)n, text);
    text = realloc(text, n + 1);
    text[n] = 0;
    cr_expect(strstr((char *)text, "Knobs + metrics") && strstr((char *)text, "|"), "%s", text);
    free(text);
    tu_rmtree(dir);
    free(dir);
}
