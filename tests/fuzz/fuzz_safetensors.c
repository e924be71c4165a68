/* fuzz_safetensors.c — libFuzzer entry for the safetensors reader: any byte string must
 * either be refused with an error or open into tensors whose data lies inside the input
 * (checked here) and convert to f32 without touching memory outside it. */
#include "model/safetensors.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    st_file *f = NULL;
    if (st_open_mem(&f, data, size, err, sizeof err) != 0) return 0;
    for (size_t i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        const uint8_t *p = t->data;
        if (p < data || p + t->nbytes > data + size) abort();
        if (st_find(f, t->name) != t) abort();
        if (t->numel <= 4096) {
            float *v = malloc(((size_t)t->numel + 1) * sizeof *v);
            if (v && st_to_f32(t, v, (size_t)t->numel, err, sizeof err) != 0) abort();
            free(v);
        }
    }
    (void)st_meta(f, "format");
    st_close(f);
    return 0;
}
