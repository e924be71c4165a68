/* fuzz_hf.c — libFuzzer entry for the Hugging Face reference parser and the small
 * header/URL parsers inside model/hf.c (Range/Content-Range, ETag, loopback check,
 * basenames). Includes hf.c to reach its statics; nothing touches the network or disk
 * (the cache path is computed, never created). Parsed paths must never escape with "..".
 */
#include "../../src/model/hf.c"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    char s[4096];
    if (n >= sizeof s) n = sizeof s - 1;
    memcpy(s, d, n);
    s[n] = 0;
    hf_ref r;
    char err[256], url[HF_URL_MAX], out[8192];
    if (!hf_parse(s, &r, err, sizeof err)) {
        hf_resolve_url(&r, "http://127.0.0.1:1", url, sizeof url, err, sizeof err);
        CORE_ASSERT(strncmp(r.path, "../", 3) != 0 && !strstr(r.path, "/../"));
    }
    hf_options o = {.cache_dir = "/c", .no_env = 1, .endpoint = "http://h"};
    hf_cache_path(s, &o, out, sizeof out, err, sizeof err);
    uint64_t a, b, t;
    parse_range(s, 0, &a, &b, &t);
    parse_range(s, 1, &a, &b, &t);
    char sha[65] = "";
    etag_sha256(s, sha);
    is_loopback(s);
    etag_strong(s);
    char base[128];
    url_basename(s, base, sizeof base);
    return 0;
}
