/* core/util/escape.h — text from files made safe for a terminal.
 *
 * Tensor names, metadata values, tokenizer pieces and other strings read from a model are
 * shown on terminals (CLI output, the workbench). A model must not be able to send escape
 * sequences through them: qs_escape writes every control character — C0 (U+0000..U+001F),
 * DEL (U+007F), C1 (U+0080..U+009F, i.e. the UTF-8 bytes C2 80..C2 9F) — and every byte that is
 * not part of valid UTF-8 as \xNN (one per byte). Printable UTF-8 passes unchanged. Every place
 * that shows such text uses it. */
#ifndef QS_ESCAPE_H
#define QS_ESCAPE_H

#include <stddef.h>

/* Writes the escaped s into out (n > 0 bytes, always NUL-terminated; a truncated result never
 * ends inside a character or an escape) and returns out. */
const char *qs_escape(const char *s, char *out, size_t n);
/* the same for a string of len bytes (may contain NUL) */
const char *qs_escape_n(const char *s, size_t len, char *out, size_t n);
/* 1 when qs_escape would change s */
int qs_needs_escape(const char *s);

#endif
