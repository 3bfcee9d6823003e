/* cli/cli_recipe.c — `quantscope recipe MODEL … -o R.json` and `quantscope recipe show R.json`,
 * and the --recipe option shared by generate and ppl. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/ggml_types.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/util/progress.h"
#include "core/recipe/recipe.h"
#include "core/util/rx.h"
#include "cli/cli.h"

static void print_table(const qs_recipe_table *t)
{
    printf("%-36s %-16s %-28s %8s %12s\n", "tensor", "shape", "config", "bpw", "bytes");
    int64_t bytes = 0, orig = 0, params = 0;
    for (int64_t i = 0; i < t->n; i++) {
        const qs_recipe_entry *e = &t->e[i];
        char cfg[96], shape[48];
        if (e->keep) snprintf(cfg, sizeof cfg, "keep (%s)", e->t->dtype);
        else qs_config_format(&e->cfg, false, cfg, sizeof cfg);
        if (!e->keep && e->ggml_type >= 0 && e->ggml_type != e->cfg.method->ggml_type)
            snprintf(cfg + strlen(cfg), sizeof cfg - strlen(cfg), " → %s", qs_type_name(e->ggml_type));
        snprintf(shape, sizeof shape, "[%" PRId64 ", %" PRId64 "]", qs_tensor_nrows(e->t), e->t->ne[0]);
        printf("%-36s %-16s %-28s %8.3f %12" PRId64 "\n", QS_ESC(e->t->gguf_name[0] ? e->t->gguf_name : e->t->name), shape, cfg,
               e->bpw, e->bytes);
        bytes += e->bytes;
        orig += (int64_t)e->t->nbytes;
        params += qs_tensor_nelements(e->t);
    }
    printf("\ntotals: %" PRId64 " bytes (%.2f MiB), %.3f bits per weight; the file: %" PRId64 " bytes, %.3f bpw (%.1f%%)\n",
           bytes, (double)bytes / 1048576.0, params ? 8.0 * (double)bytes / (double)params : 0, orig,
           params ? 8.0 * (double)orig / (double)params : 0, orig ? 100.0 * (double)bytes / (double)orig : 0);
}

static int show(int argc, char **argv)
{
    const char *path = NULL, *model = NULL;
    bool force = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--force")) force = true;
        else if (argv[i][0] == '-') return qs_cli_usage_error("recipe show: unknown option '%s'", argv[i]);
        else if (!path) path = argv[i];
        else return qs_cli_usage_error("recipe show: unexpected argument '%s'", argv[i]);
    }
    if (!path) return qs_cli_usage_error("usage: quantscope recipe show R.json [--model MODEL] [--force]");
    qs_recipe r;
    qs_err err = {0};
    if (qs_recipe_load(path, &r, &err)) return qs_cli_fail(path, &err);
    char cfg[96];
    printf("recipe:   %s (for %s, %s, %" PRId64 " tensors, %s)\n", QS_ESC(path), QS_ESC(r.model_file), QS_ESC(r.model_arch),
           r.model_tensors, QS_ESC(r.table_hash));
    qs_config_format(&r.def, r.def_keep, cfg, sizeof cfg);
    printf("default:  %s\n", cfg);
    for (int i = 0; i < r.n_rules; i++) {
        qs_config_format(&r.rules[i].cfg, r.rules[i].keep, cfg, sizeof cfg);
        printf("rule %-3d %-40s %s\n", i + 1, QS_ESC(r.rules[i].pattern), cfg);
    }
    for (int i = 0; i < r.n_overrides; i++) {
        qs_config_format(&r.overrides[i].cfg, r.overrides[i].keep, cfg, sizeof cfg);
        printf("override %-40s %s\n", QS_ESC(r.overrides[i].pattern), cfg);
    }
    int rc = QS_EXIT_OK;
    if (model) {
        qs_model *m = qs_model_open(model, &err);
        qs_recipe_table t;
        if (!m) rc = qs_cli_fail(model, &err);
        else if (qs_recipe_resolve(&r, m, force, &t, &err)) rc = qs_cli_fail(path, &err);
        else {
            putchar('\n');
            print_table(&t);
            if (t.warnings[0]) fprintf(stderr, "%s", t.warnings);
            qs_recipe_table_free(&t);
        }
        qs_model_close(m);
    }
    qs_recipe_free(&r);
    return rc;
}

static int too_complex(const char *pattern)
{
    qs_err err = {QS_E_INPUT, ""};
    snprintf(err.msg, sizeof err.msg, "rule '%.80s' is too complex", pattern);
    return qs_cli_fail("--set", &err);
}

/* --set after --preset / --from-gguf: the per-tensor overrides those wrote would beat a rule, so
 * the pattern becomes overrides of the tensors it matches */
static int set_overrides(qs_recipe *r, const qs_model *m, const char *pattern, const char *config)
{
    qs_err err = {0};
    qs_rx *re = qs_rx_compile(pattern, 0, &err);
    if (!re && err.code != QS_E_USAGE && strstr(err.msg, "too complex")) return too_complex(pattern);
    if (!re) return qs_cli_usage_error("--set: '%s' is not a regular expression", pattern);
    int hits = 0, rc = QS_EXIT_OK;
    for (int64_t i = 0; i < m->n_tensors && !rc; i++) {
        const qs_tensor *t = &m->tensors[i];
        const char *name = t->gguf_name[0] ? t->gguf_name : t->name;
        if (!qs_recipe_quantizable(t)) continue;
        int found = qs_rx_search(re, name, &err);
        if (found < 0) {
            rc = too_complex(pattern);
            break;
        }
        if (!found) continue;
        if (qs_recipe_set_override(r, name, config, &err)) rc = qs_cli_fail("--set", &err);
        hits++;
    }
    qs_rx_free(re);
    if (!rc && !hits) return qs_cli_fail("--set", &(qs_err){QS_E_USAGE, "the pattern matches no tensor"});
    return rc;
}

int qs_cli_recipe(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "show")) return show(argc, argv);
    const char *model = NULL, *out = NULL, *def = NULL, *from = NULL, *preset = NULL, *sets[64];
    bool with_imatrix = false;
    int nsets = 0;
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        if (!strcmp(argv[i], "-o") && next) out = argv[++i];
        else if (!strcmp(argv[i], "--default") && next) def = argv[++i];
        else if (!strcmp(argv[i], "--from-gguf") && next) from = argv[++i];
        else if (!strcmp(argv[i], "--preset") && next) preset = argv[++i];
        else if (!strcmp(argv[i], "--with-imatrix")) with_imatrix = true;
        else if (!strcmp(argv[i], "--set") && next && nsets < 64) sets[nsets++] = argv[++i];
        else if (argv[i][0] == '-') return qs_cli_usage_error("recipe: unknown or incomplete option '%s'", argv[i]);
        else if (!model) model = argv[i];
        else return qs_cli_usage_error("recipe: unexpected argument '%s'", argv[i]);
    }
    if (!model || !out)
        return qs_cli_usage_error("usage: quantscope recipe MODEL [--from-gguf QUANTIZED.gguf | --preset NAME [--with-imatrix]] [--default CONFIG] [--set PATTERN=CONFIG …] -o R.json\n"
                                  "       quantscope recipe show R.json [--model MODEL]\n"
                                  "CONFIG: keep | METHOD[:knob=value,…], e.g. q4_K, rtn:bits=3,group=64,asym=true");
    qs_err err = {0};
    qs_model *m = qs_model_open(model, &err);
    if (!m) return qs_cli_fail(model, &err);
    qs_recipe r;
    qs_recipe_init(&r, m);
    int rc = def && qs_recipe_set_default(&r, def, &err) ? qs_cli_fail("--default", &err) : QS_EXIT_OK;
    if (!rc && from) {
        qs_model *q = qs_model_open(from, &err);
        if (!q || qs_recipe_from_model(&r, q, &err)) rc = qs_cli_fail(from, &err);
        qs_model_close(q);
    }
    if (!rc && preset && qs_recipe_from_preset(&r, m, preset, with_imatrix, &err)) rc = qs_cli_fail(model, &err);
    for (int i = 0; i < nsets && !rc; i++) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", sets[i]);
        char *eq = strchr(buf, '=');
        if (!eq) {
            rc = qs_cli_usage_error("--set takes PATTERN=CONFIG, not '%s'", sets[i]);
            break;
        }
        *eq = '\0';
        if (r.n_overrides) rc = set_overrides(&r, m, buf, eq + 1);
        else if (qs_recipe_add_rule(&r, buf, eq + 1, &err)) rc = qs_cli_fail("--set", &err);
    }
    qs_recipe_table t;
    if (!rc && qs_recipe_resolve(&r, m, false, &t, &err)) rc = qs_cli_fail(model, &err);
    else if (!rc) {
        print_table(&t);
        if (t.warnings[0]) fprintf(stderr, "%s", t.warnings);
        qs_recipe_table_free(&t);
        if (qs_recipe_save(out, &r, &err)) rc = qs_cli_fail(out, &err);
        else printf("wrote %s\n", out);
    }
    qs_recipe_free(&r);
    qs_model_close(m);
    return rc;
}

int qs_cli_recipe_table(const char *path, const qs_model *m, qs_recipe_table *t)
{
    qs_recipe r;
    qs_err err = {0};
    if (qs_recipe_load(path, &r, &err)) return qs_cli_fail(path, &err);
    int rc = qs_recipe_resolve(&r, m, false, t, &err) ? qs_cli_fail(path, &err) : QS_EXIT_OK;
    if (!rc && t->warnings[0]) fprintf(stderr, "%s", t->warnings);
    qs_recipe_free(&r);
    return rc;
}

int qs_cli_apply_table(const char *path, const qs_recipe_table *t, qs_llm *l, const qs_vocab *v, const qs_cli_calib *calib)
{
    qs_err err = {0};
    qs_cli_prog cp = qs_cli_prog_start("applying recipe: tensor");
    qs_progress prog = {0, 0, 0, qs_cli_progress, &cp};
    if (qs_recipe_table_needs_calib(t)) return qs_cli_apply_calibrated(path, t, l, v, calib, NULL, &prog);
    return qs_recipe_apply(t, l, NULL, 0, NULL, &prog, &err) ? qs_cli_fail(path, &err) : QS_EXIT_OK;
}

int qs_cli_apply_recipe(const char *path, const qs_model *m, qs_llm *l, const qs_vocab *v, const qs_cli_calib *calib)
{
    qs_recipe_table t;
    int rc = qs_cli_recipe_table(path, m, &t);
    if (rc) return rc;
    rc = qs_cli_apply_table(path, &t, l, v, calib);
    qs_recipe_table_free(&t);
    return rc;
}
