/* cli/cli_export.c — `quantscope export MODEL (--recipe R.json | --type T | --preset NAME) -o OUT.gguf`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/recipe/export.h"
#include "core/util/fileio.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/hf_tokenizer.h"
#include "core/model/infer.h"
#include "core/quant/qgrid.h"
#include "core/data/imatrix.h"
#include "core/model/model.h"
#include "core/recipe/presets.h"
#include "core/model/tokenizer.h"
#include "core/recipe/recipe.h"
#include "cli/cli.h"

/* --llama-quantize: the command that makes llama-quantize write this recipe — with one --tensor-type
 * per type, or (--tensor-type-file FILE) with the file form written to FILE */
static int write_llama_quantize(const qs_model *m, const qs_recipe_table *t, const char *imat, const char *types_path,
                                const char *out)
{
    qs_err err = {0};
    char *text, *cmd;
    if (qs_export_llama_quantize(m, t, imat, types_path, out, &text, &cmd, &err)) return qs_cli_fail(m->path, &err);
    qs_afile af = {0};
    int rc = 0;
    if (types_path && (qs_afile_open(&af, types_path, &err) || qs_afile_write(&af, text, strlen(text), &err)))
        qs_afile_abort(&af), rc = -1;
    else if (types_path) rc = qs_afile_commit(&af, &err);
    if (rc) rc = qs_cli_fail(types_path, &err);
    else printf("%s\n", cmd);
    free(text);
    free(cmd);
    return rc;
}

/* --hf DIR: the model as an HF-style checkpoint directory */
static int export_hf(const char *model, const char *dir)
{
    qs_err err = {0};
    qs_model *m = qs_model_open(model, &err);
    if (!m) return qs_cli_fail(model, &err);
    qs_vocab *v = m->gguf ? qs_vocab_load(m->gguf, &err) : NULL;
    int rc = qs_export_hf_dir(m, v ? qs_vocab_bos(v) : -1, v ? qs_vocab_eos(v) : -1, dir, &err) ? qs_cli_fail(dir, &err)
                                                                                                 : QS_EXIT_OK;
    if (!rc) printf("wrote %s/config.json and %s/model.safetensors\n", dir, dir);
    qs_vocab_free(v);
    qs_model_close(m);
    return rc;
}

typedef struct export_args {
    const char *model, *recipe, *type, *preset, *out, *imat, *ftype_name, *lq, *hf, *vocab, *format;
    bool force, llama_quantize;
    qs_cli_calib calib;
} export_args;

static int parse_args(int argc, char **argv, export_args *a)
{
    memset(a, 0, sizeof *a);
    qs_cli_calib_init(&a->calib);
    a->format = "gguf";
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        int ca = qs_cli_calib_arg(argc, argv, &i, &a->calib);
        const char **dst = !next                               ? NULL
                           : !strcmp(argv[i], "--recipe")         ? &a->recipe
                           : !strcmp(argv[i], "--type")           ? &a->type
                           : !strcmp(argv[i], "--preset")         ? &a->preset
                           : !strcmp(argv[i], "--tensor-type-file") ? &a->lq
                           : !strcmp(argv[i], "--hf")             ? &a->hf
                           : !strcmp(argv[i], "-o")               ? &a->out
                           : !strcmp(argv[i], "--imatrix")        ? &a->imat
                           : !strcmp(argv[i], "--ftype")          ? &a->ftype_name
                           : !strcmp(argv[i], "--vocab")          ? &a->vocab
                           : !strcmp(argv[i], "--format")         ? &a->format
                                                                  : NULL;
        if (ca > 0) continue;
        if (ca < 0) return qs_cli_usage_error("export: %s needs a value", argv[i]);
        if (dst) *dst = argv[++i];
        else if (!strcmp(argv[i], "--force")) a->force = true;
        else if (!strcmp(argv[i], "--llama-quantize")) { /* the older spelling took the file: --llama-quantize FILE.txt */
            a->llama_quantize = true;
            size_t n = next ? strlen(argv[i + 1]) : 0;
            if (n > 4 && !strcmp(argv[i + 1] + n - 4, ".txt")) a->lq = argv[++i];
        }
        else if (argv[i][0] == '-') return qs_cli_usage_error("export: unknown or incomplete option '%s'", argv[i]);
        else if (!a->model) a->model = argv[i];
        else return qs_cli_usage_error("export: unexpected argument '%s'", argv[i]);
    }
    if (a->model && a->hf && !a->recipe && !a->type && !a->preset && !a->out) return QS_EXIT_OK;
    if (!a->model || !a->out || (!!a->recipe + !!a->type + !!a->preset) != 1 ||
        (strcmp(a->format, "gguf") && strcmp(a->format, "gptq") && strcmp(a->format, "awq")))
        return qs_cli_usage_error(
            "usage: quantscope export MODEL (--recipe R.json | --type T | --preset NAME) -o OUT.gguf "
            "[--imatrix FILE] [--ftype NAME] [--force] [--vocab TOKENIZER.gguf] [--calib TEXT …] [--llama-quantize [--tensor-type-file TYPES.txt]]\n"
            "       quantscope export MODEL (--recipe R.json | --type CONFIG) --format gptq|awq -o DIR [--calib TEXT …]\n"
            "       quantscope export MODEL --hf DIR");
    if (a->preset && qs_preset_ftype(a->preset) < 0) return qs_cli_usage_error("export: unknown preset '%s'", a->preset);
    if (a->ftype_name && qs_preset_ftype(a->ftype_name) < 0)
        return qs_cli_usage_error("export: unknown file type '%s'", a->ftype_name);
    return QS_EXIT_OK;
}

/* runs the RTN/GPTQ/AWQ entries of t (calibrated when they need it) into grids */
static int collect_grids(const export_args *a, const qs_model *m, const qs_gguf *tok, const qs_recipe_table *t,
                         qs_qgrid *grids)
{
    qs_recipe_sink sink = qs_export_grid_sink(grids);
    qs_cli_prog cp = qs_cli_prog_start("quantizing: tensor");
    qs_progress prog = {0, 0, 0, qs_cli_progress, &cp};
    if (!qs_recipe_table_needs_calib(t)) {
        qs_err err = {0};
        return qs_recipe_apply(t, NULL, NULL, 0, &sink, &prog, &err) ? qs_cli_fail(a->model, &err) : QS_EXIT_OK;
    }
    qs_vocab *v;
    qs_llm *l;
    int rc = qs_cli_vocab_llm_from(a->model, m, tok, a->calib.ctx, &v, &l);
    if (!rc) rc = qs_cli_apply_calibrated(a->model, t, l, v, &a->calib, &sink, &prog);
    qs_llm_free(l);
    qs_vocab_free(v);
    return rc;
}

static int write_gguf(const export_args *a, const qs_model *m, const qs_recipe_table *t, const qs_imatrix *im,
                      const qs_qgrid *grids, const qs_gguf *tok, int ftype)
{
    qs_err err = {0};
    qs_export_opts o = {ftype, im, a->imat, 0, grids, tok};
    if (!m->gguf && !tok && !strcmp(m->tok.kind, "none"))
        fprintf(stderr, "quantscope: %s: no tokenizer.json beside the checkpoint and no --vocab: the GGUF gets no tokenizer\n",
                a->model);
    qs_cli_prog cp = qs_cli_prog_start("export: tensor");
    qs_progress prog = {0, 0, 0, qs_cli_progress, &cp};
    double t0 = qs_cli_now();
    if (qs_export_gguf(m, t, &o, a->out, &prog, &err)) return qs_cli_fail(a->out, &err);
    struct stat st;
    stat(a->out, &st);
    printf("wrote %s: %lld bytes in %.2f s\n", a->out, (long long)st.st_size, qs_cli_now() - t0);
    return QS_EXIT_OK;
}

/* --format gptq|awq: an HF checkpoint with the quantized linears packed */
static int write_checkpoint(const export_args *a, const qs_model *m, const qs_recipe_table *t, const qs_qgrid *grids,
                            const qs_gguf *tok)
{
    qs_err err = {0};
    qs_vocab *v = tok ? qs_vocab_load(tok, &err) : qs_model_vocab(m, &err); /* none: the model's own ids */
    int32_t bos = v ? qs_vocab_bos(v) : m->tok.bos, eos = v ? qs_vocab_eos(v) : m->tok.eos;
    qs_vocab_free(v);
    char warning[256];
    double t0 = qs_cli_now();
    qs_ckpt_format fmt = !strcmp(a->format, "awq") ? QS_CKPT_AWQ : QS_CKPT_GPTQ;
    if (qs_export_hf_quant(m, t, grids, fmt, bos, eos, a->out, warning, sizeof warning, &err)) return qs_cli_fail(a->out, &err);
    if (warning[0]) fprintf(stderr, "quantscope: %s: %s\n", a->out, warning);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", a->out);
    struct stat st;
    stat(path, &st);
    printf("wrote %s/config.json and %s: %lld bytes in %.2f s\n", a->out, path, (long long)st.st_size, qs_cli_now() - t0);
    return QS_EXIT_OK;
}

static int export_recipe(const export_args *a, qs_model *m, const qs_gguf *tok)
{
    int ftype = a->ftype_name ? qs_preset_ftype(a->ftype_name) : a->preset ? qs_preset_ftype(a->preset) : -1;
    qs_err err = {0};
    qs_recipe r;
    qs_recipe_table t = {0};
    qs_imatrix *im = NULL;
    qs_qgrid *grids = NULL;
    int rc = QS_EXIT_OK;
    if (a->recipe) {
        if (qs_recipe_load(a->recipe, &r, &err)) return qs_cli_fail(a->recipe, &err);
    } else {
        qs_recipe_init(&r, m);
        if (a->type && qs_recipe_set_default(&r, a->type, &err)) rc = qs_cli_fail("--type", &err);
        if (a->preset && qs_recipe_from_preset(&r, m, a->preset, a->imat != NULL, &err)) rc = qs_cli_fail(a->model, &err);
    }
    /* a checkpoint reorders q/k rows by head: refuse a model that cannot go there before quantizing */
    if (!rc && strcmp(a->format, "gguf") && qs_export_hf_model_check(m, &err)) rc = qs_cli_fail(a->model, &err);
    if (!rc && a->imat && !(im = qs_imatrix_load(a->imat, &err))) rc = qs_cli_fail(a->imat, &err);
    if (!rc && qs_recipe_resolve(&r, m, a->force, &t, &err)) rc = qs_cli_fail(a->recipe ? a->recipe : a->model, &err);
    if (!rc && t.warnings[0]) fprintf(stderr, "%s", t.warnings);
    if (!rc && (a->lq || a->llama_quantize)) rc = write_llama_quantize(m, &t, a->imat, a->lq, a->out);
    else if (!rc) {
        bool grid = qs_recipe_table_has_non_ggml(&t) || strcmp(a->format, "gguf");
        if (!strcmp(a->format, "gguf") && qs_export_gguf_check(&t, &err)) rc = qs_cli_fail(a->out, &err);
        if (!rc && grid && !(grids = calloc((size_t)(t.n ? t.n : 1), sizeof *grids))) rc = qs_cli_fail(a->model, &(qs_err){QS_E_OOM, "out of memory"});
        if (!rc && grid) rc = collect_grids(a, m, tok, &t, grids);
        if (!rc && !strcmp(a->format, "gguf")) rc = write_gguf(a, m, &t, im, grids, tok, ftype);
        else if (!rc) rc = write_checkpoint(a, m, &t, grids, tok);
    }
    qs_export_grids_free(grids, t.n);
    qs_recipe_table_free(&t);
    qs_recipe_free(&r);
    qs_imatrix_free(im);
    return rc;
}

int qs_cli_export(int argc, char **argv)
{
    export_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    qs_err err = {0};
    /* refuse a bad output before the long work */
    if (a.hf && !a.out && qs_adir_check(a.hf, qs_ckpt_files, &err)) return qs_cli_fail(a.hf, &err);
    if (a.hf && !a.out) return export_hf(a.model, a.hf);
    if (!a.llama_quantize && !a.lq && (strcmp(a.format, "gguf") ? qs_adir_check(a.out, qs_ckpt_files, &err) : qs_output_check(a.out, 0, &err)))
        return qs_cli_fail(a.out, &err);
    qs_model *m = qs_model_open(a.model, &err);
    if (!m) return qs_cli_fail(a.model, &err);
    qs_gguf *tok = a.vocab ? qs_gguf_open(a.vocab, &err) : NULL;
    if (a.vocab && !tok) rc = qs_cli_fail(a.vocab, &err);
    if (!rc) rc = export_recipe(&a, m, tok);
    qs_gguf_close(tok);
    qs_model_close(m);
    return rc;
}
