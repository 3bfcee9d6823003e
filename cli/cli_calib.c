/* cli/cli_calib.c — calibration on the command line: the shared --calib options, calibrated
 * recipe application, `quantscope imatrix`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/data/calib.h"
#include "core/util/fileio.h"
#include "core/formats/gguf.h"
#include "core/model/hf_tokenizer.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/recipe/recipe.h"
#include "core/model/tokenizer.h"
#include "cli/cli.h"

qs_calib_opts qs_cli_calib_opts(const qs_cli_calib *c)
{
    qs_calib_opts o;
    qs_calib_opts_default(&o);
    o.n_chunks = c->chunks, o.n_ctx = c->ctx, o.keep_rows = c->rows;
    return o;
}

void qs_cli_calib_init(qs_cli_calib *c)
{
    qs_calib_opts d;
    qs_calib_opts_default(&d);
    *c = (qs_cli_calib){NULL, d.n_chunks, d.n_ctx, d.keep_rows, false};
}

int qs_cli_calib_arg(int argc, char **argv, int *i, qs_cli_calib *c)
{
    const char *a = argv[*i];
    bool next = *i + 1 < argc;
    if (!strcmp(a, "--one-shot")) return c->one_shot = true, 1;
    int *num = !strcmp(a, "--calib-chunks") ? &c->chunks : !strcmp(a, "--calib-ctx") ? &c->ctx
             : !strcmp(a, "--calib-rows") ? &c->rows : NULL;
    if (!num && strcmp(a, "--calib")) return 0;
    if (!next) return -1;
    if (num) *num = atoi(argv[++*i]);
    else c->text = argv[++*i];
    return 1;
}

int qs_cli_apply_calibrated(const char *path, const qs_recipe_table *t, qs_llm *l, const qs_vocab *v, const qs_cli_calib *c,
                            const qs_recipe_sink *sink, qs_progress *prog)
{
    qs_err err = {0};
    if (!c || !c->text) return qs_cli_fail(path, &(qs_err){QS_E_USAGE, "gptq/awq entries need calibration text: --calib TEXT"});
    if (!v) return qs_cli_fail(path, &(qs_err){QS_E_UNSUPPORTED, "calibration needs the model's tokenizer"});
    size_t len;
    char *text = qs_read_file(c->text, (size_t)1 << 30, &len, &err);
    if (!text) return qs_cli_fail(c->text, &err);
    qs_calib_opts o = qs_cli_calib_opts(c);
    double t0 = qs_cli_now();
    int rc = qs_recipe_apply_calibrated(t, l, v, text, len, &o, !c->one_shot, 0, sink, prog, &err) ? qs_cli_fail(c->text, &err)
                                                                                               : QS_EXIT_OK;
    if (!rc) fprintf(stderr, "calibrated on %s (%d chunks of %d%s) and quantized in %.1f s\n", c->text, c->chunks, c->ctx,
                     c->one_shot ? ", one shot" : "", qs_cli_now() - t0);
    free(text);
    return rc;
}


int qs_cli_vocab_llm(const char *path, const qs_model *m, int ctx, qs_vocab **v, qs_llm **l)
{
    return qs_cli_vocab_llm_from(path, m, NULL, ctx, v, l);
}

int qs_cli_vocab_llm_from(const char *path, const qs_model *m, const qs_gguf *tok, int ctx, qs_vocab **v, qs_llm **l)
{
    qs_err err = {0};
    *v = NULL, *l = NULL;
    *v = tok ? qs_vocab_load(tok, &err) : qs_model_vocab(m, &err); /* GGUF, or the checkpoint's tokenizer.json */
    if (!*v || !(*l = qs_llm_new(m, ctx, &err))) {
        qs_vocab_free(*v);
        *v = NULL;
        return qs_cli_fail(path, &err);
    }
    return QS_EXIT_OK;
}

int qs_cli_collect(qs_llm *l, const qs_vocab *v, const qs_cli_calib *c, const char *prefix, bool hessians,
                   qs_calib_set **out)
{
    qs_err err = {0};
    size_t len;
    char *text = qs_read_file(c->text, (size_t)1 << 30, &len, &err);
    if (!text) return qs_cli_fail(c->text, &err);
    qs_calib_opts o = qs_cli_calib_opts(c);
    o.prefix = prefix, o.hessians = hessians;
    qs_cli_prog cp = qs_cli_prog_start("calibrating: chunk");
    qs_progress prog = {0, 0, 0, qs_cli_progress, &cp};
    int rc = qs_calib_collect(l, v, text, len, &o, &prog, out, &err) ? qs_cli_fail(c->text, &err) : QS_EXIT_OK;
    free(text);
    return rc;
}

/* `quantscope imatrix MODEL --text FILE -o OUT.gguf [--ctx N] [--chunks N]` */
int qs_cli_imatrix(int argc, char **argv)
{
    const char *path = NULL, *out = NULL;
    qs_cli_calib c;
    qs_cli_calib_init(&c);
    c.ctx = 512, c.chunks = -1, c.rows = 0;
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        if ((!strcmp(argv[i], "--text") || !strcmp(argv[i], "-f")) && next) c.text = argv[++i];
        else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) && next) out = argv[++i];
        else if ((!strcmp(argv[i], "--ctx") || !strcmp(argv[i], "-c")) && next) c.ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunks") && next) c.chunks = atoi(argv[++i]);
        else if (argv[i][0] == '-') return qs_cli_usage_error("imatrix: unknown or incomplete option '%s'", argv[i]);
        else if (!path) path = argv[i];
        else return qs_cli_usage_error("imatrix: unexpected argument '%s'", argv[i]);
    }
    if (!path || !c.text || !out || c.ctx < 4)
        return qs_cli_usage_error("usage: quantscope imatrix MODEL --text FILE -o OUT.gguf [--ctx N] [--chunks N]");
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    if (!m) return qs_cli_fail(path, &err);
    qs_vocab *v;
    qs_llm *l;
    qs_calib_set *s = NULL;
    int rc = qs_cli_vocab_llm(path, m, c.ctx, &v, &l);
    if (!rc) rc = qs_cli_collect(l, v, &c, "blk.", false, &s);
    if (!rc) {
        const char *base = strrchr(c.text, '/');
        if (qs_calib_write_imatrix(s, out, base ? base + 1 : c.text, &err)) rc = qs_cli_fail(out, &err);
        else {
            int n = 0;
            for (int i = 0; i < s->n_sites; i++) n += s->sites[i].n_names;
            printf("wrote %s: %d weights, %d chunks of %d tokens\n", out, n, s->n_chunks, s->n_ctx);
        }
    }
    qs_calib_set_free(s);
    qs_llm_free(l);
    qs_vocab_free(v);
    qs_model_close(m);
    return rc;
}
