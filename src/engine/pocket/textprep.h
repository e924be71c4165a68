/* textprep.h — pocket-tts text preparation and chunking, exactly as upstream 2.1.0.
 *
 * Mirrors pocket_tts/models/tts_model.py: prepare_text_prompt (strip, newline and
 * double-space replacement, optional ';' -> ',', word count -> frames-after-EOS guess,
 * first character upper-cased, '.' appended after a final letter/digit, optional 8-space
 * pad), _estimate_max_gen_len, and split_into_best_sentences (sentence cut on the ids of
 * ".!...?", long sentences re-cut on the ids of ",;:", greedy merge under a token budget).
 * Python string semantics are reproduced on UTF-8: str.strip()/split() whitespace,
 * str.isupper()/upper() (full case mapping, e.g. "ß" -> "SS") and str.isalnum() come from
 * tables generated from Python 3.11's unicodedata (Unicode 14.0), the version upstream's
 * goldens were made with.
 *
 * Input must be valid UTF-8 (ERR_INVAL otherwise) and at most TP_MAX_TEXT_BYTES.
 * Pure functions; thread-safe; the spm model is only read.
 *
 * Ownership: every out-parameter is malloc'd and belongs to the caller (free(), or
 * tp_chunks_free() for chunk lists).
 */
#ifndef ENGINE_POCKET_TEXTPREP_H
#define ENGINE_POCKET_TEXTPREP_H

#include <stddef.h>
#include <stdint.h>

#include "engine/pocket/spm.h"

#define TP_MAX_TEXT_BYTES (256u << 10)
#define TP_MAX_TOKENS_PER_CHUNK 50 /* upstream MAX_TOKEN_PER_CHUNK */

typedef struct tp_opts {
    int pad_with_spaces_for_short_inputs; /* config flag (false for english_2026-04) */
    int remove_semicolons;                /* config flag (false for english_2026-04) */
} tp_opts;

/* prepare_text_prompt(text): *out (malloc'd, NUL-terminated) and the frames-after-EOS
 * guess (3 for <= 4 words, else 1). opts may be NULL (both flags false).
 * ERR_INVAL when the text is empty after stripping ("Text prompt cannot be empty"). */
int tp_prepare(const char *text, size_t len, const tp_opts *opts, char **out, size_t *outlen,
               int *frames_after_eos_guess, char *err, size_t errlen);

/* _estimate_max_gen_len: ceil((n_tokens / 3 + 2) * frame_rate); frame_rate is 12.5. */
int tp_max_gen_len(size_t n_tokens, double frame_rate);

/* Ids of ".!...?" (end of sentence) or ",;:" (fallback) without the first id, as
 * upstream derives them. *ids malloc'd. */
int tp_end_of_sentence_ids(const spm_model *sp, int32_t **ids, size_t *n, char *err, size_t errlen);
int tp_fallback_split_ids(const spm_model *sp, int32_t **ids, size_t *n, char *err, size_t errlen);

typedef struct tp_chunk {
    char *text;          /* the chunk string handed to the model (malloc'd, NUL-terminated) */
    size_t len;
    int seg_tokens;      /* upstream's summed segment token count (what the budget saw) */
    int32_t *ids;        /* spm ids of `text`: what the FlowLM is prompted with */
    size_t n_ids;
    int frames_after_eos; /* prepare_text_prompt(text) guess + 2 (5 or 3); upstream uses it
                           * only when neither the caller nor the config's
                           * model_recommended_frames_after_eos (e.g. 8 for french_24l) is set */
    int max_gen_len;      /* tp_max_gen_len(n_ids, 12.5) */
} tp_chunk;

typedef struct tp_chunks {
    tp_chunk *v;
    size_t n;
} tp_chunks;

/* split_into_best_sentences(text, max_tokens) followed by the per-chunk numbers that
 * generate_audio_stream computes. May yield 0 chunks (text that tokenises to nothing).
 * Errors: ERR_INVAL (empty / invalid UTF-8 / max_tokens < 1), ERR_TOOBIG, ERR_NOMEM. */
int tp_split(const spm_model *sp, const char *text, size_t len, int max_tokens,
             const tp_opts *opts, tp_chunks *out, char *err, size_t errlen);
void tp_chunks_free(tp_chunks *c); /* NULL-safe; zeroes *c */

/* Python character predicates on one code point (exposed for tests). */
int tp_py_isspace(uint32_t cp);
int tp_py_isalnum(uint32_t cp);
/* What `if not c.isupper(): c = c.upper()` leaves for one code point c (Python): writes
 * 1..3 code points to up[], returns the count. (No character that isupper() changes
 * under upper(), so this is str.upper() restricted to non-upper-case characters.) */
int tp_py_upper_first(uint32_t cp, uint32_t up[3]);

#endif
