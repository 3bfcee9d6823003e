/* cli/cli_scan.c — `quantscope scan`: the sensitivity ranking as a table with bars and a CSV
 * (libcsv). Rows are appended to OUT.partial as they are measured, so --resume continues an
 * interrupted scan; the sorted CSV is written to a temp file and renamed. */
#include <csv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util/fileio.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/recipe/recipe.h"
#include "core/recipe/scan.h"
#include "core/model/tokenizer.h"
#include "cli/cli.h"

#define SCAN_HEADER "rank,unit,block,params,config,bpw,kld,kld_unc,ppl,dppl,same_top"

typedef struct scan_args {
    const char *path, *config, *text, *csv;
    bool per_block, resume;
    int ctx, chunks;
} scan_args;

static int parse(int argc, char **argv, scan_args *a)
{
    *a = (scan_args){NULL, NULL, NULL, NULL, false, false, 256, 16};
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        if (!strcmp(argv[i], "--config") && next) a->config = argv[++i];
        else if ((!strcmp(argv[i], "--text") || !strcmp(argv[i], "-f")) && next) a->text = argv[++i];
        else if (!strcmp(argv[i], "--csv") && next) a->csv = argv[++i];
        else if (!strcmp(argv[i], "--ctx") && next) a->ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunks") && next) a->chunks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--resume")) a->resume = true;
        else if (!strcmp(argv[i], "--per") && next) {
            const char *p = argv[++i];
            if (strcmp(p, "block") && strcmp(p, "tensor")) return qs_cli_usage_error("scan: --per takes block or tensor");
            a->per_block = !strcmp(p, "block");
        } else if (argv[i][0] == '-') return qs_cli_usage_error("scan: unknown or incomplete option '%s'", argv[i]);
        else if (!a->path) a->path = argv[i];
        else return qs_cli_usage_error("scan: unexpected argument '%s'", argv[i]);
    }
    if (!a->path || !a->config || !a->text || !a->csv || a->ctx < 4)
        return qs_cli_usage_error("usage: quantscope scan MODEL --config CONFIG --text FILE --csv OUT.csv [--per block|tensor] "
                                  "[--ctx N] [--chunks N] [--resume]");
    return QS_EXIT_OK;
}

static void put_row(FILE *f, int rank, const qs_scan_row *r, const char *config)
{
    fprintf(f, "%d,", rank);
    csv_fwrite(f, r->unit, strlen(r->unit));
    fprintf(f, ",%d,%lld,", r->block, (long long)r->params);
    csv_fwrite(f, config, strlen(config));
    fprintf(f, ",%.4f,%.9g,%.9g,%.9g,%.9g,%.6g\n", r->bpw, r->kld, r->kld_unc, r->ppl, r->dppl, r->same_top);
}

typedef struct partial {
    FILE *f;
    const char *config;
} partial;

static void on_row(void *ctx, const qs_scan_row *r)
{
    partial *p = ctx;
    put_row(p->f, 0, r, p->config);
    fflush(p->f);
}

/* ---- reading OUT.partial back (libcsv) ---- */
typedef struct reader {
    qs_scan_row *rows;
    int n, cap, field;
    qs_scan_row cur;
    char config[256], want[256];
    const char *want_config; /* "": the first row's */
    int bad;
    bool oom;                /* a row was dropped for want of memory */
} reader;

static void field_cb(void *s, size_t len, void *data)
{
    reader *r = data;
    char v[256];
    snprintf(v, sizeof v, "%.*s", (int)(len < 255 ? len : 255), (const char *)s);
    switch (r->field++) {
    case 1: snprintf(r->cur.unit, sizeof r->cur.unit, "%s", v); break;
    case 2: r->cur.block = atoi(v); break;
    case 3: r->cur.params = atoll(v); break;
    case 4: snprintf(r->config, sizeof r->config, "%s", v); break;
    case 5: r->cur.bpw = atof(v); break;
    case 6: r->cur.kld = atof(v); break;
    case 7: r->cur.kld_unc = atof(v); break;
    case 8: r->cur.ppl = atof(v); break;
    case 9: r->cur.dppl = atof(v); break;
    case 10: r->cur.same_top = atof(v); break;
    default: break;
    }
}

static void row_cb(int c, void *data)
{
    (void)c;
    reader *r = data;
    bool header = !strcmp(r->cur.unit, "unit");
    if (!header && !r->want_config[0]) snprintf(r->want, sizeof r->want, "%s", r->config), r->want_config = r->want;
    if (!header && (r->field != 11 || strcmp(r->config, r->want_config))) r->bad++;
    else if (!header) {
        if (r->n == r->cap) {
            int cap = r->cap ? 2 * r->cap : 64;
            qs_scan_row *p = realloc(r->rows, (size_t)cap * sizeof *p);
            if (p) r->rows = p, r->cap = cap;
        }
        if (r->n < r->cap) r->rows[r->n++] = r->cur;
        else r->oom = true;
    }
    memset(&r->cur, 0, sizeof r->cur);
    r->field = 0;
}

static int read_scan(const char *path, const char *config, reader *r)
{
    qs_err err = {0};
    size_t len;
    memset(r, 0, sizeof *r);
    r->want_config = config;
    char *buf = qs_read_file(path, (size_t)1 << 28, &len, &err);
    if (!buf) return qs_cli_fail(path, &err);
    struct csv_parser p;
    csv_init(&p, 0);
    size_t used = csv_parse(&p, buf, len, field_cb, row_cb, r);
    csv_fini(&p, field_cb, row_cb, r);
    csv_free(&p);
    free(buf);
    if (r->oom) {
        qs_err e = {QS_E_OOM, "out of memory"};
        return qs_cli_fail(path, &e);
    }
    if (used != len || r->bad) {
        qs_err e = {QS_E_INPUT, ""};
        snprintf(e.msg, sizeof e.msg, "%s", config[0] ? "not a partial scan of this config (remove it, or scan without --resume)"
                                                       : "not a scan CSV of one config (quantscope scan --csv)");
        return qs_cli_fail(path, &e);
    }
    return QS_EXIT_OK;
}

int qs_cli_read_scan(const char *path, qs_scan_row **rows, int *n, char *config, size_t cn)
{
    reader r;
    int rc = read_scan(path, "", &r);
    if (!rc && !r.n) rc = qs_cli_fail(path, &(qs_err){QS_E_INPUT, "no rows"});
    if (rc) {
        free(r.rows);
        return rc;
    }
    snprintf(config, cn, "%s", r.want);
    *rows = r.rows, *n = r.n;
    return QS_EXIT_OK;
}

static void print_ranking(const qs_scan_row *rows, int n, double ppl_base)
{
    double mx = n ? rows[0].kld : 0;
    printf("base PPL %.4f; ranked by mean KL divergence (the most sensitive first)\n", ppl_base);
    printf("%4s %-28s %10s %10s %9s  %s\n", "rank", "unit", "KLD", "PPL", "dPPL", "");
    for (int i = 0; i < n; i++) {
        char bar[64] = "";
        int w = mx > 0 ? (int)lround(30.0 * rows[i].kld / mx) : 0;
        for (int k = 0; k < w && k < 30; k++) strcat(bar, "#");
        printf("%4d %-28s %10.6f %10.4f %+9.4f  %s\n", i + 1, rows[i].unit, rows[i].kld, rows[i].ppl, rows[i].dppl, bar);
    }
}

int qs_cli_scan(int argc, char **argv)
{
    scan_args a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc;
    qs_err err = {0};
    qs_scan_opts o = {.per_block = a.per_block, .n_ctx = a.ctx, .n_chunks = a.chunks};
    bool keep;
    if (qs_config_parse(a.config, &o.cfg, &keep, &err) || keep)
        return keep ? qs_cli_usage_error("scan: 'keep' is not a config to scan") : qs_cli_fail(a.config, &err);
    char cfg[128], part[4200];
    qs_config_format(&o.cfg, false, cfg, sizeof cfg);
    snprintf(part, sizeof part, "%s.partial", a.csv);
    reader done = {0};
    if (a.resume && access(part, R_OK) == 0 && (rc = read_scan(part, cfg, &done))) return free(done.rows), rc;
    size_t len;
    char *text = qs_read_file(a.text, (size_t)1 << 30, &len, &err);
    if (!text) return free(done.rows), qs_cli_fail(a.text, &err);
    qs_model *m = qs_model_open(a.path, &err);
    qs_vocab *v = NULL;
    qs_llm *l = NULL;
    rc = m ? qs_cli_vocab_llm(a.path, m, a.ctx, &v, &l) : qs_cli_fail(a.path, &err);
    partial p = {NULL, cfg};
    if (!rc && qs_output_check(part, 0, &err)) rc = qs_cli_fail(part, &err); /* no input, link, FIFO or device */
    if (!rc && !(p.f = fopen(part, done.n ? "a" : "w"))) rc = qs_cli_fail(part, &(qs_err){QS_E_IO, "cannot write it"});
    if (!rc && !done.n) fprintf(p.f, SCAN_HEADER "\n");
    qs_scan_row *rows = NULL;
    int n = 0;
    double ppl_base = 0, t0 = qs_cli_now();
    qs_cli_prog cp = qs_cli_prog_start("scan: unit");
    qs_progress prog = {0, 0, 0, qs_cli_progress, &cp};
    if (!rc && done.n) fprintf(stderr, "resuming: %d units already measured in %s\n", done.n, part);
    if (!rc && qs_scan_run(l, m, v, text, len, &o, done.rows, done.n, on_row, &p, &prog, &rows, &n, &ppl_base, &err))
        rc = qs_cli_fail(a.path, &err);
    if (p.f) fclose(p.f);
    if (!rc) {
        print_ranking(rows, n, ppl_base);
        char(*units)[256];
        int nu = 0;
        if (!qs_scan_units(m, a.per_block, &units, &nu, &err) && nu > n)
            printf("%d units left out: %s cannot take their shapes\n", nu - n, cfg);
        free(units);
        qs_afile af = {0};
        if (qs_afile_open(&af, a.csv, &err)) rc = qs_cli_fail(a.csv, &err);
        else {
            fprintf(af.f, SCAN_HEADER "\n");
            for (int i = 0; i < n; i++) put_row(af.f, i + 1, &rows[i], cfg);
            if (qs_afile_commit(&af, &err)) rc = qs_cli_fail(a.csv, &err);
            else unlink(part), printf("wrote %s (%d units, %.1f s)\n", a.csv, n, qs_cli_now() - t0);
        }
    }
    free(rows);
    free(done.rows);
    qs_llm_free(l);
    qs_vocab_free(v);
    qs_model_close(m);
    free(text);
    return rc;
}
