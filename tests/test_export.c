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

#include "core/recipe/export.h"
#include "core/quant/ggml_quants.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/util/fp16.h"
#include "core/data/imatrix.h"
#include "core/quant/qgrid.h"
#include "core/quant/qpack.h"
#include "core/data/calib.h"
#include "core/data/eval.h"
#include "core/model/infer.h"
#include "core/model/tokenizer.h"
#include <sys/stat.h>
#include "core/formats/safetensors.h"
#include <cjson/cJSON.h>
#include "core/quant/quant.h"
#include <math.h>
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
        qs_export_opts o = {(int)ftype, use_im ? im : NULL, name, 0, NULL, NULL};
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
        tu_skip("golden/ggml lacks its source or imatrix");
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
    if (!m) tu_skip("%s", err.msg);
    qs_recipe r;
    qs_recipe_table t;
    qs_recipe_init(&r, m);
    cr_assert_eq(qs_recipe_set_default(&r, "nf4", &err), 0);
    cr_assert_eq(qs_recipe_resolve(&r, m, false, &t, &err), 0);
    qs_export_opts o = {-1, NULL, NULL, 0, NULL, NULL};
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
        tu_skip("golden/ggml/preset or its source is absent");
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

/* ---- RTN/GPTQ/AWQ grids as GGML blocks ---- */

static void fill(float *w, int64_t n, unsigned seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        w[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * (i % 37 == 0 ? 8.0f : 1.0f);
    }
}

/* every RTN grid that is a GGML type becomes exactly those blocks: the GGML decoder reads back
 * f16(scale)·(code − zero) (Q4_1: f16(scale)·code + f16(−scale·zero)), computed here in double */
Test(export, rtn_grids_become_q4_0_q4_1_q8_0)
{
    static const struct { const char *cfg; int type; } cases[] = {
        {"rtn:bits=4,group=32", QS_TYPE_Q4_0}, {"rtn:bits=4,group=32,asym=true", QS_TYPE_Q4_1},
        {"rtn:bits=8,group=32", QS_TYPE_Q8_0}, {"rtn:bits=4,group=32,clip=true", QS_TYPE_Q4_0}};
    enum { R = 6, C = 96 };
    float w[R * C], back[C];
    fill(w, R * C, 7);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        qs_err err = {0};
        qs_qconfig cfg;
        bool keep;
        cr_assert_eq(qs_config_parse(cases[k].cfg, &cfg, &keep, &err), 0, "%s", err.msg);
        qs_qresult r;
        cr_assert_eq(qs_quant_run(&cfg, w, R, C, NULL, NULL, 1, &r, &err), 0, "%s", err.msg);
        qs_qgrid g;
        cr_assert_eq(qs_qgrid_from_result(&r, 0, R, &g, &err), 0, "%s", err.msg);
        cr_assert_eq(qs_qgrid_ggml_type(&g), cases[k].type, "%s", cases[k].cfg);
        size_t rb = qs_type_row_bytes(cases[k].type, C);
        uint8_t *blocks = malloc(rb * R);
        qs_qgrid_encode_ggml(&g, cases[k].type, blocks);
        double worst = 0;
        for (int row = 0; row < R; row++) {
            cr_assert_eq(qs_dequantize_row(cases[k].type, blocks + rb * row, back, C), 0);
            for (int c = 0; c < C; c++) {
                int64_t gi = (row * C + c) / 32;
                double s = r.scales[gi], z = r.zeros ? r.zeros[gi] : 0;
                double code = r.zeros ? r.data[row * C + c] : (int8_t)r.data[row * C + c];
                double s16 = qs_f16_to_f32(qs_f32_to_f16((float)s));
                double want = cases[k].type == QS_TYPE_Q4_1 ? s16 * code + qs_f16_to_f32(qs_f32_to_f16((float)(-s * z)))
                                                            : s16 * (code - z);
                cr_assert_float_eq(back[c], want, 1e-6 * (fabs(want) + 1e-3), "%s [%d][%d]: %g, want %g", cases[k].cfg, row,
                                   c, back[c], want);
                double d = fabs(back[c] - r.deq[row * C + c]);
                worst = d > worst ? d : worst;
            }
        }
        cr_expect_lt(worst, 2e-3, "%s: within f16 rounding of the scales of the fake-quantized weights (%g)", cases[k].cfg,
                     worst);
        free(blocks);
        qs_qgrid_free(&g);
        qs_qresult_free(&r);
    }
}

Test(export, grids_that_are_no_ggml_type_name_the_nearest_config)
{
    static const struct { const char *cfg, *want; } cases[] = {
        {"rtn:bits=3,group=64", "rtn:bits=4,group=32,asym=false (→ q4_0)"},
        {"rtn:bits=8,group=32,asym=true", "rtn:bits=8,group=32,asym=false (→ q8_0)"},
        {"gptq:bits=4,group=32,act_order=true", "gptq:bits=4,group=32,asym=false,static_groups=true"},
        {"awq:bits=4,group=128", "awq:bits=4,group=32,asym=true (→ q4_1)"},
        {"nf4", "no integer grid"}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        qs_err err = {0};
        qs_qconfig cfg;
        bool keep;
        cr_assert_eq(qs_config_parse(cases[k].cfg, &cfg, &keep, &err), 0, "%s", err.msg);
        char why[256];
        cr_expect_eq(qs_qconfig_ggml_type(&cfg, why, sizeof why), -1, "%s", cases[k].cfg);
        cr_expect(strstr(why, cases[k].want) != NULL, "%s: %s", cases[k].cfg, why);
    }
}

/* exported RTN/GPTQ/AWQ recipes (AWQ's scales folded into the norms, into ffn_up's rows, and into
 * the columns of the q8_0 readers of a norm only attn_q's scales went into; AWQ followed by q4_K
 * with ffn_up's q4_K block scales divided by ffn_down's AWQ scales) open with the perplexity
 * quantscope predicted for them, to f16 rounding of the scales (and of the activations: the
 * prediction rounds x for llama.cpp's vec_dot where the file rounds x/s) */
static double ppl_of(const char *args)
{
    tu_run_result r = tu_run(args);
    cr_assert_eq(r.status, 0, "%s: %s", args, r.err);
    const char *p = strstr(r.out, "PPL = ");
    cr_assert_not_null(p, "%s", r.out);
    double v = atof(p + 6);
    tu_run_free(&r);
    return v;
}

/* runs the CLI and requires success */
static void run_ok(const char *args)
{
    tu_run_result r = tu_run(args);
    cr_assert_eq(r.status, 0, "%s: %s", args, r.err);
    tu_run_free(&r);
}

Test(export, grid_recipes_keep_their_predicted_perplexity, .timeout = 300)
{
    const char *model = "sample_models/kjv-tiny.gguf", *calib = "build/kjv/calib.txt", *eval = "build/kjv/eval.txt";
    if (access(model, R_OK) || access(calib, R_OK) || access(eval, R_OK))
        tu_skip("%s or build/kjv is not there (make sample-data)", model);
    static const char *const recipes[] = {
        "{\"quantscope_recipe\":1,\"default\":{\"method\":\"awq\",\"bits\":4,\"group\":32}}",
        "{\"quantscope_recipe\":1,\"default\":{\"method\":\"gptq\",\"bits\":4,\"group\":32}}",
        "{\"quantscope_recipe\":1,\"default\":{\"method\":\"q5_K\"},\"rules\":["
        "{\"pattern\":\"attn_q\",\"config\":{\"method\":\"awq\",\"bits\":4,\"group\":32}},"
        "{\"pattern\":\"ffn_down\",\"config\":{\"method\":\"awq\",\"bits\":4,\"group\":32,\"asym\":false}},"
        "{\"pattern\":\"ffn_gate\",\"config\":{\"method\":\"gptq\",\"bits\":8,\"group\":32}},"
        "{\"pattern\":\"attn_[kv]\",\"config\":{\"method\":\"q8_0\"}}]}",
        "{\"quantscope_recipe\":1,\"default\":{\"method\":\"awq\",\"ggml\":\"q4_K\"},\"rules\":["
        "{\"pattern\":\"ffn_down\",\"config\":{\"method\":\"awq\",\"ggml\":\"q6_K\"}}]}"};
    char *dir = tu_tmpdir(), rpath[4200], out[4200], args[16384];
    snprintf(rpath, sizeof rpath, "%s/r.json", dir);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    for (size_t k = 0; k < sizeof recipes / sizeof *recipes; k++) {
        FILE *f = fopen(rpath, "w");
        cr_assert_not_null(f);
        fputs(recipes[k], f);
        fclose(f);
        const char *cal = "--calib build/kjv/calib.txt --calib-chunks 6 --calib-ctx 128";
        snprintf(args, sizeof args, "ppl %s --text %s --chunks 3 --ctx 128 --recipe %s %s", model, eval, rpath, cal);
        double predicted = ppl_of(args);
        snprintf(args, sizeof args, "export %s --recipe %s %s -o %s", model, rpath, cal, out);
        run_ok(args);
        snprintf(args, sizeof args, "ppl %s --text %s --chunks 3 --ctx 128", out, eval);
        double exported = ppl_of(args);
        cr_log_info("recipe %zu: predicted PPL %.4f, exported %.4f", k, predicted, exported);
        cr_expect_lt(fabs(exported / predicted - 1), 3e-3, "recipe %zu: predicted %.4f, exported %.4f", k, predicted, exported);
    }
    tu_rmtree(dir);
    free(dir);
}

/* ---- GPTQ / AWQ checkpoints ---- */

static const void *st_data(const qs_st_set *st, const char *module, const char *suffix, int dtype, int64_t d0, int64_t d1)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s", module, suffix);
    const qs_st_tensor *x = qs_st_find(st, name);
    cr_assert_not_null(x, "%s is in the checkpoint", name);
    cr_assert_eq(x->dtype, dtype, "%s dtype", name);
    cr_assert(x->shape[0] == d0 && (d1 ? x->n_dims == 2 && x->shape[1] == d1 : x->n_dims == 1), "%s shape [%lld, %lld]",
              name, (long long)x->shape[0], (long long)x->shape[1]);
    return x->data;
}

/* the module's packed tensors, unpacked and dequantized with their f16 scales (what loaders
 * compute, spec/gptq.md §8.4, awq.md §7) against the grid's f16(scale)·(code − zero), HF row h
 * being GGUF row src[h]: the number of weights that differ in any bit */
static int64_t unpacked_mismatches(const qs_st_set *st, const char *module, const qs_qgrid *g, const int64_t *src, bool awq,
                                   bool v2)
{
    int64_t out = g->rows, in = g->cols, ng = g->n_groups;
    int bits = g->cfg.bits;
    uint8_t *codes = malloc((size_t)(out * in));
    float *zeros = malloc((size_t)(out * ng) * sizeof *zeros);
    const uint16_t *sc = st_data(st, module, ".scales", QS_ST_F16, ng, out);
    const int32_t *gi = NULL;
    if (awq) {
        qs_awq_unpack(st_data(st, module, ".qweight", QS_ST_I32, in, out / 8), st_data(st, module, ".qzeros", QS_ST_I32, ng, out / 8),
                      out, in, ng, codes, zeros);
    } else {
        gi = st_data(st, module, ".g_idx", QS_ST_I32, in, 0);
        qs_gptq_unpack(bits, st_data(st, module, ".qweight", QS_ST_I32, qs_gptq_qweight_rows(bits, in), out),
                       st_data(st, module, ".qzeros", QS_ST_I32, ng, qs_gptq_qzeros_cols(bits, out)), out, in, ng, codes, zeros);
        for (int64_t k = 0; v2 && k < out * ng; k++) zeros[k] -= 1; /* v2 stores the zero point itself */
    }
    int64_t bad = 0;
    for (int64_t h = 0; h < out; h++)
        for (int64_t k = 0; k < in; k++) {
            int64_t r = src ? src[h] : h, gg = gi ? gi[k] : k / g->group;
            cr_assert_eq(gg, g->g_idx[k]);
            float got = qs_f16_to_f32(sc[gg * out + h]) * ((float)codes[h * in + k] - zeros[h * ng + gg]);
            float want = qs_f16_to_f32(qs_f32_to_f16(g->scales[r * ng + gg])) * ((float)g->codes[r * in + k] - g->zeros[r * ng + gg]);
            bad += memcmp(&got, &want, sizeof got) != 0;
        }
    free(codes);
    free(zeros);
    return bad;
}

static int64_t *hf_src_rows(const qs_model *m, const qs_tensor *t)
{
    int heads = t->role == QS_ROLE_ATTN_Q ? (int)m->hp.n_head : t->role == QS_ROLE_ATTN_K ? (int)m->hp.n_head_kv : 0;
    if (!heads) return NULL;
    int64_t rows = qs_tensor_nrows(t), *src = malloc((size_t)rows * sizeof *src);
    for (int64_t r = 0; r < rows; r++) src[qs_qk_hf_row(r, rows, heads)] = r;
    return src;
}

static cJSON *read_json(const char *dir, const char *file)
{
    char path[8400];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t n;
    char *s = (char *)tu_read(path, &n);
    cr_assert_not_null(s, "%s was written", path);
    cJSON *o = cJSON_ParseWithLength(s, n);
    free(s);
    cr_assert_not_null(o, "%s is JSON", path);
    return o;
}

Test(export, gptq_checkpoint_unpacks_to_the_grids_bit_for_bit, .timeout = 60)
{
    const char *path = "sample_models/kjv-tiny.gguf";
    if (access(path, R_OK)) tu_skip("%s is not there", path);
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    cr_assert_not_null(m, "%s", err.msg);
    qs_recipe r;
    qs_recipe_table t;
    qs_recipe_init(&r, m);
    cr_assert_eq(qs_recipe_set_default(&r, "rtn:bits=4,group=64,asym=true", &err), 0, "%s", err.msg);
    static const char *const rules[][2] = {{"ffn_down", "rtn:bits=3,group=32,asym=true"}, {"attn_v", "rtn:bits=2,group=64"},
                                           {"attn_k", "rtn:bits=8,group=0"},          {"attn_q", "rtn:bits=4,group=64"},
                                           {"token_embd", "keep"},                    {"blk\\.1\\.ffn_up", "keep"}};
    for (size_t k = 0; k < sizeof rules / sizeof *rules; k++)
        cr_assert_eq(qs_recipe_add_rule(&r, rules[k][0], rules[k][1], &err), 0, "%s", err.msg);
    cr_assert_eq(qs_recipe_resolve(&r, m, false, &t, &err), 0, "%s", err.msg);
    qs_qgrid *grids = calloc((size_t)t.n, sizeof *grids);
    qs_recipe_sink sink = qs_export_grid_sink(grids);
    cr_assert_eq(qs_recipe_apply(&t, NULL, NULL, 0, &sink, NULL, &err), 0, "%s", err.msg);
    char *dir = tu_tmpdir(), ck[4200], warn[256];
    snprintf(ck, sizeof ck, "%s/gptq", dir);
    cr_assert_eq(qs_export_hf_quant(m, &t, grids, QS_CKPT_GPTQ, 1, 2, ck, warn, sizeof warn, &err), 0, "%s", err.msg);
    cJSON *cfg = read_json(ck, "config.json"), *side = read_json(ck, "quantize_config.json");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    cr_assert(cJSON_Compare(q, side, true), "quantize_config.json is config.json's quantization_config");
    cr_expect_eq(cJSON_GetObjectItemCaseSensitive(q, "bits")->valueint, 4);
    cr_expect_eq(cJSON_GetObjectItemCaseSensitive(q, "group_size")->valueint, 64);
    cr_expect(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(q, "sym")));
    const char *format = cJSON_GetObjectItemCaseSensitive(q, "checkpoint_format")->valuestring;
    bool v2 = !strcmp(format, "gptq_v2"), any_zero = false;
    const cJSON *dyn = cJSON_GetObjectItemCaseSensitive(q, "dynamic");
    const cJSON *down = cJSON_GetObjectItemCaseSensitive(dyn, "+:^model\\.layers\\.0\\.mlp\\.down_proj$");
    cr_assert_not_null(down, "ffn_down's 3 bits are a dynamic override");
    cr_expect_eq(cJSON_GetObjectItemCaseSensitive(down, "bits")->valueint, 3);
    const cJSON *kproj = cJSON_GetObjectItemCaseSensitive(dyn, "+:^model\\.layers\\.1\\.self_attn\\.k_proj$");
    cr_expect(kproj && cJSON_GetObjectItemCaseSensitive(kproj, "group_size")->valueint == -1, "per-row groups are -1");
    cr_expect_not_null(cJSON_GetObjectItemCaseSensitive(dyn, "-:^model\\.layers\\.1\\.mlp\\.up_proj$"), "kept modules are -:");
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(dyn, "+:^model\\.layers\\.0\\.mlp\\.gate_proj$"), "the top config has no entry");
    snprintf(ck + strlen(ck), sizeof ck - strlen(ck), "/model.safetensors");
    qs_st_set *st = qs_st_open(ck, &err);
    cr_assert_not_null(st, "%s", err.msg);
    int checked = 0;
    for (int64_t i = 0; i < t.n; i++) {
        if (!grids[i].codes) continue;
        char hf[160];
        cr_assert(qs_gguf_to_hf_name(t.e[i].t->gguf_name, hf, sizeof hf));
        hf[strlen(hf) - strlen(".weight")] = '\0';
        int64_t *src = hf_src_rows(m, t.e[i].t);
        cr_expect_eq(unpacked_mismatches(st, hf, &grids[i], src, false, v2), 0, "%s", hf);
        free(src);
        if (grids[i].cfg.asym) any_zero |= qs_gptq_v1_zero_overflow(grids[i].zeros, grids[i].rows * grids[i].n_groups);
        if (t.e[i].t->role == QS_ROLE_ATTN_Q) { /* 4-bit symmetric: zero 8 stored as 7 (v1) */
            const uint32_t *z = st_data(st, hf, ".qzeros", QS_ST_I32, grids[i].n_groups, grids[i].rows / 8);
            cr_expect_eq(z[0], v2 ? 0x88888888u : 0x77777777u, "%s qzeros %08x", hf, z[0]);
        }
        checked++;
    }
    cr_expect_eq(v2, any_zero, "gptq_v2 exactly when an asymmetric zero point is 0 (%s)", format);
    cr_expect_eq(v2, warn[0] != '\0', "and then a warning: %s", warn);
    cr_expect_eq(checked, 13);
    cr_expect_not_null(st_data(st, "model.layers.1.mlp.up_proj", ".weight", QS_ST_F16, 768, 256), "kept in F16");
    cr_expect_not_null(st_data(st, "model.embed_tokens", ".weight", QS_ST_F16, 2048, 256));
    qs_st_close(st);
    cJSON_Delete(cfg);
    cJSON_Delete(side);
    qs_export_grids_free(grids, t.n);
    qs_recipe_table_free(&t);
    qs_recipe_free(&r);
    qs_model_close(m);
    tu_rmtree(dir);
    free(dir);
}

/* the checkpoint dequantized back (what a loader computes) into an F32 HF directory */
static void dequantize_checkpoint(const char *ck, const char *out_dir)
{
    char path[8400];
    snprintf(path, sizeof path, "%s/model.safetensors", ck);
    qs_err err = {0};
    qs_st_set *st = qs_st_open(path, &err);
    cr_assert_not_null(st, "%s", err.msg);
    qs_st_out *o = calloc((size_t)st->n_tensors, sizeof *o);
    int n = 0;
    for (int64_t i = 0; i < st->n_tensors; i++) {
        const qs_st_tensor *x = &st->tensors[i];
        size_t len = strlen(x->name);
        if (len > 7 && !strcmp(x->name + len - 7, ".scales")) {
            char module[256];
            snprintf(module, sizeof module, "%.*s", (int)(len - 7), x->name);
            int64_t ng = x->shape[0], out = x->shape[1];
            snprintf(path, sizeof path, "%s.qweight", module);
            int64_t in = qs_st_find(st, path)->shape[0];
            uint8_t *codes = malloc((size_t)(out * in));
            float *zeros = malloc((size_t)(out * ng) * sizeof *zeros), *w = malloc((size_t)(out * in) * sizeof *w);
            qs_awq_unpack(st_data(st, module, ".qweight", QS_ST_I32, in, out / 8),
                          st_data(st, module, ".qzeros", QS_ST_I32, ng, out / 8), out, in, ng, codes, zeros);
            for (int64_t k = 0; k < out * ng; k++) cr_assert(zeros[k] >= 0 && zeros[k] <= 15, "AWQ zero points lie in [0, 15]");
            const uint16_t *sc = (const uint16_t *)x->data;
            for (int64_t r = 0; r < out; r++)
                for (int64_t c = 0; c < in; c++) {
                    int64_t g = c / (in / ng);
                    w[r * in + c] = qs_f16_to_f32(sc[g * out + r]) * ((float)codes[r * in + c] - zeros[r * ng + g]);
                }
            free(codes), free(zeros);
            char *name = malloc(300);
            snprintf(name, 300, "%s.weight", module);
            o[n++] = (qs_st_out){name, QS_ST_F32, 2, {out, in}, w};
        } else if (x->dtype == QS_ST_F16) {
            int64_t ne = 1;
            for (int d = 0; d < x->n_dims; d++) ne *= x->shape[d];
            float *w = malloc((size_t)ne * sizeof *w);
            for (int64_t k = 0; k < ne; k++) w[k] = qs_f16_to_f32(((const uint16_t *)x->data)[k]);
            qs_st_out e = {strdup(x->name), QS_ST_F32, x->n_dims, {0}, w};
            memcpy(e.shape, x->shape, sizeof e.shape);
            o[n++] = e;
        }
    }
    mkdir(out_dir, 0755);
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    cr_assert_eq(qs_st_write(path, o, n, NULL, 0, &err), 0, "%s", err.msg);
    for (int k = 0; k < n; k++) free((void *)o[k].name), free((void *)o[k].data);
    free(o);
    qs_st_close(st);
    cJSON *cfg = read_json(ck, "config.json");
    cJSON_DeleteItemFromObject(cfg, "quantization_config");
    char *text = cJSON_Print(cfg);
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    free(text);
    cJSON_Delete(cfg);
}

static double ppl_on(qs_llm *l, const qs_vocab *v, const char *text, size_t len)
{
    qs_err err = {0};
    qs_ppl p;
    cr_assert_eq(qs_perplexity(l, v, text, len, 128, 4, NULL, &p, &err), 0, "%s", err.msg);
    return p.ppl;
}

/* AWQ GEMM: the unscaled linears unpack bit for bit; the whole checkpoint, dequantized as a
 * loader does (norms carrying 1/s, ffn_up's rows the down_proj scales), has the perplexity of
 * the fake-quantized model quantscope predicted */
Test(export, awq_checkpoint_is_the_predicted_model, .timeout = 120)
{
    const char *path = "sample_models/kjv-tiny.gguf", *calib = "build/kjv/calib.txt", *eval = "build/kjv/eval.txt";
    if (access(path, R_OK) || access(calib, R_OK) || access(eval, R_OK)) tu_skip("%s or build/kjv is not there", path);
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    cr_assert_not_null(m, "%s", err.msg);
    qs_vocab *v = qs_vocab_load(m->gguf, &err);
    qs_llm *l = qs_llm_new(m, 128, &err);
    cr_assert(v && l, "%s", err.msg);
    size_t clen, elen;
    char *ctext = (char *)tu_read(calib, &clen), *etext = (char *)tu_read(eval, &elen);
    qs_recipe r;
    qs_recipe_table t;
    qs_recipe_init(&r, m);
    cr_assert_eq(qs_recipe_set_default(&r, "awq:bits=4,group=64", &err), 0, "%s", err.msg);
    cr_assert_eq(qs_recipe_add_rule(&r, "token_embd", "keep", &err), 0, "%s", err.msg);
    cr_assert_eq(qs_recipe_resolve(&r, m, false, &t, &err), 0, "%s", err.msg);
    qs_qgrid *grids = calloc((size_t)t.n, sizeof *grids);
    qs_recipe_sink sink = qs_export_grid_sink(grids);
    qs_calib_opts o;
    qs_calib_opts_default(&o);
    o.n_chunks = 6, o.n_ctx = 128;
    cr_assert_eq(qs_recipe_apply_calibrated(&t, l, v, ctext, clen, &o, true, 0, &sink, NULL, &err), 0, "%s", err.msg);
    double predicted = ppl_on(l, v, etext, elen);
    char *dir = tu_tmpdir(), ck[4200], deq[4200], warn[256];
    snprintf(ck, sizeof ck, "%s/awq", dir);
    snprintf(deq, sizeof deq, "%s/deq", dir);
    cr_assert_eq(qs_export_hf_quant(m, &t, grids, QS_CKPT_AWQ, 1, 2, ck, warn, sizeof warn, &err), 0, "%s", err.msg);
    cJSON *cfg = read_json(ck, "config.json");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(q, "version")->valuestring, "gemm");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(q, "zero_point")));
    cr_expect_eq(cJSON_GetObjectItemCaseSensitive(q, "group_size")->valueint, 64);
    cJSON_Delete(cfg);
    cJSON *side = read_json(ck, "quant_config.json"); /* AutoAWQ's own names */
    cr_expect(cJSON_GetObjectItemCaseSensitive(side, "q_group_size")->valueint == 64 &&
                  cJSON_GetObjectItemCaseSensitive(side, "w_bit")->valueint == 4 &&
                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(side, "zero_point")),
              "quant_config.json has q_group_size, w_bit, zero_point");
    cJSON_Delete(side);
    char st_path[4300];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", ck);
    qs_st_set *st = qs_st_open(st_path, &err);
    cr_assert_not_null(st, "%s", err.msg);
    for (int64_t i = 0; i < t.n; i++) {
        qs_role role = t.e[i].t->role;
        if (!grids[i].codes || role == QS_ROLE_ATTN_V || role == QS_ROLE_FFN_UP) continue; /* rows divided by the next scales */
        char hf[160];
        cr_assert(qs_gguf_to_hf_name(t.e[i].t->gguf_name, hf, sizeof hf));
        hf[strlen(hf) - strlen(".weight")] = '\0';
        int64_t *src = hf_src_rows(m, t.e[i].t);
        cr_expect_eq(unpacked_mismatches(st, hf, &grids[i], src, true, false), 0, "%s", hf);
        free(src);
    }
    qs_st_close(st);
    dequantize_checkpoint(ck, deq);
    qs_model *back = qs_model_open(deq, &err);
    cr_assert_not_null(back, "%s", err.msg);
    qs_llm *lb = qs_llm_new(back, 128, &err);
    cr_assert_not_null(lb, "%s", err.msg);
    double exported = ppl_on(lb, v, etext, elen);
    cr_log_info("AWQ w4 g64 checkpoint: predicted PPL %.4f, dequantized checkpoint %.4f", predicted, exported);
    cr_expect_lt(fabs(exported / predicted - 1), 2e-3, "predicted %.4f, checkpoint %.4f", predicted, exported);
    qs_llm_free(lb);
    qs_model_close(back);
    qs_export_grids_free(grids, t.n);
    qs_recipe_table_free(&t);
    qs_recipe_free(&r);
    free(ctext), free(etext);
    qs_llm_free(l);
    qs_vocab_free(v);
    qs_model_close(m);
    tu_rmtree(dir);
    free(dir);
}

/* an HF checkpoint exports to the same GGUF tensors as the GGUF it was written from: names
 * mapped, q/k rows permuted back, llama keys from config.json, the tokenizer from --vocab */
Test(export, hf_checkpoint_exports_the_same_gguf_tensors, .timeout = 60)
{
    const char *gg = "sample_models/kjv-tiny.gguf", *hf = "sample_models/kjv-tiny-hf";
    if (access(gg, R_OK) || access(hf, R_OK)) tu_skip("%s or %s is not there", gg, hf);
    char *dir = tu_tmpdir(), args[16384], a[4200], b[4200];
    snprintf(a, sizeof a, "%s/from-hf.gguf", dir);
    snprintf(b, sizeof b, "%s/from-gguf.gguf", dir);
    snprintf(args, sizeof args, "export %s --vocab %s --type q4_K -o %s", hf, gg, a);
    run_ok(args);
    snprintf(args, sizeof args, "export %s --type q4_K -o %s", gg, b);
    run_ok(args);
    qs_err err = {0};
    qs_model *x = qs_model_open(a, &err), *y = qs_model_open(b, &err);
    cr_assert(x && y, "%s", err.msg);
    cr_expect_str_eq(x->hp.arch, "llama");
    cr_expect(x->hp.n_layer == y->hp.n_layer && x->hp.n_head_kv == y->hp.n_head_kv && x->hp.n_rot == y->hp.n_rot &&
              x->hp.norm_eps == y->hp.norm_eps && x->hp.n_ctx == y->hp.n_ctx);
    cr_expect(x->tok.n_tokens == y->tok.n_tokens && x->tok.bos == y->tok.bos && !strcmp(x->tok.kind, y->tok.kind));
    cr_assert_eq(x->n_tensors, y->n_tensors);
    for (int64_t i = 0; i < x->n_tensors; i++) {
        const qs_tensor *p = &x->tensors[i], *q = &y->tensors[i];
        cr_assert_str_eq(p->name, q->name, "llama-quantize's order");
        cr_expect(p->type == q->type && p->nbytes == q->nbytes && !memcmp(p->data, q->data, p->nbytes), "%s differs", p->name);
    }
    qs_model_close(x);
    qs_model_close(y);
    tu_rmtree(dir);
    free(dir);
}

/* the acceptance: a mixed kjv-small recipe (Q4_K_M with hand-bumped tensors) exports,
 * opens with exactly the perplexity `ppl --recipe` predicted, and reads back into the same types */
Test(export, mixed_kjv_small_recipe_opens_with_its_predicted_perplexity, .timeout = 300)
{
    const char *model = "sample_models/kjv-small.gguf", *eval = "build/kjv/eval.txt";
    if (access(model, R_OK) || access(eval, R_OK)) tu_skip("%s or %s is not there", model, eval);
    char *dir = tu_tmpdir(), args[16384], rp[4200], out[4200];
    snprintf(rp, sizeof rp, "%s/r.json", dir);
    snprintf(out, sizeof out, "%s/mix.gguf", dir);
    snprintf(args, sizeof args, "recipe %s --preset Q4_K_M --set 'blk\\.[0-1]\\.ffn_down=q6_K' --set 'blk\\.5\\.attn_v=q8_0' "
             "--set 'blk\\.[2-4]\\.ffn_up=q3_K' -o %s", model, rp);
    tu_run_result r = tu_run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "blk.5.attn_v.weight                  [256, 512]       q8_0") != NULL, "--set beats the preset");
    tu_run_free(&r);
    snprintf(args, sizeof args, "export %s --recipe %s -o %s", model, rp, out);
    run_ok(args);
    snprintf(args, sizeof args, "ppl %s --text %s --chunks 4 --recipe %s", model, eval, rp);
    double predicted = ppl_of(args);
    snprintf(args, sizeof args, "ppl %s --text %s --chunks 4", out, eval);
    double exported = ppl_of(args);
    cr_expect_eq(predicted, exported, "predicted %.4f, exported %.4f", predicted, exported);
    qs_err err = {0};
    qs_model *q = qs_model_open(out, &err);
    cr_assert_not_null(q, "%s", err.msg);
    const qs_tensor *v5 = qs_model_find_tensor(q, "blk.5.attn_v.weight"), *u3 = qs_model_find_tensor(q, "blk.3.ffn_up.weight");
    cr_expect(v5 && v5->type == QS_TYPE_Q8_0 && u3 && u3->type == QS_TYPE_Q3_K);
    qs_model_close(q);
    tu_rmtree(dir);
    free(dir);
}

/* dividing rows through the blocks' f16 scales: every type's decoded row is the original decoded
 * row divided, to the f16 rounding of the scales */
Test(export, ggml_rows_divide_through_their_block_scales)
{
    static const int types[] = {QS_TYPE_Q4_0, QS_TYPE_Q4_1, QS_TYPE_Q5_0, QS_TYPE_Q5_1, QS_TYPE_Q8_0, QS_TYPE_Q2_K,
                                QS_TYPE_Q3_K, QS_TYPE_Q4_K, QS_TYPE_Q5_K, QS_TYPE_Q6_K, QS_TYPE_IQ4_NL, QS_TYPE_IQ4_XS};
    enum { R = 3, C = 512 };
    float w[R * C], a[C], b[C], div[R] = {1.7f, 0.31f, 12.5f};
    fill(w, R * C, 11);
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        int type = types[k];
        size_t rb = qs_type_row_bytes(type, C);
        uint8_t *q = malloc(rb * R), *q2 = malloc(rb * R);
        qs_err err = {0};
        cr_assert_eq(qs_ggml_quantize(type, w, q, R, C, NULL, 1, &err), 0, "%s", err.msg);
        memcpy(q2, q, rb * R);
        cr_assert_eq(qs_ggml_scale_rows(type, q2, R, C, div), 0, "%s", qs_type_name(type));
        for (int r = 0; r < R; r++) {
            qs_dequantize_row(type, q + rb * r, a, C);
            qs_dequantize_row(type, q2 + rb * r, b, C);
            double worst = 0, amax = 0;
            for (int c = 0; c < C; c++) {
                double want = (double)a[c] / div[r], d = fabs(b[c] - want);
                worst = d > worst ? d : worst;
                amax = fabs(want) > amax ? fabs(want) : amax;
            }
            cr_expect_lt(worst, amax * 2e-3, "%s row %d: %g of %g", qs_type_name(type), r, worst, amax);
        }
        free(q), free(q2);
    }
    cr_expect_eq(qs_ggml_scale_rows(QS_TYPE_F16, NULL, 1, 32, div), -1, "F16 has no block scales");
}

/* the command-line form: one --tensor-type per type, its anchored alternation matching exactly
 * the tensors of that type, replayed with POSIX regex as llama-quantize matches them */
Test(export, llama_quantize_tensor_type_patterns_reproduce_the_recipe)
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
        tu_skip("golden/ggml/preset or its source is absent");
    }
    for (char **f = files; *f; f++) {
        qs_model *q = qs_model_open(*f, &err);
        cr_assert_not_null(q, "%s", err.msg);
        qs_recipe r;
        qs_recipe_table t;
        qs_recipe_init(&r, f32);
        cr_assert_eq(qs_recipe_from_model(&r, q, &err), 0);
        cr_assert_eq(qs_recipe_resolve(&r, f32, false, &t, &err), 0, "%s", err.msg);
        char *types, *cmd;
        cr_assert_eq(qs_export_llama_quantize(f32, &t, NULL, NULL, "out.gguf", &types, &cmd, &err), 0, "%s", err.msg);
        cr_assert_null(strstr(cmd, "--tensor-type-file"), "%s", cmd);
        /* the patterns, in order: ' --tensor-type 'PATTERN=type'' */
        regex_t re[32];
        char type[32][16];
        int np = 0;
        for (const char *p = strstr(cmd, " --tensor-type '"); p && np < 32; p = strstr(p + 1, " --tensor-type '")) {
            const char *s = p + strlen(" --tensor-type '"), *e = strchr(s, '\''), *eq = memrchr(s, '=', (size_t)(e - s));
            cr_assert(e && eq, "%s", cmd);
            char pat[8192];
            snprintf(pat, sizeof pat, "%.*s", (int)(eq - s), s);
            snprintf(type[np], sizeof type[np], "%.*s", (int)(e - eq - 1), eq + 1);
            cr_assert_eq(regcomp(&re[np], pat, REG_EXTENDED | REG_NOSUB), 0, "%s", pat);
            for (int k = 0; k < np; k++) cr_expect(strcmp(type[k], type[np]), "one pattern per type: %s twice", type[np]);
            np++;
        }
        cr_assert_gt(np, 0, "%s", cmd);
        for (int64_t i = 0; i < q->n_tensors; i++) {
            const qs_tensor *g = &q->tensors[i];
            if (g->n_dims < 2 || !strcmp(g->name, "output.weight") || !strcmp(g->name, "token_embd.weight")) continue;
            int hits = 0;
            const char *got = NULL;
            for (int k = 0; k < np; k++)
                if (regexec(&re[k], g->name, 0, NULL, 0) == 0) hits++, got = type[k];
            cr_expect_eq(hits, 1, "%s %s: matched by %d patterns", *f, g->name, hits);
            cr_expect(got && !strcasecmp(got, qs_type_name(g->type)), "%s %s: %s, want %s", *f, g->name, got ? got : "-",
                      qs_type_name(g->type));
        }
        for (int k = 0; k < np; k++) regfree(&re[k]);
        free(types), free(cmd);
        qs_recipe_table_free(&t);
        qs_recipe_free(&r);
        qs_model_close(q);
    }
    qs_model_close(f32);
    tu_free_list(files);
}
