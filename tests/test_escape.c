/* Strings from model files never reach a terminal as control characters (issue 16): the one
 * helper (core/escape.h) and its use by `info`, error lines and the workbench's screens. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util/escape.h"
#include "core/formats/gguf.h"
#include "tests/testutil.h"

Test(escape, control_characters_as_hex)
{
    char out[256];
    cr_expect_str_eq(qs_escape("blk.0.attn_q.weight", out, sizeof out), "blk.0.attn_q.weight");
    cr_expect_str_eq(qs_escape("a\x1b[2Jb", out, sizeof out), "a\\x1b[2Jb", "C0 (ESC)");
    cr_expect_str_eq(qs_escape("\x07\t\n\x7f", out, sizeof out), "\\x07\\x09\\x0a\\x7f", "C0 and DEL");
    cr_expect_str_eq(qs_escape("x\xc2\x9b" "31m", out, sizeof out), "x\\xc2\\x9b31m", "C1 (CSI) in UTF-8");
    cr_expect_str_eq(qs_escape("\x9b\xff", out, sizeof out), "\\x9b\\xff", "bytes that are not UTF-8");
    cr_expect_str_eq(qs_escape("é▁→\xc2\xa0", out, sizeof out), "é▁→\xc2\xa0", "printable UTF-8 passes");
    cr_expect_str_eq(qs_escape("\xe2\x96", out, sizeof out), "\\xe2\\x96", "a truncated sequence");
    cr_expect_str_eq(qs_escape("\xed\xa0\x80", out, sizeof out), "\\xed\\xa0\\x80", "a surrogate");
    cr_expect_str_eq(qs_escape("ab\x1b", out, 6), "ab", "never cut inside an escape");
    cr_expect_str_eq(qs_escape("a→", out, 4), "a", "never cut inside a character");
    cr_expect_str_eq(qs_escape_n("a\0b", 3, out, sizeof out), "a\\x00b");
    cr_expect(qs_needs_escape("a\x1b") && !qs_needs_escape("a→"));
}

#define EVIL_TENSOR "evil\x1b[2J\x1b]0;pwned\x07\xc2\x9b" "31m"
#define EVIL_VALUE "value\x1b[31m\x7f"

/* the sample model with one more tensor and one more key whose name and value carry escapes */
static char *evil_model(char *dir_out)
{
    if (access("sample_models/kjv-tiny.gguf", R_OK)) tu_skip("sample_models/kjv-tiny.gguf missing");
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open("sample_models/kjv-tiny.gguf", &err);
    cr_assert_not_null(g, "%s", err.msg);
    qs_gguf_writer *w = qs_gguf_writer_new();
    for (int64_t i = 0; i < g->n_kv; i++) cr_assert_eq(qs_gguf_writer_copy_kv(w, &g->kv[i]), 0);
    cr_assert_eq(qs_gguf_writer_set_str(w, "general.description", EVIL_VALUE), 0);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const qs_gguf_tensor *t = &g->tensors[i];
        cr_assert_eq(qs_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err), 0, "%s", err.msg);
    }
    static const float extra[8];
    cr_assert_eq(qs_gguf_writer_add_tensor(w, EVIL_TENSOR, 0 /* F32 */, 1, (const int64_t[4]){8, 1, 1, 1}, extra, &err), 0,
                 "%s", err.msg);
    char *dir = tu_tmpdir();
    snprintf(dir_out, 4200, "%s/evil.gguf", dir);
    cr_assert_eq(qs_gguf_writer_write(w, dir_out, &err), 0, "%s", err.msg);
    qs_gguf_writer_free(w);
    qs_gguf_close(g);
    return dir;
}

static void expect_clean(const char *what, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        cr_expect(*p >= 0x20 || *p == '\n', "%s: control byte 0x%02x reaches the terminal", what, *p);
        cr_expect(*p != 0x7f && !(p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0), "%s: DEL or C1 reaches the terminal", what);
        if (*p < 0x20 && *p != '\n') break;
    }
}

Test(escape, info_and_errors_escape_names_and_values)
{
    char path[4200];
    char *dir = evil_model(path);
    char args[8400];
    snprintf(args, sizeof args, "info %s --kv", path);
    tu_run_result r = tu_run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    expect_clean("info", r.out);
    expect_clean("info (stderr)", r.err);
    cr_expect(strstr(r.out, "evil\\x1b[2J\\x1b]0;pwned\\x07\\xc2\\x9b31m"), "the name, escaped:\n%s", r.out);
    cr_expect(strstr(r.out, "value\\x1b[31m\\x7f"), "the value, escaped");
    tu_run_free(&r);
    snprintf(args, sizeof args, "dump %s 'x\x1b[2J'", path);
    r = tu_run(args);
    cr_expect_eq(r.status, 2);
    expect_clean("dump's error", r.err);
    tu_run_free(&r);
    tu_rmtree(dir);
    free(dir);
}

/* the workbench escapes what it draws too (draw_text escapes everything; here the model's file
 * name in the status line, which goes the same way as tensor names and metadata) */
Test(escape, workbench_screen, .timeout = 120)
{
    const char *bin = getenv("QS_BIN");
    if (!bin) tu_skip("QS_BIN not set (make test sets it)");
    char path[4200], script[4300], dump[4300], cmd[16384];
    char *dir = evil_model(path), evil[4300];
    snprintf(evil, sizeof evil, "%s/evil\x1b[2J.gguf", dir);
    cr_assert_eq(rename(path, evil), 0);
    snprintf(script, sizeof script, "%s/s.script", dir);
    FILE *f = fopen(script, "w");
    fputs("G\n:dump screen.txt\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && XDG_CACHE_HOME=%s/cache XDG_CONFIG_HOME=%s/config QUANTSCOPE_SCRIPT=%s LINES=30 COLUMNS=120 "
             "LC_ALL=C.UTF-8 TERM=xterm-256color %s '%s'", dir, dir, dir, script, bin, evil);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    snprintf(dump, sizeof dump, "%s/screen.txt", dir);
    size_t n;
    char *text = (char *)tu_read(dump, &n);
    cr_assert_not_null(text);
    text = realloc(text, n + 1);
    text[n] = 0;
    expect_clean("screen", text);
    cr_expect(strstr(text, "evil\\x1b[2J"), "the name on the screen, escaped:\n%s", text);
    free(text);
    tu_rmtree(dir);
    free(dir);
}

/* recipe show and the recipe warnings print patterns and names from files escaped */
Test(escape, recipe_show_and_warnings)
{
    char *dir = tu_tmpdir(), path[4200], args[9000];
    snprintf(path, sizeof path, "%s/r.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"quantscope_recipe\":1,\"model\":{\"file\":\"m\\u001b]0;pwned\\u0007.gguf\",\"architecture\":\"llama\"},"
          "\"default\":{\"method\":\"q8_0\"},\"rules\":[{\"pattern\":\"blk\\u001b[31m\",\"config\":{\"method\":\"q4_0\"}}]}",
          f);
    fclose(f);
    snprintf(args, sizeof args, "recipe show %s --model %s/stories260K.gguf", path, tu_models_dir());
    tu_run_result r = tu_run(args);
    cr_expect(!strchr(r.out, 0x1b) && !strchr(r.out, 0x07), "recipe show printed a control character: %s", r.out);
    cr_expect(!strchr(r.err, 0x1b), "a warning printed a control character: %s", r.err);
    cr_expect(strstr(r.out, "\\x1b") || strstr(r.err, "\\x1b"), "no escaped form in %s / %s", r.out, r.err);
    tu_run_free(&r);
    tu_rmtree(dir);
    free(dir);
}
