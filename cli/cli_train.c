/* cli/cli_train.c — `quantscope train` (a model from scratch) and `quantscope vocab` (a
 * SentencePiece-style BPE vocabulary). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/model/bpe_train.h"
#include "core/util/fileio.h"
#include "core/formats/gguf.h"
#include "core/model/tokenizer.h"
#include "core/model/train.h"
#include "cli/cli.h"

static void vocab_progress(void *ctx, int64_t done, int64_t total)
{
    (void)ctx;
    if (done % 64 == 0 || done == total) fprintf(stderr, "\rvocabulary: merge %lld/%lld   ", (long long)done, (long long)total);
}

/* trains the vocabulary and writes it as a tokenizer-only GGUF */
static int write_vocab(const char *text, size_t len, int size, const char *data, const char *out)
{
    qs_spm_vocab v;
    qs_err err = {0};
    qs_progress prog = {0, 0, 0, vocab_progress, NULL};
    if (qs_bpe_train(text, len, size, &v, &prog, &err)) return qs_cli_fail(data, &err);
    fputc('\n', stderr);
    qs_gguf_writer *w = qs_gguf_writer_new();
    int rc = !w || qs_gguf_writer_set_str(w, "general.architecture", "llama") || qs_spm_vocab_write_keys(&v, w)
                 ? qs_cli_fail(out, &(qs_err){QS_E_OOM, "out of memory"})
             : qs_gguf_writer_write(w, out, &err) ? qs_cli_fail(out, &err)
                                                  : QS_EXIT_OK;
    qs_gguf_writer_free(w);
    qs_spm_vocab_free(&v);
    return rc;
}

int qs_cli_vocab(int argc, char **argv)
{
    const char *data = NULL, *out = NULL;
    int size = 2048;
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        if (!strcmp(argv[i], "--data") && next) data = argv[++i];
        else if (!strcmp(argv[i], "--size") && next) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-o") && next) out = argv[++i];
        else return qs_cli_usage_error("vocab: unknown or incomplete option '%s'", argv[i]);
    }
    if (!data || !out) return qs_cli_usage_error("usage: quantscope vocab --data TEXT [--size N] -o VOCAB.gguf");
    qs_err err = {0};
    size_t len;
    char *text = qs_read_file(data, (size_t)1 << 31, &len, &err);
    if (!text) return qs_cli_fail(data, &err);
    int rc = write_vocab(text, len, size, data, out);
    if (!rc) printf("wrote %s\n", out);
    free(text);
    return rc;
}

typedef struct train_args {
    const char *config, *data, *eval, *vocab, *out, *resume, *log;
    int64_t steps, every;
} train_args;

static int load_config(const char *spec, qs_train_config *c)
{
    qs_err err = {0};
    if (!qs_train_preset(spec, c, &err)) return 0;
    size_t len;
    char *js = qs_read_file(spec, 1 << 20, &len, &err);
    if (!js) return qs_cli_fail(spec, &err);
    qs_train_preset("tiny", c, &err);
    int rc = qs_train_config_parse(js, len, c, &err) ? qs_cli_fail(spec, &err) : 0;
    free(js);
    return rc;
}

/* the whole text as one token stream (the vocabulary adds its BOS) */
int qs_cli_tokenize_file(const qs_vocab *v, const char *path, int32_t **ids, int64_t *n)
{
    qs_err err = {0};
    size_t len;
    char *text = qs_read_file(path, (size_t)1 << 31, &len, &err);
    if (!text) return qs_cli_fail(path, &err);
    int rc = qs_tokenize(v, text, len, false, false, ids, n, &err) ? qs_cli_fail(path, &err) : 0;
    free(text);
    return rc;
}

static double eval_loss(qs_trainer *t, const int32_t *ids, int64_t n)
{
    const qs_train_config *c = qs_trainer_config(t);
    int W = c->seq + 1, lead = c->bos >= 0;
    int32_t *win = malloc((size_t)W * sizeof *win);
    double sum = 0;
    int k = 0;
    for (int64_t s = 0; win && s + W - lead <= n && k < 32; s += W - lead, k++) {
        if (lead) win[0] = c->bos;
        memcpy(win + lead, ids + s, (size_t)(W - lead) * sizeof *win);
        sum += qs_trainer_loss(t, win, 1, false);
    }
    free(win);
    return k ? sum / k : NAN;
}

static int save(const qs_trainer *t, const qs_gguf *vocab, const char *path, bool checkpoint)
{
    qs_err err = {0};
    qs_gguf_writer *w = qs_gguf_writer_new();
    int rc = w ? 0 : -1;
    if (!rc) rc = checkpoint ? qs_trainer_write_checkpoint(t, w, &err) : qs_trainer_write_model(t, w, &err);
    for (int64_t i = 0; !rc && i < vocab->n_kv; i++)
        if (!strncmp(vocab->kv[i].key, "tokenizer.", 10)) rc = qs_gguf_writer_copy_kv(w, &vocab->kv[i]);
    if (!rc) rc = qs_gguf_writer_set_str(w, "general.name", "quantscope sample model");
    if (!rc) rc = qs_gguf_writer_write(w, path, &err);
    else if (!err.msg[0]) qs_err_set(&err, QS_E_OOM, "out of memory");
    qs_gguf_writer_free(w);
    return rc ? qs_cli_fail(path, &err) : 0;
}

static int train_loop(qs_trainer *t, const train_args *a, const qs_gguf *vg, const int32_t *ids, int64_t n,
                      const int32_t *eval, int64_t ne)
{
    const qs_train_config *c = qs_trainer_config(t);
    qs_err oe = {0};
    if (a->log && qs_output_check(a->log, 0, &oe)) return qs_cli_fail(a->log, &oe); /* no input, link, FIFO or device */
    FILE *log = a->log ? fopen(a->log, qs_trainer_step_no(t) ? "a" : "w") : NULL;
    if (a->log && !log) return qs_cli_fail(a->log, &(qs_err){QS_E_IO, "cannot open the log"});
    if (log && !qs_trainer_step_no(t)) fprintf(log, "step,loss,eval_loss,tokens,seconds\n");
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", a->out);
    double t0 = qs_cli_now(), avg = NAN;
    int64_t first = qs_trainer_step_no(t), tokens_per_step = (int64_t)c->batch * c->seq;
    int rc = 0;
    while (!rc && qs_trainer_step_no(t) < c->steps) {
        double loss;
        qs_err err = {0};
        if (qs_trainer_step(t, ids, n, &loss, &err)) return qs_cli_fail(a->data, &err);
        avg = isnan(avg) ? loss : 0.95 * avg + 0.05 * loss;
        int64_t s = qs_trainer_step_no(t), done = s - first;
        double el = qs_cli_now() - t0, tps = (double)(done * tokens_per_step) / el, eta = el / (double)done * (double)(c->steps - s);
        fprintf(stderr, "\rstep %lld/%lld  loss %.3f  %.0f tok/s  ETA %dm%02ds   ", (long long)s, (long long)c->steps, avg,
                tps, (int)eta / 60, (int)eta % 60);
        if (s % a->every == 0 || s == c->steps) {
            double ev = eval ? eval_loss(t, eval, ne) : NAN;
            if (log) {
                fprintf(log, "%lld,%.4f,%.4f,%lld,%.1f\n", (long long)s, avg, ev, (long long)(s * tokens_per_step), el);
                fflush(log);
            }
            if (s < c->steps) rc = save(t, vg, ckpt, true);
        }
    }
    fputc('\n', stderr);
    if (log) fclose(log);
    if (!rc) rc = save(t, vg, a->out, false);
    if (!rc) unlink(ckpt);
    return rc;
}

static int parse_train_args(int argc, char **argv, train_args *a)
{
    *a = (train_args){.steps = -1, .every = 100};
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        if (!strcmp(argv[i], "--config") && next) a->config = argv[++i];
        else if (!strcmp(argv[i], "--data") && next) a->data = argv[++i];
        else if (!strcmp(argv[i], "--eval") && next) a->eval = argv[++i];
        else if (!strcmp(argv[i], "--vocab") && next) a->vocab = argv[++i];
        else if (!strcmp(argv[i], "--resume") && next) a->resume = argv[++i];
        else if (!strcmp(argv[i], "--log") && next) a->log = argv[++i];
        else if (!strcmp(argv[i], "--steps") && next) a->steps = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--checkpoint-every") && next) a->every = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-o") && next) a->out = argv[++i];
        else return qs_cli_usage_error("train: unknown or incomplete option '%s'", argv[i]);
    }
    if (!a->config || !a->data || !a->vocab || !a->out || a->every < 1)
        return qs_cli_usage_error("usage: quantscope train --config tiny|small|CONFIG.json --data TEXT --vocab VOCAB.gguf "
                                  "-o MODEL.gguf\n"
                                  "       [--eval TEXT] [--steps N] [--log LOSS.csv] [--checkpoint-every N] [--resume CKPT]");
    return 0;
}

int qs_cli_train(int argc, char **argv)
{
    train_args a;
    qs_train_config c;
    int rc = parse_train_args(argc, argv, &a);
    if (rc || (rc = load_config(a.config, &c))) return rc;
    qs_err err = {0};
    qs_gguf *vg = qs_gguf_open(a.vocab, &err);
    if (!vg) return qs_cli_fail(a.vocab, &err);
    qs_vocab *v = qs_vocab_load(vg, &err);
    if (!v) {
        qs_gguf_close(vg);
        return qs_cli_fail(a.vocab, &err);
    }
    c.vocab = qs_vocab_size(v);
    c.bos = qs_vocab_bos(v);
    if (a.steps >= 0) c.steps = a.steps;
    int32_t *ids = NULL, *eval = NULL;
    int64_t n = 0, ne = 0;
    qs_trainer *t = NULL;
    rc = qs_cli_tokenize_file(v, a.data, &ids, &n);
    if (!rc && a.eval) rc = qs_cli_tokenize_file(v, a.eval, &eval, &ne);
    if (!rc && !(t = qs_trainer_new(&c, &err))) rc = qs_cli_fail(a.config, &err);
    if (!rc && a.resume) {
        qs_gguf *ck = qs_gguf_open(a.resume, &err);
        if (!ck || qs_trainer_load_checkpoint(t, ck, &err)) rc = qs_cli_fail(a.resume, &err);
        qs_gguf_close(ck);
    }
    if (!rc) {
        fprintf(stderr, "training: %lld tokens of text, vocabulary %d, %lld steps of %d × %d tokens\n", (long long)n, c.vocab,
                (long long)c.steps, c.batch, c.seq);
        rc = train_loop(t, &a, vg, ids, n, eval, ne);
    }
    if (!rc) printf("wrote %s\n", a.out);
    qs_trainer_free(t);
    free(ids);
    free(eval);
    qs_vocab_free(v);
    qs_gguf_close(vg);
    return rc;
}
