// server.mjs — start the real pockettts binary on a free loopback port for a test file.
//
// What lives here: finding a free port, spawning `$POCKETTTS_BIN serve --host 127.0.0.1
// --port N [extra args]`, polling GET /health until 200, collecting stderr, stopping the
// process on teardown (SIGTERM, then SIGKILL after a grace period), and an HTTP helper
// (`request`) that records status, headers, the body and the arrival time of every chunk.
//
// Invariants: every wait is bounded (start, stop, each request); a server that dies on its
// own, or whose stderr shows an AddressSanitizer / LeakSanitizer / UBSan report, fails the
// test file at teardown (stop() throws with the report). Nothing here retries a request:
// tests see exactly what the server did.
//
// Why node:http rather than fetch: we need the raw Transfer-Encoding header, per-chunk
// arrival times, and the ability to hang up mid-body, which fetch hides or makes awkward.
//
// Usage (node:test):
//   import { useServer } from './lib/server.mjs';
//   const srv = useServer();                  // before(): start, after(): stop + sanitizer check
//   test('x', async () => { const r = await srv.request('GET', '/health'); ... });
// or by hand: const s = await startServer({ args: ['--workers', '1'] }); ...; await s.stop();

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TESTS_DIR = path.resolve(HERE, '..', '..');
const REPO_DIR = path.resolve(TESTS_DIR, '..');

export const STDERR_CAP = 4 << 20; // keep at most 4 MiB of server stderr

/** Path of the binary under test: $POCKETTTS_BIN, else the ASan build, else the release one. */
export function binPath() {
    return process.env.POCKETTTS_BIN || path.join(REPO_DIR, 'build', 'asan', 'pockettts');
}

// Engine isolation. The server loads pocket-tts when its weights are in the cache (or can be
// downloaded from Hugging Face) and then makes it the default engine. These tests are about the
// program and the HTTP layer and are written against espeak-ng (fast, always there, known voices),
// so by default the child runs offline with an empty private cache: pocket-tts is skipped, no
// download is attempted, and the results do not depend on what a developer has cached.
// POCKETTTS_E2E_REAL_ENGINES=1 lifts this (the real default configuration).
let isolatedCache = null;
function isolatedCacheDir() {
    if (!isolatedCache) {
        isolatedCache = fs.mkdtempSync(path.join(os.tmpdir(), 'pockettts-e2e-cache-'));
        process.on('exit', () => { try { fs.rmSync(isolatedCache, { recursive: true, force: true }); } catch { /* best effort */ } });
    }
    return isolatedCache;
}

/** Environment for the child: ours plus sanitizer defaults (the Makefile sets the same). */
export function childEnv(extra = {}) {
    const env = { ...process.env };
    if (!env.ASAN_OPTIONS) env.ASAN_OPTIONS = 'detect_leaks=1:abort_on_error=0:strict_string_checks=1';
    if (!env.LSAN_OPTIONS)
        env.LSAN_OPTIONS = `suppressions=${path.join(TESTS_DIR, 'lsan.supp')}:print_suppressions=0`;
    if (!env.UBSAN_OPTIONS) env.UBSAN_OPTIONS = 'print_stacktrace=1:halt_on_error=1';
    if (!env.POCKETTTS_SHARED) env.POCKETTTS_SHARED = path.resolve(REPO_DIR, '..', 'shared');
    // Make the tests independent of whatever the developer has in their shell.
    for (const k of Object.keys(env)) if (k.startsWith('POCKET_TTS_')) delete env[k];
    if (process.env.POCKETTTS_E2E_REAL_ENGINES !== '1') {
        env.HF_HUB_OFFLINE = '1';
        env.POCKET_TTS_CACHE_DIR = isolatedCacheDir();
    }
    return { ...env, ...extra };
}

const SANITIZER_RE =
    /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer|ThreadSanitizer:|AddressSanitizer:DEADLYSIGNAL)/;

/** The sanitizer report in `text`, or null. */
export function sanitizerReport(text) {
    const m = SANITIZER_RE.exec(text);
    if (!m) return null;
    return text.slice(Math.max(0, m.index - 200), m.index + 6000);
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.unref();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One HTTP request to host:port with a hard timeout.
 * opts: headers, body (string | Buffer | object → JSON), timeoutMs (default 30000),
 *       abortAfterBytes (hang up once at least this many body bytes arrived),
 *       onChunk(buf, tMs) (called per chunk).
 * Resolves { status, headers, rawHeaders, body: Buffer, text(), json(), chunks: [{t, n}],
 *            tHeaders, tFirstByte, tEnd, aborted } (times in ms since the request started).
 */
export function request(port, method, urlPath, opts = {}) {
    const { timeoutMs = 30000, abortAfterBytes = 0, onChunk } = opts;
    let body = opts.body;
    const headers = { ...(opts.headers || {}) };
    if (body !== undefined && body !== null && !Buffer.isBuffer(body) && typeof body !== 'string') {
        body = JSON.stringify(body);
        if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type'))
            headers['Content-Type'] = 'application/json';
    }
    return new Promise((resolve, reject) => {
        const t0 = performance.now();
        const res = {
            status: 0, headers: {}, rawHeaders: [], chunks: [], body: Buffer.alloc(0),
            tHeaders: -1, tFirstByte: -1, tEnd: -1, aborted: false,
            text() { return this.body.toString('utf8'); },
            json() {
                try { return JSON.parse(this.text()); } catch (e) {
                    throw new Error(`body is not JSON (${e.message}): ${this.text().slice(0, 300)}`);
                }
            },
        };
        const parts = [];
        let got = 0;
        let done = false;
        const finish = (err) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            res.body = Buffer.concat(parts);
            res.tEnd = performance.now() - t0;
            if (err) reject(err); else resolve(res);
        };
        const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent: false },
            (r) => {
                res.status = r.statusCode;
                res.headers = r.headers;
                res.rawHeaders = r.rawHeaders;
                res.tHeaders = performance.now() - t0;
                r.on('data', (c) => {
                    const t = performance.now() - t0;
                    if (res.tFirstByte < 0) res.tFirstByte = t;
                    res.chunks.push({ t, n: c.length });
                    parts.push(c);
                    got += c.length;
                    if (onChunk) onChunk(c, t);
                    if (abortAfterBytes > 0 && got >= abortAfterBytes && !res.aborted) {
                        res.aborted = true;
                        req.destroy();
                        r.destroy();
                        finish();
                    }
                });
                r.on('end', () => finish());
                r.on('error', (e) => (res.aborted ? finish() : finish(e)));
                r.on('aborted', () => { if (!res.aborted) finish(new Error('server aborted the response')); });
            });
        const timer = setTimeout(() => {
            req.destroy();
            finish(new Error(`${method} ${urlPath}: no complete response within ${timeoutMs} ms ` +
                `(status ${res.status}, ${got} body bytes so far)`));
        }, timeoutMs);
        req.on('error', (e) => (res.aborted ? finish() : finish(e)));
        if (body !== undefined && body !== null) req.end(body); else req.end();
    });
}

/**
 * Starts the server. opts: args (extra CLI args after `serve --host --port`), env (extra env),
 * readyTimeoutMs (default 20000), bin, command (default 'serve'), expectReady (default true).
 * Returns { port, url, proc, stderr(), request(method, path, opts), stop(), exited, readyMs }.
 */
export async function startServer(opts = {}) {
    const { args = [], env = {}, readyTimeoutMs = 20000, bin = binPath() } = opts;
    let lastErr = null;
    for (let attempt = 0; attempt < 3; attempt++) {
        const port = await freePort();
        const t0 = performance.now();
        const s = spawnServer(bin, port, args, env);
        try {
            await s.waitReady(readyTimeoutMs);
            s.readyMs = performance.now() - t0; // spawn → first 200 from /health
            return s;
        } catch (e) {
            lastErr = e;
            await s.kill();
            // A lost race for the port is the only reason to try again.
            if (!/address already in use|EADDRINUSE|bind/i.test(s.stderr())) break;
        }
    }
    throw lastErr;
}

function spawnServer(bin, port, args, env) {
    const argv = ['serve', '--host', '127.0.0.1', '--port', String(port), ...args];
    const proc = spawn(bin, argv, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let errText = '';
    let outText = '';
    let stopping = false;
    let spawnError = null;
    const grab = (which) => (c) => {
        if (which === 'err') { if (errText.length < STDERR_CAP) errText += c.toString('utf8'); }
        else if (outText.length < STDERR_CAP) outText += c.toString('utf8');
    };
    proc.stderr.on('data', grab('err'));
    proc.stdout.on('data', grab('out'));
    proc.on('error', (e) => { spawnError = e; });
    const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    let exitInfo = null;
    exited.then((x) => { exitInfo = x; });

    const s = {
        port,
        url: `http://127.0.0.1:${port}`,
        argv: [bin, ...argv],
        proc,
        exited,
        stderr: () => errText,
        stdout: () => outText,
        alive: () => exitInfo === null && !spawnError,
        request: (method, p, o) => request(port, method, p, o),
        async waitReady(timeoutMs) {
            const deadline = performance.now() + timeoutMs;
            let last = '';
            while (performance.now() < deadline) {
                if (spawnError) throw new Error(`cannot start ${bin}: ${spawnError.message}`);
                if (exitInfo)
                    throw new Error(`server exited before ready (code ${exitInfo.code}, signal ` +
                        `${exitInfo.signal}); argv: ${s.argv.join(' ')}\nstderr:\n${errText.slice(-4000)}`);
                try {
                    const r = await request(port, 'GET', '/health', { timeoutMs: 2000 });
                    if (r.status === 200) return;
                    last = `status ${r.status}`;
                } catch (e) { last = e.message; }
                await sleep(50);
            }
            throw new Error(`server not ready within ${timeoutMs} ms (last /health: ${last})\n` +
                `stderr:\n${errText.slice(-4000)}`);
        },
        /** SIGKILL without checks (for failed starts). */
        async kill() {
            stopping = true;
            if (!exitInfo) proc.kill('SIGKILL');
            await Promise.race([exited, sleep(5000)]);
        },
        /**
         * Graceful stop: SIGTERM, wait up to graceMs, then SIGKILL. Throws when the server died
         * before we asked, did not stop in time, exited non-zero after SIGTERM, or when stderr
         * holds a sanitizer report.
         */
        async stop({ graceMs = 10000 } = {}) {
            const diedEarly = exitInfo !== null && !stopping;
            stopping = true;
            const problems = [];
            if (diedEarly)
                problems.push(`server died during the tests (code ${exitInfo.code}, signal ${exitInfo.signal})`);
            if (!exitInfo) {
                proc.kill('SIGTERM');
                const r = await Promise.race([exited, sleep(graceMs).then(() => null)]);
                if (r === null) {
                    problems.push(`server did not exit within ${graceMs} ms of SIGTERM`);
                    proc.kill('SIGKILL');
                    await Promise.race([exited, sleep(5000)]);
                } else if (r.code !== 0) {
                    problems.push(`server exited with code ${r.code}, signal ${r.signal} after SIGTERM (expected 0)`);
                }
            }
            const rep = sanitizerReport(errText);
            if (rep) problems.push(`sanitizer report in server stderr:\n${rep}`);
            if (problems.length)
                throw new Error(problems.join('\n') + `\n--- stderr tail ---\n${errText.slice(-3000)}`);
        },
    };
    return s;
}

/**
 * node:test glue: starts one server for the enclosing file/suite in before(), stops it in after()
 * (failing the file on a sanitizer report or crash). The returned handle forwards to the live server.
 */
export function useServer(opts = {}) {
    const h = {
        srv: null,
        get port() { return h.srv.port; },
        get url() { return h.srv.url; },
        request: (m, p, o) => h.srv.request(m, p, o),
        stderr: () => (h.srv ? h.srv.stderr() : ''),
        alive: () => h.srv && h.srv.alive(),
        get readyMs() { return h.srv.readyMs; },
    };
    before(async () => { h.srv = await startServer(opts); }, { timeout: (opts.readyTimeoutMs || 20000) * 3 + 5000 });
    after(async () => { if (h.srv) await h.srv.stop(); }, { timeout: 30000 });
    return h;
}

/** POST /v1/audio/speech with a JSON body (object) and optional extra request options. */
export function speech(port, body, opts = {}) {
    return request(port, 'POST', '/v1/audio/speech', { ...opts, body });
}

/**
 * Asserts `res` is an OpenAI-shaped error: the given status, JSON Content-Type, and
 * {"error":{"message": non-empty string, "type": string, "param": string|null, "code": string|null}}.
 * want: { status, param (undefined = don't check), code (undefined = don't check), type }.
 * Returns the parsed error object. Messages say expected vs actual and show the body.
 */
export function expectError(res, want) {
    const show = `\nbody: ${res.text().slice(0, 400)}`;
    if (res.status !== want.status)
        throw new Error(`status: expected ${want.status}, got ${res.status}${show}`);
    const ct = res.headers['content-type'] || '';
    if (!/^application\/json\b/i.test(ct)) throw new Error(`Content-Type: expected application/json, got ${JSON.stringify(ct)}${show}`);
    const j = res.json();
    if (!j || typeof j !== 'object' || !j.error || typeof j.error !== 'object')
        throw new Error(`expected {"error":{...}}${show}`);
    const e = j.error;
    for (const k of ['message', 'type', 'param', 'code'])
        if (!(k in e)) throw new Error(`error.${k} missing${show}`);
    if (typeof e.message !== 'string' || e.message.length === 0) throw new Error(`error.message must be a non-empty string${show}`);
    if (typeof e.type !== 'string' || e.type.length === 0) throw new Error(`error.type must be a non-empty string${show}`);
    if (!(e.param === null || typeof e.param === 'string')) throw new Error(`error.param must be string or null${show}`);
    if (!(e.code === null || typeof e.code === 'string')) throw new Error(`error.code must be string or null${show}`);
    if (want.param !== undefined && e.param !== want.param)
        throw new Error(`error.param: expected ${JSON.stringify(want.param)}, got ${JSON.stringify(e.param)}${show}`);
    if (want.code !== undefined && e.code !== want.code)
        throw new Error(`error.code: expected ${JSON.stringify(want.code)}, got ${JSON.stringify(e.code)}${show}`);
    if (want.type !== undefined && e.type !== want.type)
        throw new Error(`error.type: expected ${JSON.stringify(want.type)}, got ${JSON.stringify(e.type)}${show}`);
    return e;
}

/** Parses an SSE body into [{event, data}] (data JSON-parsed when possible). */
export function parseSse(text) {
    const out = [];
    for (const block of text.split(/\r?\n\r?\n/)) {
        if (!block.trim()) continue;
        let event = null;
        const data = [];
        for (const line of block.split(/\r?\n/)) {
            if (line.startsWith(':')) continue;
            const m = /^([a-z]+):\s?(.*)$/.exec(line);
            if (!m) throw new Error(`bad SSE line: ${JSON.stringify(line)}`);
            if (m[1] === 'event') event = m[2];
            else if (m[1] === 'data') data.push(m[2]);
        }
        const d = data.join('\n');
        let parsed = d;
        try { parsed = JSON.parse(d); } catch { /* keep the raw text */ }
        out.push({ event, data: parsed });
    }
    return out;
}
