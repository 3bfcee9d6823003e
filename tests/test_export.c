/* GGUF export: for every llama-quantize file of golden/ggml/q and golden/ggml/preset, the
 * recipe read back from it (per-tensor types), applied to the F32 source with the same file
 * type (and the imatrix when the file used one), reproduces the whole file byte for byte; so
 * does the recipe quantscope predicts from the preset's name alone (golden/ggml/preset/P.gguf). */
#include <criterion/criterion.h>
#include <limits.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/export.h"
#include "core/ggml_types.h"
#include "core/gguf.h"
#include "core/imatrix.h"
#include "tests/testutil.h"

static int check_dir(const char *ggml_dir, const char *sub, const char *src, const qs_imatrix *im, const char *tmp,
                     bool by_preset)
{
    char dir[8192];
    snprintf(dir, sizeof dir, "%s/%s", ggml_dir, sub);
    int n = 0, checked = 0;
    char **files = tu_list(dir, ".gguf", 0, &n);
    qs_err err = {0};
    qs_model *f32 = qs_model_open(src, &err);
    cr_assert_not_null(f32, "%s", err.msg);
    for (char **f = files; f && *f; f++) {
        qs_model *q = qs_model_open(*f, &err);
        cr_assert_not_null(q, "%s: %s", *f, err.msg);
        uint32_t ftype = 0;
        qs_gguf_get_u32(q->gguf, "general.file_type", &ftype, &err);
        const char *imname = NULL;
        size_t imlen = 0;
        bool use_im = qs_gguf_get_str(q->gguf, "quantize.imatrix.file", &imname, &imlen, &err) == 0;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)imlen, use_im ? imname : "");
        qs_recipe r;
        qs_recipe_table t;
        qs_recipe_init(&r, f32);
        if (by_preset) {
            char preset[64];
            const char *base = strrchr(*f, '/') + 1;
            snprintf(preset, sizeof preset, "%.*s", (int)(strlen(base) - 5), base);
            cr_assert_eq(qs_recipe_from_preset(&r, f32, preset, use_im, &err), 0, "%s: %s", preset, err.msg);
        } else {
            cr_assert_eq(qs_recipe_from_model(&r, q, &err), 0);
        }
        cr_assert_eq(qs_recipe_resolve(&r, f32, false, &t, &err), 0, "%s", err.msg);
        qs_export_opts o = {(int)ftype, use_im ? im : NULL, name, 0};
        char out[8192];
        snprintf(out, sizeof out, "%s/out.gguf", tmp);
        cr_assert_eq(qs_export_gguf(f32, &t, &o, out, NULL, &err), 0, "%s: %s", *f, err.msg);
        size_t na, nb;
        uint8_t *a = tu_read(out, &na), *b = tu_read(*f, &nb);
        size_t first = 0;
        while (first < na && first < nb && a[first] == b[first]) first++;
        cr_expect(na == nb && first == na, "%s: the export differs from llama-quantize's file at byte %zu (sizes %zu, %zu)", *f,
                  first, na, nb);
        free(a);
        free(b);
        qs_recipe_table_free(&t);
        qs_recipe_free(&r);
        qs_model_close(q);
        checked++;
    }
    qs_model_close(f32);
    tu_free_list(files);
    return checked;
}

Test(export, llama_quantize_files_reproduced, .timeout = 300)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ggml", tu_golden_dir());
    int ns = 0, ni = 0;
    char **src = tu_list(dir, ".f32.gguf", 0, &ns), **all = tu_list(dir, ".gguf", 0, &ni);
    const char *imat = NULL;
    for (char **f = all; f && *f; f++)
        if (strstr(*f, "/imatrix-")) imat = *f;
    if (ns != 1 || !imat) {
        tu_free_list(src);
        tu_free_list(all);
        cr_skip_test("golden/ggml lacks its source or imatrix");
    }
    qs_err err = {0};
    qs_imatrix *im = qs_imatrix_load(imat, &err);
    cr_assert_not_null(im, "%s", err.msg);
    char *tmp = tu_tmpdir();
    int checked = check_dir(dir, "q", src[0], im, tmp, false) + check_dir(dir, "preset", src[0], im, tmp, false) +
                  check_dir(dir, "preset", src[0], im, tmp, true);
    cr_log_info("exported files compared with llama-quantize's: %d", checked);
    cr_assert_gt(checked, 0);
    qs_imatrix_free(im);
    tu_rmtree(tmp);
    free(tmp);
    tu_free_list(src);
    tu_free_list(all);
}

Test(export, refuses_non_ggml_methods)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/stories260K.gguf", tu_models_dir());
    qs_err err = {0};
    qs_model *m = qs_model_open(p, &err);
    if (!m) cr_skip_test("%s", err.msg);
    qs_recipe r;
    qs_recipe_table t;
    qs_recipe_init(&r, m);
    cr_assert_eq(qs_recipe_set_default(&r, "nf4", &err), 0);
    cr_assert_eq(qs_recipe_resolve(&r, m, false, &t, &err), 0);
    qs_export_opts o = {-1, NULL, NULL, 0};
    char *tmp = tu_tmpdir(), out[4200];
    snprintf(out, sizeof out, "%s/x.gguf", tmp);
    cr_assert_lt(qs_export_gguf(m, &t, &o, out, NULL, &err), 0);
    cr_assert(strstr(err.msg, "nf4 is not a GGML type") && strstr(err.msg, "nearest is iq4_nl"), "%s", err.msg);
    cr_assert_neq(access(out, F_OK), 0, "no output left behind");
    int n = 0;
    char **left = tu_list(tmp, "", 0, &n);
    cr_assert_eq(n, 0, "no temporary file left behind");
    tu_free_list(left);
    qs_recipe_table_free(&t);
    qs_recipe_free(&r);
    qs_model_close(m);
    tu_rmtree(tmp);
    free(tmp);
}

/* llama-quantize's decision for one tensor given the exported arguments (spec §3 steps 1–5a),
 * re-implemented here with POSIX regex: flags first, then the first type-file pattern found. */
static const char *lq_decide(const char *name, const char *types, const char *cmd, int *line_no)
{
    static char type[32];
    const char *flag = !strcmp(name, "output.weight")       ? "--output-tensor-type "
                       : !strcmp(name, "token_embd.weight") ? "--token-embedding-type "
                                                            : NULL;
    if (flag && strstr(cmd, flag)) {
        sscanf(strstr(cmd, flag) + strlen(flag), "%31s", type);
        return type;
    }
    char line[512];
    *line_no = 0;
    for (const char *p = types; *p; ++*line_no) {
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        p += n + (p[n] == '\n');
        char *eq = strchr(line, '=');
        cr_assert_not_null(eq, "every token is PATTERN=TYPE: %s", line);
        *eq = '\0';
        regex_t re;
        cr_assert_eq(regcomp(&re, line, REG_EXTENDED | REG_NOSUB), 0, "%s", line);
        bool hit = regexec(&re, name, 0, NULL, 0) == 0;
        regfree(&re);
        if (hit) {
            snprintf(type, sizeof type, "%s", eq + 1);
            return type;
        }
    }
    return NULL;
}

Test(export, llama_quantize_arguments_reproduce_the_recipe)
{
    char dir[4096], src[4200];
    snprintf(dir, sizeof dir, "%s/ggml/preset", tu_golden_dir());
    snprintf(src, sizeof src, "%s/ggml/synth-a.f32.gguf", tu_golden_dir());
    int n = 0;
    char **files = tu_list(dir, ".gguf", 0, &n);
    qs_err err = {0};
    qs_model *f32 = n ? qs_model_open(src, &err) : NULL;
    if (!f32) {
        tu_free_list(files);
        cr_skip_test("golden/ggml/preset or its source is absent");
    }
    int checked = 0;
    for (char **f = files; *f; f++) {
        qs_model *q = qs_model_open(*f, &err);
        cr_assert_not_null(q, "%s", err.msg);
        qs_recipe r;
        qs_recipe_table t;
        qs_recipe_init(&r, f32);
        cr_assert_eq(qs_recipe_from_model(&r, q, &err), 0);
        cr_assert_eq(qs_recipe_resolve(&r, f32, false, &t, &err), 0, "%s", err.msg);
        char *types, *cmd;
        cr_assert_eq(qs_export_llama_quantize(f32, &t, "im at.gguf", "types.txt", "out.gguf", &types, &cmd, &err), 0, "%s",
                     err.msg);
        cr_assert(strstr(cmd, "--imatrix 'im at.gguf'") && strstr(cmd, "--tensor-type-file types.txt") &&
                      strstr(cmd, " out.gguf "),
                  "%s", cmd);
        for (const char *c = types; *c; c++) cr_assert(*c < 'A' || *c > 'Z', "lower case: %s", types);
        int last = -1, line_no;
        for (int64_t i = 0; i < q->n_tensors; i++) { /* the golden file lists them in llama-quantize's order */
            const qs_tensor *g = &q->tensors[i];
            const char *want = qs_type_name(g->type), *got = lq_decide(g->name, types, cmd, &line_no);
            if (got && g->block >= 0) {
                cr_expect_gt(line_no, last, "%s: the type file follows llama-quantize's tensor order", g->name);
                last = line_no;
            }
            if (g->n_dims < 2) cr_assert_null(got, "%s: 1-D tensors are not listed", g->name);
            else cr_expect(got && !strcasecmp(got, want), "%s %s: llama-quantize would choose %s, the file has %s", *f,
                           g->name, got ? got : "(mixing rules)", want);
        }
        checked++;
        free(types);
        free(cmd);
        qs_recipe_table_free(&t);
        qs_recipe_free(&r);
        qs_model_close(q);
    }
    cr_assert_gt(checked, 0);
    qs_model_close(f32);
    tu_free_list(files);
}
