/* core/model/bpe_train.c — byte-fallback BPE vocabulary training (SentencePiece style). */
#include "core/model/bpe_train.h"

#include "core/util/hash.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf.h"

#define SPACE "\xe2\x96\x81" /* ▁ U+2581 */

/* ---- a string → count table (open addressing) ---- */

typedef struct wentry {
    char *s;
    int64_t count;
} wentry;

typedef struct wtable {
    wentry *e;
    size_t cap, n;
} wtable;

static uint64_t hash_bytes(const char *s, size_t n) { return qs_fnv1a_bytes(QS_FNV1A_INIT, s, n); }

static int wtable_add(wtable *t, const char *s, size_t n, int64_t count)
{
    if ((t->n + 1) * 2 > t->cap) {
        wtable g = {calloc(t->cap ? t->cap * 2 : 4096, sizeof(wentry)), t->cap ? t->cap * 2 : 4096, 0};
        if (!g.e) return -1;
        for (size_t i = 0; i < t->cap; i++)
            if (t->e[i].s) {
                size_t j = hash_bytes(t->e[i].s, strlen(t->e[i].s)) & (g.cap - 1);
                while (g.e[j].s) j = (j + 1) & (g.cap - 1);
                g.e[j] = t->e[i];
                g.n++;
            }
        free(t->e);
        *t = g;
    }
    size_t j = hash_bytes(s, n) & (t->cap - 1);
    while (t->e[j].s && (strlen(t->e[j].s) != n || memcmp(t->e[j].s, s, n))) j = (j + 1) & (t->cap - 1);
    if (!t->e[j].s) {
        if (!(t->e[j].s = strndup(s, n))) return -1;
        t->n++;
    }
    t->e[j].count += count;
    return 0;
}

static void wtable_free(wtable *t)
{
    for (size_t i = 0; i < t->cap; i++) free(t->e[i].s);
    free(t->e);
}

/* ---- words as symbol sequences ---- */

typedef struct word {
    int *sym;
    int n;
    int64_t count;
} word;

typedef struct trainer {
    char **sym_text;   /* symbol id → UTF-8 text */
    int n_sym, cap_sym;
    wtable sym_index;  /* text → id + 1 (in count) */
    word *words;
    size_t n_words;
} trainer;

static int sym_find(const trainer *tr, const char *s, size_t n)
{
    const wtable *t = &tr->sym_index;
    if (!t->cap) return -1;
    size_t j = hash_bytes(s, n) & (t->cap - 1);
    while (t->e[j].s) {
        if (strlen(t->e[j].s) == n && !memcmp(t->e[j].s, s, n)) return (int)t->e[j].count - 1;
        j = (j + 1) & (t->cap - 1);
    }
    return -1;
}

static int sym_add(trainer *tr, const char *s, size_t n)
{
    int id = sym_find(tr, s, n);
    if (id >= 0) return id;
    if (tr->n_sym == tr->cap_sym) {
        int cap = tr->cap_sym ? tr->cap_sym * 2 : 256;
        char **p = realloc(tr->sym_text, (size_t)cap * sizeof *p);
        if (!p) return -1;
        tr->sym_text = p;
        tr->cap_sym = cap;
    }
    if (!(tr->sym_text[tr->n_sym] = strndup(s, n)) || wtable_add(&tr->sym_index, s, n, tr->n_sym + 1)) return -1;
    return tr->n_sym++;
}

static size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : c >> 5 == 6 ? 2 : c >> 4 == 14 ? 3 : c >> 3 == 30 ? 4 : 1; }

/* Counts the words of the normalized text: "▁word" pieces, a line's first word without ▁
 * (after the leading ▁ of the whole text), newlines dropped. */
static int count_words(const char *text, size_t len, wtable *words)
{
    char *buf = malloc(len * 3 + 4);
    if (!buf) return -1;
    size_t o = 0;
    memcpy(buf, SPACE, 3), o = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') memcpy(buf + o, SPACE, 3), o += 3;
        else buf[o++] = text[i];
    }
    int rc = 0;
    for (size_t s = 0; s < o && !rc;) {
        if (buf[s] == '\n') {
            s++;
            continue;
        }
        size_t e = s + utf8_len((unsigned char)buf[s]);
        while (e < o && buf[e] != '\n' && (o - e < 3 || memcmp(buf + e, SPACE, 3))) e += utf8_len((unsigned char)buf[e]);
        if (e > o) e = o;
        rc = wtable_add(words, buf + s, e - s, 1);
        s = e;
    }
    free(buf);
    return rc;
}

typedef struct charcount {
    char c[5];
    int64_t n;
} charcount;

static int cmp_charcount(const void *a, const void *b)
{
    const charcount *x = a, *y = b;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return strcmp(x->c, y->c);
}

static int cmp_wentry(const void *a, const void *b)
{
    const wentry *x = a, *y = b;
    if (!x->s || !y->s) return !x->s - !y->s;
    return strcmp(x->s, y->s);
}

/* characters, most frequent first, become the first symbols; words become symbol arrays */
static int split_words(trainer *tr, wtable *words)
{
    qsort(words->e, words->cap, sizeof *words->e, cmp_wentry); /* deterministic word order */
    wtable chars = {0};
    int rc = 0;
    for (size_t i = 0; i < words->n && !rc; i++)
        for (const char *p = words->e[i].s; *p && !rc; p += utf8_len((unsigned char)*p))
            rc = wtable_add(&chars, p, strnlen(p, utf8_len((unsigned char)*p)), words->e[i].count);
    charcount *cc = calloc(chars.n + 1, sizeof *cc);
    size_t nc = 0;
    for (size_t i = 0; cc && i < chars.cap; i++)
        if (chars.e[i].s) {
            snprintf(cc[nc].c, sizeof cc[nc].c, "%s", chars.e[i].s);
            cc[nc++].n = chars.e[i].count;
        }
    wtable_free(&chars);
    if (!cc) return -1;
    qsort(cc, nc, sizeof *cc, cmp_charcount);
    for (size_t i = 0; i < nc && !rc; i++) rc = sym_add(tr, cc[i].c, strlen(cc[i].c)) < 0;
    free(cc);
    tr->words = calloc(words->n + 1, sizeof *tr->words);
    if (rc || !tr->words) return -1;
    for (size_t i = 0; i < words->n; i++) {
        const char *s = words->e[i].s;
        word *w = &tr->words[tr->n_words++];
        w->sym = malloc(strlen(s) * sizeof *w->sym);
        w->count = words->e[i].count;
        if (!w->sym) return -1;
        for (const char *p = s; *p; p += utf8_len((unsigned char)*p))
            w->sym[w->n++] = sym_find(tr, p, strnlen(p, utf8_len((unsigned char)*p)));
    }
    return 0;
}

/* ---- pair counting: a hash of (a, b) → count, cleared through its list of used slots ---- */

typedef struct pairs {
    uint64_t *key;
    int64_t *count;
    size_t *used, n_used, cap;
} pairs;

static void pairs_add(pairs *p, int a, int b, int64_t c)
{
    uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    size_t j = (size_t)(k * 0x9E3779B97F4A7C15ull >> 20) & (p->cap - 1);
    while (p->key[j] && p->key[j] != k) j = (j + 1) & (p->cap - 1);
    if (!p->key[j]) {
        p->key[j] = k;
        p->used[p->n_used++] = j;
    }
    p->count[j] += c;
}

static bool best_pair(trainer *tr, pairs *p, int *a, int *b)
{
    for (size_t i = 0; i < p->n_used; i++) p->key[p->used[i]] = 0, p->count[p->used[i]] = 0;
    p->n_used = 0;
    for (size_t i = 0; i < tr->n_words; i++) {
        const word *w = &tr->words[i];
        for (int k = 0; k + 1 < w->n; k++) {
            if (p->n_used * 2 >= p->cap) return false;
            pairs_add(p, w->sym[k], w->sym[k + 1], w->count);
        }
    }
    int64_t best = 1;
    uint64_t bk = 0;
    for (size_t i = 0; i < p->n_used; i++) {
        size_t j = p->used[i];
        if (p->count[j] > best || (p->count[j] == best && bk && p->key[j] < bk)) best = p->count[j], bk = p->key[j];
    }
    if (!bk) return false;
    *a = (int)((bk - 1) >> 32), *b = (int)((bk - 1) & 0xffffffffu);
    return true;
}

static void apply_merge(trainer *tr, int a, int b, int ab)
{
    for (size_t i = 0; i < tr->n_words; i++) {
        word *w = &tr->words[i];
        int o = 0;
        for (int k = 0; k < w->n; k++) {
            if (k + 1 < w->n && w->sym[k] == a && w->sym[k + 1] == b) w->sym[o++] = ab, k++;
            else w->sym[o++] = w->sym[k];
        }
        w->n = o;
    }
}

static void trainer_free(trainer *tr)
{
    for (int i = 0; i < tr->n_sym; i++) free(tr->sym_text[i]);
    free(tr->sym_text);
    wtable_free(&tr->sym_index);
    for (size_t i = 0; i < tr->n_words; i++) free(tr->words[i].sym);
    free(tr->words);
}

static int vocab_push(qs_spm_vocab *v, const char *piece, float score, int32_t type)
{
    if (!(v->pieces[v->n] = strdup(piece))) return -1;
    v->scores[v->n] = score;
    v->types[v->n++] = type;
    return 0;
}

int qs_bpe_train(const char *text, size_t len, int vocab_size, qs_spm_vocab *out, qs_progress *prog, qs_err *err)
{
    memset(out, 0, sizeof *out);
    if (!len) return qs_err_set(err, QS_E_INPUT, "the text is empty");
    if (vocab_size < 259 + 2 || vocab_size > 1 << 20)
        return qs_err_set(err, QS_E_USAGE, "vocabulary size %d: at least 261 (3 specials, 256 bytes, characters)", vocab_size);
    trainer tr = {0};
    wtable words = {0};
    pairs p = {0};
    p.cap = 1 << 22;
    p.key = calloc(p.cap, sizeof *p.key), p.count = calloc(p.cap, sizeof *p.count), p.used = malloc(p.cap * sizeof *p.used);
    out->pieces = calloc((size_t)vocab_size, sizeof *out->pieces);
    out->scores = calloc((size_t)vocab_size, sizeof *out->scores);
    out->types = calloc((size_t)vocab_size, sizeof *out->types);
    int rc = !p.key || !p.count || !p.used || !out->pieces || !out->scores || !out->types || count_words(text, len, &words) ||
             split_words(&tr, &words);
    if (rc) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    int n_chars = tr.n_sym, budget = vocab_size - 259 - n_chars;
    if (!rc && budget < 0)
        rc = qs_err_set(err, QS_E_USAGE, "the text has %d distinct characters; a vocabulary of %d cannot hold them", n_chars,
                        vocab_size);
    int *merged = calloc((size_t)(budget > 0 ? budget : 1), sizeof *merged), n_merged = 0;
    if (!rc && !merged) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    while (!rc && n_merged < budget) {
        int a, b;
        if (!best_pair(&tr, &p, &a, &b)) break;
        size_t la = strlen(tr.sym_text[a]), lb = strlen(tr.sym_text[b]);
        char *s = malloc(la + lb + 1);
        if (!s) {
            rc = qs_err_set(err, QS_E_OOM, "out of memory");
            break;
        }
        memcpy(s, tr.sym_text[a], la), memcpy(s + la, tr.sym_text[b], lb + 1);
        int before = tr.n_sym, ab = sym_add(&tr, s, la + lb);
        free(s);
        if (ab < 0) rc = qs_err_set(err, QS_E_OOM, "out of memory");
        else {
            if (ab == before) merged[n_merged++] = ab; /* a new piece (an existing one is only re-merged) */
            apply_merge(&tr, a, b, ab);
            if (!qs_progress_step(prog, n_merged, budget)) rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
        }
    }
    if (!rc) {
        rc = vocab_push(out, "<unk>", 0, 2) || vocab_push(out, "<s>", 0, 3) || vocab_push(out, "</s>", 0, 3);
        for (int i = 0; i < 256 && !rc; i++) {
            char t[8];
            snprintf(t, sizeof t, "<0x%02X>", i);
            rc = vocab_push(out, t, 0, 6);
        }
        for (int i = 0; i < n_chars && !rc; i++) rc = vocab_push(out, tr.sym_text[i], (float)-(n_merged + i), 1);
        for (int i = 0; i < n_merged && !rc; i++) rc = vocab_push(out, tr.sym_text[merged[i]], (float)-i, 1);
        if (rc) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    }
    free(merged);
    free(p.key), free(p.count), free(p.used);
    wtable_free(&words);
    trainer_free(&tr);
    if (rc) qs_spm_vocab_free(out);
    return rc;
}

void qs_spm_vocab_free(qs_spm_vocab *v)
{
    if (v->pieces)
        for (int i = 0; i < v->n; i++) free(v->pieces[i]);
    free(v->pieces);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}

int qs_spm_vocab_write_keys(const qs_spm_vocab *v, qs_gguf_writer *w)
{
    return qs_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama") ||
           qs_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default") ||
           qs_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->pieces, (uint64_t)v->n) ||
           qs_gguf_writer_set_arr(w, "tokenizer.ggml.scores", QS_GGUF_F32, v->scores, (uint64_t)v->n) ||
           qs_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", QS_GGUF_I32, v->types, (uint64_t)v->n) ||
           qs_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1) ||
           qs_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2) ||
           qs_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0) ||
           qs_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true) ||
           qs_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false) ||
           qs_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", true)
               ? -1
               : 0;
}
