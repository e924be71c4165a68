/* g2p.h — English text to Kokoro phonemes and input ids, after hexgrad/misaki (en.py).
 *
 * What Kokoro-82M was trained on is misaki's output: spaCy tokens and Penn tags, the gold
 * then silver pronunciation lexicons (us_* for American voices 'a', gb_* for British 'b'),
 * case / possessive / -s -ed -ing rules, numbers through num2words, context words (a, the,
 * to, in, used, ...), capital-letter stress, and espeak-ng for words in no lexicon, its IPA
 * mapped onto misaki's symbols (O = oʊ, A = eɪ, ʤ, ...). This module redoes that in C:
 *  - the lexicons are misaki's JSON files, loaded at run time (Apache-2.0 data, never
 *    compiled in); lookups follow misaki's Lexicon class rule for rule;
 *  - spaCy is replaced by a small tokenizer (whitespace, leading/trailing punctuation, then
 *    misaki's own sub-token regex written by hand) and a tagger of a few context rules:
 *    "a" is a determiner when a word follows; "I" is a pronoun; a capitalised word that does
 *    not start a sentence, or an all-caps word, is a proper noun; a word after a determiner
 *    or possessive is a noun, after to/will/can/... a verb; every other word has no tag, so
 *    tag-keyed lexicon entries (read, live, record ...) take their DEFAULT or the
 *    determiner/verb guess. Everything else (the/to before a vowel, in, used to, vs) is
 *    misaki's rule on the right-hand context, as upstream.
 *  - numbers: cardinals, ordinals (1st), 4-digit years, decimals, digit strings, $ £ €
 *    amounts, % & + @, the -s/-ed/-ing suffixes after numbers; as misaki via num2words.
 *  - misaki's Markdown links: [text](/phonemes/) overrides, [text](-1) stress, any other
 *    link keeps its text and drops the URL.
 *  - not done: "#num flags#", Unicode NFKC and non-ASCII digit folding, spaCy's
 *    tag-dependent cases beyond the rules above.
 * The espeak fallback is a callback (kg2p_fallback_fn) so that the caller decides how
 * libespeak-ng (process-global) is shared; kg2p_espeak_fallback() is the default one and
 * kg2p_map_espeak() the pure IPA -> misaki mapping (EspeakFallback.E2M).
 *
 * Chunks: kg2p_chunk() is upstream KPipeline.en_tokenize: tokens are packed while the
 * phoneme string stays <= KG2P_MAX_PHONEMES (510) code points, cutting after the last
 * sentence end (!.?…), else clause mark (:;), else comma/dash that keeps the remainder short
 * enough; a following ) or ” stays with the first chunk. Ids: kg2p_ids() maps code points
 * through the model's vocab (config.json "vocab"); unknown symbols are dropped as upstream.
 *
 * Thread safety: a kg2p is read-only after kg2p_open(); kg2p_run() may run on many threads
 * (the fallback callback must then be thread-safe too). Caps: input text <= KG2P_MAX_TEXT
 * bytes, a word's phonemes <= KG2P_WORD_MAX bytes (longer: ERR_TOOBIG / the word dropped).
 *
 * Ownership: kg2p_open() -> kg2p_free() (NULL-safe); kg2p_run() fills a kg2p_doc the caller
 * releases with kg2p_doc_free() (NULL-safe, zeroes it). Strings in options are borrowed for
 * the call only.
 */
#ifndef ENGINE_KOKORO_G2P_H
#define ENGINE_KOKORO_G2P_H

#include <stddef.h>
#include <stdint.h>

#define KG2P_MAX_PHONEMES 510 /* code points per model call (ids = this + 2 boundary 0s) */
#define KG2P_MAX_TEXT (1u << 20)
#define KG2P_WORD_MAX 1024

/* Out-of-lexicon word -> misaki phonemes (UTF-8) in out[cap]. Return 0, or non-zero when
 * it has nothing (the word is then dropped, as misaki with unk=''). */
typedef int (*kg2p_fallback_fn)(void *user, const char *word, int british, char *out, size_t cap);

typedef struct kg2p_options {
    const char *gold_path;   /* us_gold.json / gb_gold.json (required) */
    const char *silver_path; /* us_silver.json / gb_silver.json; NULL = none */
    int british;             /* 1 = gb rules (lang 'b') */
    kg2p_fallback_fn fallback; /* NULL = unknown words are dropped */
    void *fallback_user;
} kg2p_options;

typedef struct kg2p kg2p;

int kg2p_open(kg2p **out, const kg2p_options *o, char *err, size_t errlen);
void kg2p_free(kg2p *g);
size_t kg2p_lexicon_size(const kg2p *g); /* entries, gold + silver after misaki's growing */

/* One output token: its text, phonemes ("" = silent) and whether whitespace followed. */
typedef struct kg2p_tok {
    char *text; /* owned by the doc */
    char *ps;   /* owned by the doc */
    int ws;
} kg2p_tok;

typedef struct kg2p_doc {
    kg2p_tok *tok;
    size_t n;
} kg2p_doc;

/* Text (one segment: upstream splits on newlines first; newlines here count as spaces) ->
 * tokens with phonemes. ERR_TOOBIG past KG2P_MAX_TEXT, ERR_INVAL for invalid UTF-8. */
int kg2p_run(const kg2p *g, const char *text, kg2p_doc *out, char *err, size_t errlen);
void kg2p_doc_free(kg2p_doc *d);

/* Phonemes of tokens [from, to) joined as misaki does (ps + " " after tokens followed by
 * whitespace, then stripped) into out[cap]; ERR_TOOBIG if it does not fit. */
int kg2p_join(const kg2p_doc *d, size_t from, size_t to, char *out, size_t cap, char *err, size_t errlen);

/* Next chunk starting at token *pos: writes its end token index to *end and advances *pos.
 * Returns 1 while a chunk was produced, 0 at the end. budget: phoneme code points per
 * chunk (0 or > 510 = 510, upstream's rule; smaller = an early short chunk for latency).
 * After a cut the count restarts at the cut (upstream carries the stripped remainder: can
 * differ by a space). A chunk may still join to more than the budget when one token alone
 * is that long (the caller truncates to 510, as upstream). */
int kg2p_chunk(const kg2p_doc *d, size_t budget, size_t *pos, size_t *end);

/* A short first chunk for time to first audio: tokens from *pos up to the first clause or
 * sentence mark (, ; : . ! ? — …, plus a following ) or ”) reached after >= minp phonemes;
 * when there is none within 510 phonemes, kg2p_chunk's rule. Never cuts between words. */
int kg2p_first_clause(const kg2p_doc *d, size_t minp, size_t *pos, size_t *end);

/* Code-point length of a UTF-8 string. */
size_t kg2p_cplen(const char *s);

/* The model's phoneme vocabulary: code point -> id. */
#define KG2P_VOCAB_MAX 512
typedef struct kg2p_vocab {
    uint32_t cp[KG2P_VOCAB_MAX]; /* sorted */
    int16_t id[KG2P_VOCAB_MAX];
    int n;
} kg2p_vocab;

/* Loads "vocab" from a model config.json, or a plain {symbol: id} vocab.json. */
int kg2p_vocab_load(kg2p_vocab *v, const char *path, char *err, size_t errlen);
/* Phonemes -> ids (no boundary 0s) in ids[cap]; symbols missing from the vocab are
 * skipped. *n = ids written. ERR_TOOBIG if more than cap. */
int kg2p_ids(const kg2p_vocab *v, const char *ps, int64_t *ids, size_t cap, size_t *n, char *err,
             size_t errlen);

/* misaki EspeakFallback's mapping of espeak IPA (with '^' ties, stress marks) onto misaki
 * symbols, for US (british = 0) or GB. Pure function. */
int kg2p_map_espeak(const char *ipa, int british, char *out, size_t cap);

/* How the fallback shares libespeak-ng with its other user (the espeak engine): lock() is
 * called before and unlock() after every use (both may be NULL). */
typedef struct kg2p_espeak_hooks {
    void (*lock)(void *ud);
    void (*unlock)(void *ud);
    void *ud;
} kg2p_espeak_hooks;

/* The default fallback: libespeak-ng's en-us / en-gb voice (espeak_TextToPhonemes, IPA, tie
 * '^') then kg2p_map_espeak. user: NULL or a const kg2p_espeak_hooks *.
 * libespeak-ng is process-global; this serialises its own calls on a process-wide mutex,
 * takes the hooks' lock around them, and re-selects the voice it found selected. Without
 * hooks it does not exclude the espeak engine's synth (see STATUS.md). */
int kg2p_espeak_fallback(void *user, const char *word, int british, char *out, size_t cap);
/* misaki EspeakG2P (Kokoro's Spanish, French, Hindi, Italian, Portuguese voices): espeak-ng
 * IPA of text in `lang` ("es", "fr-fr", "hi", "it", "pt-br"), punctuation kept (as phonemizer's
 * preserve_punctuation), language-switch flags removed, ties merged to misaki letters
 * (a^ɪ -> I, t^ʃ -> ʧ, t^s -> ʦ, ...), '-' dropped. hooks as for the fallback (may be NULL).
 * Returns 0 with the phonemes in out[cap], -1 on failure or overflow. */
int kg2p_espeak_g2p(const kg2p_espeak_hooks *h, const char *lang, const char *text, char *out, size_t cap);

/* Initialises libespeak-ng for the fallback unless already_initialised (the espeak engine
 * did it). Idempotent; returns 0 or ERR_IO. */
int kg2p_espeak_init(int already_initialised, const char *data_path, char *err, size_t errlen);

#endif
