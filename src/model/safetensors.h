/* safetensors.h — a strict, memory-mapped safetensors reader.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the raw little-endian data block.
 *
 * Validation is strict because files come from the outside world: header length within
 * the file and under a cap, valid JSON object, known dtype, non-negative shape whose
 * product times the dtype size equals end - begin (no overflow), offsets inside the data
 * block, no two tensors overlapping, no duplicate names. Any violation fails st_open
 * with a message naming the tensor.
 *
 * Ownership: st_open()/st_open_mem() create an st_file the caller closes with
 * st_close() (NULL-safe). Tensor structs and their data pointers borrow from the
 * st_file (the mapping) and are valid until st_close(). st_open_mem() borrows `data`,
 * which must outlive the st_file.
 */
#ifndef MODEL_SAFETENSORS_H
#define MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum st_dtype {
    ST_F32 = 0, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL,
    ST_NDTYPES
} st_dtype;

typedef struct st_tensor {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* little-endian, possibly unaligned for non-F32 dtypes */
    size_t nbytes;
} st_tensor;

typedef struct st_file st_file;

int st_open(st_file **out, const char *path, char *err, size_t errlen);
int st_open_mem(st_file **out, const void *data, size_t n, char *err, size_t errlen);
void st_close(st_file *f);

size_t st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, size_t i);          /* header order */
const st_tensor *st_find(const st_file *f, const char *name); /* NULL if absent */
const char *st_meta(const st_file *f, const char *key);       /* __metadata__ value or NULL */

size_t st_dtype_size(st_dtype d);
const char *st_dtype_name(st_dtype d);

/* Converts any float or integer tensor to f32 into dst (n must equal t->numel). */
int st_to_f32(const st_tensor *t, float *dst, size_t n, char *err, size_t errlen);

/* Checks that `name` exists with the given dims (ndim entries); message names the tensor
 * and both shapes otherwise. Returns the tensor through *out when out != NULL. */
int st_expect(const st_file *f, const char *name, int ndim, const int64_t *dims,
              const st_tensor **out, char *err, size_t errlen);

#endif
