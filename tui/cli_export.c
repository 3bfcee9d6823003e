/* tui/cli_export.c — `quantscope export MODEL (--recipe R.json | --type T | --preset NAME) -o OUT.gguf`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/export.h"
#include "core/fileio.h"
#include "core/ggml_types.h"
#include "core/imatrix.h"
#include "core/model.h"
#include "core/presets.h"
#include "core/tokenizer.h"
#include "core/recipe.h"
#include "tui/cli.h"

static void export_progress(void *ctx, int64_t done, int64_t total)
{
    (void)ctx;
    fprintf(stderr, "\rexport: tensor %lld/%lld   ", (long long)done, (long long)total);
    if (done == total) fputc('\n', stderr);
}

/* --llama-quantize: the tensor-type file and the command that makes llama-quantize write this recipe */
static int write_llama_quantize(const qs_model *m, const qs_recipe_table *t, const char *imat, const char *types_path,
                                const char *out)
{
    qs_err err = {0};
    char *text, *cmd;
    if (qs_export_llama_quantize(m, t, imat, types_path, out, &text, &cmd, &err)) return qs_cli_fail(m->path, &err);
    qs_afile af;
    int rc = qs_afile_open(&af, types_path, &err) || qs_afile_write(&af, text, strlen(text), &err) ||
             qs_afile_commit(&af, &err);
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

int qs_cli_export(int argc, char **argv)
{
    const char *model = NULL, *recipe = NULL, *type = NULL, *out = NULL, *imat = NULL, *ftype_name = NULL, *preset = NULL, *lq = NULL, *hf = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        if (!strcmp(argv[i], "--recipe") && next) recipe = argv[++i];
        else if (!strcmp(argv[i], "--type") && next) type = argv[++i];
        else if (!strcmp(argv[i], "--preset") && next) preset = argv[++i];
        else if (!strcmp(argv[i], "--llama-quantize") && next) lq = argv[++i];
        else if (!strcmp(argv[i], "--hf") && next) hf = argv[++i];
        else if (!strcmp(argv[i], "-o") && next) out = argv[++i];
        else if (!strcmp(argv[i], "--imatrix") && next) imat = argv[++i];
        else if (!strcmp(argv[i], "--ftype") && next) ftype_name = argv[++i];
        else if (!strcmp(argv[i], "--force")) force = true;
        else if (argv[i][0] == '-') return qs_cli_usage_error("export: unknown or incomplete option '%s'", argv[i]);
        else if (!model) model = argv[i];
        else return qs_cli_usage_error("export: unexpected argument '%s'", argv[i]);
    }
    if (model && hf && !recipe && !type && !preset && !out) return export_hf(model, hf);
    if (!model || !out || (!!recipe + !!type + !!preset) != 1)
        return qs_cli_usage_error("usage: quantscope export MODEL (--recipe R.json | --type T | --preset NAME) -o OUT.gguf "
                                  "[--imatrix FILE] [--ftype NAME] [--force] [--llama-quantize TYPES.txt]\n"
                                  "       quantscope export MODEL --hf DIR");
    int ftype = ftype_name ? qs_preset_ftype(ftype_name) : preset ? qs_preset_ftype(preset) : -1;
    if (preset && qs_preset_ftype(preset) < 0) return qs_cli_usage_error("export: unknown preset '%s'", preset);
    if (ftype_name && ftype < 0) return qs_cli_usage_error("export: unknown file type '%s'", ftype_name);
    qs_err err = {0};
    qs_model *m = qs_model_open(model, &err);
    if (!m) return qs_cli_fail(model, &err);
    qs_recipe r;
    qs_recipe_table t = {0};
    qs_imatrix *im = NULL;
    int rc = QS_EXIT_OK;
    if (recipe) {
        if (qs_recipe_load(recipe, &r, &err)) rc = qs_cli_fail(recipe, &err);
    } else {
        qs_recipe_init(&r, m);
        if (type && qs_recipe_set_default(&r, type, &err)) rc = qs_cli_fail("--type", &err);
        if (preset && qs_recipe_from_preset(&r, m, preset, imat != NULL, &err)) rc = qs_cli_fail(model, &err);
    }
    if (!rc && imat && !(im = qs_imatrix_load(imat, &err))) rc = qs_cli_fail(imat, &err);
    if (!rc && qs_recipe_resolve(&r, m, force, &t, &err)) rc = qs_cli_fail(recipe ? recipe : model, &err);
    if (!rc && lq) {
        if (t.warnings[0]) fprintf(stderr, "%s", t.warnings);
        rc = write_llama_quantize(m, &t, imat, lq, out);
    } else if (!rc) {
        if (t.warnings[0]) fprintf(stderr, "%s", t.warnings);
        qs_export_opts o = {ftype, im, imat, 0};
        qs_progress prog = {0, 0, 0, export_progress, NULL};
        double t0 = qs_cli_now();
        if (qs_export_gguf(m, &t, &o, out, &prog, &err)) rc = qs_cli_fail(out, &err);
        else {
            struct stat st;
            stat(out, &st);
            printf("wrote %s: %lld bytes in %.2f s\n", out, (long long)st.st_size,
                   qs_cli_now() - t0);
        }
    }
    qs_recipe_table_free(&t);
    qs_recipe_free(&r);
    qs_imatrix_free(im);
    qs_model_close(m);
    return rc;
}
