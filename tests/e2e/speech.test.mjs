// speech.test.mjs — the server says the words it was asked to say (espeak engine).
//
// Content, not shape: each sentence is synthesised through POST /v1/audio/speech, decoded
// with ffmpeg to 16 kHz mono and recognised by pocketsphinx against a JSGF grammar of eight
// candidate sentences (tests/e2e/lib/asr.mjs). Each batch (one voice, or one format, or one
// speed) may miss at most one sentence. Negative controls: silence, white noise and a tone
// must match no candidate, otherwise a "match" would mean nothing.
//
// Run: cd tests && POCKETTTS_BIN=/work/main/build-esp/asan/pockettts node --test e2e/speech.test.mjs

import assert from 'node:assert/strict';
import { test, describe } from 'node:test';

import { useServer, speech } from './lib/server.mjs';
import { asrAvailable, recognise, silenceWav, noiseWav, toneWav } from './lib/asr.mjs';

const CANDIDATES = [
    'The quick brown fox jumps over the lazy dog.',
    'She sells sea shells by the sea shore.',
    'The weather is nice today.',
    'Please open the front door.',
    'I would like a cup of coffee.',
    'We will meet at the train station tomorrow morning.',
    'Turn off the lights in the kitchen.',
    'My phone number is five five five one two three four.',
];
// Spoken in each batch: six of the eight, so two candidates are always distractors.
const SPOKEN = CANDIDATES.slice(0, 6);
const MAX_MISSES = 1;

const haveAsr = await asrAvailable();
const skip = !haveAsr && 'ffmpeg or pocketsphinx_continuous not installed';

const srv = useServer();

async function say(body) {
    const r = await speech(srv.port, { model: 'tts-1', response_format: 'wav', ...body }, { timeoutMs: 60000 });
    assert.equal(r.status, 200, `status for ${JSON.stringify(body)}: ${r.text().slice(0, 300)}`);
    assert.ok(r.body.length > 1000, `tiny body (${r.body.length} bytes) for ${JSON.stringify(body)}`);
    return r.body;
}

const PARALLEL = 2; // the machine has two cores; server and pocketsphinx share them

/** Synthesises every SPOKEN sentence with `extra` request fields; returns the misses. */
async function batch(extra, recogniseOpts = {}) {
    const misses = [];
    let next = 0;
    const worker = async () => {
        while (next < SPOKEN.length) {
            const s = SPOKEN[next++];
            const audio = await say({ input: s, ...extra });
            const got = await recognise(audio, CANDIDATES, recogniseOpts);
            if (got.sentence !== s) misses.push({ said: s, heard: got.heard || '(nothing)' });
        }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    return misses;
}

function assertBatch(name, misses) {
    assert.ok(misses.length <= MAX_MISSES,
        `${name}: ${misses.length} of ${SPOKEN.length} sentences not recognised (allowed ${MAX_MISSES}):\n` +
        misses.map((m) => `  said "${m.said}" -> heard "${m.heard}"`).join('\n'));
}

describe('speech content (pocketsphinx, JSGF of 8 candidates)', { skip }, () => {
    for (const voice of ['alloy', 'echo', 'onyx', 'fable', 'shimmer']) {
        test(`voice ${voice}: each sentence recognised as itself`, { timeout: 120000 }, async () => {
            assertBatch(`voice ${voice}`, await batch({ voice }));
        });
    }

    test('real espeak voice ids (en-us, en-gb+m3) are recognised too', { timeout: 120000 }, async () => {
        assertBatch('en-us', await batch({ voice: 'en-us' }));
        assertBatch('en-gb+m3', await batch({ voice: 'en-gb+m3' }));
    });

    for (const fmt of ['mp3', 'opus']) {
        test(`lossy ${fmt} body is still recognised`, { timeout: 120000 }, async () => {
            assertBatch(`${fmt} (nova)`, await batch({ voice: 'nova', response_format: fmt }));
        });
    }

    test('raw pcm body (s16le 24 kHz) is recognised', { timeout: 120000 }, async () => {
        assertBatch('pcm (sage)', await batch({ voice: 'sage', response_format: 'pcm' },
            { raw: { format: 's16le', rate: 24000, channels: 1 } }));
    });

    for (const speed of [0.5, 1.5, 2.0]) {
        test(`speed ${speed} keeps the words`, { timeout: 120000 }, async () => {
            assertBatch(`speed ${speed} (alloy)`, await batch({ voice: 'alloy', speed }));
        });
    }

    test('streamed response says the same words', { timeout: 120000 }, async () => {
        assertBatch('stream (coral)', await batch({ voice: 'coral', stream: true }));
    });

    // Several sentences in one input: split into chunks, synthesised one by one, concatenated.
    // Candidates are ordered pairs, so order and completeness both count.
    test('two-sentence inputs are spoken completely and in order', { timeout: 120000 }, async () => {
        const base = CANDIDATES.slice(0, 4);
        const pairs = [];
        for (const a of base) for (const b of base) if (a !== b) pairs.push(`${a} ${b}`);
        const said = [[0, 1], [2, 3], [3, 0], [1, 2]].map(([i, j]) => `${base[i]} ${base[j]}`);
        const misses = [];
        for (const text of said) {
            const got = await recognise(await say({ input: text, voice: 'echo', stream: true }), pairs);
            if (got.sentence !== text) misses.push({ said: text, heard: got.heard || '(nothing)' });
        }
        assert.ok(misses.length <= MAX_MISSES, `${misses.length} of ${said.length} pairs missed:\n` +
            misses.map((m) => `  said "${m.said}" -> heard "${m.heard}"`).join('\n'));
    });

    // Negative controls: with nothing said, no candidate may match.
    const controls = {
        silence: () => silenceWav(3),
        'white noise': () => noiseWav(3),
        'a 440 Hz tone': () => toneWav(3, 440),
        'a 1 kHz tone': () => toneWav(3, 1000),
    };
    for (const [name, make] of Object.entries(controls)) {
        test(`${name} matches no candidate`, async () => {
            const got = await recognise(make(), CANDIDATES);
            assert.equal(got.sentence, null, `${name} was recognised as "${got.sentence}"`);
        });
    }
});
