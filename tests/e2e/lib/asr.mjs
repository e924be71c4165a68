// asr.mjs — which of a few candidate sentences does this audio say? (pocketsphinx + JSGF)
//
// What lives here: `recognise(audio, candidates)` takes audio bytes of any container/codec
// ffmpeg reads (wav, mp3, opus, aac, flac; raw "pcm" with opts.raw), converts them to 16 kHz
// mono 16-bit WAV, runs `pocketsphinx_continuous -infile F -jsgf G` with a grammar whose only
// sentences are the candidates, and returns the candidate it heard, or null. Also: grammar
// building, and WAV generators for the negative controls (silence, white noise, a tone).
//
// Why a grammar: free recognition of espeak's robotic speech is gibberish, but constrained to
// six or more candidates pocketsphinx picks the right one almost always (23/24 across four
// espeak voices when this was designed) and matches nothing on silence, noise or a tone.
// Wide beams (-beam 1e-80 -wbeam 1e-60 -pbeam 1e-80) are required: the default beams prune
// everything on lossy-coded (mp3) audio and return nothing.
//
// Invariants: every child process has a timeout; temp files live in one mkdtemp directory
// removed afterwards; words of every candidate must be in the CMU dictionary (plain English
// words: spell numbers out). Candidates are compared after normalise() (lowercase, letters,
// apostrophes and single spaces only).

import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const PS_BEAMS = ['-beam', '1e-80', '-wbeam', '1e-60', '-pbeam', '1e-80'];
const TIMEOUT_MS = 60000;

function run(cmd, args, { timeoutMs = TIMEOUT_MS } = {}) {
    return new Promise((resolve, reject) => {
        execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20, encoding: 'utf8' },
            (err, stdout, stderr) => {
                if (err) {
                    err.message += `\n${cmd} ${args.join(' ')}\nstderr tail:\n${String(stderr).slice(-2000)}`;
                    reject(err);
                } else resolve({ stdout, stderr });
            });
    });
}

/** Lowercase, letters/apostrophes only, single spaces: the form used in the grammar. */
export function normalise(s) {
    return String(s).toLowerCase().replace(/[^a-z' ]+/g, ' ').replace(/\s+/g, ' ').trim();
}

/** JSGF grammar text whose public rule is exactly one of the candidates. */
export function jsgf(candidates) {
    const alts = [...new Set(candidates.map(normalise))].filter(Boolean);
    if (alts.length < 2) throw new Error('jsgf: need at least two distinct candidates');
    return `#JSGF V1.0;\ngrammar candidates;\npublic <s> = ${alts.join('\n  | ')};\n`;
}

let availability = null;
/** Resolves true when ffmpeg and pocketsphinx_continuous can run here. */
export async function asrAvailable() {
    if (availability === null) {
        try {
            await run('ffmpeg', ['-hide_banner', '-version'], { timeoutMs: 10000 });
            await run('sh', ['-c', 'command -v pocketsphinx_continuous'], { timeoutMs: 10000 });
            availability = true;
        } catch {
            availability = false;
        }
    }
    return availability;
}

/**
 * Converts audio bytes to 16 kHz mono s16 WAV at `outPath` with ffmpeg.
 * opts.raw = { format: 's16le', rate: 24000, channels: 1 } for headerless PCM.
 */
export async function toWav16k(audio, outPath, opts = {}) {
    const dir = path.dirname(outPath);
    const inPath = path.join(dir, `in-${path.basename(outPath)}.bin`);
    await fs.writeFile(inPath, audio);
    const pre = [];
    if (opts.raw) {
        const r = opts.raw;
        pre.push('-f', r.format || 's16le', '-ar', String(r.rate || 24000), '-ac', String(r.channels || 1));
    }
    await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...pre, '-i', inPath,
        '-ar', '16000', '-ac', '1', '-c:a', 'pcm_s16le', '-map_metadata', '-1', '-fflags', '+bitexact',
        outPath]);
    await fs.rm(inPath, { force: true });
}

/**
 * Recognises `audio` (Buffer) against `candidates` (array of sentences).
 * Returns { sentence: the matching candidate as given, or null; heard: pocketsphinx's text }.
 * opts.raw: see toWav16k. opts.keepDir: leave the temp directory for inspection.
 */
export async function recognise(audio, candidates, opts = {}) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pockettts-asr-'));
    try {
        const wav = path.join(dir, 'a16k.wav');
        const gram = path.join(dir, 'g.gram');
        await toWav16k(audio, wav, opts);
        await fs.writeFile(gram, jsgf(candidates));
        const { stdout } = await run('pocketsphinx_continuous',
            ['-infile', wav, '-jsgf', gram, ...PS_BEAMS, '-logfn', '/dev/null']);
        // One line per utterance pocketsphinx segmented; a sentence may span several.
        const heard = normalise(stdout.split('\n').join(' '));
        const sentence = candidates.find((c) => normalise(c) === heard) ?? null;
        return { sentence, heard };
    } finally {
        if (!opts.keepDir) await fs.rm(dir, { recursive: true, force: true });
    }
}

/** 16-bit mono WAV bytes from float samples in [-1, 1]. */
export function makeWav(samples, rate = 24000) {
    const n = samples.length;
    const b = Buffer.alloc(44 + 2 * n);
    b.write('RIFF', 0); b.writeUInt32LE(36 + 2 * n, 4); b.write('WAVE', 8);
    b.write('fmt ', 12); b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22);
    b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34);
    b.write('data', 36); b.writeUInt32LE(2 * n, 40);
    for (let i = 0; i < n; i++) {
        const v = Math.max(-1, Math.min(1, samples[i]));
        b.writeInt16LE(Math.round(v * 32767), 44 + 2 * i);
    }
    return b;
}

export function silenceWav(seconds = 2, rate = 24000) {
    return makeWav(new Float32Array(Math.round(seconds * rate)), rate);
}

/** Deterministic white noise (xorshift), amplitude `amp`. */
export function noiseWav(seconds = 2, rate = 24000, amp = 0.5) {
    const x = new Float32Array(Math.round(seconds * rate));
    let s = 0x9e3779b9 >>> 0;
    for (let i = 0; i < x.length; i++) {
        s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
        x[i] = amp * ((s / 4294967296) * 2 - 1);
    }
    return makeWav(x, rate);
}

export function toneWav(seconds = 2, hz = 440, rate = 24000, amp = 0.5) {
    const x = new Float32Array(Math.round(seconds * rate));
    for (let i = 0; i < x.length; i++) x[i] = amp * Math.sin((2 * Math.PI * hz * i) / rate);
    return makeWav(x, rate);
}
