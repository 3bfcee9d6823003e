/* tests/testutil.h — shared helpers: data directories (QS_GOLDEN_DIR, QS_MODELS_DIR,
 * QS_VOCAB_DIR with ../shared defaults), file discovery, temp files, a byte builder. */
#ifndef QS_TESTUTIL_H
#define QS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Skips a test whose data (golden files, models, vocabularies, sample data, the binary) is
 * missing. With QS_REQUIRE_SHARED=1 in the environment — make test sets it whenever ../shared
 * exists, so .ci/run does too — the skip is a failure instead: a suite whose data is present
 * cannot go quietly green by skipping. The first argument must be a string literal. */
int tu_require_data(void);
#define tu_skip(...)                                                                                          \
    do {                                                                                                      \
        if (tu_require_data()) cr_assert_fail("QS_REQUIRE_SHARED=1 and this test would skip: " __VA_ARGS__); \
        cr_skip_test(__VA_ARGS__);                                                                            \
    } while (0)

/* A wall-clock limit scaled for slow builds: seconds × QS_TIMEOUT_SCALE (make SAN=1 test sets 4). */
int tu_timeout(int seconds);

const char *tu_golden_dir(void);
const char *tu_models_dir(void);
const char *tu_vocab_dir(void);
/* Paths of files under dir (recursively when recursive) whose names end in suffix, sorted;
 * NULL-terminated, free with tu_free_list. Returns NULL (and sets *n = 0) if dir is absent. */
char **tu_list(const char *dir, const char *suffix, int recursive, int *n);
void tu_free_list(char **list);
/* the GGUF files of $QS_GOLDEN_DIR/SUB (free with tu_free_list); skips the test when there are none */
char **tu_golden_files(const char *sub, int *n);
/* Reads a whole file into malloc'ed memory of exactly its size. */
uint8_t *tu_read(const char *path, size_t *size);
/* A fresh temporary directory (removed by tu_rmtree). */
char *tu_tmpdir(void);
void tu_rmtree(const char *dir);

/* the models directory's stories260K.gguf opened (the test skips, or fails under
 * QS_REQUIRE_SHARED, when it is absent) */
struct qs_model;
struct qs_model *tu_stories(void);

/* Runs `$QS_BIN ARGS` through the shell (skips the test when QS_BIN is unset): exit status,
 * stdout and stderr (NUL-terminated; free with tu_run_free). */
typedef struct tu_run_result {
    int status;
    char *out, *err;
} tu_run_result;
tu_run_result tu_run(const char *args);
void tu_run_free(tu_run_result *r);

/* golden files (GGUF): a tensor of exactly n floats, the number under "cfgI.KEY" (cfg < 0:
 * "golden.KEY"); both fail the test when absent */
struct qs_gguf;
const float *tu_golden_floats(const struct qs_gguf *g, int cfg, const char *name, int64_t n);
double tu_golden_num(const struct qs_gguf *g, int cfg, const char *key);

/* A growable byte buffer for hand-built files. */
typedef struct tu_buf {
    uint8_t *p;
    size_t n, cap;
} tu_buf;
void tu_put(tu_buf *b, const void *data, size_t n);
void tu_u32(tu_buf *b, uint32_t v);
void tu_u64(tu_buf *b, uint64_t v);
void tu_gstr(tu_buf *b, const char *s);  /* GGUF string: u64 length + bytes */
void tu_pad(tu_buf *b, size_t align);

#endif

/* A small random llama GGUF whose hyperparameter keys and tensor shapes can disagree (issue 16):
 * keys are written as given (0: the key is left out, except block_count/embedding_length/head_count);
 * tensor sizes default to what the keys say (0: derived). q_dims/kv_dims 1 makes attn_q / attn_k
 * 1-D vectors. Returns 0 or fails the test. */
typedef struct tu_llama {
    uint32_t n_layer, n_embd, n_ff, n_head, n_head_kv, key_length, n_ctx, vocab_size;
    int64_t t_layers, t_embd, t_ff, t_vocab, t_q_rows, t_kv_rows;
    int q_dims;
} tu_llama;
int tu_llama_gguf(const char *path, const tu_llama *s);
