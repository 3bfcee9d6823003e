/* core/model/tokenizer.c — vocabularies, partitioning, SPM encoding, decoding. */
#include "core/model/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf.h"
#include "core/model/tokenizer_bpe.h"
#include "core/util/unicode.h"

typedef struct strindex {
    int32_t *slot;       /* open addressing: key indices, -1 empty */
    uint32_t cap;
    char *const *keys;
    const uint32_t *lens;
} strindex;

struct qs_vocab {
    qs_vocab_kind kind;
    int32_t n;
    char **text;
    uint32_t *len;
    float *scores;
    int32_t *attr;
    strindex map;        /* token text → id */
    int pre;             /* BPE pre type (tokenizer_bpe.c) */
    bool ignore_merges;
    char **merge;        /* BPE merges "left right", rank = index */
    uint32_t *merge_len;
    int32_t n_merges;
    strindex merge_map;
    int32_t bos, eos, unk, eot;
    bool add_bos, add_eos, add_space_prefix, clean_spaces;
    int32_t *specials;   /* §1.7 step 6 order */
    int32_t n_specials;
    int32_t byte_id[256];
};

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int32_t strindex_find(const strindex *x, const char *s, size_t n)
{
    if (!x->cap) return -1;
    for (uint32_t h = hash_bytes(s, n) & (x->cap - 1);; h = (h + 1) & (x->cap - 1)) {
        int32_t id = x->slot[h];
        if (id < 0) return -1;
        if (x->lens[id] == n && memcmp(x->keys[id], s, n) == 0) return id;
    }
}

/* indexes keys[0..n); the first of equal keys wins */
static int strindex_init(strindex *x, char *const *keys, const uint32_t *lens, int32_t n)
{
    x->keys = keys;
    x->lens = lens;
    for (x->cap = 16; x->cap < 2u * (uint32_t)n; x->cap *= 2) {}
    x->slot = malloc(x->cap * sizeof *x->slot);
    if (!x->slot) return -1;
    memset(x->slot, 0xff, x->cap * sizeof *x->slot);
    for (int32_t i = 0; i < n; i++) {
        if (strindex_find(x, keys[i], lens[i]) >= 0) continue;
        uint32_t h = hash_bytes(keys[i], lens[i]) & (x->cap - 1);
        while (x->slot[h] >= 0) h = (h + 1) & (x->cap - 1);
        x->slot[h] = i;
    }
    return 0;
}

int32_t qs_vocab_find(const qs_vocab *v, const char *s, size_t n) { return strindex_find(&v->map, s, n); }

qs_vocab_kind qs_vocab_kind_of(const qs_vocab *v) { return v->kind; }
int32_t qs_vocab_size(const qs_vocab *v) { return v->n; }
int32_t qs_vocab_bos(const qs_vocab *v) { return v->bos; }
int32_t qs_vocab_eos(const qs_vocab *v) { return v->eos; }
bool qs_vocab_add_bos(const qs_vocab *v) { return v->add_bos; }

const char *qs_vocab_text(const qs_vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || id >= v->n) {
        *len = 0;
        return "";
    }
    *len = v->len[id];
    return v->text[id];
}

bool qs_vocab_is_eog(const qs_vocab *v, int32_t id)
{
    return id >= 0 && (id == v->eos || id == v->eot);
}

void qs_vocab_free(qs_vocab *v)
{
    if (!v) return;
    for (int32_t i = 0; v->text && i < v->n; i++) free(v->text[i]);
    free(v->text);
    free(v->len);
    free(v->scores);
    free(v->attr);
    free(v->map.slot);
    for (int32_t i = 0; v->merge && i < v->n_merges; i++) free(v->merge[i]);
    free(v->merge);
    free(v->merge_len);
    free(v->merge_map.slot);
    free(v->specials);
    free(v);
}

static int attr_of_type(int32_t t)
{
    static const int a[] = {0, QS_ATTR_NORMAL, QS_ATTR_UNKNOWN, QS_ATTR_CONTROL, QS_ATTR_USER_DEFINED,
                            QS_ATTR_UNUSED, QS_ATTR_BYTE};
    return t >= 0 && t <= 6 ? a[t] : 0;
}

static bool text_is(const qs_vocab *v, int32_t id, const char *s)
{
    return v->len[id] == strlen(s) && memcmp(v->text[id], s, v->len[id]) == 0;
}

/* §1.7 steps 1 (EOT only), 3 and 6 */
static void post_process(qs_vocab *v)
{
    static const char *const eot[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                      "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<end_of_utterance>"};
    static const char *const eog[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
                                      "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
                                      "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                                      "<turn|>", "<|tool_response>"};
    if (v->eot < 0)
        for (int32_t id = 0; id < v->n && v->eot < 0; id++)
            for (size_t k = 0; k < sizeof eot / sizeof *eot; k++)
                if (text_is(v, id, eot[k])) {
                    v->eot = id;
                    v->attr[id] |= QS_ATTR_CONTROL;
                }
    for (int32_t id = 0; id < v->n; id++)
        for (size_t k = 0; k < sizeof eog / sizeof *eog; k++)
            if (text_is(v, id, eog[k])) v->attr[id] |= QS_ATTR_CONTROL;
    v->specials = malloc((size_t)(v->n > 0 ? (uint32_t)v->n : 1u) * sizeof *v->specials);
    v->n_specials = 0;
    for (int32_t id = 0; id < v->n; id++)
        if (v->attr[id] & (QS_ATTR_CONTROL | QS_ATTR_USER_DEFINED | QS_ATTR_UNKNOWN)) v->specials[v->n_specials++] = id;
    /* stable order: length descending, then id ascending (insertion sort: lists are short) */
    for (int32_t i = 1; i < v->n_specials; i++) {
        int32_t x = v->specials[i], j = i - 1;
        while (j >= 0 && v->len[v->specials[j]] < v->len[x]) {
            v->specials[j + 1] = v->specials[j];
            j--;
        }
        v->specials[j + 1] = x;
    }
}

static int load_ids(qs_vocab *v, const qs_gguf *g, qs_err *err)
{
    static const char *const keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.eot_token_id"};
    int32_t *dst[] = {&v->bos, &v->eos, &v->unk, &v->eot};
    for (int i = 0; i < 4; i++) {
        if (*dst[i] >= v->n) *dst[i] = -1;
        uint32_t x;
        int rc = qs_gguf_get_u32(g, keys[i], &x, err);
        if (rc < 0) return rc;
        if (rc == 0 && x < (uint32_t)v->n) *dst[i] = (int32_t)x;
    }
    static const char *const flags[] = {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
                                        "tokenizer.ggml.add_space_prefix"};
    bool *fdst[] = {&v->add_bos, &v->add_eos, &v->add_space_prefix};
    for (int i = 0; i < 3; i++)
        if (qs_gguf_get_bool(g, flags[i], fdst[i], err) < 0) return -QS_E_INPUT;
    return 0;
}

static int load_tokens(qs_vocab *v, const qs_gguf *g, qs_err *err)
{
    const qs_gguf_kv *tk = qs_gguf_get_kv(g, "tokenizer.ggml.tokens");
    if (!tk || tk->type != QS_GGUF_ARRAY || tk->arr_type != QS_GGUF_STRING || tk->n == 0 || tk->n > (1u << 30))
        return qs_err_set(err, QS_E_INPUT, "tokenizer.ggml.tokens missing or not an array of strings");
    v->n = (int32_t)tk->n;
    const qs_gguf_kv *sc = qs_gguf_get_kv(g, "tokenizer.ggml.scores"), *ty = qs_gguf_get_kv(g, "tokenizer.ggml.token_type");
    if (sc && (sc->type != QS_GGUF_ARRAY || sc->arr_type != QS_GGUF_F32 || sc->n < tk->n))
        return qs_err_set(err, QS_E_INPUT, "tokenizer.ggml.scores must be float32 × %d", v->n);
    if (ty && (ty->type != QS_GGUF_ARRAY || ty->arr_type != QS_GGUF_I32 || ty->n < tk->n))
        return qs_err_set(err, QS_E_INPUT, "tokenizer.ggml.token_type must be int32 × %d", v->n);
    v->text = calloc((size_t)v->n, sizeof *v->text);
    v->len = calloc((size_t)v->n, sizeof *v->len);
    v->scores = calloc((size_t)v->n, sizeof *v->scores);
    v->attr = calloc((size_t)v->n, sizeof *v->attr);
    if (!v->text || !v->len || !v->scores || !v->attr) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int32_t i = 0; i < v->n; i++) {
        size_t l;
        const char *s = qs_gguf_kv_arr_str(tk, (uint64_t)i, &l);
        char empty[32];
        if (l == 0) {
            l = (size_t)snprintf(empty, sizeof empty, "[EMPTY_%d]", i);
            s = empty;
        }
        v->text[i] = malloc(l + 1);
        if (!v->text[i]) return qs_err_set(err, QS_E_OOM, "out of memory");
        memcpy(v->text[i], s, l);
        v->text[i][l] = '\0';
        v->len[i] = (uint32_t)l;
        v->scores[i] = sc ? (float)qs_gguf_kv_num(sc, (uint64_t)i) : 0.0f;
        v->attr[i] = ty ? attr_of_type((int32_t)qs_gguf_kv_num(ty, (uint64_t)i)) : QS_ATTR_NORMAL;
    }
    return strindex_init(&v->map, v->text, v->len, v->n) ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
}

static int load_merges(qs_vocab *v, const qs_gguf *g, qs_err *err)
{
    const qs_gguf_kv *mk = qs_gguf_get_kv(g, "tokenizer.ggml.merges");
    if (!mk || mk->type != QS_GGUF_ARRAY || mk->arr_type != QS_GGUF_STRING || mk->n > (1u << 30))
        return qs_err_set(err, QS_E_INPUT, "tokenizer.ggml.merges missing or not an array of strings");
    v->n_merges = (int32_t)mk->n;
    v->merge = calloc((size_t)(v->n_merges ? v->n_merges : 1), sizeof *v->merge);
    v->merge_len = calloc((size_t)(v->n_merges ? v->n_merges : 1), sizeof *v->merge_len);
    if (!v->merge || !v->merge_len) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int32_t i = 0; i < v->n_merges; i++) {
        size_t l;
        const char *m = qs_gguf_kv_arr_str(mk, (uint64_t)i, &l);
        if (!(v->merge[i] = malloc(l + 1))) return qs_err_set(err, QS_E_OOM, "out of memory");
        memcpy(v->merge[i], m, l);
        v->merge[i][l] = '\0';
        v->merge_len[i] = (uint32_t)l;
    }
    return strindex_init(&v->merge_map, v->merge, v->merge_len, v->n_merges) ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
}

qs_vocab *qs_vocab_load(const qs_gguf *g, qs_err *err)
{
    const char *model;
    size_t mlen;
    int rc = qs_gguf_get_str(g, "tokenizer.ggml.model", &model, &mlen, err);
    if (rc) {
        if (rc > 0) qs_err_set(err, QS_E_UNSUPPORTED, "the file has no tokenizer (tokenizer.ggml.model missing)");
        return NULL;
    }
    qs_vocab *v = calloc(1, sizeof *v);
    if (!v) {
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    if (mlen == 5 && !memcmp(model, "llama", 5)) {
        *v = (qs_vocab){.kind = QS_VOCAB_SPM, .bos = 1, .eos = 2, .unk = 0, .eot = -1, .add_bos = true,
                        .add_space_prefix = true};
    } else if (mlen == 4 && !memcmp(model, "gpt2", 4)) {
        *v = (qs_vocab){.kind = QS_VOCAB_BPE, .bos = 11, .eos = 11, .unk = -1, .eot = -1, .clean_spaces = true};
        const char *pre = "";
        size_t plen = 0;
        if (qs_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &plen, err) < 0 ||
            (v->pre = qs_bpe_pre_find(pre, plen, &v->clean_spaces, &v->ignore_merges, &v->add_bos)) < 0) {
            if (v->pre < 0) qs_err_set(err, QS_E_UNSUPPORTED, "BPE pre-tokenizer '%.*s' is not supported", (int)(plen < 40 ? plen : 40), pre);
            free(v);
            return NULL;
        }
    } else {
        qs_err_set(err, QS_E_UNSUPPORTED, "tokenizer model '%.*s' is not supported", (int)(mlen < 40 ? mlen : 40), model);
        free(v);
        return NULL;
    }
    rc = load_tokens(v, g, err);
    if (!rc) rc = load_ids(v, g, err);
    if (!rc && v->kind == QS_VOCAB_BPE) rc = load_merges(v, g, err);
    if (rc) {
        qs_vocab_free(v);
        return NULL;
    }
    for (int b = 0; b < 256; b++) {
        char t[8];
        snprintf(t, sizeof t, "<0x%02X>", b);
        v->byte_id[b] = qs_vocab_find(v, t, 6);
        if (v->byte_id[b] < 0) {
            char one = (char)b;
            v->byte_id[b] = qs_vocab_find(v, &one, 1);
        }
    }
    post_process(v);
    return v;
}

/* ---- partitioning (§5) ---- */

typedef struct frag {
    int32_t id;   /* >= 0: a special token; -1: raw bytes [o, o+n) */
    size_t o, n;
} frag;

typedef struct fraglist {
    frag *f;
    size_t n, cap;
    bool oom;            /* a fragment was dropped for want of memory */
} fraglist;

static void push_frag(fraglist *l, frag f)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        frag *p = realloc(l->f, cap * sizeof *p);
        if (!p) {
            l->oom = true;
            return;
        }
        l->f = p, l->cap = cap;
    }
    l->f[l->n++] = f;
}

static bool c_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static const char *find_bytes(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0 || nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && memcmp(h + i, nd, nn) == 0) return h + i;
    return NULL;
}

static void split_special(const qs_vocab *v, int32_t id, const char *text, fraglist *in, fraglist *out)
{
    const char *st = v->text[id];
    size_t sl = v->len[id];
    int a = v->attr[id];
    for (size_t k = 0; k < in->n; k++) {
        frag f = in->f[k];
        if (f.id >= 0) {
            push_frag(out, f);
            continue;
        }
        size_t o = f.o, end = f.o + f.n;
        while (o < end) {
            const char *hit = find_bytes(text + o, end - o, st, sl);
            if (!hit) {
                push_frag(out, (frag){-1, o, end - o});
                break;
            }
            size_t at = (size_t)(hit - text), left = at - o;
            if (a & QS_ATTR_LSTRIP)
                while (left > 0 && c_space(text[o + left - 1])) left--;
            if (left) push_frag(out, (frag){-1, o, left});
            push_frag(out, (frag){id, at, sl});
            o = at + sl;
            if (o < end && (a & QS_ATTR_RSTRIP))
                while (o < end && c_space(text[o])) o++;
        }
    }
}

static void partition(const qs_vocab *v, const char *text, size_t len, bool parse_special, fraglist *out)
{
    fraglist cur = {0}, next = {0};
    if (len) push_frag(&cur, (frag){-1, 0, len});
    for (int32_t k = 0; k < v->n_specials; k++) {
        int32_t id = v->specials[k];
        if (!parse_special && (v->attr[id] & (QS_ATTR_CONTROL | QS_ATTR_UNKNOWN))) continue;
        next.n = 0;
        split_special(v, id, text, &cur, &next);
        fraglist t = cur;
        cur = next;
        next = t;
    }
    free(next.f);
    cur.oom |= next.oom;
    *out = cur;
}

/* ---- SPM (§3) ---- */

typedef struct idlist {
    int32_t *v;
    int64_t n, cap;
    bool oom;            /* an id was dropped for want of memory */
} idlist;

static void push_id(idlist *l, int32_t id)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 64;
        int32_t *p = realloc(l->v, (size_t)cap * sizeof *p);
        if (!p) {
            l->oom = true;
            return;
        }
        l->v = p, l->cap = cap;
    }
    l->v[l->n++] = id;
}

typedef struct sym {
    int prev, next;
    size_t o, n;
} sym;

typedef struct cand {
    double score;        /* SPM: the token score; BPE: −rank (higher first) */
    int left, right;
    size_t size;
} cand;

typedef struct heap {
    cand *c;
    size_t n, cap;
    bool oom;            /* a candidate was dropped for want of memory */
} heap;

static bool cand_before(const cand *a, const cand *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(heap *h, cand c)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        cand *p = realloc(h->c, cap * sizeof *p);
        if (!p) {
            h->oom = true;
            return;
        }
        h->c = p, h->cap = cap;
    }
    size_t i = h->n++;
    h->c[i] = c;
    while (i > 0 && cand_before(&h->c[i], &h->c[(i - 1) / 2])) {
        cand t = h->c[i];
        h->c[i] = h->c[(i - 1) / 2];
        h->c[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static cand heap_pop(heap *h)
{
    cand top = h->c[0];
    h->c[0] = h->c[--h->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && cand_before(&h->c[l], &h->c[m])) m = l;
        if (r < h->n && cand_before(&h->c[r], &h->c[m])) m = r;
        if (m == i) break;
        cand t = h->c[i];
        h->c[i] = h->c[m];
        h->c[m] = t;
        i = m;
    }
    return top;
}

static void try_pair(const qs_vocab *v, const char *s, const sym *sy, int l, int r, heap *h)
{
    if (l < 0 || r < 0) return;
    int32_t id = qs_vocab_find(v, s + sy[l].o, sy[l].n + sy[r].n);
    if (id >= 0) heap_push(h, (cand){v->scores[id], l, r, sy[l].n + sy[r].n});
}

/* one symbol per UTF-8 character by its lead byte (§3.2), as a doubly linked list */
static int split_symbols(const char *s, size_t n, sym *sy)
{
    int ns = 0;
    for (size_t o = 0; o < n; ns++) {
        uint8_t hi = (uint8_t)s[o] >> 4;
        size_t l = hi < 0xC ? 1 : hi < 0xE ? 2 : hi == 0xE ? 3 : 4;
        if (l > n - o) l = n - o;
        sy[ns] = (sym){ns - 1, -1, o, l};
        if (ns > 0) sy[ns - 1].next = ns;
        o += l;
    }
    return ns;
}

typedef void (*pair_fn)(const qs_vocab *v, const char *s, const sym *sy, int l, int r, heap *h);

/* the merge loop shared by SPM (§3.4) and BPE (§4.9): best candidate first (pair decides the
 * order: score or −rank), stale candidates skipped, the left symbol absorbs the right; false when
 * a candidate was dropped for want of memory */
static bool merge_symbols(const qs_vocab *v, const char *s, sym *sy, int ns, pair_fn pair)
{
    heap h = {0};
    for (int i = 0; i + 1 < ns; i++) pair(v, s, sy, i, i + 1, &h);
    while (h.n) {
        cand c = heap_pop(&h);
        if (sy[c.left].n == 0 || sy[c.right].n == 0 || sy[c.left].n + sy[c.right].n != c.size) continue;
        sy[c.left].n += sy[c.right].n;
        sy[c.right].n = 0;
        sy[c.left].next = sy[c.right].next;
        if (sy[c.right].next >= 0) sy[sy[c.right].next].prev = c.left;
        pair(v, s, sy, sy[c.left].prev, c.left, &h);
        pair(v, s, sy, c.left, sy[c.left].next, &h);
    }
    free(h.c);
    return !h.oom;
}

static void spm_encode(const qs_vocab *v, const char *raw, size_t rn, bool prefix, idlist *out)
{
    /* §3.1: optional leading space, every space → ▁ */
    size_t cap = 3 * (rn + 1), n = 0;
    char *s = malloc(cap);
    if (!s) {
        out->oom = true;
        return;
    }
    if (prefix) memcpy(s + n, "\xE2\x96\x81", 3), n += 3;
    for (size_t i = 0; i < rn; i++) {
        if (raw[i] == ' ') memcpy(s + n, "\xE2\x96\x81", 3), n += 3;
        else s[n++] = raw[i];
    }
    sym *sy = malloc((n + 1) * sizeof *sy);
    if (!sy) {
        free(s);
        out->oom = true;
        return;
    }
    int ns = split_symbols(s, n, sy);
    out->oom |= !merge_symbols(v, s, sy, ns, try_pair);
    for (int i = ns ? 0 : -1; i >= 0; i = sy[i].next) {
        int32_t id = qs_vocab_find(v, s + sy[i].o, sy[i].n);
        if (id >= 0) {
            push_id(out, id);
            continue;
        }
        for (size_t b = 0; b < sy[i].n; b++) {
            int32_t bid = v->byte_id[(uint8_t)s[sy[i].o + b]];
            if (bid >= 0) push_id(out, bid);
        }
    }
    free(sy);
    free(s);
}

/* ---- BPE (§4) ---- */

static void try_merge(const qs_vocab *v, const char *s, const sym *sy, int l, int r, heap *h)
{
    if (l < 0 || r < 0) return;
    size_t a = sy[l].n, b = sy[r].n;
    char key[1024];
    if (a + b + 1 > sizeof key) return;
    memcpy(key, s + sy[l].o, a);
    key[a] = ' ';
    memcpy(key + a + 1, s + sy[r].o, b);
    int32_t rank = strindex_find(&v->merge_map, key, a + b + 1);
    if (rank >= 0) heap_push(h, (cand){-(double)rank, l, r, a + b});
}

/* rank-ordered merges of one mapped word, then the lookup of §4.10 */
static void bpe_word(const qs_vocab *v, const char *s, size_t n, idlist *out)
{
    if (v->ignore_merges) {
        int32_t id = qs_vocab_find(v, s, n);
        if (id >= 0) {
            push_id(out, id);
            return;
        }
    }
    sym *sy = malloc((n + 1) * sizeof *sy);
    if (!sy) {
        out->oom = true;
        return;
    }
    int ns = split_symbols(s, n, sy);
    out->oom |= !merge_symbols(v, s, sy, ns, try_merge);
    for (int i = ns ? 0 : -1; i >= 0; i = sy[i].next) {
        int32_t id = qs_vocab_find(v, s + sy[i].o, sy[i].n);
        if (id >= 0) {
            push_id(out, id);
            continue;
        }
        for (size_t b = 0; b < sy[i].n; b++)
            if ((id = qs_vocab_find(v, s + sy[i].o + b, 1)) >= 0) push_id(out, id);
    }
    free(sy);
}

static int bpe_encode(const qs_vocab *v, const char *raw, size_t rn, idlist *out, qs_err *err)
{
    uint32_t *cp = malloc((rn + 1) * sizeof *cp);
    int64_t n = cp ? qs_utf8_decode(raw, rn, cp) : -1;
    if (n < 0) {
        free(cp);
        return qs_err_set(err, QS_E_INPUT, "invalid UTF-8: a code point above U+10FFFF");
    }
    int nw;
    int *ws = qs_bpe_pretokenize(v->pre, cp, (int)n, &nw);
    char *word = malloc(8 * (size_t)n + 8), *mapped = malloc(16 * (size_t)n + 16);
    for (int w = 0; ws && word && mapped && w < nw; w++) {
        int a = ws[w], b = w + 1 < nw ? ws[w + 1] : (int)n;
        size_t wl = 0, ml = 0;
        for (int i = a; i < b; i++) wl += (size_t)qs_utf8_encode(cp[i], word + wl);
        for (size_t i = 0; i < wl; i++) ml += (size_t)qs_utf8_encode(qs_bpe_byte_to_cp((uint8_t)word[i]), mapped + ml);
        if (ml) bpe_word(v, mapped, ml, out);
    }
    bool oom = !ws || !word || !mapped;
    free(word);
    free(mapped);
    free(ws);
    free(cp);
    return oom ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
}

int qs_tokenize(const qs_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                int32_t **ids, int64_t *n, qs_err *err)
{
    *ids = NULL;
    *n = 0;
    if (add_special && ((v->add_bos && v->bos < 0) || (v->add_eos && v->eos < 0)))
        return qs_err_set(err, QS_E_INPUT, "the vocabulary adds BOS/EOS but has no such token");
    idlist out = {0};
    fraglist fr;
    partition(v, text, len, parse_special, &fr);
    if (add_special && v->add_bos) push_id(&out, v->bos);
    bool prev_special = true;
    int rc = 0;
    for (size_t k = 0; k < fr.n && !rc; k++) {
        if (fr.f[k].id >= 0) {
            push_id(&out, fr.f[k].id);
            prev_special = true;
        } else if (v->kind == QS_VOCAB_SPM) {
            spm_encode(v, text + fr.f[k].o, fr.f[k].n, v->add_space_prefix && prev_special, &out);
            prev_special = false;
        } else {
            rc = bpe_encode(v, text + fr.f[k].o, fr.f[k].n, &out, err);
        }
    }
    if (add_special && v->add_eos) push_id(&out, v->eos);
    free(fr.f);
    if (!rc && (out.oom || fr.oom)) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    if (rc) {
        free(out.v);
        return rc;
    }
    *ids = out.v ? out.v : malloc(sizeof(int32_t));
    *n = out.n;
    return 0;
}

/* ---- decoding (§6) ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

size_t qs_token_piece(const qs_vocab *v, int32_t id, bool special, int lstrip, char *buf, size_t cap)
{
    if (id < 0 || id >= v->n) return 0;
    int a = v->attr[id];
    char tmp[1024];
    size_t n = 0;
    if (!special && (a & (QS_ATTR_UNKNOWN | QS_ATTR_CONTROL))) return 0;
    if (a & (QS_ATTR_UNKNOWN | QS_ATTR_CONTROL | QS_ATTR_USER_DEFINED)) {
        n = v->len[id] < sizeof tmp ? v->len[id] : sizeof tmp;
        memcpy(tmp, v->text[id], n);
    } else if ((a & QS_ATTR_NORMAL) && v->kind == QS_VOCAB_BPE) {
        uint32_t cps[256];
        int64_t nc = v->len[id] <= 256 ? qs_utf8_decode(v->text[id], v->len[id], cps) : -1;
        for (int64_t i = 0; i < nc && n < sizeof tmp - 300; i++) {
            int b = qs_bpe_cp_to_byte(cps[i]);
            if (b >= 0) {
                tmp[n++] = (char)b;
                continue;
            }
            char u[4];
            int ul = qs_utf8_encode(cps[i], u);
            n += (size_t)snprintf(tmp + n, sizeof tmp - n, "[UNK_BYTE_0x");
            for (int k = 0; k < ul; k++) n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%02x", (uint8_t)u[k]);
            n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%.*s]", (int)(v->len[id] < 256 ? v->len[id] : 256), v->text[id]);
        }
    } else if (a & QS_ATTR_NORMAL) {
        const char *t = v->text[id];
        for (size_t i = 0; i < v->len[id] && n < sizeof tmp; i++) {
            if (v->kind == QS_VOCAB_SPM && i + 2 < v->len[id] && !memcmp(t + i, "\xE2\x96\x81", 3)) {
                tmp[n++] = ' ';
                i += 2;
            } else {
                tmp[n++] = t[i];
            }
        }
    } else if ((a & QS_ATTR_BYTE) && v->len[id] >= 6) {
        int h1 = hexval(v->text[id][3]), h2 = hexval(v->text[id][4]);
        if (h1 >= 0 && h2 >= 0) tmp[n++] = (char)(h1 * 16 + h2);
    }
    size_t skip = 0;
    while (lstrip > 0 && skip < n && tmp[skip] == ' ') skip++, lstrip--;
    size_t out = n - skip < cap ? n - skip : cap;
    memcpy(buf, tmp + skip, out);
    return out;
}

static size_t clean_pass(char *s, size_t n, int pass)
{
    char *o = malloc(n + 1);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        char x = s[i];
        if (i >= 1 && pass == 1 && s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) m--;
        if (i >= 1 && pass == 2 && x == '\'' && i + 1 < n && s[i - 1] == ' ' && s[i + 1] == ' ') {
            m--;
            o[m++] = x;
            i++;
            if (i + 1 < n) s[i] = '\0'; /* the skipped byte counts as NUL for the next test */
            continue;
        }
        if (i >= 1 && pass == 3 && s[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char c = s[i + 1];
            if (c == 's' || c == 'm') m--;
            else if (c != 't' && c != 'd' && i + 2 < n &&
                     ((c == 'r' && s[i + 2] == 'e') || (c == 'v' && s[i + 2] == 'e'))) m--;
        }
        o[m++] = x;
    }
    memcpy(s, o, m);
    free(o);
    return m;
}

char *qs_detokenize(const qs_vocab *v, const int32_t *ids, int64_t n, bool remove_special, bool unparse_special)
{
    bool remove_space = v->add_space_prefix;
    int64_t a = 0, b = n;
    if (remove_special && v->add_bos && n > 0 && ids[0] == v->bos) a = 1, remove_space = false;
    if (remove_special && v->add_eos && b > a && ids[b - 1] == v->eos) b--;
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    for (int64_t i = a; i < b; i++) {
        char piece[1024];
        size_t pn = qs_token_piece(v, ids[i], unparse_special, i == a && remove_space ? 1 : 0, piece, sizeof piece);
        while (len + pn + 1 > cap) {
            char *p = realloc(s, cap *= 2);
            if (!p) {
                free(s);
                return NULL;
            }
            s = p;
        }
        memcpy(s + len, piece, pn);
        len += pn;
    }
    if (v->clean_spaces)
        for (int p = 1; p <= 3; p++) len = clean_pass(s, len, p);
    s[len] = '\0';
    return s;
}
