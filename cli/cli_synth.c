/* cli/cli_synth.c — `quantscope synth --shape NAME -o FILE.gguf [--type T] [--seed N] [--vocab VOCAB.gguf]`:
 * a random-weight llama GGUF of a real model's shape (core/synth.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/formats/gguf.h"
#include "core/recipe/synth.h"
#include "cli/cli.h"

static int usage_error(void)
{
    int n;
    const qs_synth_shape *s = qs_synth_shapes(&n);
    fprintf(stderr, "usage: quantscope synth --shape NAME -o FILE.gguf [--type T] [--seed N] [--vocab VOCAB.gguf] [--threads N]\n"
                    "shapes:");
    for (int i = 0; i < n; i++) fprintf(stderr, " %s", s[i].name);
    fprintf(stderr, "\n");
    return QS_EXIT_USAGE;
}

static void list_shapes(void)
{
    int n;
    const qs_synth_shape *s = qs_synth_shapes(&n);
    for (int i = 0; i < n; i++)
        printf("%-10s %7.1fM weights  dim %u, %u layers, ff %u, %u/%u heads, vocab %u%s  %s\n", s[i].name,
               (double)qs_synth_shape_params(&s[i]) * 1e-6, s[i].n_embd, s[i].n_layer, s[i].n_ff, s[i].n_head,
               s[i].n_head_kv, s[i].n_vocab, s[i].tied_output ? ", tied" : "", s[i].about);
}

int qs_cli_synth(int argc, char **argv)
{
    const char *shape = NULL, *out = NULL, *type = "f16", *vocab = NULL;
    unsigned long long seed = 1;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        char *end = NULL;
        if (!strcmp(argv[i], "--shape") && next) shape = argv[++i];
        else if (!strcmp(argv[i], "-o") && next) out = argv[++i];
        else if (!strcmp(argv[i], "--type") && next) type = argv[++i];
        else if (!strcmp(argv[i], "--vocab") && next) vocab = argv[++i];
        else if (!strcmp(argv[i], "--seed") && next) {
            errno = 0;
            seed = strtoull(argv[++i], &end, 10);
            if (errno || !*argv[i] || *end || argv[i][0] == '-')
                return qs_cli_usage_error("synth: --seed takes a non-negative integer, not '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--threads") && next) {
            threads = (int)strtol(argv[++i], &end, 10);
            if (*end || threads < 1) return qs_cli_usage_error("synth: --threads takes a positive integer, not '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--list")) {
            list_shapes();
            return QS_EXIT_OK;
        } else if (argv[i][0] == '-') return qs_cli_usage_error("synth: unknown or incomplete option '%s'", argv[i]);
        else return qs_cli_usage_error("synth: unexpected argument '%s'", argv[i]);
    }
    if (!shape || !out) return usage_error();
    const qs_synth_shape *s = qs_synth_shape_find(shape);
    if (!s) {
        int n;
        const qs_synth_shape *all = qs_synth_shapes(&n);
        char names[256] = "";
        for (int i = 0; i < n; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", all[i].name);
        return qs_cli_usage_error("synth: unknown shape '%s' (%s)", shape, names);
    }
    qs_err err = {0};
    int ft, ty;
    if (qs_synth_parse_type(type, &ft, &ty, &err)) return qs_cli_fail("--type", &err);
    qs_gguf *v = NULL;
    if (vocab && !(v = qs_gguf_open(vocab, &err))) return qs_cli_fail(vocab, &err);
    if (v && qs_synth_check_vocab(s, v, &err)) {
        qs_gguf_close(v);
        return qs_cli_fail(vocab, &err);
    }
    qs_synth_opts o = {s, type, seed, v, threads};
    qs_cli_prog cp = qs_cli_prog_start("synth: tensor");
    qs_progress prog = {0, 0, 0, qs_cli_progress, &cp};
    double t0 = qs_cli_now();
    int rc = qs_synth_write(&o, out, &prog, &err) ? qs_cli_fail(out, &err) : QS_EXIT_OK;
    qs_gguf_close(v);
    if (rc) return rc;
    struct stat st;
    if (stat(out, &st)) st.st_size = 0;
    printf("wrote %s: %s %s, seed %llu, %lld bytes in %.2f s\n", out, s->name, type, seed, (long long)st.st_size,
           qs_cli_now() - t0);
    return QS_EXIT_OK;
}
