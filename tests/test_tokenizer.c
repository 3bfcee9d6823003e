/* Tokenizers against llama.cpp's test vectors in $QS_VOCAB_DIR (X.gguf + X.gguf.inp/.out,
 * discovered by listing the directory), decoding round trips, and the spec's examples. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf.h"
#include "core/model/hf_tokenizer.h"
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <sys/stat.h>
#include "core/model/tokenizer.h"
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
    if (!n) tu_skip("no vocabularies in %s", tu_vocab_dir());
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
    if (!*g) tu_skip("%s: %s", p, err.msg);
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
    if (!tried) tu_skip("no BPE vocabularies in %s", tu_vocab_dir());
}

/* ---- tokenizer.json (HF) → GGUF tokenizer keys ---- */

#define LLAMA3_SPLIT "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* the tokenizer.json HF tokenizers would hold for a byte-level BPE vocabulary (built here from
 * the GGUF's arrays, as the inverse of llama.cpp's converter) */
static char *tokenizer_json_of(const qs_gguf *g, bool llama3, bool add_bos)
{
    const qs_gguf_kv *tok = qs_gguf_get_kv(g, "tokenizer.ggml.tokens"), *ty = qs_gguf_get_kv(g, "tokenizer.ggml.token_type"),
                     *mg = qs_gguf_get_kv(g, "tokenizer.ggml.merges");
    cJSON *root = cJSON_CreateObject(), *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *model = cJSON_AddObjectToObject(root, "model"), *vocab, *merges;
    cJSON_AddStringToObject(model, "type", "BPE");
    vocab = cJSON_AddObjectToObject(model, "vocab");
    merges = cJSON_AddArrayToObject(model, "merges");
    char buf[1024];
    for (uint64_t i = 0; i < tok->n; i++) {
        size_t len;
        const char *s = qs_gguf_kv_arr_str(tok, i, &len);
        snprintf(buf, sizeof buf, "%.*s", (int)len, s);
        int type = ty ? (int)qs_gguf_kv_num(ty, i) : 1;
        if (type == 1) cJSON_AddItemToObject(vocab, buf, cJSON_CreateNumber((double)i));
        else {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", buf);
            cJSON_AddBoolToObject(a, "special", type == 3);
            cJSON_AddItemToArray(added, a);
        }
    }
    for (uint64_t i = 0; i < mg->n; i++) { /* the newer [left, right] spelling for odd entries */
        size_t len;
        const char *s = qs_gguf_kv_arr_str(mg, i, &len), *sp = memchr(s + 1, ' ', len - 1);
        snprintf(buf, sizeof buf, "%.*s", (int)len, s);
        if (i % 2 && sp) {
            cJSON *pair = cJSON_CreateArray();
            buf[sp - s] = '\0';
            cJSON_AddItemToArray(pair, cJSON_CreateString(buf));
            cJSON_AddItemToArray(pair, cJSON_CreateString(buf + (sp - s) + 1));
            cJSON_AddItemToArray(merges, pair);
        } else cJSON_AddItemToArray(merges, cJSON_CreateString(buf));
    }
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    if (llama3) {
        cJSON_AddStringToObject(pre, "type", "Sequence");
        cJSON *seq = cJSON_AddArrayToObject(pre, "pretokenizers"), *split = cJSON_CreateObject(), *bl = cJSON_CreateObject();
        cJSON_AddStringToObject(split, "type", "Split");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", LLAMA3_SPLIT);
        cJSON_AddStringToObject(bl, "type", "ByteLevel");
        cJSON_AddBoolToObject(bl, "use_regex", false);
        cJSON_AddItemToArray(seq, split);
        cJSON_AddItemToArray(seq, bl);
    } else {
        cJSON_AddStringToObject(pre, "type", "ByteLevel");
        cJSON_AddBoolToObject(pre, "use_regex", true);
    }
    if (add_bos) {
        cJSON *post = cJSON_AddObjectToObject(root, "post_processor"), *single = cJSON_AddArrayToObject(post, "single");
        cJSON_AddStringToObject(post, "type", "TemplateProcessing");
        cJSON *first = cJSON_CreateObject(), *seq = cJSON_CreateObject();
        cJSON_AddStringToObject(cJSON_AddObjectToObject(first, "SpecialToken"), "id", "<bos>");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(seq, "Sequence"), "id", "A");
        cJSON_AddItemToArray(single, first);
        cJSON_AddItemToArray(single, seq);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static void expect_same_array(const qs_gguf *a, const qs_gguf *b, const char *key)
{
    const qs_gguf_kv *x = qs_gguf_get_kv(a, key), *y = qs_gguf_get_kv(b, key);
    cr_assert(x && y, "%s in both", key);
    cr_assert_eq(x->n, y->n, "%s: %llu and %llu entries", key, (unsigned long long)x->n, (unsigned long long)y->n);
    cr_expect(x->raw_size == y->raw_size && !memcmp(x->raw, y->raw, x->raw_size), "%s: the same entries", key);
}

/* every byte-level BPE vocabulary of $QS_VOCAB_DIR whose pre-tokenizer tokenizer.json can say
 * (llama-bpe, gpt-2), written as tokenizer.json and read back: the same tokens, types, merges,
 * pre-tokenizer and ids, and the same tokenization of llama.cpp's test inputs */
Test(tokenizer, hf_tokenizer_json_becomes_the_gguf_vocabulary, .timeout = 300)
{
    int n = 0, done = 0;
    char **files = tu_list(tu_vocab_dir(), ".gguf", 0, &n);
    char *dir = tu_tmpdir();
    for (char **f = files; f && *f; f++) {
        qs_err err = {0};
        qs_gguf *g = qs_gguf_open(*f, &err);
        cr_assert_not_null(g, "%s", err.msg);
        const char *model = NULL, *pre = NULL;
        size_t ml = 0, pl = 0;
        qs_gguf_get_str(g, "tokenizer.ggml.model", &model, &ml, &err);
        qs_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &pl, &err);
        bool llama3 = pre && pl == 9 && !memcmp(pre, "llama-bpe", 9), gpt2 = pre && pl == 5 && !memcmp(pre, "gpt-2", 5);
        if (!model || ml != 4 || memcmp(model, "gpt2", 4) || (!llama3 && !gpt2)) {
            qs_gguf_close(g);
            continue;
        }
        uint32_t bos = 0, eos = 0;
        bool add_bos = false;
        qs_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos, &err);
        qs_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos, &err);
        qs_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, &err);
        char *json = tokenizer_json_of(g, llama3, add_bos), config[128];
        snprintf(config, sizeof config, "{\"bos_token_id\": %u, \"eos_token_id\": %u}", bos, eos);
        qs_gguf_writer *w = qs_gguf_writer_new();
        qs_gguf_writer_set_str(w, "general.architecture", "llama");
        cr_assert_eq(qs_hf_tokenizer_keys(json, strlen(json), config, strlen(config), w, &err), 0, "%s", err.msg);
        char out[8192], cmd[20000];
        const char *base = strrchr(*f, '/') + 1;
        snprintf(out, sizeof out, "%s/%s", dir, base);
        cr_assert_eq(qs_gguf_writer_write(w, out, &err), 0, "%s", err.msg);
        qs_gguf_writer_free(w);
        snprintf(cmd, sizeof cmd, "cp '%s.inp' '%s.out' '%s/'", *f, *f, dir);
        cr_assert_eq(system(cmd), 0);
        qs_gguf *h = qs_gguf_open(out, &err);
        cr_assert_not_null(h, "%s", err.msg);
        expect_same_array(g, h, "tokenizer.ggml.tokens");
        expect_same_array(g, h, "tokenizer.ggml.token_type");
        expect_same_array(g, h, "tokenizer.ggml.merges");
        const char *pre2 = NULL;
        size_t pl2 = 0;
        uint32_t bos2 = 0, eos2 = 0;
        bool add2 = false;
        qs_gguf_get_str(h, "tokenizer.ggml.pre", &pre2, &pl2, &err);
        qs_gguf_get_u32(h, "tokenizer.ggml.bos_token_id", &bos2, &err);
        qs_gguf_get_u32(h, "tokenizer.ggml.eos_token_id", &eos2, &err);
        qs_gguf_get_bool(h, "tokenizer.ggml.add_bos_token", &add2, &err);
        cr_expect(pl2 == pl && !memcmp(pre2, pre, pl), "%s: pre-tokenizer %.*s", base, (int)pl2, pre2);
        cr_expect(bos2 == bos && eos2 == eos && add2 == add_bos, "%s: special ids and add_bos", base);
        qs_gguf_close(h);
        /* the same through an HF directory: tokenizer.json + config.json → a vocabulary */
        char hfdir[8300], tj[8400];
        snprintf(hfdir, sizeof hfdir, "%s/hf-%s", dir, base);
        mkdir(hfdir, 0755);
        snprintf(tj, sizeof tj, "%s/tokenizer.json", hfdir);
        FILE *jf = fopen(tj, "w");
        fputs(json, jf);
        fclose(jf);
        free(json);
        snprintf(tj, sizeof tj, "%s/config.json", hfdir);
        jf = fopen(tj, "w");
        fputs(config, jf);
        fclose(jf);
        qs_gguf *hg = qs_hf_tokenizer_gguf(hfdir, &err);
        cr_assert_not_null(hg, "%s", err.msg);
        qs_vocab *va = qs_vocab_load(g, &err), *vb = qs_vocab_load(hg, &err);
        qs_gguf_close(hg);
        cr_assert(va && vb, "%s", err.msg);
        static const char sample_text[] = "Hello world, 3.14159 and  spaces\n\tnew lines — ünïcödé 🦙!";
        int32_t *ia, *ib;
        int64_t na, nb;
        cr_assert_eq(qs_tokenize(va, sample_text, strlen(sample_text), true, false, &ia, &na, &err), 0);
        cr_assert_eq(qs_tokenize(vb, sample_text, strlen(sample_text), true, false, &ib, &nb, &err), 0);
        cr_expect(na == nb && !memcmp(ia, ib, (size_t)na * sizeof *ia), "%s: the HF directory's vocabulary tokenizes alike",
                  base);
        free(ia), free(ib);
        qs_vocab_free(va), qs_vocab_free(vb);
        int cases = check_vocab(out);
        cr_expect_gt(cases, 0, "%s: the converted vocabulary tokenizes the test inputs", base);
        cr_log_info("%s from tokenizer.json: %d test inputs tokenized as llama.cpp does", base, cases);
        qs_gguf_close(g);
        done++;
    }
    tu_free_list(files);
    tu_rmtree(dir);
    free(dir);
    if (!done) tu_skip("no llama-bpe or gpt-2 vocabulary in %s", tu_vocab_dir());
}

Test(tokenizer, hf_tokenizer_json_refusals)
{
    static const char *const bad[] = {"not json", "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}",
                                      "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{},\"merges\":[]},"
                                      "\"decoder\":{\"type\":\"ByteLevel\"}}",
                                      "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
                                      "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}"};
    static const char *const why[] = {"not JSON", "only BPE", "SentencePiece-style", "no valid id", "neither"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        qs_err err = {0};
        qs_gguf_writer *w = qs_gguf_writer_new();
        cr_expect_lt(qs_hf_tokenizer_keys(bad[k], strlen(bad[k]), NULL, 0, w, &err), 0, "%s", bad[k]);
        cr_expect(strstr(err.msg, why[k]) != NULL, "%s: %s", bad[k], err.msg);
        qs_gguf_writer_free(w);
    }
}

/* Issue 16 (the fuzzer's slow-unit artifact): one huge id padded ~12 million placeholder tokens
 * (65 s, 1.6 GB); ids are now bounded by the number of entries, and must be integers. */
Test(tokenizer, hf_tokenizer_json_huge_ids_are_refused, .timeout = 10)
{
    static const char *const bad[] = {
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"ab\":12222222,\"abz\":2},\"merges\":[\"a b\"]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"ab\":0},\"merges\":[]},\"added_tokens\":[{\"id\":16000000,\"content\":\"x\"}],"
        "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"ab\":12222222.22222222,\"abz\":2},\"merges\":[\"a b\"]},\"aokns\":[{\"id\":3}],"
        "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"uex\":true},\"s_token_\":2}"};
    static const char *const why[] = {"far beyond the 2 entries", "far beyond the 2 entries", "no valid id"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        qs_err err = {0};
        qs_gguf_writer *w = qs_gguf_writer_new();
        cr_expect_lt(qs_hf_tokenizer_keys(bad[k], strlen(bad[k]), NULL, 0, w, &err), 0, "%s", bad[k]);
        cr_expect_eq(err.code, QS_E_INPUT, "%s", err.msg);
        cr_expect(strstr(err.msg, why[k]) != NULL, "%s: %s", bad[k], err.msg);
        qs_gguf_writer_free(w);
    }
    /* a few holes stay allowed (padded) */
    const char *ok = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":5},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}";
    qs_err err = {0};
    qs_gguf_writer *w = qs_gguf_writer_new();
    cr_expect_eq(qs_hf_tokenizer_keys(ok, strlen(ok), NULL, 0, w, &err), 0, "%s", err.msg);
    qs_gguf_writer_free(w);
}
