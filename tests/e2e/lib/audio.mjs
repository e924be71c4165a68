// audio.mjs — decode and measure what the server sends: WAV/PCM parsing, RMS, durations,
// and ffprobe/ffmpeg helpers for the compressed formats.
//
// What lives here: a strict RIFF/WAVE parser that also accepts the streaming form (RIFF and
// data sizes 0xFFFFFFFF or 0: "read to the end"), s16le → float conversion, RMS / peak,
// and thin wrappers around the ffprobe / ffmpeg CLIs working on a temp file.
//
// Invariants: parsers never trust sizes beyond the buffer; every external process has a
// timeout; temp files are removed. Errors throw with a message saying what was wrong.

import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const RATE = 24000;
const OPEN_ENDED = new Set([0xffffffff, 0]);

/**
 * Parses a WAV file. Returns { format, channels, sampleRate, byteRate, blockAlign, bitsPerSample,
 * riffSize, dataSize (declared), dataOffset, data (Buffer of the PCM actually present),
 * openEnded (sizes were 0xFFFFFFFF/0) }. Throws on anything malformed.
 */
export function parseWav(buf) {
    if (!Buffer.isBuffer(buf)) buf = Buffer.from(buf);
    if (buf.length < 12) throw new Error(`WAV too short: ${buf.length} bytes`);
    if (buf.toString('latin1', 0, 4) !== 'RIFF') throw new Error(`no RIFF magic: ${JSON.stringify(buf.toString('latin1', 0, 4))}`);
    if (buf.toString('latin1', 8, 12) !== 'WAVE') throw new Error('no WAVE magic');
    const riffSize = buf.readUInt32LE(4);
    let off = 12;
    let fmt = null;
    while (off + 8 <= buf.length) {
        const id = buf.toString('latin1', off, off + 4);
        const size = buf.readUInt32LE(off + 4);
        const body = off + 8;
        if (id === 'fmt ') {
            if (size < 16 || body + size > buf.length) throw new Error(`bad fmt chunk size ${size}`);
            fmt = {
                format: buf.readUInt16LE(body),
                channels: buf.readUInt16LE(body + 2),
                sampleRate: buf.readUInt32LE(body + 4),
                byteRate: buf.readUInt32LE(body + 8),
                blockAlign: buf.readUInt16LE(body + 12),
                bitsPerSample: buf.readUInt16LE(body + 14),
            };
        } else if (id === 'data') {
            if (!fmt) throw new Error('data chunk before fmt chunk');
            const openEnded = OPEN_ENDED.has(size) || OPEN_ENDED.has(riffSize);
            const avail = buf.length - body;
            let data;
            if (OPEN_ENDED.has(size)) data = buf.subarray(body);
            else {
                if (size > avail) throw new Error(`data chunk declares ${size} bytes, only ${avail} present`);
                data = buf.subarray(body, body + size);
            }
            return { ...fmt, riffSize, dataSize: size, dataOffset: body, data, openEnded };
        }
        if (OPEN_ENDED.has(size)) throw new Error(`open-ended size on non-data chunk ${JSON.stringify(id)}`);
        off = body + size + (size & 1);
    }
    throw new Error(fmt ? 'no data chunk' : 'no fmt chunk');
}

/** s16le bytes → Float32Array in [-1, 1). Throws on an odd byte count. */
export function s16ToFloat(buf) {
    if (buf.length % 2) throw new Error(`s16 PCM has an odd byte count: ${buf.length}`);
    const n = buf.length / 2;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = buf.readInt16LE(2 * i) / 32768;
    return out;
}

export function rms(x) {
    if (!x.length) return 0;
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i] * x[i];
    return Math.sqrt(s / x.length);
}

export function peak(x) {
    let p = 0;
    for (let i = 0; i < x.length; i++) p = Math.max(p, Math.abs(x[i]));
    return p;
}

/** Seconds of mono s16 audio in `bytes` bytes at `rate`. */
export const pcmSeconds = (bytes, rate = RATE) => bytes / 2 / rate;

/**
 * Rough plausible duration bounds (seconds) for English text spoken at `speed`:
 * between ~25 and ~4 characters per second of audio (espeak is ~12-15 at speed 1),
 * plus up to 1.5 s of leading/trailing silence.
 */
export function plausibleSeconds(text, speed = 1) {
    const n = [...text].length;
    return { min: n / 25 / speed, max: n / 4 / speed + 1.5 };
}

function run(cmd, args, { timeoutMs = 20000, encoding = 'utf8', maxBuffer = 64 << 20 } = {}) {
    return new Promise((resolve, reject) => {
        execFile(cmd, args, { timeout: timeoutMs, encoding, maxBuffer }, (err, stdout, stderr) => {
            if (err) {
                const se = Buffer.isBuffer(stderr) ? stderr.toString() : stderr;
                reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${String(se).slice(-2000)}`));
            } else resolve({ stdout, stderr });
        });
    });
}

async function withTemp(bytes, ext, fn) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pockettts-e2e-'));
    const file = path.join(dir, `audio.${ext}`);
    try {
        await fs.writeFile(file, bytes);
        return await fn(file);
    } finally {
        await fs.rm(dir, { recursive: true, force: true });
    }
}

/**
 * ffprobe on the bytes. Returns { codec, sampleRate, channels, duration (s, from the stream or the
 * format, may be NaN), packets (with { countPackets: true }: the packets ffprobe reads, by
 * -count_packets; else NaN), formatName, raw }. `ext` helps ffprobe guess the container.
 */
export async function ffprobe(bytes, ext = 'bin', { countPackets = false } = {}) {
    return withTemp(bytes, ext, async (file) => {
        const { stdout } = await run('ffprobe', ['-v', 'error', ...(countPackets ? ['-count_packets'] : []),
            '-show_streams', '-show_format', '-of', 'json', file]);
        const j = JSON.parse(stdout);
        const st = (j.streams || []).find((s) => s.codec_type === 'audio');
        if (!st) throw new Error(`ffprobe found no audio stream: ${stdout.slice(0, 500)}`);
        const dur = parseFloat(st.duration ?? j.format?.duration);
        return {
            codec: st.codec_name,
            sampleRate: parseInt(st.sample_rate, 10),
            channels: st.channels,
            duration: dur,
            packets: countPackets ? parseInt(st.nb_read_packets, 10) : NaN,
            formatName: j.format?.format_name,
            raw: j,
        };
    });
}

/**
 * Decodes any format ffmpeg understands into mono float samples at `rate` (default 24 kHz).
 * For raw pcm input pass inputArgs ['-f', 's16le', '-ar', '24000', '-ac', '1'].
 */
export async function ffmpegDecode(bytes, { ext = 'bin', rate = RATE, inputArgs = [] } = {}) {
    return withTemp(bytes, ext, async (file) => {
        const { stdout } = await run('ffmpeg', ['-v', 'error', '-nostdin', ...inputArgs, '-i', file,
            '-f', 's16le', '-acodec', 'pcm_s16le', '-ac', '1', '-ar', String(rate), 'pipe:1'],
        { encoding: 'buffer' });
        return s16ToFloat(stdout);
    });
}

/**
 * Checks a WAV body the way every test wants it: 24 kHz mono s16 PCM, non-silent.
 * Returns { wav, samples, seconds, rms }. Throws with expected vs actual otherwise.
 */
export function decodeSpeechWav(buf, { minRms = 0.01 } = {}) {
    const wav = parseWav(buf);
    const want = { format: 1, channels: 1, sampleRate: RATE, bitsPerSample: 16, blockAlign: 2, byteRate: RATE * 2 };
    for (const [k, v] of Object.entries(want))
        if (wav[k] !== v) throw new Error(`WAV ${k}: expected ${v}, got ${wav[k]}`);
    const samples = s16ToFloat(wav.data.length % 2 ? wav.data.subarray(0, wav.data.length - 1) : wav.data);
    const r = rms(samples);
    if (!(r >= minRms)) throw new Error(`WAV is (near) silent: RMS ${r.toFixed(5)} < ${minRms}`);
    return { wav, samples, seconds: samples.length / RATE, rms: r };
}

/**
 * Median fundamental frequency (Hz) over voiced 40 ms frames, by normalised autocorrelation
 * in 60..400 Hz on a 3x-decimated copy; at most `maxFrames` frames spread over the signal are
 * analysed (fast enough for minutes of audio). NaN when nothing is voiced. Crude, but enough
 * to tell a low voice from a high one.
 */
export function medianPitch(x, rate = RATE, maxFrames = 80) {
    const d = 3, r = rate / d;
    const y = new Float32Array(Math.floor(x.length / d));
    for (let i = 0; i < y.length; i++) y[i] = (x[d * i] + x[d * i + 1] + x[d * i + 2]) / 3;
    const frame = Math.round(0.04 * r);
    const minLag = Math.floor(r / 400), maxLag = Math.ceil(r / 60);
    const starts = [];
    for (let s = 0; s + frame + maxLag <= y.length; s += frame) starts.push(s);
    const step = Math.max(1, starts.length / (maxFrames * 3)); // look at ~3x more frames than we keep
    const f0s = [];
    for (let k = 0; k < starts.length && f0s.length < maxFrames; k += step) {
        const s = starts[Math.floor(k)];
        let e = 0;
        for (let i = s; i < s + frame; i++) e += y[i] * y[i];
        if (Math.sqrt(e / frame) < 0.02) continue;
        let best = 0, bestLag = 0;
        for (let lag = minLag; lag <= maxLag; lag++) {
            let c = 0, e2 = 0;
            for (let i = s; i < s + frame; i++) { c += y[i] * y[i + lag]; e2 += y[i + lag] * y[i + lag]; }
            const q = c / Math.sqrt(e * e2 + 1e-12);
            if (q > best) { best = q; bestLag = lag; }
        }
        if (best > 0.6) f0s.push(r / bestLag);
    }
    if (!f0s.length) return NaN;
    f0s.sort((p, q) => p - q);
    return f0s[f0s.length >> 1];
}

/**
 * Two renderings of the same request: same duration (within `tol`, default 2 %) and similar
 * loudness (RMS within 20 %). Engines such as espeak-ng add noise, so bytes may differ.
 * Throws with both figures otherwise.
 */
export function assertSimilarAudio(a, b, label = '', tol = 0.02) {
    const da = a.length, db = b.length;
    if (Math.abs(da - db) > tol * Math.max(da, db))
        throw new Error(`${label}: lengths differ: ${da} vs ${db} samples`);
    const ra = rms(a), rb = rms(b);
    if (!(ra > 0 && rb > 0 && ra / rb > 0.8 && ra / rb < 1.25))
        throw new Error(`${label}: loudness differs: RMS ${ra.toFixed(4)} vs ${rb.toFixed(4)}`);
}
