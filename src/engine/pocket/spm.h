/* spm.h — SentencePiece unigram tokenizer, read from the real `tokenizer.model` protobuf.
 *
 * Produces the same ids as the Python `sentencepiece` library (SentencePieceProcessor
 * .encode(text, out_type=int): no BOS/EOS, no sampling) for unigram models: the
 * normaliser of the model's NormalizerSpec (precompiled charsmap = Darts-clone double
 * array + NUL-separated replacements, add_dummy_prefix, remove_extra_whitespaces,
 * escape_whitespaces with U+2581, user-defined symbols left un-normalised), the optimised
 * unigram Viterbi (unknown characters scored min_score - 10, consecutive unknowns merged
 * into one id), byte fallback when the trainer spec enables it; and `decode` as
 * SentencePieceProcessor.decode(ids) (unk surface " \u2047 ", leading U+2581 dropped,
 * byte pieces reassembled, optional denormaliser).
 *
 * The model file is hostile input: protobuf parsing is strict and bounds-checked, with
 * caps on file size, piece count and piece length. A loaded spm_model is immutable, so one
 * model may be shared by any number of threads; every call allocates its own result.
 *
 * Ownership: spm_load_file()/spm_load_mem() create a model the caller frees with
 * spm_free() (NULL-safe); spm_load_mem() copies what it needs, `data` may be freed after.
 * Results of spm_encode, spm_encode_pieces and spm_decode are malloc'd and freed by the
 * caller (free() or spm_tokens_free()).
 */
#ifndef ENGINE_POCKET_SPM_H
#define ENGINE_POCKET_SPM_H

#include <stddef.h>
#include <stdint.h>

#define SPM_MAX_MODEL_BYTES (64u << 20)  /* tokenizer.model file size cap */
#define SPM_MAX_PIECES (1u << 20)        /* vocabulary size cap */
#define SPM_MAX_PIECE_LEN 512u           /* bytes of one piece (real models: <= 64) */
#define SPM_MAX_PIECE_BYTES (8u << 20)   /* all piece strings together (256k vocab: ~3 MB) */
#define SPM_MAX_TEXT_BYTES (1u << 20)    /* encode input cap */
#define SPM_MAX_NORM_BYTES (4u << 20)    /* normalised text cap (charsmap can expand) */

typedef struct spm_model spm_model;

/* Piece types, as in sentencepiece_model.proto. */
enum { SPM_NORMAL = 1, SPM_UNKNOWN = 2, SPM_CONTROL = 3, SPM_USER_DEFINED = 4,
       SPM_UNUSED = 5, SPM_BYTE = 6 };

int spm_load_file(spm_model **out, const char *path, char *err, size_t errlen);
int spm_load_mem(spm_model **out, const void *data, size_t n, char *err, size_t errlen);
void spm_free(spm_model *m);

int spm_vocab_size(const spm_model *m);   /* number of pieces (= Python vocab_size()) */
int spm_unk_id(const spm_model *m);
/* Piece string of id (NUL-terminated, borrowed from the model), NULL if out of range.
 * *len (may be NULL) gets its byte length (pieces never contain NUL... unless hostile). */
const char *spm_id_to_piece(const spm_model *m, int id, size_t *len);
int spm_piece_type(const spm_model *m, int id); /* SPM_* or 0 if out of range */
/* Python piece_to_id(): control/unknown/byte pieces first, then normal ones; unk id if absent. */
int spm_piece_to_id(const spm_model *m, const char *piece, size_t len);

/* Encodes UTF-8 text[0..len) (any bytes; invalid UTF-8 becomes U+FFFD like upstream).
 * *ids gets a malloc'd array of *n ids (caller frees; NULL when *n == 0).
 * Errors: ERR_TOOBIG past SPM_MAX_TEXT_BYTES / SPM_MAX_NORM_BYTES, ERR_NOMEM. */
int spm_encode(const spm_model *m, const char *text, size_t len, int32_t **ids, size_t *n,
               char *err, size_t errlen);

/* Ids plus the piece strings Python's encode(out_type=str) returns (merged unknown runs
 * are their normalised text, byte-fallback pieces read "<0xXX>"). */
typedef struct spm_tokens {
    int32_t *ids;     /* [n] */
    char **pieces;    /* [n] NUL-terminated strings, all inside one block owned here */
    size_t n;
} spm_tokens;
int spm_encode_pieces(const spm_model *m, const char *text, size_t len, spm_tokens *out,
                      char *err, size_t errlen);
void spm_tokens_free(spm_tokens *t); /* frees the arrays, zeroes *t; NULL-safe */

/* The normaliser alone (Python 0.1.99+ normalize()): malloc'd NUL-terminated *out. */
int spm_normalize(const spm_model *m, const char *text, size_t len, char **out,
                  size_t *outlen, char *err, size_t errlen);

/* Python decode(ids): malloc'd NUL-terminated UTF-8 text. ERR_INVAL for an id outside
 * [0, vocab_size). */
int spm_decode(const spm_model *m, const int32_t *ids, size_t n, char **out, size_t *outlen,
               char *err, size_t errlen);

/* Runs the model file's own self_test_data samples (upstream's Load runs them and refuses
 * the model on failure; here it is a diagnostic that proves parity with the library that
 * wrote the file). *n_samples = 0 when the file has none. A failing sample (segmentation
 * neither equal nor of equal score) counts in *n_failed; the first is described in err.
 * Returns 0 unless encoding itself failed. */
int spm_self_test(const spm_model *m, int *n_samples, int *n_failed, char *err, size_t errlen);

#endif
