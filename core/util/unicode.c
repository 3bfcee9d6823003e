#include "core/util/unicode.h"

static int is_whitespace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int qs_uc_flags(uint32_t cp)
{
    int lo = 0, hi = qs_ucd_n_ranges - 1, cls = QS_UC_UNDEFINED;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < qs_ucd_ranges[mid].first) hi = mid - 1;
        else if (cp > qs_ucd_ranges[mid].last) lo = mid + 1;
        else {
            cls = qs_ucd_ranges[mid].cls;
            break;
        }
    }
    return cls | (is_whitespace(cp) ? QS_UC_WHITESPACE : 0);
}

int64_t qs_utf8_decode(const char *s, size_t n, uint32_t *out)
{
    int64_t k = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        int need = c < 0x80 ? 0 : c >= 0xC0 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF7 ? 3 : -1;
        if (need == 0) {
            out[k++] = c;
            i++;
            continue;
        }
        uint32_t cp = need == 1 ? c & 0x1F : need == 2 ? c & 0x0F : c & 0x07;
        int ok = need > 0;
        for (int j = 1; ok && j <= need; j++) {
            if (i + (size_t)j >= n || ((uint8_t)s[i + j] & 0xC0) != 0x80) ok = 0;
            else cp = (cp << 6) | ((uint8_t)s[i + j] & 0x3F);
        }
        if (!ok) {
            out[k++] = 0xFFFD;
            i++;
            continue;
        }
        if (cp > 0x10FFFF) return -1;
        out[k++] = cp;
        i += (size_t)need + 1;
    }
    return k;
}

int qs_utf8_encode(uint32_t cp, char *b)
{
    if (cp < 0x80) {
        b[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
