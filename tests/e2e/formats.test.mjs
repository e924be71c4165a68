// formats.test.mjs — every OpenAI response_format through the real server (issue 3).
//
// For mp3, opus, aac, flac, wav and pcm, streamed and not: status 200, OpenAI's Content-Type,
// chunked transfer when streamed, ffprobe's codec / sample rate / channels, ffprobe's duration
// against the body's own decoded length, and a decoded length that matches the PCM of the same
// text (fetched as pcm; up to jitter() of engine variation between requests). "Matches" means:
// decoded samples are at least the PCM's and at most the PCM's plus the codec's fixed encoder
// delay plus one frame. A whole MP3 has LAME's Info tag (frame count, delay, padding) and
// decodes exactly; a streamed MP3 opens with an Info tag that carries the delay but no frame
// count or padding (unknown while streaming), so it decodes to the PCM plus at most one
// frame (576 samples) of padding; raw ADTS plays AAC's 1024-sample priming (a documented
// lead-in: ADTS has no field that could tell a decoder to trim it, and dropping the priming
// packet corrupts the first 1024 samples: see src/audio/enc_aac.c), and the encoder drops the
// last packet when the PCM's last frame is silent (< -50 dBFS, speech's trailing pause), so
// AAC decodes to the PCM plus less than one frame (the lead-in in, as much silent tail out);
// with a loud tail (never from espeak) the packet stays and up to delay + frame is allowed.
// The AAC packet count (ffprobe -count_packets) times 1024 must equal the decoded length and
// so meet the same bound. Opus trims its pre-skip through the granule positions; FLAC, WAV,
// PCM are exact.
// ffprobe's duration may differ from the body's decoded length by at most delay + one frame
// (it counts what gapless decoders trim; for a streamed MP3 it is a bit-rate estimate over
// the whole body, tag frame and delay included); a streamed FLAC has no total in STREAMINFO and raw
// ADTS durations are a bit-rate guess, so those two are not checked.
// Recognition: the decoded audio of each format is matched by pocketsphinx against a closed
// set of sentences (tests/e2e/lib/asr.mjs by "esp"), at most one miss over all formats.
// With stream_format "sse" the base64 deltas of every format concatenate to a valid file.
// The official openai SDK fetches every format. speed 0.25..4 scales duration as 1/speed
// within 5 %. The --mp3-kbps/--opus-kbps/--aac-kbps flags change the encoded bit rate.
//
// Run: cd tests && POCKETTTS_BIN=/work/main/build-aud2/asan/pockettts node --test e2e/formats.test.mjs

import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { execFile } from 'node:child_process';
import { useServer, startServer, speech, parseSse, binPath, childEnv } from './lib/server.mjs';
import { ffprobe, ffmpegDecode, rms, peak, s16ToFloat, RATE } from './lib/audio.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PCM_IN = ['-f', 's16le', '-ar', String(RATE), '-ac', '1'];

// codec: ffprobe's codec_name; rate: what ffprobe reports (Opus always decodes at 48 kHz);
// delay + frame: allowed decoded excess in samples at 24 kHz (see the header). gapless: a
// whole file decodes exactly; streamTag: a streamed body decodes within one frame;
// tailTrim: within one frame when the PCM ends in silence (AAC's tail rule); packets: check
// ffprobe's packet count (each packet is one frame of samples).
const FORMATS = {
    mp3: { ct: 'audio/mpeg', codec: 'mp3', rate: RATE, ext: 'mp3', delay: 1105, frame: 576, gapless: true, streamTag: true },
    opus: { ct: 'audio/opus', codec: 'opus', rate: 48000, ext: 'opus', delay: 0, frame: 480 },
    aac: { ct: 'audio/aac', codec: 'aac', rate: RATE, ext: 'aac', delay: 1024, frame: 1024, durGuess: true, tailTrim: true, packets: true },
    flac: { ct: 'audio/flac', codec: 'flac', rate: RATE, ext: 'flac', delay: 0, frame: 0 },
    wav: { ct: 'audio/wav', codec: 'pcm_s16le', rate: RATE, ext: 'wav', delay: 0, frame: 0 },
    pcm: { ct: 'audio/pcm', codec: null, rate: RATE, ext: 'pcm', delay: 0, frame: 0, inputArgs: PCM_IN },
};
const SLACK = 2; // samples: ffmpeg's 48 -> 24 kHz resampling of Opus may round by one
// The engine's output for identical requests may differ by a few ms (espeak at the time of
// writing: up to ~40 ms), so lengths compared ACROSS requests get this much extra room:
// 50 ms or 1 % of the length, whichever is more. Within one body the container's duration
// is checked against its own decoded length (see checkBody), and the unit tests check every
// codec sample-exactly.
const jitter = (n) => Math.max(Math.round(0.05 * RATE), Math.round(0.01 * n));
// AAC's tail rule threshold (src/audio/enc_aac.c: AAC_TAIL_PEAK, -50 dBFS peak).
const TAIL_PEAK = 10 ** (-50 / 20);

// The closed set pocketsphinx chooses from; one sentence per format (rotating).
const CANDIDATES = [
    'the quick brown fox jumps over the lazy dog',
    'she sells sea shells by the sea shore',
    'please open the window and let the fresh air in',
    'my favourite colour is green',
    'call me back tomorrow morning',
    'the train leaves at seven o clock',
];
// Nine sentences: long enough that even a fast engine on a loaded machine streams it in
// many pieces over a measurable time.
const MULTI = Array.from({ length: 3 }, () => 'The first sentence is short. ' +
    'The second one carries on for a little while longer. And a third sentence closes the round.').join(' ');
const base = { model: 'tts-1', voice: 'alloy' };

let asr = null;
if (fs.existsSync(path.join(HERE, 'lib', 'asr.mjs'))) asr = await import('./lib/asr.mjs');
const recognise = asr && asr.recognise && (await asr.asrAvailable()) ? asr.recognise : null;

/** stdout of `pockettts say ARGS` (a Buffer); rejects on a non-zero exit. */
function sayCli(args) {
    return new Promise((resolve, reject) => {
        execFile(binPath(), ['say', ...args], { timeout: 60000, env: childEnv(), encoding: 'buffer', maxBuffer: 64 << 20 },
            (err, stdout, stderr) => (err ? reject(new Error(`say ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout)));
    });
}

/** Decoded samples (Float32Array at 24 kHz) of a body in format f. */
function decode(f, body) {
    const F = FORMATS[f];
    return ffmpegDecode(body, { ext: F.ext, inputArgs: F.inputArgs || [] });
}

/**
 * Asserts codec/rate/channels and the duration rules; returns the decoded samples.
 * ref: { n, quietTail } of the PCM of the same text from another request (engine jitter
 * applies): its length in samples and whether it ends in silence (see pcmRef).
 */
async function checkBody(f, body, ref, { streamed }) {
    const F = FORMATS[f];
    const tag = `${f}${streamed ? ' (stream)' : ''}`;
    const refSamples = ref.n;
    const x = await decode(f, body);
    const oneFrame = (F.streamTag && streamed) || (F.tailTrim && ref.quietTail);
    const excess = F.gapless && !streamed ? 0 : oneFrame ? F.frame : F.delay + F.frame;
    const J = jitter(refSamples);
    const lo = refSamples - SLACK - J, hi = refSamples + excess + SLACK + J;
    if (F.codec) {
        const p = await ffprobe(body, F.ext, { countPackets: !!F.packets });
        if (F.packets) {
            // ffprobe's ADTS duration is a bit-rate estimate; its packet count is exact.
            assert.equal(p.packets * F.frame, x.length,
                `${tag}: ffprobe counts ${p.packets} packets (x ${F.frame} = ${p.packets * F.frame}), decoded ${x.length}`);
            const s = (p.packets * F.frame) / RATE;
            assert.ok(s >= lo / RATE && s <= hi / RATE,
                `${tag}: ${p.packets} packets = ${s.toFixed(4)} s, PCM of the same text ${(refSamples / RATE).toFixed(4)} s, ` +
                `expected ${(lo / RATE).toFixed(4)}..${(hi / RATE).toFixed(4)}`);
        }
        assert.equal(p.codec, F.codec, `${tag}: ffprobe codec`);
        assert.equal(p.sampleRate, F.rate, `${tag}: ffprobe sample rate`);
        assert.equal(p.channels, 1, `${tag}: ffprobe channels`);
        // The container's duration against this body's own decoded audio: at most the
        // codec's delay + one frame apart (ffprobe counts delay/pre-skip that decoders trim).
        const dLo = x.length / RATE - (F.delay + F.frame) / RATE - 0.002;
        const dHi = x.length / RATE + (F.delay + F.frame) / RATE + 0.002;
        if (Number.isFinite(p.duration) && !F.durGuess)
            assert.ok(p.duration >= dLo && p.duration <= dHi,
                `${tag}: ffprobe duration ${p.duration} s, decoded ${(x.length / RATE).toFixed(4)} s, ` +
                `expected ${dLo.toFixed(4)}..${dHi.toFixed(4)}`);
        else if (!F.durGuess)
            assert.ok(streamed && f === 'flac', `${tag}: ffprobe gives no duration`);
    }
    if (F.tailTrim) console.log(`# ${tag}: decoded ${x.length} samples, PCM of the same text ${refSamples} ` +
        `(${ref.quietTail ? 'silent' : 'loud'} tail), excess ${x.length - refSamples}, allowed <= ${excess} + jitter ${J}`);
    assert.ok(x.length >= lo && x.length <= hi,
        `${tag}: decoded ${x.length} samples, expected ${lo}..${hi} (PCM of the same text ${refSamples}, ` +
        `codec excess <= ${excess}, engine jitter <= ${J})`);
    assert.ok(rms(x) > 0.01, `${tag}: decoded audio is (near) silent, RMS ${rms(x).toFixed(4)}`);
    return x;
}

describe('response formats', () => {
    const srv = useServer();
    const say = (body, o) => speech(srv.port, body, { timeoutMs: 60000, ...o });
    const ref = {}; // sentence index -> pcmRef (non-streamed pcm)
    // { n: PCM samples, quietTail: its last two AAC frames (2048 samples) peak below AAC's
    // tail threshold, so another request's last frame is silent too even if its trailing
    // pause came out a frame shorter }
    const pcmRef = async (input, extra = {}) => {
        const r = await say({ ...base, ...extra, input, response_format: 'pcm' });
        assert.equal(r.status, 200, r.text().slice(0, 300));
        assert.equal(r.body.length % 2, 0, 'pcm: whole s16 samples');
        const n = r.body.length / 2;
        const tail = s16ToFloat(r.body.subarray(2 * Math.max(0, n - 2048)));
        return { n, quietTail: peak(tail) < TAIL_PEAK };
    };
    const pcmLength = async (input, extra = {}) => (await pcmRef(input, extra)).n;
    const misses = [];

    before(async () => {
        for (let i = 0; i < CANDIDATES.length; i++) ref[i] = await pcmRef(CANDIDATES[i]);
    }, { timeout: 120000 });

    Object.keys(FORMATS).forEach((f, i) => {
        for (const stream of [false, true]) {
            test(`${f} ${stream ? 'streamed' : 'whole'}: content type, ffprobe, duration, recognition`, async () => {
                const k = (i + (stream ? 3 : 0)) % CANDIDATES.length;
                const r = await say({ ...base, input: CANDIDATES[k], response_format: f, stream });
                assert.equal(r.status, 200, `${f}: ${r.text().slice(0, 300)}`);
                assert.equal(r.headers['content-type'], FORMATS[f].ct, `${f}: Content-Type`);
                if (stream) assert.equal(r.headers['transfer-encoding'], 'chunked', `${f}: Transfer-Encoding`);
                await checkBody(f, r.body, ref[k], { streamed: stream });
                if (recognise) {
                    const raw = f === 'pcm' ? { format: 's16le', rate: RATE, channels: 1 } : undefined;
                    const got = await recognise(r.body, CANDIDATES, { raw });
                    console.log(`# ${f}${stream ? ' stream' : ''}: said "${CANDIDATES[k]}", heard "${got.heard}"`);
                    if (got.sentence !== CANDIDATES[k]) misses.push(`${f}${stream ? ' stream' : ''}: heard "${got.heard}"`);
                }
            });
        }
    });

    // The AAC tail rule, exactly: `pockettts say` writes the bytes the API would (issue 3,
    // point 5) and is deterministic for espeak, so the PCM and the AAC of one text can be
    // compared without engine jitter. espeak ends in a pause (about 190 ms below -60 dBFS),
    // so the last packet is dropped: ffprobe counts ceil(N / 1024) packets and the file
    // decodes to that many frames, N .. N + 1023 samples (1024 of lead-in included).
    for (const [k, stream] of [[4, false], [4, true], [5, true]]) {
        test(`aac ${stream ? 'streamed' : 'whole'} from \`say -m espeak\`: within one frame of its PCM (sentence ${k})`, async () => {
            const input = CANDIDATES[k];
            const pcm = await sayCli(['-m', 'espeak', '-f', 'pcm', input]);
            const n = pcm.length / 2;
            const tail = s16ToFloat(pcm.subarray(2 * Math.max(0, n - 1024)));
            assert.ok(peak(tail) < TAIL_PEAK, `espeak's PCM should end in silence: last frame peak ${peak(tail).toFixed(5)}`);
            const aac = await sayCli(['-m', 'espeak', '-f', 'aac', stream ? '--stream' : '--no-stream', input]);
            const p = await ffprobe(aac, 'aac', { countPackets: true });
            const x = await decode('aac', aac);
            console.log(`# say aac${stream ? ' stream' : ''}: PCM ${n} samples, ${p.packets} packets, decoded ${x.length}, excess ${x.length - n}`);
            assert.equal(p.packets, Math.ceil(n / 1024), `packets for ${n} samples`);
            assert.equal(x.length, p.packets * 1024, 'decoded samples = packets x 1024');
            assert.ok(x.length >= n && x.length < n + 1024, `decoded ${x.length}, expected ${n}..${n + 1023}`);
        });
    }

    test('recognition: at most one miss over all formats', { skip: !recognise && 'asr.mjs or pocketsphinx missing' }, () => {
        assert.ok(misses.length <= 1, `misses: ${misses.join('; ')}`);
    });

    for (const f of Object.keys(FORMATS)) {
        test(`${f} streamed: audio leaves before the synthesis ends, body matches the whole-file length`, async () => {
            const n = await pcmRef(MULTI);
            const r = await say({ ...base, input: MULTI, response_format: f, stream: true });
            assert.equal(r.status, 200, r.text().slice(0, 300));
            assert.ok(r.chunks.length >= 2, `${f}: ${r.chunks.length} body chunk(s), expected several`);
            // A three-sentence request: the first bytes must come well before the last ones.
            assert.ok(r.tFirstByte < r.tEnd * 0.8,
                `${f}: first byte at ${r.tFirstByte.toFixed(1)} ms, end at ${r.tEnd.toFixed(1)} ms`);
            console.log(`# ${f} stream: first byte ${r.tFirstByte.toFixed(1)} ms, end ${r.tEnd.toFixed(1)} ms, ${r.chunks.length} chunks`);
            await checkBody(f, r.body, n, { streamed: true });
        });
    }

    for (const f of Object.keys(FORMATS)) {
        test(`${f} over SSE: the base64 deltas concatenate to a valid file`, async () => {
            const k = 2;
            const r = await say({ ...base, input: CANDIDATES[k], response_format: f, stream_format: 'sse' });
            assert.equal(r.status, 200, r.text().slice(0, 300));
            assert.match(r.headers['content-type'] || '', /^text\/event-stream/);
            const ev = parseSse(r.text());
            const deltas = ev.filter((e) => e.data && e.data.type === 'speech.audio.delta');
            assert.ok(deltas.length >= 1, `${f}: no speech.audio.delta events`);
            assert.ok(ev.some((e) => e.data && e.data.type === 'speech.audio.done'), `${f}: no speech.audio.done event`);
            const body = Buffer.concat(deltas.map((e) => Buffer.from(e.data.audio, 'base64')));
            await checkBody(f, body, ref[k], { streamed: true });
        });
    }

    for (const speed of [0.25, 0.5, 2, 4]) {
        test(`speed ${speed}: duration scales as 1/speed within 5 %`, async () => {
            const input = CANDIDATES[0];
            const n1 = ref[0].n;
            const n = await pcmLength(input, { speed });
            const want = n1 / speed;
            assert.ok(Math.abs(n - want) <= 0.05 * want,
                `speed ${speed}: ${n} samples, expected ${want.toFixed(0)} +-5 % (speed 1: ${n1})`);
        });
    }

    test('openai SDK fetches every format', async () => {
        const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 60000 });
        for (const f of Object.keys(FORMATS)) {
            const res = await client.audio.speech.create({ ...base, input: CANDIDATES[1], response_format: f });
            assert.equal(res.headers.get('content-type'), FORMATS[f].ct, `SDK ${f}: Content-Type`);
            // Without "stream" in the body the server may stream (no Content-Length then).
            const streamed = !res.headers.get('content-length');
            const body = Buffer.from(await res.arrayBuffer());
            await checkBody(f, body, ref[1], { streamed });
        }
    });
});

describe('bit rate flags reach the encoders', () => {
    // --mp3-kbps / --opus-kbps / --aac-kbps (srv's flags) -> aenc_opts.bitrate_kbps.
    const want = { mp3: 64, opus: 24, aac: 32 };
    const srv = useServer({ args: ['--mp3-kbps', '64', '--opus-kbps', '24', '--aac-kbps', '32'] });
    for (const [f, kbps] of Object.entries(want)) {
        test(`${f} at ${kbps} kbps`, async () => {
            const input = CANDIDATES[0] + '. ' + CANDIDATES[1] + '. ' + CANDIDATES[2] + '.';
            const r = await speech(srv.port, { ...base, input, response_format: f, stream: false }, { timeoutMs: 60000 });
            assert.equal(r.status, 200, r.text().slice(0, 300));
            const x = await decode(f, r.body);
            const got = (r.body.length * 8) / (x.length / RATE) / 1000;
            // mp3 is CBR (one extra tag frame); opus/aac are VBR-ish around the target.
            const tol = f === 'mp3' ? 0.08 : 0.35;
            assert.ok(Math.abs(got - kbps) <= tol * kbps, `${f}: ${got.toFixed(1)} kbit/s, expected ${kbps} +-${tol * 100} %`);
        });
    }
});
