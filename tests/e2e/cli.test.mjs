// cli.test.mjs — the program's command line (issue 2, §2 and §6): --help, --version,
// `voices`, `say` (argument or stdin → file or stdout, same options and same bytes as the
// API), refusal of unknown flags and bad values (from flags and from the environment) with a
// clear message and no stdout, precedence of flags over POCKET_TTS_* variables, and signals.
//
// Every child runs with a timeout and its stderr is checked for sanitizer reports.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { binPath, childEnv, sanitizerReport, startServer, freePort, request, speech, sleep, parseSse } from './lib/server.mjs';
import { decodeSpeechWav, parseWav, s16ToFloat, rms, assertSimilarAudio } from './lib/audio.mjs';

/** Runs the binary to completion. Resolves { code, signal, stdout: Buffer, stderr: string, ms }. */
function run(args, { env = {}, input = null, timeoutMs = 20000 } = {}) {
    return new Promise((resolve, reject) => {
        const t0 = performance.now();
        const p = spawn(binPath(), args, { env: childEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
        const out = [];
        let err = '';
        p.stdout.on('data', (c) => out.push(c));
        p.stderr.on('data', (c) => { if (err.length < 1 << 20) err += c; });
        const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`pockettts ${args.join(' ')}: no exit within ${timeoutMs} ms\nstderr: ${err.slice(-2000)}`)); }, timeoutMs);
        p.on('error', (e) => { clearTimeout(timer); reject(e); });
        p.on('close', (code, signal) => {
            clearTimeout(timer);
            const rep = sanitizerReport(err);
            if (rep) return reject(new Error(`sanitizer report from pockettts ${args.join(' ')}:\n${rep}`));
            resolve({ code, signal, stdout: Buffer.concat(out), stderr: err, ms: performance.now() - t0 });
        });
        p.stdin.on('error', () => {});
        if (input !== null) p.stdin.end(input); else p.stdin.end();
    });
}

/** A refused invocation: non-zero exit, quickly, nothing on stdout, stderr matches `mention`. */
async function expectRefused(args, mention, opts = {}) {
    const r = await run(args, { timeoutMs: 10000, ...opts });
    const what = `pockettts ${args.join(' ')} ${opts.env ? JSON.stringify(opts.env) : ''}`;
    assert.notEqual(r.code, 0, `${what}: expected a non-zero exit, got 0 (stderr: ${r.stderr.slice(0, 300)})`);
    assert.equal(r.signal, null, `${what}: killed by ${r.signal}`);
    assert.ok(r.code < 128, `${what}: exit code ${r.code} looks like a crash`);
    assert.equal(r.stdout.length, 0, `${what}: nothing on stdout, got ${JSON.stringify(r.stdout.toString().slice(0, 200))}`);
    assert.match(r.stderr, mention, `${what}: stderr should mention ${mention}; got: ${r.stderr.slice(0, 400)}`);
    assert.ok(r.stderr.split('\n').filter(Boolean).length <= 5, `${what}: a short, clear message, got:\n${r.stderr.slice(0, 1000)}`);
    return r;
}

async function tmpdir() { return fs.mkdtemp(path.join(os.tmpdir(), 'pockettts-cli-')); }

describe('--help and --version', () => {
    test('--version prints a version on stdout and exits 0', async () => {
        for (const f of ['--version', '-V']) {
            const r = await run([f]);
            assert.equal(r.code, 0, `${f}: exit code`);
            assert.match(r.stdout.toString(), /\b\d+\.\d+\.\d+\b/, `${f}: stdout ${JSON.stringify(r.stdout.toString())}`);
            assert.ok(r.stdout.toString().split('\n').filter(Boolean).length <= 3, `${f}: short output`);
        }
    });

    test('--help lists the commands, every server flag and every POCKET_TTS_* variable', async () => {
        for (const f of ['--help', '-h']) {
            const r = await run([f]);
            assert.equal(r.code, 0, `${f}: exit code`);
            const h = r.stdout.toString();
            for (const word of ['serve', 'say', 'voices', '--version',
                '--host', '--port', '--voices-dir', '--stream-default', '--log-level', '--max-input-chars',
                '--max-body-bytes', '--workers', '--queue',
                'POCKET_TTS_HOST', 'POCKET_TTS_PORT', 'POCKET_TTS_VOICES_DIR', 'POCKET_TTS_STREAM_DEFAULT',
                'POCKET_TTS_LOG_LEVEL', '49112', '4096',
                '--voice', '--format', '--speed', '--output'])
                assert.ok(h.includes(word), `${f} mentions ${word}`);
        }
    });

    test('the version agrees with /health', async () => {
        const v = (await run(['--version'])).stdout.toString();
        const s = await startServer();
        try {
            const j = (await s.request('GET', '/health')).json();
            assert.ok(v.includes(j.version), `--version ${JSON.stringify(v.trim())} contains /health version ${j.version}`);
        } finally { await s.stop(); }
    });
});

describe('refusals: unknown flags and bad values', { concurrency: 3 }, () => {
    const cases = [
        [['--bogus'], /--bogus/],
        [['serve', '--bogus'], /--bogus/],
        [['say', '--bogus', 'hi'], /--bogus/],
        [['voices', '--bogus'], /--bogus/],
        [['frobnicate'], /frobnicate/],
        [['serve', '--port', 'abc'], /port/],
        [['serve', '--port', '70000'], /port/],
        [['serve', '--port', '-1'], /port/],
        [['serve', '--port'], /port/],
        [['serve', '--workers', '0'], /workers/],
        [['serve', '--queue', 'many'], /queue/],
        [['serve', '--max-input-chars', '0'], /max-input-chars/],
        [['serve', '--max-body-bytes', '12abc'], /max-body-bytes/],
        [['serve', '--log-level', 'LOUD'], /log-level/],
        [['serve', '--stream-default', 'maybe'], /stream-default|maybe/],
        [['serve', '--stream-default=maybe'], /stream-default/],
        [['serve', '--port=12x'], /port/],
        [['say', '--speed', '5', 'hi'], /speed/],
        [['say', '--speed', '0.1', 'hi'], /speed/],
        [['say', '--format', 'ogg', 'hi'], /format/],
        [['voices', '--model', 'no-such-model'], /model|no-such-model/],
    ];
    for (const [args, mention] of cases)
        test(`pockettts ${args.join(' ')}`, () => expectRefused(args, mention));

    const envCases = [
        [{ POCKET_TTS_PORT: 'abc' }, /POCKET_TTS_PORT/],
        [{ POCKET_TTS_PORT: '99999' }, /POCKET_TTS_PORT/],
        [{ POCKET_TTS_LOG_LEVEL: 'LOUD' }, /POCKET_TTS_LOG_LEVEL/],
        [{ POCKET_TTS_STREAM_DEFAULT: 'maybe' }, /POCKET_TTS_STREAM_DEFAULT/],
        [{ POCKET_TTS_MAX_INPUT_CHARS: '-5' }, /POCKET_TTS_MAX_INPUT_CHARS/],
        [{ POCKET_TTS_WORKERS: '0' }, /POCKET_TTS_WORKERS/],
    ];
    for (const [env, mention] of envCases)
        test(`serve with ${JSON.stringify(env)}`, () => expectRefused(['serve', '--host', '127.0.0.1', '--port', '0'], mention, { env }));

    test('serve on a port already in use exits with a clear message', async () => {
        const s = await startServer();
        try {
            const r = await expectRefused(['serve', '--host', '127.0.0.1', '--port', String(s.port)], new RegExp(`${s.port}|in use|bind`, 'i'));
            assert.ok(r.ms < 10000);
        } finally { await s.stop(); }
    });
});

describe('configuration precedence (flags win over environment)', () => {
    test('POCKET_TTS_PORT is used when there is no --port; --port wins over it', async () => {
        const envPort = await freePort();
        const p = spawn(binPath(), ['serve'], { env: childEnv({ POCKET_TTS_PORT: String(envPort), POCKET_TTS_HOST: '127.0.0.1' }), stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr.on('data', (c) => { err += c; });
        const exited = new Promise((r) => p.on('exit', (code) => r(code)));
        try {
            let ok = false;
            for (let i = 0; i < 200 && !ok; i++) {
                try { ok = (await request(envPort, 'GET', '/health', { timeoutMs: 1000 })).status === 200; } catch { await sleep(50); }
            }
            assert.ok(ok, `server listens on POCKET_TTS_PORT=${envPort}; stderr: ${err.slice(-500)}`);
        } finally {
            p.kill('SIGTERM');
            assert.equal(await Promise.race([exited, sleep(10000).then(() => 'timeout')]), 0, 'exit 0 on SIGTERM');
        }
        assert.equal(sanitizerReport(err), null, sanitizerReport(err) || '');

        // flag wins: env says envPort, flag says another port
        const s = await startServer({ env: { POCKET_TTS_PORT: String(envPort) } });
        try {
            assert.notEqual(s.port, envPort);
            assert.equal((await s.request('GET', '/health')).status, 200);
            await assert.rejects(request(envPort, 'GET', '/health', { timeoutMs: 2000 }), /ECONNREFUSED/, 'nothing on the env port');
        } finally { await s.stop(); }
    });

    test('POCKET_TTS_STREAM_DEFAULT=false makes responses whole; --stream-default true wins over it', async () => {
        const body = { model: 'tts-1', voice: 'alloy', input: 'Stream default.', response_format: 'wav' };
        const s = await startServer({ env: { POCKET_TTS_STREAM_DEFAULT: 'false' } });
        try {
            const r = await speech(s.port, body);
            assert.equal(r.status, 200);
            assert.notEqual(r.headers['transfer-encoding'], 'chunked');
            assert.equal(r.headers['content-length'], String(r.body.length));
            assert.equal(parseWav(r.body).openEnded, false);
            const st = await speech(s.port, { ...body, stream: true });
            assert.equal(st.headers['transfer-encoding'], 'chunked', 'the request field still wins');
        } finally { await s.stop(); }
        const t = await startServer({ env: { POCKET_TTS_STREAM_DEFAULT: 'false' }, args: ['--stream-default', 'true'] });
        try {
            const r = await speech(t.port, body);
            assert.equal(r.headers['transfer-encoding'], 'chunked', 'flag wins over env');
        } finally { await t.stop(); }
    });

    test('POCKET_TTS_LOG_LEVEL=ERROR silences request lines; --log-level INFO wins over it', async () => {
        const body = { model: 'tts-1', voice: 'echo', input: 'Log level.', response_format: 'pcm', stream: false };
        const s = await startServer({ env: { POCKET_TTS_LOG_LEVEL: 'ERROR' } });
        try {
            assert.equal((await speech(s.port, body)).status, 200);
            await sleep(200);
            assert.doesNotMatch(s.stderr(), /\/v1\/audio\/speech/, `no request line at ERROR level; stderr: ${s.stderr().slice(-500)}`);
        } finally { await s.stop(); }
        const t = await startServer({ env: { POCKET_TTS_LOG_LEVEL: 'ERROR' }, args: ['--log-level', 'INFO'] });
        try {
            assert.equal((await speech(t.port, body)).status, 200);
            await sleep(200);
            assert.match(t.stderr(), /\/v1\/audio\/speech/, `request line at INFO; stderr: ${t.stderr().slice(-500)}`);
        } finally { await t.stop(); }
    });

    test('POCKET_TTS_MAX_INPUT_CHARS applies; --max-input-chars wins', async () => {
        const s = await startServer({ env: { POCKET_TTS_MAX_INPUT_CHARS: '5' } });
        try {
            assert.equal((await speech(s.port, { voice: 'alloy', input: 'abcde', response_format: 'pcm', stream: false })).status, 200);
            assert.equal((await speech(s.port, { voice: 'alloy', input: 'abcdef', response_format: 'pcm', stream: false })).status, 413);
        } finally { await s.stop(); }
        const t = await startServer({ env: { POCKET_TTS_MAX_INPUT_CHARS: '5' }, args: ['--max-input-chars', '10'] });
        try {
            assert.equal((await speech(t.port, { voice: 'alloy', input: 'abcdefghij', response_format: 'pcm', stream: false })).status, 200);
        } finally { await t.stop(); }
    });
});

describe('POCKET_TTS_VOICES_DIR / --voices-dir', () => {
    test('an existing (empty) folder is accepted from env and from the flag', async () => {
        const dir = await tmpdir();
        try {
            const a = await startServer({ env: { POCKET_TTS_VOICES_DIR: dir } });
            await a.stop();
            const b = await startServer({ args: ['--voices-dir', dir] });
            assert.equal((await b.request('GET', '/v1/voices')).status, 200);
            await b.stop();
        } finally { await fs.rm(dir, { recursive: true, force: true }); }
    });
});

describe('listen address', () => {
    /** Local addresses (hex ip:port as in /proc/net/tcp) of sockets listening on `port`. */
    async function listeners(port) {
        const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
        const t = await fs.readFile('/proc/net/tcp', 'utf8');
        return t.split('\n').slice(1).map((l) => l.trim().split(/\s+/))
            .filter((f) => f.length > 3 && f[3] === '0A' && f[1].endsWith(':' + hexPort)).map((f) => f[1]);
    }
    async function serveAndList(args, env) {
        const port = await freePort();
        const p = spawn(binPath(), ['serve', '--port', String(port), ...args], { env: childEnv(env), stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr.on('data', (c) => { err += c; });
        const exited = new Promise((r) => p.on('exit', (code) => r(code)));
        try {
            let ok = false;
            for (let i = 0; i < 200 && !ok; i++) {
                try { ok = (await request(port, 'GET', '/health', { timeoutMs: 1000 })).status === 200; } catch { await sleep(50); }
            }
            assert.ok(ok, `server up on ${port}; stderr: ${err.slice(-500)}`);
            return await listeners(port);
        } finally {
            p.kill('SIGTERM');
            assert.equal(await Promise.race([exited, sleep(10000).then(() => 'timeout')]), 0);
            assert.equal(sanitizerReport(err), null, sanitizerReport(err) || '');
        }
    }
    test('default host is 0.0.0.0 (all interfaces)', async () => {
        const l = await serveAndList([], {});
        assert.deepEqual(l, [`00000000:${l[0]?.split(':')[1]}`], `listening sockets: ${l}`);
    });
    test('POCKET_TTS_HOST=127.0.0.1 binds loopback only; --host wins over it', async () => {
        const a = await serveAndList([], { POCKET_TTS_HOST: '127.0.0.1' });
        assert.equal(a.length, 1);
        assert.match(a[0], /^0100007F:/, `loopback listener, got ${a}`);
        const b = await serveAndList(['--host', '0.0.0.0'], { POCKET_TTS_HOST: '127.0.0.1' });
        assert.match(b[0] || '', /^00000000:/, `flag wins: ${b}`);
    });
});

describe('startup readiness', () => {
    test('GET /health is 503 with Retry-After while engines load, then 200; speech meanwhile is 503 or 200, never else', async (t) => {
        const port = await freePort();
        const p = spawn(binPath(), ['serve', '--host', '127.0.0.1', '--port', String(port)], { env: childEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr.on('data', (c) => { err += c; });
        const exited = new Promise((r) => p.on('exit', (code) => r(code)));
        const seen = [];
        let speechDuring = null;
        try {
            const t0 = performance.now();
            let ready = false;
            while (!ready && performance.now() - t0 < 20000) {
                let r;
                try { r = await request(port, 'GET', '/health', { timeoutMs: 2000 }); } catch { await sleep(2); continue; }
                seen.push(r.status);
                if (r.status === 200) { ready = true; break; }
                assert.equal(r.status, 503, `before ready /health must be 503, got ${r.status}: ${r.text().slice(0, 200)}`);
                assert.match(r.headers['retry-after'] || '', /^\d+$/, 'Retry-After on the 503');
                const j = JSON.parse(r.text());
                assert.notEqual(j.status, 'ok', `status field while starting: ${j.status}`);
                if (!speechDuring)
                    speechDuring = speech(port, { input: 'Early bird.', voice: 'alloy', response_format: 'pcm', stream: false }, { timeoutMs: 20000 });
            }
            assert.ok(ready, `ready within 20 s; statuses ${seen}`);
            const n503 = seen.filter((x) => x === 503).length;
            t.diagnostic(`startup: ${n503} × 503 then 200`);
            if (speechDuring) {
                const r = await speechDuring;
                assert.ok(r.status === 503 || r.status === 200, `speech during startup: ${r.status} ${r.text().slice(0, 200)}`);
                if (r.status === 503) assert.match(r.headers['retry-after'] || '', /^\d+$/, 'Retry-After');
            }
        } finally {
            p.kill('SIGTERM');
            assert.equal(await Promise.race([exited, sleep(10000).then(() => 'timeout')]), 0);
            assert.equal(sanitizerReport(err), null, sanitizerReport(err) || '');
        }
    });
});

describe('signals', () => {
    for (const sig of ['SIGTERM', 'SIGINT']) {
        test(`${sig} stops the server with exit 0, even mid-stream`, async () => {
            const s = await startServer();
            const pending = speech(s.port, { voice: 'alloy', input: 'A long one. '.repeat(200), response_format: 'pcm', stream: true },
                { timeoutMs: 20000 }).catch((e) => e);
            await sleep(300);
            s.proc.kill(sig);
            const r = await Promise.race([s.exited, sleep(10000).then(() => null)]);
            assert.ok(r, `server exited within 10 s of ${sig}`);
            assert.equal(r.code, 0, `exit code after ${sig}: ${JSON.stringify(r)}; stderr ${s.stderr().slice(-500)}`);
            await pending;
            assert.equal(sanitizerReport(s.stderr()), null, sanitizerReport(s.stderr()) || '');
        });
    }
});

describe('voices', () => {
    test('lists real espeak ids and the OpenAI names on stdout', async () => {
        const r = await run(['voices']);
        assert.equal(r.code, 0, r.stderr);
        const out = r.stdout.toString();
        for (const id of ['alloy', 'onyx', 'nova', 'en-us']) assert.match(out, new RegExp(`\\b${id}\\b`), `voices lists ${id}`);
    });

    test('--json prints the /v1/voices body', async () => {
        const r = await run(['voices', '--json']);
        assert.equal(r.code, 0, r.stderr);
        const j = JSON.parse(r.stdout.toString());
        assert.equal(j.object, 'list');
        assert.ok(j.data.some((v) => v.id === 'alloy' && v.object === 'voice'));
        const s = await startServer();
        try {
            const api = (await s.request('GET', '/v1/voices')).json();
            assert.deepEqual(j.data.map((v) => v.id).sort(), api.data.map((v) => v.id).sort());
        } finally { await s.stop(); }
    });
});

describe('say', () => {
    test('text argument → WAV file; nothing on stdout', async () => {
        const dir = await tmpdir();
        try {
            const f = path.join(dir, 'out.wav');
            const r = await run(['say', '--voice', 'alloy', '-o', f, 'Hello from the command line.']);
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout.length, 0, `stdout must stay empty, got ${r.stdout.length} bytes`);
            const a = decodeSpeechWav(await fs.readFile(f));
            assert.ok(a.seconds > 0.8 && a.seconds < 8, `duration ${a.seconds}`);
        } finally { await fs.rm(dir, { recursive: true, force: true }); }
    });

    test('stdin → stdout: stdout holds exactly the audio', async () => {
        const r = await run(['say', '-f', 'wav', '--no-stream'], { input: 'Text read from standard input.' });
        assert.equal(r.code, 0, r.stderr);
        const a = decodeSpeechWav(r.stdout);
        assert.equal(a.wav.riffSize, r.stdout.length - 8, 'stdout is exactly one WAV file (RIFF size = length - 8)');
        assert.ok(a.seconds > 0.8);
    });

    test('DEBUG logging still leaves stdout to the audio alone', async () => {
        const r = await run(['say', '--log-level', 'DEBUG', '-f', 'wav', '--no-stream', 'Debug logs go to stderr.']);
        assert.equal(r.code, 0, r.stderr);
        const a = decodeSpeechWav(r.stdout);
        assert.equal(a.wav.riffSize, r.stdout.length - 8, 'stdout is exactly one WAV file');
        assert.doesNotMatch(r.stdout.toString('latin1'), /DEBUG|INFO/, 'no log text on stdout');
    });

    test('pcm to stdout: even length, not silent', async () => {
        const r = await run(['say', '--format', 'pcm', 'Raw samples please.']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.length % 2, 0);
        assert.ok(rms(s16ToFloat(r.stdout)) > 0.01);
    });

    test('say writes the same bytes as the API', async () => {
        // espeak-ng output depends on what the process synthesised before, so only a fresh
        // process can be compared byte for byte: `say` (always fresh) against the first request
        // of a fresh server. Later requests are compared by header, duration and loudness.
        const text = 'Same bytes as the server.';
        const s = await startServer();
        try {
            let first = true;
            for (const [fmt, stream] of [['pcm', false], ['wav', false], ['wav', true]]) {
                const cli = await run(['say', '-m', 'tts-1', '-v', 'nova', '-f', fmt, stream ? '--stream' : '--no-stream', '-s', '1.5', text]);
                assert.equal(cli.code, 0, cli.stderr);
                const api = await speech(s.port, { model: 'tts-1', voice: 'nova', input: text, response_format: fmt, stream, speed: 1.5 });
                assert.equal(api.status, 200);
                const label = `${fmt} stream=${stream}: say (${cli.stdout.length} B) vs API (${api.body.length} B)`;
                if (first) assert.ok(cli.stdout.equals(api.body), `${label}: identical bytes`);
                first = false;
                if (fmt === 'pcm') { assertSimilarAudio(s16ToFloat(cli.stdout), s16ToFloat(api.body), label); continue; }
                const a = decodeSpeechWav(cli.stdout), b = decodeSpeechWav(api.body);
                for (const k of ['format', 'channels', 'sampleRate', 'bitsPerSample', 'openEnded', 'dataOffset'])
                    assert.equal(a.wav[k], b.wav[k], `${label}: WAV ${k}`);
                assert.equal(a.wav.openEnded, stream, `${label}: open-ended header iff streamed`);
                assertSimilarAudio(a.samples, b.samples, label);
            }
        } finally { await s.stop(); }
    });

    test('--stream-format sse writes speech.audio.* events', async () => {
        const r = await run(['say', '--stream-format', 'sse', '-f', 'pcm', 'Events on stdout.']);
        assert.equal(r.code, 0, r.stderr);
        const ev = parseSse(r.stdout.toString());
        assert.ok(ev.length >= 2, `events: ${ev.length}`);
        assert.ok(ev.slice(0, -1).every((e) => e.data.type === 'speech.audio.delta'));
        assert.equal(ev[ev.length - 1].data.type, 'speech.audio.done');
        const audio = Buffer.concat(ev.slice(0, -1).map((e) => Buffer.from(e.data.audio, 'base64')));
        assert.ok(rms(s16ToFloat(audio)) > 0.01);
    });

    test('voices --model espeak lists espeak voices', async () => {
        const r = await run(['voices', '--model', 'espeak']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout.toString(), /\ben-us\b/);
    });

    test('--speed 2 is shorter than the default', async () => {
        const text = 'Speed changes the duration of this sentence.';
        const a = await run(['say', '-f', 'pcm', text]);
        const b = await run(['say', '-f', 'pcm', '--speed', '2', text]);
        const ratio = b.stdout.length / a.stdout.length;
        assert.ok(ratio > 0.35 && ratio < 0.75, `duration ratio: expected ~0.5, got ${ratio.toFixed(3)}`);
    });

    test('format follows the output file extension', async () => {
        const dir = await tmpdir();
        try {
            const f = path.join(dir, 'x.wav');
            const r = await run(['say', '-o', f, 'Extension.']);
            assert.equal(r.code, 0, r.stderr);
            decodeSpeechWav(await fs.readFile(f));
        } finally { await fs.rm(dir, { recursive: true, force: true }); }
    });

    test('unknown voice is refused clearly, no stdout', async () => {
        await expectRefused(['say', '--voice', 'no-such-voice-xyz', '-f', 'wav', 'hi'], /voice|no-such-voice-xyz/);
    });
    test('unknown model is refused clearly', async () => {
        await expectRefused(['say', '--model', 'tts-9000', '-f', 'wav', 'hi'], /model|tts-9000/);
    });
    test('an output path that cannot be opened is refused clearly', async () => {
        await expectRefused(['say', '-o', '/nonexistent-dir-e2e/x.wav', 'hi'], /nonexistent-dir-e2e|No such file/);
    });
    test('a write error (disk full) is reported, exit non-zero, and the output device is left alone', async (t) => {
        // Never aim this at the real /dev/full: a `say` that unlinks its output on failure would
        // delete the system's device node (we run as root). Make a private one instead.
        const dir = await tmpdir();
        try {
            const dev = path.join(dir, 'full');
            const mk = await new Promise((resolve) => {
                const p = spawn('mknod', ['-m', '666', dev, 'c', '1', '7'], { stdio: 'ignore' });
                p.on('error', () => resolve(1));
                p.on('close', (code) => resolve(code));
            });
            if (mk !== 0) { t.skip('cannot mknod a private full device here'); return; }
            await expectRefused(['say', '-f', 'wav', '-o', dev, 'Hello there, a few words.'], /space|write/i);
            let st = null;
            try { st = await fs.stat(dev); } catch { /* deleted */ }
            assert.ok(st && st.isCharacterDevice(), `say must not delete or replace an output it did not create (${dev} is ${st ? 'no longer a device' : 'gone'})`);
        } finally { await fs.rm(dir, { recursive: true, force: true }); }
    });
    test('empty stdin is refused clearly', async () => {
        await expectRefused(['say', '-f', 'wav'], /input|text|empty/i, { input: '' });
    });
    test('input over --max-input-chars is refused', async () => {
        await expectRefused(['say', '--max-input-chars', '5', '-f', 'wav', 'too long text'], /5|long|max/i);
    });
});

