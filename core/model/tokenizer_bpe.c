/* core/model/tokenizer_bpe.c — byte-level BPE (spec/tokenizer.md §4): pre-tokenizer lists
 * (hand-written splitters for the GPT-2, LLaMA-3 and Qwen2 patterns and matchers for the
 * generic patterns of the supported pre types), the GPT-2 byte map, rank-ordered merges. */
#include "core/model/tokenizer_bpe.h"

#include <stdlib.h>
#include <string.h>

#include "core/util/unicode.h"

#define CLS(f) ((f) & 0x0F)
#define WS(f) ((f) & QS_UC_WHITESPACE)

/* ---- the pre types ---- */

typedef enum pattern {
    P_GPT2, P_LLAMA3, P_QWEN2,           /* splitters: cut the whole chunk */
    P_NUM1, P_NUMRUN, P_PUNCT_FALCON, P_PUNCT_DEFAULT, P_DIGIT3, P_CRLF, P_WS_LETTERS, P_WS_PUNCT, P_CJK,
    P_DSL_LETTERS, P_DSL_PUNCT, P_WS_END, P_END
} pattern;

typedef struct pre_def {
    const char *names;   /* '|'-separated tokenizer.ggml.pre values */
    pattern list[8];
    bool clean_spaces, ignore_merges, add_bos;
} pre_def;

static const pre_def pre_defs[] = {
    {"default|", {P_PUNCT_DEFAULT, P_GPT2, P_NUMRUN, P_DIGIT3, P_END}, true, false, false},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano", {P_LLAMA3, P_END}, true, true, true},
    {"dbrx|smaug-bpe", {P_LLAMA3, P_END}, true, false, false},
    {"deepseek-llm", {P_CRLF, P_DSL_LETTERS, P_DSL_PUNCT, P_WS_END, P_CJK, P_NUMRUN, P_END}, false, false, false},
    {"deepseek-coder", {P_CRLF, P_WS_LETTERS, P_WS_PUNCT, P_CJK, P_NUM1, P_END}, false, false, false},
    {"falcon", {P_PUNCT_FALCON, P_GPT2, P_DIGIT3, P_END}, true, false, false},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|exaone4|mpt|olmo|jais",
     {P_GPT2, P_END}, true, false, false},
    {"starcoder|refact|codeshell|exaone|minerva-7b|mellum2", {P_NUM1, P_GPT2, P_END}, true, false, false},
    {"command-r|smollm", {P_NUM1, P_GPT2, P_END}, false, false, false},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2", {P_QWEN2, P_END}, false, false, false},
    {"megrez|stablelm2", {P_QWEN2, P_END}, true, false, false},
};

static bool name_in(const char *names, const char *pre, size_t n)
{
    for (const char *p = names; *p;) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, pre, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

int qs_bpe_pre_find(const char *pre, size_t n, bool *clean_spaces, bool *ignore_merges, bool *add_bos)
{
    for (size_t i = 0; i < sizeof pre_defs / sizeof *pre_defs; i++)
        if (name_in(pre_defs[i].names, pre, n) || (n == 0 && i == 0)) {
            *clean_spaces = pre_defs[i].clean_spaces;
            *ignore_merges = pre_defs[i].ignore_merges;
            *add_bos = pre_defs[i].add_bos;
            return (int)i;
        }
    return -1;
}

/* ---- matching over one chunk [a, b) ---- */

typedef struct text {
    const uint32_t *cp;
    const int *fl;
} text;

static int fl_at(const text *t, int i, int b) { return i < b ? t->fl[i] : -1; }
static bool has(int f, int cls) { return f >= 0 && CLS(f) == cls; }
static bool is_ws(int f) { return f >= 0 && WS(f); }
static bool non_wln(int f) { return f >= 0 && !WS(f) && CLS(f) != QS_UC_LETTER && CLS(f) != QS_UC_NUMBER; }
static uint32_t lower_ascii(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int contraction(const text *t, int p, int b, bool fold)
{
    if (t->cp[p] != '\'' || p + 1 >= b) return 0;
    uint32_t c1 = t->cp[p + 1], c2 = p + 2 < b ? t->cp[p + 2] : 0;
    if (fold) c1 = lower_ascii(c1), c2 = lower_ascii(c2);
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    if (p + 2 < b && ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))) return 3;
    return 0;
}

static int ws_piece(const text *t, int p, int b, bool crlf)
{
    int k = 0, r = -1;
    while (p + k < b && is_ws(t->fl[p + k])) {
        if (crlf && (t->cp[p + k] == '\r' || t->cp[p + k] == '\n')) r = k + 1;
        k++;
    }
    if (r > 0) return r;
    if (k >= 2 && p + k < b) return k - 1;
    return k;
}

static int gpt2_piece(const text *t, int p, int b)
{
    int n = contraction(t, p, b, false);
    if (n) return n;
    int q = t->cp[p] == ' ' ? p + 1 : p, g = fl_at(t, q, b), e = q;
    if (has(g, QS_UC_LETTER) || has(g, QS_UC_NUMBER)) {
        int cls = CLS(g);
        while (e < b && has(t->fl[e], cls)) e++;
        return e - p;
    }
    if (non_wln(g)) {
        while (e < b && non_wln(t->fl[e])) e++;
        return e - p;
    }
    n = ws_piece(t, p, b, false);
    return n ? n : 1;
}

static int llama3_piece(const text *t, int p, int b, bool qwen)
{
    int n = contraction(t, p, b, true);
    if (n) return n;
    uint32_t c = t->cp[p];
    int f = t->fl[p], e;
    if (c != '\r' && c != '\n' && !has(f, QS_UC_NUMBER) && (has(f, QS_UC_LETTER) || has(fl_at(t, p + 1, b), QS_UC_LETTER))) {
        for (e = p + 1; e < b && has(t->fl[e], QS_UC_LETTER); e++) {}
        return e - p;
    }
    if (has(f, QS_UC_NUMBER)) {
        if (qwen) return 1;
        for (e = p; e < b && e - p < 3 && has(t->fl[e], QS_UC_NUMBER); e++) {}
        return e - p;
    }
    int g = c == ' ' ? fl_at(t, p + 1, b) : f;
    if (g < 0 || (!WS(g) && CLS(g) != QS_UC_LETTER && CLS(g) != QS_UC_NUMBER)) {
        e = c == ' ' ? p + 1 : p;
        while (e < b && non_wln(t->fl[e])) e++;
        while (e < b && (t->cp[e] == '\r' || t->cp[e] == '\n')) e++;
        return e - p;
    }
    n = ws_piece(t, p, b, true);
    return n ? n : 1;
}

/* generic patterns: length of the match at p (0: none) */
static bool cjk(uint32_t c) { return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x0800 && c <= 0x4E00) || (c >= 0xAC00 && c <= 0xD7FF); }

/* wide mode sees non-ASCII whitespace as U+000B */
static uint32_t wide(const text *t, int i) { return t->cp[i] >= 0x80 && WS(t->fl[i]) ? 0x0B : t->cp[i]; }

static bool punct_member(const text *t, int i, bool backquote)
{
    uint32_t c = t->cp[i];
    if (CLS(t->fl[i]) == QS_UC_PUNCT) return true;
    return c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' || c == '|' || (backquote && c == '`');
}

static const uint32_t dsl_letter_ranges[][2] = {
    {'A', 'Z'}, {'a', 'z'}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA}, {0x1BC, 0x1BF}, {0x1C4, 0x293},
    {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377}, {0x37B, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A},
    {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556}, {0x10A0, 0x10C5},
    {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77},
    {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57},
    {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC},
    {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115},
    {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134},
    {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B},
    {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F},
    {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2},
    {0x118A0, 0x118DF}, {0x1E900, 0x1E943}};

static bool in_ranges(uint32_t c, const uint32_t (*r)[2], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (c >= r[i][0] && c <= r[i][1]) return true;
    return false;
}

static bool dsl_letter(uint32_t c) { return in_ranges(c, dsl_letter_ranges, sizeof dsl_letter_ranges / sizeof *dsl_letter_ranges); }

static bool dsl_punct(uint32_t c)
{
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '~') || (c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF5E) ||
           (c >= 0x2018 && c <= 0x201F) || (c >= 0x3000 && c <= 0x3002);
}

/* \s? X+ in wide or collapsed form: one optional whitespace, then a non-empty run of class */
static int opt_ws_run(const text *t, int p, int b, bool (*member)(const text *, int))
{
    int e = p;
    if (is_ws(t->fl[p]) && p + 1 < b && member(t, p + 1)) e = p + 1;
    if (!member(t, e)) return 0;
    while (e < b && member(t, e)) e++;
    return e - p;
}

static bool m_letter(const text *t, int i) { return has(t->fl[i], QS_UC_LETTER); }
static bool m_punct(const text *t, int i) { return has(t->fl[i], QS_UC_PUNCT); }
static bool m_dsl_letter(const text *t, int i) { return dsl_letter(wide(t, i)); }
static bool m_dsl_punct(const text *t, int i) { return dsl_punct(wide(t, i)); }

static int match_at(pattern pt, const text *t, int p, int b)
{
    int e = p;
    switch (pt) {
    case P_NUM1: return has(t->fl[p], QS_UC_NUMBER) ? 1 : 0;
    case P_NUMRUN: while (e < b && has(t->fl[e], QS_UC_NUMBER)) e++; return e - p;
    case P_PUNCT_FALCON: case P_PUNCT_DEFAULT:
        while (e < b && punct_member(t, e, pt == P_PUNCT_FALCON)) e++;
        return e - p;
    case P_DIGIT3:
        for (; e < b && e - p < 3 && t->cp[e] >= '0' && t->cp[e] <= '9'; e++) {}
        return e - p == 3 ? 3 : 0;
    case P_CRLF: return t->cp[p] == '\r' || t->cp[p] == '\n' ? 1 : 0;
    case P_WS_LETTERS: return opt_ws_run(t, p, b, m_letter);
    case P_WS_PUNCT: return opt_ws_run(t, p, b, m_punct);
    case P_DSL_LETTERS: return opt_ws_run(t, p, b, m_dsl_letter);
    case P_DSL_PUNCT: return opt_ws_run(t, p, b, m_dsl_punct);
    case P_CJK: while (e < b && cjk(wide(t, e))) e++; return e - p;
    case P_WS_END: while (e < b && is_ws(t->fl[e])) e++; return e == b ? b - p : 0;
    default: return 0;
    }
}

typedef struct chunks {
    int *start;          /* chunk i = [start[i], start[i+1]) */
    int n, cap;
    bool oom;            /* a chunk was dropped for want of memory */
} chunks;

static void add_chunk(chunks *c, int s)
{
    if (c->n + 2 > c->cap) {
        int cap = c->cap * 2 + 16;
        int *p = realloc(c->start, (size_t)cap * sizeof *p);
        if (!p) {
            c->oom = true;
            return;
        }
        c->start = p, c->cap = cap;
    }
    c->start[c->n++] = s;
}

/* refines every chunk of in by pattern pt (§4.5) */
static void refine(pattern pt, const text *t, const chunks *in, int end, chunks *out)
{
    out->n = 0;
    for (int k = 0; k < in->n; k++) {
        int a = in->start[k], b = k + 1 < in->n ? in->start[k + 1] : end, p = a, gap = a;
        while (p < b) {
            int len;
            if (pt <= P_QWEN2) len = pt == P_GPT2 ? gpt2_piece(t, p, b) : llama3_piece(t, p, b, pt == P_QWEN2);
            else len = match_at(pt, t, p, b);
            if (len <= 0) {
                p++;
                continue;
            }
            if (gap < p) add_chunk(out, gap);
            add_chunk(out, p);
            p += len;
            gap = p;
        }
        if (gap < b) add_chunk(out, gap);
    }
}

/* Cuts n code points into words; returns the word starts (count in *nw; word i ends where
 * word i+1 starts, the last at n). */
int *qs_bpe_pretokenize(int pre, const uint32_t *cp, int n, int *nw)
{
    int *fl = malloc((size_t)(n ? n : 1) * sizeof *fl);
    *nw = 0;
    if (!fl) return NULL;
    for (int i = 0; i < n; i++) fl[i] = qs_uc_flags(cp[i]);
    text t = {cp, fl};
    chunks a = {0}, b = {0};
    if (n) add_chunk(&a, 0);
    for (int k = 0; pre_defs[pre].list[k] != P_END; k++) {
        refine(pre_defs[pre].list[k], &t, &a, n, &b);
        chunks tmp = a;
        a = b;
        b = tmp;
    }
    free(b.start);
    free(fl);
    if (a.oom || b.oom) {
        free(a.start);
        return NULL;
    }
    *nw = a.n;
    return a.start ? a.start : malloc(sizeof(int));
}

/* ---- byte map (§4.8) ---- */

uint32_t qs_bpe_byte_to_cp(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x121 + (uint32_t)(b - 0x7F);
    return 0x143; /* 0xAD */
}

int qs_bpe_cp_to_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp >= 0x100 && cp <= 0x120) return (int)(cp - 0x100);
    if (cp >= 0x121 && cp <= 0x142) return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143) return 0xAD;
    return -1;
}
