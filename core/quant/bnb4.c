/* core/quant/bnb4.c — NF4 / FP4 blockwise quantization and double quantization. */
#include "core/quant/bnb4.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const float qs_bnb4_nf4_table[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

const float qs_bnb4_fp4_table[16] = {
    0.0000f, 0.0052f, 0.6667f, 1.0000f, 0.3333f, 0.5000f, 0.1667f, 0.2500f,
    0.0000f, -0.0052f, -0.6667f, -1.0000f, -0.3333f, -0.5000f, -0.1667f, -0.2500f};

/* codes of the FP4 table sorted ascending by value, stable (spec §2 step 5) */
static const uint8_t fp4_sorted_codes[16] = {11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3};

const float qs_bnb4_dynamic_map[256] = {
    -0.992968738f, -0.978906214f, -0.96484375f, -0.950781226f, -0.936718702f, -0.922656238f, -0.908593774f, -0.89453125f,
    -0.880468726f, -0.866406202f, -0.852343738f, -0.838281214f, -0.82421875f, -0.810156226f, -0.796093702f, -0.782031238f,
    -0.767968774f, -0.75390625f, -0.739843786f, -0.725781262f, -0.711718798f, -0.697656274f, -0.68359375f, -0.669531286f,
    -0.655468762f, -0.641406238f, -0.627343774f, -0.61328125f, -0.599218726f, -0.585156262f, -0.571093798f, -0.557031274f,
    -0.54296875f, -0.528906226f, -0.514843762f, -0.500781238f, -0.486718774f, -0.47265625f, -0.458593726f, -0.444531262f,
    -0.430468738f, -0.416406214f, -0.40234375f, -0.388281226f, -0.374218762f, -0.360156238f, -0.346093714f, -0.33203125f,
    -0.317968726f, -0.303906262f, -0.289843738f, -0.275781274f, -0.26171875f, -0.247656256f, -0.233593762f, -0.219531253f,
    -0.205468744f, -0.19140625f, -0.177343741f, -0.163281247f, -0.149218753f, -0.135156244f, -0.12109375f, -0.107031256f,
    -0.0985937491f, -0.0957812443f, -0.0929687545f, -0.0901562497f, -0.0873437524f, -0.0845312476f, -0.0817187428f, -0.078906253f,
    -0.0760937482f, -0.0732812509f, -0.0704687461f, -0.0676562563f, -0.0648437515f, -0.0620312467f, -0.0592187531f, -0.0564062484f,
    -0.053593751f, -0.05078125f, -0.047968749f, -0.0451562516f, -0.0423437469f, -0.0395312496f, -0.0367187522f, -0.0339062475f,
    -0.0310937501f, -0.0282812472f, -0.0254687499f, -0.0226562507f, -0.0198437497f, -0.0170312505f, -0.0142187504f, -0.0114062503f,
    -0.00971874967f, -0.00915624946f, -0.00859375019f, -0.00803124998f, -0.00746874977f, -0.00690625003f, -0.00634374982f, -0.00578125007f,
    -0.00521875033f, -0.00465624966f, -0.00409374991f, -0.00353124971f, -0.00296874996f, -0.00240624999f, -0.00184375001f, -0.00128124992f,
    -0.000943750085f, -0.000831249985f, -0.00071875006f, -0.000606250076f, -0.000493750034f, -0.000381250022f, -0.000268750038f, -0.000156250011f,
    -8.87499991e-05f, -6.62500024e-05f, -4.37499984e-05f, -2.12499981e-05f, -7.7499999e-06f, -3.25000019e-06f, -5.50000038e-07f, 0.0f,
    5.50000038e-07f, 3.25000019e-06f, 7.7499999e-06f, 2.12499981e-05f, 4.37499984e-05f, 6.62500024e-05f, 8.87499991e-05f, 0.000156250011f,
    0.000268750038f, 0.000381250022f, 0.000493750034f, 0.000606250076f, 0.00071875006f, 0.000831249985f, 0.000943750085f, 0.00128124992f,
    0.00184375001f, 0.00240624999f, 0.00296874996f, 0.00353124971f, 0.00409374991f, 0.00465624966f, 0.00521875033f, 0.00578125007f,
    0.00634374982f, 0.00690625003f, 0.00746874977f, 0.00803124998f, 0.00859375019f, 0.00915624946f, 0.00971874967f, 0.0114062503f,
    0.0142187504f, 0.0170312505f, 0.0198437497f, 0.0226562507f, 0.0254687499f, 0.0282812472f, 0.0310937501f, 0.0339062475f,
    0.0367187522f, 0.0395312496f, 0.0423437469f, 0.0451562516f, 0.047968749f, 0.05078125f, 0.053593751f, 0.0564062484f,
    0.0592187531f, 0.0620312467f, 0.0648437515f, 0.0676562563f, 0.0704687461f, 0.0732812509f, 0.0760937482f, 0.078906253f,
    0.0817187428f, 0.0845312476f, 0.0873437524f, 0.0901562497f, 0.0929687545f, 0.0957812443f, 0.0985937491f, 0.107031256f,
    0.12109375f, 0.135156244f, 0.149218753f, 0.163281247f, 0.177343741f, 0.19140625f, 0.205468744f, 0.219531253f,
    0.233593762f, 0.247656256f, 0.26171875f, 0.275781274f, 0.289843738f, 0.303906262f, 0.317968726f, 0.33203125f,
    0.346093714f, 0.360156238f, 0.374218762f, 0.388281226f, 0.40234375f, 0.416406214f, 0.430468738f, 0.444531262f,
    0.458593726f, 0.47265625f, 0.486718774f, 0.500781238f, 0.514843762f, 0.528906226f, 0.54296875f, 0.557031274f,
    0.571093798f, 0.585156262f, 0.599218726f, 0.61328125f, 0.627343774f, 0.641406238f, 0.655468762f, 0.669531286f,
    0.68359375f, 0.697656274f, 0.711718798f, 0.725781262f, 0.739843786f, 0.75390625f, 0.767968774f, 0.782031238f,
    0.796093702f, 0.810156226f, 0.82421875f, 0.838281214f, 0.852343738f, 0.866406202f, 0.880468726f, 0.89453125f,
    0.908593774f, 0.922656238f, 0.936718702f, 0.950781226f, 0.96484375f, 0.978906214f, 0.992968738f, 1.0f};

/* bucket = number of midpoints strictly below s (ties go to the lower value) */
static int bucket(const float *mid, float s)
{
    int b = 0;
    while (b < 15 && mid[b] < s) b++;
    return b;
}

static void midpoints(bool fp4, float *mid)
{
    for (int i = 0; i < 15; i++) {
        float a = fp4 ? qs_bnb4_fp4_table[fp4_sorted_codes[i]] : qs_bnb4_nf4_table[i];
        float b = fp4 ? qs_bnb4_fp4_table[fp4_sorted_codes[i + 1]] : qs_bnb4_nf4_table[i + 1];
        mid[i] = (a + b) / 2;
    }
}

double qs_bnb4_bpw(int blocksize, bool double_quant)
{
    return double_quant ? 4.0 + 8.0 / blocksize + 32.0 / (256.0 * blocksize) : 4.0 + 32.0 / blocksize;
}

static int double_quantize(qs_bnb4 *q, qs_err *err)
{
    if (q->n_blocks <= 0) return 0;
    double sum = 0;
    for (int64_t b = 0; b < q->n_blocks; b++) sum += q->absmax[b];
    q->offset = (float)(sum / (double)q->n_blocks);
    q->n_blocks2 = (q->n_blocks + 255) / 256;
    q->qabsmax = malloc((size_t)q->n_blocks);
    q->absmax2 = malloc((size_t)(uint64_t)q->n_blocks2 * sizeof *q->absmax2);
    if (!q->qabsmax || !q->absmax2) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int64_t j = 0; j < q->n_blocks2; j++) {
        int64_t b0 = 256 * j, b1 = b0 + 256 < q->n_blocks ? b0 + 256 : q->n_blocks;
        float m = 0;
        for (int64_t b = b0; b < b1; b++) m = fmaxf(m, fabsf(q->absmax[b] - q->offset));
        q->absmax2[j] = m;
        for (int64_t b = b0; b < b1; b++) {
            float a = q->absmax[b] - q->offset;
            float s = m > 0 ? fminf(1.0f, fmaxf(-1.0f, a / m)) : 0.0f;
            int best = 0;
            float bd = fabsf(s - qs_bnb4_dynamic_map[0]);
            for (int k = 1; k < 256; k++) {
                float d = fabsf(s - qs_bnb4_dynamic_map[k]);
                if (d < bd) {
                    bd = d;
                    best = k;
                }
            }
            q->qabsmax[b] = (uint8_t)best;
        }
    }
    return 0;
}

int qs_bnb4_quantize(const float *w, int64_t n, int blocksize, bool fp4, bool double_quant, qs_bnb4 *q,
                     qs_err *err)
{
    memset(q, 0, sizeof *q);
    if (n < 0) return qs_err_set(err, QS_E_USAGE, "negative element count");
    if (blocksize < 32 || blocksize > 4096 || (blocksize & (blocksize - 1)))
        return qs_err_set(err, QS_E_USAGE, "block size %d: must be a power of two from 32 to 4096", blocksize);
    q->fp4 = fp4;
    q->double_quant = double_quant;
    q->blocksize = blocksize;
    q->n = n;
    q->n_blocks = (n + blocksize - 1) / blocksize;
    q->packed = calloc((size_t)((n + 1) / 2 + 1), 1);
    q->absmax = malloc((size_t)(q->n_blocks ? q->n_blocks : 1) * sizeof *q->absmax);
    if (!q->packed || !q->absmax) {
        qs_bnb4_free(q);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    float mid[15];
    midpoints(fp4, mid);
    for (int64_t b = 0; b < q->n_blocks; b++) {
        int64_t i0 = b * blocksize, i1 = i0 + blocksize < n ? i0 + blocksize : n;
        float am = 0;
        for (int64_t i = i0; i < i1; i++) am = fmaxf(am, fabsf(w[i]));
        q->absmax[b] = am;
        float inv = 1.0f / am;
        for (int64_t i = i0; i < i1; i++) {
            float s = am > 0 ? fminf(1.0f, fmaxf(-1.0f, w[i] * inv)) : 0.0f;
            int k = bucket(mid, s);
            int code = fp4 ? fp4_sorted_codes[k] : k;
            q->packed[i / 2] |= (uint8_t)(i % 2 ? code : code << 4);
        }
    }
    if (n % 2) q->packed[n / 2] |= fp4 ? 0 : 7; /* pad with the code of 0 */
    if (double_quant) {
        int rc = double_quantize(q, err);
        if (rc) {
            qs_bnb4_free(q);
            return rc;
        }
    }
    return 0;
}

float qs_bnb4_block_absmax(const qs_bnb4 *q, int64_t b)
{
    if (!q->double_quant) return q->absmax[b];
    return qs_bnb4_dynamic_map[q->qabsmax[b]] * q->absmax2[b / 256] + q->offset;
}

void qs_bnb4_dequantize(const qs_bnb4 *q, float *out)
{
    const float *table = q->fp4 ? qs_bnb4_fp4_table : qs_bnb4_nf4_table;
    for (int64_t b = 0; b < q->n_blocks; b++) {
        float am = qs_bnb4_block_absmax(q, b);
        int64_t i0 = b * q->blocksize, i1 = i0 + q->blocksize < q->n ? i0 + q->blocksize : q->n;
        for (int64_t i = i0; i < i1; i++) {
            int code = i % 2 ? q->packed[i / 2] & 15 : q->packed[i / 2] >> 4;
            out[i] = table[code] * am;
        }
    }
}

void qs_bnb4_free(qs_bnb4 *q)
{
    free(q->packed);
    free(q->absmax);
    free(q->qabsmax);
    free(q->absmax2);
    memset(q, 0, sizeof *q);
}
