/* Tokenizers against llama.cpp's test vectors in $QS_VOCAB_DIR (X.gguf + X.gguf.inp/.out,
 * discovered by listing the directory), decoding round trips, and the spec's examples. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gguf.h"
#include "core/tokenizer.h"
#include "tests/testutil.h"

#define SEP "\n__ggml_vocab_test__\n"

/* returns the number of cases checked, -1 if the vocabulary's family cannot encode yet */
static int check_vocab(const char *gguf_path)
{
    char inp[4200], outp[4200];
    snprintf(inp, sizeof inp, "%s.inp", gguf_path);
    snprintf(outp, sizeof outp, "%s.out", gguf_path);
    size_t ni, no;
    uint8_t *in = tu_read(inp, &ni), *out = tu_read(outp, &no);
    if (!in || !out) {
        free(in);
        free(out);
        return 0;
    }
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open(gguf_path, &err);
    cr_assert_not_null(g, "%s: %s", gguf_path, err.msg);
    qs_vocab *v = qs_vocab_load(g, &err);
    int checked = 0;
    if (!v) {
        cr_log_info("skipping %s: %s", gguf_path, err.msg);
        checked = -1;
        goto done;
    }
    char *ip = (char *)in, *op = (char *)out, *iend = (char *)in + ni, *oend = (char *)out + no;
    for (int k = 0;; k++) {
        char *sep = NULL;
        for (char *p = ip; p + strlen(SEP) <= iend; p++)
            if (!memcmp(p, SEP, strlen(SEP))) {
                sep = p;
                break;
            }
        if (!sep) break;
        char *eol = memchr(op, '\n', (size_t)(oend - op));
        cr_assert_not_null(eol, "%s: fewer output lines than inputs", outp);
        int32_t *ids;
        int64_t n;
        cr_assert_eq(qs_tokenize(v, ip, (size_t)(sep - ip), false, false, &ids, &n, &err), 0, "%s", err.msg);
        char got[65536];
        size_t gl = 0;
        for (int64_t i = 0; i < n && gl < sizeof got - 16; i++) gl += (size_t)snprintf(got + gl, sizeof got - gl, " %d", ids[i]);
        got[gl] = '\0';
        cr_expect(gl == (size_t)(eol - op) && !memcmp(got, op, gl), "%s case %d (%.*s):\n got  %s\n want %.*s", gguf_path,
                  k, (int)(sep - ip < 60 ? sep - ip : 60), ip, got, (int)(eol - op), op);
        free(ids);
        ip = sep + strlen(SEP);
        op = eol + 1;
        checked++;
    }
done:
    qs_vocab_free(v);
    qs_gguf_close(g);
    free(in);
    free(out);
    return checked;
}

Test(tokenizer, vocab_test_vectors, .timeout = 300)
{
    int n = 0, total = 0, families_skipped = 0;
    char **files = tu_list(tu_vocab_dir(), ".gguf", 0, &n);
    if (!n) cr_skip_test("no vocabularies in %s", tu_vocab_dir());
    for (char **f = files; *f; f++) {
        int c = check_vocab(*f);
        if (c < 0) families_skipped++;
        else total += c;
    }
    cr_log_info("tokenizer cases checked: %d (%d vocabularies of unsupported families skipped)", total, families_skipped);
    cr_assert_gt(total, 0, "no vocabulary with test vectors found");
    tu_free_list(files);
}

static qs_vocab *stories_vocab(qs_gguf **g)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/stories260K.gguf", tu_models_dir());
    qs_err err = {0};
    *g = qs_gguf_open(p, &err);
    if (!*g) cr_skip_test("%s: %s", p, err.msg);
    qs_vocab *v = qs_vocab_load(*g, &err);
    cr_assert_not_null(v, "%s", err.msg);
    return v;
}

Test(tokenizer, spm_decode_round_trip_and_specials)
{
    qs_gguf *g;
    qs_vocab *v = stories_vocab(&g);
    const char *text = "Once upon a time, there was a little girl named Lily.\nShe said \"hi\" 42!";
    int32_t *ids;
    int64_t n;
    qs_err err = {0};
    cr_assert_eq(qs_tokenize(v, text, strlen(text), true, false, &ids, &n, &err), 0);
    cr_assert_eq(ids[0], qs_vocab_bos(v), "add_special puts BOS first");
    char *back = qs_detokenize(v, ids, n, true, false);
    cr_assert_str_eq(back, " Once upon a time, there was a little girl named Lily.\nShe said \"hi\" 42!",
                     "with BOS removed the space prefix stays (spec §6.2)");
    free(back);
    back = qs_detokenize(v, ids + 1, n - 1, false, true);
    cr_assert_str_eq(back, text, "without BOS one leading space is stripped");
    free(back);
    free(ids);
    cr_assert_eq(qs_tokenize(v, "", 0, false, false, &ids, &n, &err), 0);
    cr_assert_eq(n, 0);
    free(ids);
    qs_vocab_free(v);
    qs_gguf_close(g);
}

/* decoding inverts encoding for text the clean-up passes leave alone (spec §6) */
Test(tokenizer, bpe_round_trip)
{
    int n = 0, tried = 0;
    char **files = tu_list(tu_vocab_dir(), ".gguf", 0, &n);
    const char *texts[] = {"Hello world", "  leading spaces and\ttabs\nnew lines", "naïve café 東京 🦙 emoji",
                           "numbers 1234567 and 3.14", "code: int x = a[i] + b;"};
    for (char **f = files; f && *f; f++) {
        qs_err err = {0};
        qs_gguf *g = qs_gguf_open(*f, &err);
        qs_vocab *v = g ? qs_vocab_load(g, &err) : NULL;
        if (v && qs_vocab_kind_of(v) == QS_VOCAB_BPE) {
            for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
                int32_t *ids;
                int64_t m;
                cr_assert_eq(qs_tokenize(v, texts[k], strlen(texts[k]), false, false, &ids, &m, &err), 0, "%s", err.msg);
                char *back = qs_detokenize(v, ids, m, false, true);
                cr_expect_str_eq(back, texts[k], "%s", *f);
                free(back);
                free(ids);
            }
            tried++;
        }
        qs_vocab_free(v);
        qs_gguf_close(g);
    }
    tu_free_list(files);
    if (!tried) cr_skip_test("no BPE vocabularies in %s", tu_vocab_dir());
}
