/* safetensors.c — strict, memory-mapped safetensors reader (see safetensors.h).
 *
 * The file is mapped read-only once; tensors are views into the mapping (no copies).
 * The JSON header is parsed with cJSON and then validated completely before st_open
 * returns: every entry is an object with a known dtype, an integer shape (each dim
 * >= 0, product checked for overflow), integer data_offsets [begin, end] with
 * begin <= end <= data block size, numel * dtype size == end - begin; names are unique
 * and no two tensors' byte ranges overlap (checked after sorting by begin). Gaps between
 * tensors are allowed (some writers align). `__metadata__` must be an object of strings.
 * Invariant after a successful open: every st_tensor's data lies inside the mapping.
 * The header length is capped (ST_HEADER_CAP) so a hostile 8-byte prefix cannot make us
 * allocate gigabytes. Integers in JSON must be exact in a double (< 2^53): larger
 * offsets cannot describe a real file anyway and are rejected.
 */
#include "model/safetensors.h"

#include "core/err.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_HEADER_CAP ((uint64_t)100 << 20) /* 100 MiB of JSON is far beyond any model */
#define ST_MAX_TENSORS 1000000

typedef struct st_kv {
    char *key;
    char *val;
} st_kv;

struct st_file {
    void *map;       /* mmap base (st_open) or NULL (st_open_mem) */
    size_t map_len;
    const unsigned char *data; /* start of the data block */
    size_t data_len;
    st_tensor *t;    /* [n] header order */
    size_t n;
    size_t *sorted;  /* [n] indices sorted by name, for st_find */
    st_kv *meta;     /* [nmeta] */
    size_t nmeta;
};

static const char *const dtype_names[ST_NDTYPES] = {
    "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
static const size_t dtype_sizes[ST_NDTYPES] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};

size_t st_dtype_size(st_dtype d) { return (unsigned)d < ST_NDTYPES ? dtype_sizes[d] : 0; }
const char *st_dtype_name(st_dtype d) { return (unsigned)d < ST_NDTYPES ? dtype_names[d] : "?"; }

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < ST_NDTYPES; i++)
        if (!strcmp(s, dtype_names[i])) return i;
    return -1;
}

/* JSON number -> exact non-negative integer below 2^53, or -1. */
static int64_t json_uint(const cJSON *j)
{
    if (!cJSON_IsNumber(j)) return -1;
    double v = j->valuedouble;
    if (!(v >= 0.0) || v > 9007199254740992.0 || floor(v) != v) return -1;
    return (int64_t)v;
}

void st_close(st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free((char *)f->t[i].name);
    free(f->t);
    free(f->sorted);
    for (size_t i = 0; i < f->nmeta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].val);
    }
    free(f->meta);
    if (f->map) munmap(f->map, f->map_len);
    free(f);
}

/* qsort contexts: qsort has no user pointer, so we sort small index structs. */
typedef struct idx_name {
    const char *name;
    size_t i;
} idx_name;
typedef struct idx_off {
    size_t begin, end, i;
} idx_off;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const idx_name *)a)->name, ((const idx_name *)b)->name);
}
static int cmp_off(const void *a, const void *b)
{
    const idx_off *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_meta(st_file *f, const cJSON *m, char *err, size_t errlen)
{
    if (!cJSON_IsObject(m)) return err_set(err, errlen, ERR_FORMAT, "safetensors: __metadata__ is not an object");
    size_t n = 0;
    for (const cJSON *c = m->child; c; c = c->next) n++;
    if (!n) return 0;
    f->meta = calloc(n, sizeof *f->meta);
    if (!f->meta) return err_set(err, errlen, ERR_NOMEM, "safetensors: out of memory");
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->string)
            return err_set(err, errlen, ERR_FORMAT, "safetensors: __metadata__ value \"%.64s\" is not a string",
                           c->string ? c->string : "?");
        st_kv *kv = &f->meta[f->nmeta];
        kv->key = strdup(c->string);
        kv->val = strdup(c->valuestring);
        if (!kv->key || !kv->val) {
            free(kv->key);
            free(kv->val);
            return err_set(err, errlen, ERR_NOMEM, "safetensors: out of memory");
        }
        f->nmeta++;
    }
    return 0;
}

static int parse_entry(st_file *f, const cJSON *e, char *err, size_t errlen)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return err_set(err, errlen, ERR_FORMAT, "safetensors: tensor '%.200s': entry is not an object", name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd)) return err_set(err, errlen, ERR_FORMAT, "safetensors: tensor '%.200s': missing dtype", name);
    int dt = dtype_from_name(jd->valuestring);
    if (dt < 0)
        return err_set(err, errlen, ERR_FORMAT, "safetensors: tensor '%.200s': unsupported dtype \"%.16s\"", name,
                       jd->valuestring);
    if (!cJSON_IsArray(js)) return err_set(err, errlen, ERR_FORMAT, "safetensors: tensor '%.200s': missing shape", name);
    int nd = cJSON_GetArraySize(js);
    if (nd > ST_MAX_DIMS)
        return err_set(err, errlen, ERR_FORMAT, "safetensors: tensor '%.200s': %d dims (max %d)", name, nd, ST_MAX_DIMS);
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return err_set(err, errlen, ERR_FORMAT, "safetensors: tensor '%.200s': data_offsets must be [begin, end]", name);
    for (const cJSON *c = e->child; c; c = c->next)
        if (strcmp(c->string, "dtype") && strcmp(c->string, "shape") && strcmp(c->string, "data_offsets"))
            return err_set(err, errlen, ERR_FORMAT, "safetensors: tensor '%.200s': unknown field \"%.32s\"", name, c->string);

    st_tensor *t = &f->t[f->n];
    memset(t, 0, sizeof *t);
    t->dtype = (st_dtype)dt;
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0;
    int k = 0;
    for (const cJSON *c = js->child; c; c = c->next, k++) {
        int64_t d = json_uint(c);
        if (d < 0) return err_set(err, errlen, ERR_FORMAT, "safetensors: tensor '%.200s': bad shape entry %d", name, k);
        t->shape[k] = d;
        if (d && numel > UINT64_MAX / (uint64_t)d) overflow = 1;
        numel *= (uint64_t)d;
    }
    size_t es = dtype_sizes[dt];
    if (overflow || numel > UINT64_MAX / es || numel > (uint64_t)INT64_MAX)
        return err_set(err, errlen, ERR_FORMAT, "safetensors: tensor '%.200s': shape product overflows", name);
    int64_t b = json_uint(jo->child), en = json_uint(jo->child->next);
    if (b < 0 || en < 0 || b > en)
        return err_set(err, errlen, ERR_FORMAT, "safetensors: tensor '%.200s': bad data_offsets", name);
    if ((uint64_t)en > f->data_len)
        return err_set(err, errlen, ERR_FORMAT,
                       "safetensors: tensor '%.200s': data_offsets [%lld, %lld] beyond data block of %zu bytes", name,
                       (long long)b, (long long)en, f->data_len);
    if (numel * es != (uint64_t)(en - b))
        return err_set(err, errlen, ERR_FORMAT,
                       "safetensors: tensor '%.200s': %s shape needs %llu bytes but data_offsets span %lld", name,
                       dtype_names[dt], (unsigned long long)(numel * es), (long long)(en - b));
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)(en - b);
    t->data = f->data + b;
    t->name = strdup(name);
    if (!t->name) return err_set(err, errlen, ERR_NOMEM, "safetensors: out of memory");
    f->n++;
    return 0;
}

static int validate_sets(st_file *f, char *err, size_t errlen)
{
    int rc = 0;
    idx_name *in = NULL;
    idx_off *io = NULL;
    f->sorted = malloc((f->n ? f->n : 1) * sizeof *f->sorted);
    in = malloc((f->n ? f->n : 1) * sizeof *in);
    io = malloc((f->n ? f->n : 1) * sizeof *io);
    if (!f->sorted || !in || !io) {
        rc = err_set(err, errlen, ERR_NOMEM, "safetensors: out of memory");
        goto out;
    }
    for (size_t i = 0; i < f->n; i++) {
        in[i] = (idx_name){f->t[i].name, i};
        size_t b = (size_t)((const unsigned char *)f->t[i].data - f->data);
        io[i] = (idx_off){b, b + f->t[i].nbytes, i};
    }
    qsort(in, f->n, sizeof *in, cmp_name);
    for (size_t i = 0; i < f->n; i++) {
        if (i && !strcmp(in[i].name, in[i - 1].name)) {
            rc = err_set(err, errlen, ERR_FORMAT, "safetensors: duplicate tensor name '%.200s'", in[i].name);
            goto out;
        }
        f->sorted[i] = in[i].i;
    }
    qsort(io, f->n, sizeof *io, cmp_off);
    size_t hi = 0, hi_i = 0;
    int have = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (io[i].begin == io[i].end) continue; /* empty tensors occupy no bytes */
        if (have && io[i].begin < hi) {
            rc = err_set(err, errlen, ERR_FORMAT, "safetensors: tensor '%.200s' overlaps tensor '%.200s'",
                         f->t[io[i].i].name, f->t[hi_i].name);
            goto out;
        }
        if (io[i].end > hi) hi = io[i].end, hi_i = io[i].i;
        have = 1;
    }
out:
    free(in);
    free(io);
    return rc;
}

static int open_common(st_file *f, const unsigned char *p, size_t n, char *err, size_t errlen)
{
    if (n < 8) return err_set(err, errlen, ERR_FORMAT, "safetensors: file too short (%zu bytes)", n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | p[i];
    if (hl > ST_HEADER_CAP)
        return err_set(err, errlen, ERR_TOOBIG, "safetensors: header length %llu over the cap", (unsigned long long)hl);
    if (hl > n - 8)
        return err_set(err, errlen, ERR_FORMAT, "safetensors: header length %llu beyond end of file (%zu bytes)",
                       (unsigned long long)hl, n);
    if (hl < 2 || p[8] != '{')
        return err_set(err, errlen, ERR_FORMAT, "safetensors: header is not a JSON object");
    f->data = p + 8 + hl;
    f->data_len = n - 8 - (size_t)hl;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)hl, &end, 0);
    if (!root) return err_set(err, errlen, ERR_FORMAT, "safetensors: header is not valid JSON");
    int rc = 0;
    /* Trailing bytes after the object may only be spaces (writers pad the header). */
    for (const char *q = end; q && q < (const char *)p + 8 + hl; q++)
        if (*q != ' ' && *q != '\n' && *q != '\t' && *q != '\r' && *q != 0) {
            rc = err_set(err, errlen, ERR_FORMAT, "safetensors: trailing garbage after the header object");
            goto out;
        }
    if (!cJSON_IsObject(root)) {
        rc = err_set(err, errlen, ERR_FORMAT, "safetensors: header is not a JSON object");
        goto out;
    }
    size_t cnt = 0;
    int nmeta_seen = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!c->string) {
            rc = err_set(err, errlen, ERR_FORMAT, "safetensors: header entry without name");
            goto out;
        }
        if (!strcmp(c->string, "__metadata__")) {
            if (nmeta_seen++) {
                rc = err_set(err, errlen, ERR_FORMAT, "safetensors: duplicate __metadata__");
                goto out;
            }
        } else cnt++;
    }
    if (cnt > ST_MAX_TENSORS) {
        rc = err_set(err, errlen, ERR_TOOBIG, "safetensors: %zu tensors (cap %d)", cnt, ST_MAX_TENSORS);
        goto out;
    }
    f->t = calloc(cnt ? cnt : 1, sizeof *f->t);
    if (!f->t) {
        rc = err_set(err, errlen, ERR_NOMEM, "safetensors: out of memory");
        goto out;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        rc = !strcmp(c->string, "__metadata__") ? parse_meta(f, c, err, errlen) : parse_entry(f, c, err, errlen);
        if (rc) goto out;
    }
    rc = validate_sets(f, err, errlen);
out:
    cJSON_Delete(root);
    return rc;
}

int st_open_mem(st_file **out, const void *data, size_t n, char *err, size_t errlen)
{
    *out = NULL;
    if (!data && n) return err_set(err, errlen, ERR_INVAL, "safetensors: NULL data");
    st_file *f = calloc(1, sizeof *f);
    if (!f) return err_set(err, errlen, ERR_NOMEM, "safetensors: out of memory");
    int rc = open_common(f, data, n, err, errlen);
    if (rc) {
        st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int st_open(st_file **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(err, errlen, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return err_set(err, errlen, ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    if (n < 8) {
        close(fd);
        return err_set(err, errlen, ERR_FORMAT, "%s: safetensors: file too short (%zu bytes)", path, n);
    }
    void *m = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return err_set(err, errlen, ERR_IO, "%s: mmap: %s", path, strerror(errno));
    st_file *f = calloc(1, sizeof *f);
    if (!f) {
        munmap(m, n);
        return err_set(err, errlen, ERR_NOMEM, "safetensors: out of memory");
    }
    f->map = m;
    f->map_len = n;
    char e2[256];
    int rc = open_common(f, m, n, e2, sizeof e2);
    if (rc) {
        st_close(f);
        return err_set(err, errlen, rc, "%s: %s", path, e2);
    }
    *out = f;
    return 0;
}

size_t st_count(const st_file *f) { return f ? f->n : 0; }
const st_tensor *st_at(const st_file *f, size_t i) { return f && i < f->n ? &f->t[i] : NULL; }

const st_tensor *st_find(const st_file *f, const char *name)
{
    if (!f || !name) return NULL;
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->t[f->sorted[mid]].name);
        if (!c) return &f->t[f->sorted[mid]];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
    if (!f || !key) return NULL;
    for (size_t i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, key)) return f->meta[i].val;
    return NULL;
}

static float half_to_f32(uint16_t h)
{
    uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        if (!m) u = s;
        else { /* subnormal: value = m * 2^-24 */
            float v = (float)m * (1.0f / 16777216.0f);
            return s ? -v : v;
        }
    } else if (e == 31) u = s | 0x7f800000u | (m << 13);
    else u = s | ((e + 112) << 23) | (m << 13);
    float r;
    memcpy(&r, &u, 4);
    return r;
}

int st_to_f32(const st_tensor *t, float *dst, size_t n, char *err, size_t errlen)
{
    if (!t || (size_t)t->numel != n)
        return err_set(err, errlen, ERR_INVAL, "tensor '%s': %lld values, caller expects %zu", t ? t->name : "?",
                       t ? (long long)t->numel : 0LL, n);
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case ST_F32: memcpy(dst, p, n * 4); break;
    case ST_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = half_to_f32(h);
        }
        break;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(&dst[i], &u, 4);
        }
        break;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case ST_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case ST_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case ST_I16:
        for (size_t i = 0; i < n; i++) {
            int16_t v;
            memcpy(&v, p + 2 * i, 2);
            dst[i] = (float)v;
        }
        break;
    case ST_I8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)p[i];
        break;
    case ST_U8:
    case ST_BOOL:
        for (size_t i = 0; i < n; i++) dst[i] = (float)p[i];
        break;
    default: return err_set(err, errlen, ERR_FORMAT, "tensor '%s': unsupported dtype", t->name);
    }
    return 0;
}

static void fmt_shape(char *b, size_t n, int nd, const int64_t *d)
{
    size_t o = 0;
    o += (size_t)snprintf(b + o, n - o, "[");
    for (int i = 0; i < nd && o < n; i++) o += (size_t)snprintf(b + o, n - o, i ? ", %lld" : "%lld", (long long)d[i]);
    if (o < n) snprintf(b + o, n - o, "]");
}

int st_expect(const st_file *f, const char *name, int ndim, const int64_t *dims, const st_tensor **out, char *err,
              size_t errlen)
{
    if (out) *out = NULL;
    const st_tensor *t = st_find(f, name);
    if (!t) return err_set(err, errlen, ERR_NOTFOUND, "missing tensor '%s'", name);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == dims[i];
    if (!ok) {
        char a[160], b[160];
        fmt_shape(a, sizeof a, ndim, dims);
        fmt_shape(b, sizeof b, t->ndim, t->shape);
        return err_set(err, errlen, ERR_FORMAT, "tensor '%s': expected shape %s, got %s", name, a, b);
    }
    if (out) *out = t;
    return 0;
}
