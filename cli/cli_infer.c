/* cli/cli_infer.c — `quantscope tokenize`, `generate` and `ppl`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/data/eval.h"
#include "core/util/fileio.h"
#include "core/formats/gguf.h"
#include "core/model/infer.h"
#include "core/data/kld.h"
#include "core/model/model.h"
#include "core/model/sample.h"
#include "core/model/hf_tokenizer.h"
#include "core/model/tokenizer.h"
#include "cli/cli.h"

/* model + vocabulary (a GGUF's, or an HF checkpoint's tokenizer.json), with the CLI's error
 * reporting; on failure both are NULL */
static int open_with_vocab(const char *path, qs_model **m, qs_vocab **v)
{
    qs_err err = {0};
    *v = NULL;
    if (!(*m = qs_model_open(path, &err))) return qs_cli_fail(path, &err);
    if (!(*v = qs_model_vocab(*m, &err))) {
        qs_model_close(*m);
        *m = NULL;
        return qs_cli_fail(path, &err);
    }
    return QS_EXIT_OK;
}

int qs_cli_tokenize(int argc, char **argv)
{
    const char *path = NULL, *text = NULL;
    bool bos = true, special = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-bos")) bos = false;
        else if (!strcmp(argv[i], "--parse-special")) special = true;
        else if (argv[i][0] == '-' && argv[i][1] == '-') return qs_cli_usage_error("tokenize: unknown option '%s'", argv[i]);
        else if (!path) path = argv[i];
        else if (!text) text = argv[i];
        else return qs_cli_usage_error("tokenize: unexpected argument '%s'", argv[i]);
    }
    if (!path || !text) return qs_cli_usage_error("usage: quantscope tokenize MODEL TEXT [--no-bos] [--parse-special]");
    qs_model *m;
    qs_vocab *v;
    int rc = open_with_vocab(path, &m, &v);
    if (rc) return rc;
    int32_t *ids;
    int64_t n;
    qs_err err = {0};
    if (qs_tokenize(v, text, strlen(text), bos, special, &ids, &n, &err)) rc = qs_cli_fail(path, &err);
    for (int64_t i = 0; !rc && i < n; i++) {
        char piece[256];
        size_t pl = qs_token_piece(v, ids[i], true, 0, piece, sizeof piece - 1);
        piece[pl] = '\0';
        char esc[1024];
        printf("%8d  '%s'\n", ids[i], qs_escape_n(piece, pl, esc, sizeof esc));
    }
    if (!rc) free(ids);
    qs_vocab_free(v);
    qs_model_close(m);
    return rc;
}

typedef struct gen_opts {
    const char *path, *prompt, *recipe;
    int n;
    float temp, top_p;
    int top_k;
    unsigned long long seed;
    qs_cli_calib calib;
} gen_opts;

static int parse_gen(int argc, char **argv, gen_opts *o)
{
    *o = (gen_opts){NULL, NULL, NULL, 64, 0.8f, 0.95f, 40, 42, {0}};
    qs_cli_calib_init(&o->calib);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool next = i + 1 < argc;
        int ca = qs_cli_calib_arg(argc, argv, &i, &o->calib);
        if (ca < 0) return qs_cli_usage_error("generate: '%s' needs a value", a);
        if (ca) continue;
        if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && next) o->prompt = argv[++i];
        else if ((!strcmp(a, "-n") || !strcmp(a, "--n-predict")) && next) o->n = atoi(argv[++i]);
        else if (!strcmp(a, "--temp") && next) o->temp = strtof(argv[++i], NULL);
        else if (!strcmp(a, "--top-k") && next) o->top_k = atoi(argv[++i]);
        else if (!strcmp(a, "--top-p") && next) o->top_p = strtof(argv[++i], NULL);
        else if (!strcmp(a, "--seed") && next) o->seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--recipe") && next) o->recipe = argv[++i];
        else if (a[0] == '-') return qs_cli_usage_error("generate: unknown or incomplete option '%s'", a);
        else if (!o->path) o->path = a;
        else return qs_cli_usage_error("generate: unexpected argument '%s'", a);
    }
    if (!o->path || !o->prompt || o->n < 1)
        return qs_cli_usage_error("usage: quantscope generate MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S] [--recipe R.json [--calib TEXT]]");
    return QS_EXIT_OK;
}

int qs_cli_generate(int argc, char **argv)
{
    gen_opts o;
    int rc = parse_gen(argc, argv, &o);
    if (rc) return rc;
    qs_model *m;
    qs_vocab *v;
    if ((rc = open_with_vocab(o.path, &m, &v))) return rc;
    qs_err err = {0};
    int32_t *ids = NULL;
    int64_t n = 0;
    qs_llm *l = NULL;
    /* the model's context (bounded by qs_model_open), at most what the engine takes */
    int ctx = (int)(m->hp.n_ctx ? (m->hp.n_ctx < (1u << 20) ? m->hp.n_ctx : (1u << 20)) : 2048);
    if (qs_tokenize(v, o.prompt, strlen(o.prompt), true, false, &ids, &n, &err) ||
        !(l = qs_llm_new(m, ctx, &err)))
        rc = qs_cli_fail(o.path, &err);
    else if (n >= ctx)
        rc = qs_cli_usage_error("generate: the prompt (%lld tokens) fills the context of %d", (long long)n, ctx);
    else if (o.recipe)
        rc = qs_cli_apply_recipe(o.recipe, m, l, v, &o.calib);
    if (!rc) {
        int V = qs_llm_n_vocab(l), total = (int)n + o.n < ctx ? (int)n + o.n : ctx;
        int32_t *hist = realloc(ids, (size_t)total * sizeof *hist);
        float *logits = malloc((size_t)n * (size_t)V * sizeof *logits);
        qs_sampler s;
        qs_sampler_init(&s, o.temp, o.top_k, o.top_p, o.seed);
        ids = hist;
        fputs(o.prompt, stdout);
        rc = qs_llm_eval(l, ids, (int)n, 0, logits, &err) ? qs_cli_fail(o.path, &err) : 0;
        const float *last = logits + (size_t)(n - 1) * V;
        for (int pos = (int)n; !rc && pos < total; pos++) {
            int32_t t = qs_sample(&s, last, V, ids, pos);
            if (qs_vocab_is_eog(v, t)) break;
            ids[pos] = t;
            char piece[256];
            fwrite(piece, 1, qs_token_piece(v, t, false, 0, piece, sizeof piece), stdout);
            fflush(stdout);
            if (pos + 1 < total && qs_llm_eval(l, &t, 1, pos, logits, &err)) rc = qs_cli_fail(o.path, &err);
            last = logits;
        }
        putchar('\n');
        free(logits);
    }
    free(ids);
    qs_llm_free(l);
    qs_vocab_free(v);
    qs_model_close(m);
    return rc;
}

static void print_kld(const qs_kld_stats *s)
{
    printf("====== Perplexity statistics ======\n");
    printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", s->ppl_q, s->ppl_q_unc);
    printf("Mean PPL(base)                : %10.6f ± %10.6f   (from the 16-bit base records, clipped like llama.cpp)\n",
           s->ppl_base, s->ppl_base_unc);
    printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", s->cor);
    printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", s->ln_ratio, s->ln_ratio_unc);
    printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", s->ratio, s->ratio_unc);
    printf("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", s->diff, s->diff_unc);
    printf("====== KL divergence statistics ======\n");
    printf("Mean    KLD: %10.6f ± %10.6f\n", s->kld_mean, s->kld_unc);
    static const char *const kl[8] = {"99.9%", "99.0%", "95.0%", "90.0%", "10.0%", " 5.0%", " 1.0%", " 0.1%"};
    printf("Maximum KLD: %10.6f\n", s->kld_max);
    for (int i = 0; i < 4; i++) printf("%s   KLD: %10.6f\n", kl[i], s->kld_pct[i]);
    printf("Median  KLD: %10.6f\n", s->kld_median);
    for (int i = 4; i < 8; i++) printf("%s   KLD: %10.6f\n", kl[i], s->kld_pct[i]);
    printf("Minimum KLD: %10.6f\n", s->kld_min);
    printf("====== Token probability statistics ======\n");
    printf("Mean    Δp: %6.3f ± %5.3f %%\n", s->dp_mean, s->dp_unc);
    static const char *const dl[10] = {"99.9%", "99.0%", "95.0%", "90.0%", "75.0%", "25.0%", "10.0%", " 5.0%", " 1.0%", " 0.1%"};
    printf("Maximum Δp: %6.3f%%\n", s->dp_max);
    for (int i = 0; i < 5; i++) printf("%s   Δp: %6.3f%%\n", dl[i], s->dp_pct[i]);
    printf("Median  Δp: %6.3f%%\n", s->dp_median);
    for (int i = 5; i < 10; i++) printf("%s   Δp: %6.3f%%\n", dl[i], s->dp_pct[i]);
    printf("Minimum Δp: %6.3f%%\n", s->dp_min);
    printf("RMS Δp    : %6.3f ± %5.3f %%\n", s->rms_dp, s->rms_dp_unc);
    printf("Same top p: %6.3f ± %5.3f %%\n", s->same_top, s->same_top_unc);
}

typedef struct ppl_opts {
    const char *path, *text_path, *kld_base_out, *kld_in, *kld_against, *recipe;
    int ctx, chunks;
    bool kv_f16;
    qs_cli_calib calib;
    qs_cli_act act;
} ppl_opts;

static int parse_ppl(int argc, char **argv, ppl_opts *o)
{
    *o = (ppl_opts){NULL, NULL, NULL, NULL, NULL, NULL, 512, -1, false, {0}, {{QS_ACT_NONE, 8, false, 0}, -1, NULL}};
    qs_cli_calib_init(&o->calib);
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        int ca = qs_cli_calib_arg(argc, argv, &i, &o->calib);
        if (!ca) ca = qs_cli_act_arg(argc, argv, &i, &o->act);
        if (ca == -2) return QS_EXIT_USAGE;
        if (ca < 0) return qs_cli_usage_error("ppl: '%s' needs a value", argv[i]);
        if (ca) continue;
        if ((!strcmp(argv[i], "--text") || !strcmp(argv[i], "-f")) && next) o->text_path = argv[++i];
        else if ((!strcmp(argv[i], "--ctx") || !strcmp(argv[i], "-c")) && next) o->ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunks") && next) o->chunks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kld-base") && next) o->kld_base_out = argv[++i];
        else if (!strcmp(argv[i], "--kld") && next) o->kld_in = argv[++i];
        else if (!strcmp(argv[i], "--kld-against") && next) o->kld_against = argv[++i];
        else if (!strcmp(argv[i], "--recipe") && next) o->recipe = argv[++i];
        else if (!strcmp(argv[i], "--kv-type") && next) {
            const char *k = argv[++i];
            if (strcmp(k, "f16") && strcmp(k, "f32")) return qs_cli_usage_error("ppl: --kv-type is f16 or f32, not '%s'", k);
            o->kv_f16 = !strcmp(k, "f16");
        } else if (argv[i][0] == '-') return qs_cli_usage_error("ppl: unknown or incomplete option '%s'", argv[i]);
        else if (!o->path) o->path = argv[i];
        else return qs_cli_usage_error("ppl: unexpected argument '%s'", argv[i]);
    }
    if (!o->path || (!o->text_path && !o->kld_in) || o->ctx < 4 || (o->kld_in && (o->kld_base_out || o->kld_against)))
        return qs_cli_usage_error("usage: quantscope ppl MODEL --text FILE [--ctx N] [--chunks N] [--kv-type f32|f16] "
                                  "[--recipe R.json] [--calib TEXT [--calib-chunks N] [--calib-ctx N] [--one-shot]] "
                                  "[--kld-base OUT | --kld-against BASE_MODEL]  or  quantscope ppl MODEL --kld BASEFILE");
    return QS_EXIT_OK;
}

/* the base records: from a file, or computed from a base model (or this model) over the text */
static int base_records(const ppl_opts *o, qs_llm *l, const qs_vocab *v, const char *text, size_t len,
                        qs_progress *prog, qs_kld_base *b)
{
    qs_err err = {0};
    if (o->kld_in) return qs_kld_base_read(o->kld_in, b, &err) ? qs_cli_fail(o->kld_in, &err) : 0;
    qs_model *bm = NULL;
    qs_vocab *bv = NULL;
    qs_llm *bl = l;
    int rc = 0;
    if (o->kld_against) {
        if ((rc = open_with_vocab(o->kld_against, &bm, &bv))) return rc;
        if (!(bl = qs_llm_new(bm, o->ctx, &err))) rc = qs_cli_fail(o->kld_against, &err);
        else qs_llm_set_kv_f16(bl, o->kv_f16);
    }
    qs_ppl p;
    if (!rc && qs_kld_base_compute(bl, bv ? bv : v, text, len, o->ctx, o->chunks, prog, b, &p, &err))
        rc = qs_cli_fail(o->text_path, &err);
    if (!rc) printf("base: PPL = %.4f +/- %.5f\n", p.ppl, p.ppl_err);
    if (bl != l) qs_llm_free(bl);
    qs_vocab_free(bv);
    qs_model_close(bm);
    return rc;
}

int qs_cli_ppl(int argc, char **argv)
{
    ppl_opts o;
    int rc = parse_ppl(argc, argv, &o);
    if (rc) return rc;
    qs_err err = {0};
    size_t len = 0;
    char *text = NULL;
    if (o.text_path && !(text = qs_read_file(o.text_path, (size_t)1 << 30, &len, &err))) return qs_cli_fail(o.text_path, &err);
    qs_model *m = NULL;
    qs_vocab *v = NULL;
    qs_llm *l = NULL;
    qs_kld_base b = {0};
    rc = open_with_vocab(o.path, &m, &v);
    if (!rc && o.kld_in && qs_kld_base_read(o.kld_in, &b, &err)) rc = qs_cli_fail(o.kld_in, &err);
    if (!rc && !(l = qs_llm_new(m, o.kld_in ? b.n_ctx : o.ctx, &err))) rc = qs_cli_fail(o.path, &err);
    if (!rc) qs_llm_set_kv_f16(l, o.kv_f16);
    o.act.recipe = o.recipe;
    if (!rc && (o.act.spec.mode != QS_ACT_NONE || o.act.smooth >= 0)) rc = qs_cli_apply_act(&o.act, m, l, v, &o.calib);
    else if (!rc && o.recipe) rc = qs_cli_apply_recipe(o.recipe, m, l, v, &o.calib);
    qs_cli_prog cp = qs_cli_prog_start("perplexity: chunk");
    qs_progress prog = {0, 0, 0, qs_cli_progress, &cp};
    if (!rc && (o.kld_base_out || o.kld_against)) {
        if (o.kld_against) rc = base_records(&o, l, v, text, len, &prog, &b);
        else if (!(rc = base_records(&o, l, v, text, len, &prog, &b)) && qs_kld_base_write(o.kld_base_out, &b, &err))
            rc = qs_cli_fail(o.kld_base_out, &err);
        else if (!rc) printf("wrote %s (%d chunks of %d)\n", o.kld_base_out, b.n_chunk, b.n_ctx);
    }
    if (!rc && (o.kld_in || o.kld_against)) {
        qs_kld_stats s;
        cp.t0 = qs_cli_now();
        if (qs_kld_compare(l, &b, qs_vocab_add_bos(v) ? qs_vocab_bos(v) : -1, &prog, &s, &err)) rc = qs_cli_fail(o.path, &err);
        else print_kld(&s);
    } else if (!rc && !o.kld_base_out) {
        qs_ppl r;
        if (qs_perplexity(l, v, text, len, o.ctx, o.chunks, &prog, &r, &err)) rc = qs_cli_fail(o.text_path, &err);
        else {
            printf("%lld tokens, %d chunks of %d, %lld scored\n", (long long)r.n_tokens, r.n_chunks, r.n_ctx,
                   (long long)r.count);
            printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
        }
    }
    qs_kld_base_free(&b);
    qs_llm_free(l);
    qs_vocab_free(v);
    qs_model_close(m);
    free(text);
    return rc;
}
