/* The bundled sample models: trained (perplexity far below the vocabulary size on a chapter
 * they never saw), quantizable along every K-quant path (rows of 256), the quality order of
 * llama-quantize's presets holds, and the HF directory is the same model as the GGUF. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/data/eval.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/recipe/recipe.h"
#include "core/model/tokenizer.h"
#include "tests/testutil.h"

/* Genesis 50 (King James Version, public domain): a chapter of the eval split */
static const char genesis_50[] =
    "Genesis 50\n"
    "And Joseph fell upon his father's face, and wept upon him, and kissed him.\n"
    "And Joseph commanded his servants the physicians to embalm his father: and the physicians embalmed Israel.\n"
    "And forty days were fulfilled for him; for so are fulfilled the days of those which are embalmed: and the Egyptians mourned for him threescore and ten days.\n"
    "And when the days of his mourning were past, Joseph spake unto the house of Pharaoh, saying, If now I have found grace in your eyes, speak, I pray you, in the ears of Pharaoh, saying,\n"
    "My father made me swear, saying, Lo, I die: in my grave which I have digged for me in the land of Canaan, there shalt thou bury me. Now therefore let me go up, I pray thee, and bury my father, and I will come again.\n"
    "And Pharaoh said, Go up, and bury thy father, according as he made thee swear.\n"
    "And Joseph went up to bury his father: and with him went up all the servants of Pharaoh, the elders of his house, and all the elders of the land of Egypt,\n"
    "And all the house of Joseph, and his brethren, and his father's house: only their little ones, and their flocks, and their herds, they left in the land of Goshen.\n"
    "And there went up with him both chariots and horsemen: and it was a very great company.\n"
    "And they came to the threshingfloor of Atad, which is beyond Jordan, and there they mourned with a great and very sore lamentation: and he made a mourning for his father seven days.\n"
    "And when the inhabitants of the land, the Canaanites, saw the mourning in the floor of Atad, they said, This is a grievous mourning to the Egyptians: wherefore the name of it was called Abelmizraim, which is beyond Jordan.\n"
    "And his sons did unto him according as he commanded them:\n"
    "For his sons carried him into the land of Canaan, and buried him in the cave of the field of Machpelah, which Abraham bought with the field for a possession of a buryingplace of Ephron the Hittite, before Mamre.\n"
    "And Joseph returned into Egypt, he, and his brethren, and all that went up with him to bury his father, after he had buried his father.\n"
    "And when Joseph's brethren saw that their father was dead, they said, Joseph will peradventure hate us, and will certainly requite us all the evil which we did unto him.\n"
    "And they sent a messenger unto Joseph, saying, Thy father did command before he died, saying,\n"
    "So shall ye say unto Joseph, Forgive, I pray thee now, the trespass of thy brethren, and their sin; for they did unto thee evil: and now, we pray thee, forgive the trespass of the servants of the God of thy father. And Joseph wept when they spake unto him.\n"
    "And his brethren also went and fell down before his face; and they said, Behold, we be thy servants.\n"
    "And Joseph said unto them, Fear not: for am I in the place of God?\n"
    "But as for you, ye thought evil against me; but God meant it unto good, to bring to pass, as it is this day, to save much people alive.\n"
    "Now therefore fear ye not: I will nourish you, and your little ones. And he comforted them, and spake kindly unto them.\n"
    "And Joseph dwelt in Egypt, he, and his father's house: and Joseph lived an hundred and ten years.\n"
    "And Joseph saw Ephraim's children of the third generation: the children also of Machir the son of Manasseh were brought up upon Joseph's knees.\n"
    "And Joseph said unto his brethren, I die: and God will surely visit you, and bring you out of this land unto the land which he sware to Abraham, to Isaac, and to Jacob.\n"
    "And Joseph took an oath of the children of Israel, saying, God will surely visit you, and ye shall carry up my bones from hence.\n"
    "So Joseph died, being an hundred and ten years old: and they embalmed him, and he was put in a coffin in Egypt.\n";

static const char *sample(const char *name)
{
    static char p[4096];
    snprintf(p, sizeof p, "sample_models/%s", name);
    if (access(p, R_OK)) tu_skip("%s is not there (make sample-models)", p);
    return p;
}

/* perplexity of Genesis 50 under m with a preset's types (NULL: as stored) */
static double ppl_with_preset(const qs_model *m, const qs_vocab *v, const char *preset)
{
    qs_err err = {0};
    qs_llm *l = qs_llm_new(m, 128, &err);
    cr_assert_not_null(l, "%s", err.msg);
    if (preset) {
        qs_recipe r;
        qs_recipe_table t;
        qs_recipe_init(&r, m);
        cr_assert_eq(qs_recipe_from_preset(&r, m, preset, false, &err), 0, "%s", err.msg);
        cr_assert_eq(qs_recipe_resolve(&r, m, false, &t, &err), 0, "%s", err.msg);
        cr_assert_eq(t.warnings[0], '\0', "%s: every row length is a multiple of 256: %s", preset, t.warnings);
        cr_assert_eq(qs_recipe_apply(&t, l, NULL, 0, NULL, NULL, &err), 0, "%s", err.msg);
        qs_recipe_table_free(&t);
        qs_recipe_free(&r);
    }
    qs_ppl p;
    cr_assert_eq(qs_perplexity(l, v, genesis_50, strlen(genesis_50), 128, 0, NULL, &p, &err), 0, "%s", err.msg);
    qs_llm_free(l);
    return p.ppl;
}

Test(sample, tiny_is_trained_and_quantizes_in_order, .timeout = 120)
{
    const char *path = sample("kjv-tiny.gguf");
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    cr_assert_not_null(m, "%s", err.msg);
    qs_vocab *v = qs_vocab_load(m->gguf, &err);
    cr_assert_not_null(v, "%s", err.msg);
    double f32 = ppl_with_preset(m, v, NULL), q8 = ppl_with_preset(m, v, "Q8_0"), q4 = ppl_with_preset(m, v, "Q4_K_M"),
           q2 = ppl_with_preset(m, v, "Q2_K");
    cr_log_info("kjv-tiny on Genesis 50: PPL F32 %.3f, Q8_0 %.3f, Q4_K_M %.3f, Q2_K %.3f", f32, q8, q4, q2);
    cr_assert_lt(f32, 60.0, "a trained model (an untrained one scores about the vocabulary size, 2048)");
    cr_assert_lt(fabs(q8 / f32 - 1.0), 0.01, "Q8_0 is within 1%%");
    cr_assert(q4 > q8 * 0.995 && q4 < f32 * 1.15, "Q4_K_M %.3f between Q8_0 %.3f and F32 + 15%%", q4, q8);
    cr_assert_gt(q2, q4, "Q2_K loses more than Q4_K_M");
    qs_vocab_free(v);
    qs_model_close(m);
}

Test(sample, hf_directory_is_the_tiny_model, .timeout = 60)
{
    const char *gg = sample("kjv-tiny.gguf");
    char hf[4096];
    snprintf(hf, sizeof hf, "%s", sample("kjv-tiny-hf/model.safetensors"));
    hf[strlen(hf) - strlen("/model.safetensors")] = '\0';
    qs_err err = {0};
    qs_model *a = qs_model_open(gg, &err), *b = qs_model_open(hf, &err);
    cr_assert(a && b, "%s", err.msg);
    cr_assert_eq(a->n_tensors, b->n_tensors);
    for (int64_t i = 0; i < a->n_tensors; i++) {
        const qs_tensor *x = &a->tensors[i], *y = qs_model_find_tensor(b, x->name);
        cr_assert_not_null(y, "%s in the HF directory", x->name);
        int64_t n = qs_tensor_nelements(x);
        float *fx = malloc((size_t)n * sizeof *fx), *fy = malloc((size_t)n * sizeof *fy);
        cr_assert_eq(qs_tensor_read_rows(x, 0, qs_tensor_nrows(x), fx, &err), 0);
        cr_assert_eq(qs_tensor_read_rows(y, 0, qs_tensor_nrows(y), fy, &err), 0);
        cr_assert(!memcmp(fx, fy, (size_t)n * sizeof *fx), "%s differs", x->name);
        free(fx);
        free(fy);
    }
    qs_model_close(a);
    qs_model_close(b);
}
