/* core/quant/qpack.c — GPTQ and AWQ GEMM packing. Codes come as codes[n][k] (output n, input k). */
#include "core/quant/qpack.h"

#include "core/util/fp16.h"

int64_t qs_gptq_qweight_rows(int bits, int64_t in) { return in * bits / 32; }
int64_t qs_gptq_qzeros_cols(int bits, int64_t out) { return out * bits / 32; }

int qs_gptq_pack_check(int bits, int64_t in, int64_t out, qs_err *err)
{
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return qs_err_set(err, QS_E_UNSUPPORTED, "GPTQ checkpoints pack 2, 3, 4 or 8 bits, not %d", bits);
    int64_t m = bits == 3 ? 32 : 32 / bits;
    if (in % m || out % m)
        return qs_err_set(err, QS_E_UNSUPPORTED, "%d-bit GPTQ packing needs both sizes multiples of %lld (%lld × %lld)", bits,
                          (long long)m, (long long)out, (long long)in);
    return 0;
}

/* value i (bits wide) of the little-endian bit run starting at word w[0], every `stride` words */
static void put_bits(uint32_t *w, int64_t stride, int64_t i, int bits, uint32_t v)
{
    int64_t bit = i * bits;
    for (int b = 0; b < bits; b++, bit++)
        if ((v >> b) & 1) w[(bit / 32) * stride] |= 1u << (bit % 32);
}

static uint32_t get_bits(const uint32_t *w, int64_t stride, int64_t i, int bits)
{
    int64_t bit = i * bits;
    uint32_t v = 0;
    for (int b = 0; b < bits; b++, bit++) v |= ((w[(bit / 32) * stride] >> (bit % 32)) & 1u) << b;
    return v;
}

void qs_gptq_pack(int bits, const uint8_t *codes, const float *zeros, const float *scales, int64_t out, int64_t in,
                  int64_t n_groups, uint32_t *qweight, uint32_t *qzeros, uint16_t *scales16)
{
    uint32_t mask = (1u << bits) - 1;
    int64_t qr = qs_gptq_qweight_rows(bits, in), zc = qs_gptq_qzeros_cols(bits, out);
    for (int64_t i = 0; i < qr * out; i++) qweight[i] = 0;
    for (int64_t i = 0; i < n_groups * zc; i++) qzeros[i] = 0;
    /* qweight[r][n]: column n of the [qr][out] array is the bit run of codes[n][0 … in) */
    for (int64_t n = 0; n < out; n++)
        for (int64_t k = 0; k < in; k++) put_bits(qweight + n, out, k, bits, codes[n * in + k] & mask);
    for (int64_t g = 0; g < n_groups; g++) {
        for (int64_t n = 0; n < out; n++) {
            /* v1: zero − 1, masked (a zero point 0 becomes all ones, as loaders read it) */
            uint32_t z = ((uint32_t)(int32_t)zeros[n * n_groups + g] - 1u) & mask;
            put_bits(qzeros + g * zc, 1, n, bits, z);
            scales16[g * out + n] = qs_f32_to_f16(scales[n * n_groups + g]);
        }
    }
}

void qs_gptq_unpack(int bits, const uint32_t *qweight, const uint32_t *qzeros, int64_t out, int64_t in, int64_t n_groups,
                    uint8_t *codes, float *zeros)
{
    int64_t zc = qs_gptq_qzeros_cols(bits, out);
    for (int64_t n = 0; n < out; n++)
        for (int64_t k = 0; k < in; k++) codes[n * in + k] = (uint8_t)get_bits(qweight + n, out, k, bits);
    for (int64_t g = 0; g < n_groups; g++)
        for (int64_t n = 0; n < out; n++) zeros[n * n_groups + g] = (float)get_bits(qzeros + g * zc, 1, n, bits) + 1;
}

bool qs_gptq_v1_zero_overflow(const float *zeros, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (zeros[i] == 0) return true;
    return false;
}

static const int awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

int qs_awq_pack_check(int bits, int64_t in, int64_t out, int64_t group, qs_err *err)
{
    if (bits != 4) return qs_err_set(err, QS_E_UNSUPPORTED, "AWQ GEMM checkpoints are 4-bit only, not %d", bits);
    if (out % 8 || group <= 0 || in % group)
        return qs_err_set(err, QS_E_UNSUPPORTED, "AWQ GEMM needs out a multiple of 8 and in of the group size (%lld × %lld, g%lld)",
                          (long long)out, (long long)in, (long long)group);
    return 0;
}

/* eight 4-bit values v[8c + order[i]] into nibble i */
static uint32_t awq_word(const uint8_t *v8)
{
    uint32_t w = 0;
    for (int i = 0; i < 8; i++) w |= (uint32_t)(v8[awq_order[i]] & 15) << (4 * i);
    return w;
}

void qs_awq_pack(const uint8_t *codes, const float *zeros, const float *scales, int64_t out, int64_t in, int64_t n_groups,
                 uint32_t *qweight, uint32_t *qzeros, uint16_t *scales16)
{
    int64_t wc = out / 8;
    uint8_t v[8];
    for (int64_t k = 0; k < in; k++)
        for (int64_t c = 0; c < wc; c++) {
            for (int j = 0; j < 8; j++) v[j] = codes[(8 * c + j) * in + k];
            qweight[k * wc + c] = awq_word(v);
        }
    for (int64_t g = 0; g < n_groups; g++)
        for (int64_t c = 0; c < wc; c++) {
            for (int j = 0; j < 8; j++) v[j] = (uint8_t)zeros[(8 * c + j) * n_groups + g];
            qzeros[g * wc + c] = awq_word(v);
            for (int j = 0; j < 8; j++) scales16[g * out + 8 * c + j] = qs_f32_to_f16(scales[(8 * c + j) * n_groups + g]);
        }
}

void qs_awq_unpack(const uint32_t *qweight, const uint32_t *qzeros, int64_t out, int64_t in, int64_t n_groups, uint8_t *codes,
                   float *zeros)
{
    int64_t wc = out / 8;
    for (int64_t k = 0; k < in; k++)
        for (int64_t c = 0; c < wc; c++)
            for (int i = 0; i < 8; i++) codes[(8 * c + awq_order[i]) * in + k] = (uint8_t)((qweight[k * wc + c] >> (4 * i)) & 15);
    for (int64_t g = 0; g < n_groups; g++)
        for (int64_t c = 0; c < wc; c++)
            for (int i = 0; i < 8; i++) zeros[(8 * c + awq_order[i]) * n_groups + g] = (float)((qzeros[g * wc + c] >> (4 * i)) & 15);
}
