#include "core/util/escape.h"

#include <stdio.h>
#include <string.h>

/* the length of the valid, printable UTF-8 character at s (0: escape the byte) */
static size_t printable_len(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    if (c >= 0x20 && c < 0x7f) return 1;
    if (c < 0xc2 || c > 0xf4) return 0; /* C0, DEL, continuation bytes, overlong leads, beyond U+10FFFF */
    size_t k = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (left < k) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (c == 0xc2 && s[1] < 0xa0) return 0;                 /* C1 controls U+0080..U+009F */
    if (c == 0xe0 && s[1] < 0xa0) return 0;                 /* overlong */
    if (c == 0xed && s[1] >= 0xa0) return 0;                /* surrogates */
    if (c == 0xf0 && s[1] < 0x90) return 0;                 /* overlong */
    if (c == 0xf4 && s[1] >= 0x90) return 0;                /* beyond U+10FFFF */
    return k;
}

const char *qs_escape_n(const char *s, size_t len, char *out, size_t n)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t k = printable_len(p + i, len - i);
        if (k) {
            if (o + k >= n) break;
            memcpy(out + o, p + i, k);
            o += k, i += k;
        } else {
            if (o + 4 >= n) break;
            snprintf(out + o, 5, "\\x%02x", p[i]);
            o += 4, i++;
            /* a C1 control is escaped whole: its second byte too */
            if (p[i - 1] == 0xc2 && i < len && p[i] >= 0x80 && p[i] < 0xa0) {
                if (o + 4 >= n) break;
                snprintf(out + o, 5, "\\x%02x", p[i]);
                o += 4, i++;
            }
        }
    }
    out[o] = '\0';
    return out;
}

const char *qs_escape(const char *s, char *out, size_t n) { return qs_escape_n(s, strlen(s), out, n); }

int qs_needs_escape(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t len = strlen(s), i = 0; i < len;) {
        size_t k = printable_len(p + i, len - i);
        if (!k) return 1;
        i += k;
    }
    return 0;
}
