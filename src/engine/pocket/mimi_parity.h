/* mimi_parity.h — Mimi rows for the parity tools (mimi-parity, pocket-parity).
 *
 * Given the model weights and one golden file laid out like
 * ../shared/reference/pocket-tts/golden_{A,B}.safetensors, runs the Mimi encoder on
 * voice/audio_in (when present) and the streaming decoder on every decNNN/mimi.quantizer.in,
 * and records one pkp row per boundary upstream recorded: encoder stages, encoder
 * transformer layers, downsample / voice latents; quantizer, upsample, decoder transformer
 * layers, SEANet decoder stages, frame audio, the streaming state after frame 0
 * (dec000/mimi_state_after/...) and final/audio.
 *
 * Tolerances (relative to the tensor's max |ref|; float32 vs torch float32, whose own
 * BLAS-to-BLAS spread is ~1.3e-6): MIMI_PARITY_TOL_FRONT = 1e-5 for the linear front
 * (quantizer, upsample), MIMI_PARITY_TOL = 1e-4 for everything else.
 *
 * Ownership: everything is borrowed; the report is the caller's.
 */
#ifndef ENGINE_POCKET_MIMI_PARITY_H
#define ENGINE_POCKET_MIMI_PARITY_H

#include "engine/pocket/mimi.h"
#include "engine/pocket/pkparity.h"
#include "model/safetensors.h"

#define MIMI_PARITY_TOL_FRONT 1e-5
#define MIMI_PARITY_TOL 1e-4

/* Adds the rows for one golden file; gname labels the notes ("golden_A").
 * Returns 0, or a negative ERR_* if the model could not be run (rows may be partial). */
int mimi_parity_rows(pkp_report *r, const mimi_config *cfg, const st_file *weights,
                     const st_file *golden, const char *gname, char *err, size_t errlen);

#endif
