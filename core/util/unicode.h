/* core/util/unicode.h — the Unicode facts the BPE pre-tokenizers need (spec/tokenizer.md §4.2,
 * §4.3): lenient UTF-8 decoding, a category class per code point (Unicode 15.1, from the
 * generated table in unicode_data.c) and llama.cpp's whitespace set. */
#ifndef QS_UNICODE_H
#define QS_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum qs_uc_class {
    QS_UC_UNDEFINED = 0, QS_UC_LETTER, QS_UC_MARK, QS_UC_NUMBER, QS_UC_PUNCT, QS_UC_SYMBOL,
    QS_UC_SEPARATOR, QS_UC_CONTROL
};
#define QS_UC_WHITESPACE 0x10 /* bit added to the class */

typedef struct qs_ucd_range {
    uint32_t first, last;
    uint8_t cls;
} qs_ucd_range;

extern const qs_ucd_range qs_ucd_ranges[];
extern const int qs_ucd_n_ranges;

/* class | whitespace bit; code points >= 0x110000 are UNDEFINED */
int qs_uc_flags(uint32_t cp);
/* Decodes s[0..n) (§4.2: invalid bytes become U+FFFD, decoding resumes at the next byte);
 * returns the count written to out (room for n code points needed); -1 if a code point above
 * U+10FFFF was formed. */
int64_t qs_utf8_decode(const char *s, size_t n, uint32_t *out);
/* Appends the UTF-8 of cp to buf; returns the byte count (1-4). */
int qs_utf8_encode(uint32_t cp, char *buf);

#endif
