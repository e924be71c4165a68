/* auth.h — API keys: parsing (flag list, env list, keys file) and the Bearer check.
 *
 * A key set holds at most AUTH_MAX_KEYS keys of 1..AUTH_MAX_KEY_LEN printable ASCII
 * bytes (no spaces, no commas). Each key is stored zero-padded in a fixed slot, and
 * auth_check() compares the presented token against every slot over the full slot
 * width, OR-ing the differences: its running time depends on the number of keys only,
 * never on how many leading bytes of a guess are right. An empty set accepts anything
 * (the server's behaviour without keys). Keys never leave this module: error messages
 * name the source and line, never the key text.
 *
 * Ownership: auth_new() creates an empty set; auth_free() (NULL ok) frees it. A set is
 * immutable once built, so readers need no lock; the server swaps whole sets on reload.
 */
#ifndef SERVER_AUTH_H
#define SERVER_AUTH_H

#include <stddef.h>

#define AUTH_MAX_KEYS 256
#define AUTH_MAX_KEY_LEN 255
#define AUTH_MAX_FILE_BYTES (1u << 20)

typedef struct auth_keys auth_keys;

int auth_new(auth_keys **out, char *err, size_t errlen);
void auth_free(auth_keys *k);

/* Adds the keys of a comma-separated list (blanks around items trimmed, empty items
 * skipped). `who` names the source in errors ("--api-key"). ERR_INVAL on a bad key,
 * ERR_TOOBIG past AUTH_MAX_KEYS. */
int auth_add_list(auth_keys *k, const char *list, const char *who, char *err, size_t errlen);

/* Adds the keys of a file: one per line, blanks trimmed, empty lines and lines starting
 * with '#' skipped. ERR_IO if unreadable, ERR_TOOBIG over AUTH_MAX_FILE_BYTES. */
int auth_add_file(auth_keys *k, const char *path, char *err, size_t errlen);

size_t auth_count(const auth_keys *k);

/* The outcome of checking an Authorization header value (may be NULL). */
enum { AUTH_OK = 0, AUTH_MISSING = 1, AUTH_BAD = 2 };
/* AUTH_OK when the set is empty or the header is "Bearer <key>" (scheme in any case)
 * with a key of the set; AUTH_MISSING without a header or Bearer token; else AUTH_BAD. */
int auth_check(const auth_keys *k, const char *authorization);

#endif
