// ops.test.mjs — production operation: API keys, /metrics, /health/live, drain.
//
// Keys: a server started with two keys (flag + env) and a keys file refuses /v1/* without a
// valid `Authorization: Bearer` (401, OpenAI-shaped, WWW-Authenticate: Bearer), accepts each
// key, keeps /health, /health/live, /metrics and / open, answers CORS preflights, reloads the
// keys file on SIGHUP, and never writes a key into its log. Metrics: the text parses as
// Prometheus exposition format, counters move after requests, histogram buckets are
// cumulative and end at _count, gauges are there; --metrics-auth puts /metrics behind the
// keys. Drain: after SIGTERM a keep-alive /health says 503 "draining" at once.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { startServer, speech, expectError, sleep } from './lib/server.mjs';

const KEY_FLAG = 'sk-flag-4c0ffee';
const KEY_ENV = 'sk-env-8badf00d';
const KEY_FILE1 = 'sk-file-one-1234';
const KEY_FILE2 = 'sk-file-two-5678';
const BODY = { model: 'tts-1', input: 'Hello there.', voice: 'alloy', response_format: 'wav', stream: false };
const bearer = (k) => ({ Authorization: `Bearer ${k}` });

/** Parses exposition text into [{name, labels, value}]; throws on a malformed line. */
function parseProm(text) {
    const out = [];
    const types = {};
    for (const line of text.split('\n')) {
        if (!line) continue;
        if (line.startsWith('#')) {
            const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
            if (!m) throw new Error(`bad comment line: ${JSON.stringify(line)}`);
            if (m[1] === 'TYPE') {
                assert.match(m[3], /^(counter|gauge|histogram|summary|untyped)$/, `TYPE of ${m[2]}`);
                types[m[2]] = m[3];
            }
            continue;
        }
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
        if (!m) throw new Error(`bad sample line: ${JSON.stringify(line)}`);
        const labels = {};
        if (m[3]) {
            const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
            let lm;
            re.lastIndex = 0;
            while (re.lastIndex < m[3].length && (lm = re.exec(m[3]))) labels[lm[1]] = lm[2];
            if (re.lastIndex !== m[3].length) throw new Error(`bad labels: ${JSON.stringify(line)}`);
        }
        const v = m[4] === '+Inf' ? Infinity : Number(m[4]);
        if (Number.isNaN(v)) throw new Error(`bad value: ${JSON.stringify(line)}`);
        out.push({ name: m[1], labels, value: v });
    }
    return { samples: out, types };
}

function pick(samples, name, want = {}) {
    return samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
}
function value(samples, name, want = {}) {
    return pick(samples, name, want).reduce((a, s) => a + s.value, 0);
}

describe('API keys', () => {
    let srv;
    let dir;
    let keysFile;
    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pockettts-ops-'));
        keysFile = path.join(dir, 'keys.txt');
        fs.writeFileSync(keysFile, `# operators\n${KEY_FILE1}\n\n  ${KEY_FILE2}  \n`);
        srv = await startServer({
            args: ['--api-key', KEY_FLAG, '--api-keys-file', keysFile],
            env: { POCKET_TTS_API_KEYS: KEY_ENV },
        });
    });
    after(async () => {
        if (srv) await srv.stop();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    for (const p of ['/v1/models', '/v1/voices', '/v1/audio/voices', '/v1/audio/models', '/v1/models/tts-1', '/v1/nope']) {
        test(`GET ${p} without a key → 401 invalid_api_key`, async () => {
            const r = await srv.request('GET', p);
            expectError(r, { status: 401, code: 'invalid_api_key', type: 'invalid_request_error', param: null });
            assert.equal(r.headers['www-authenticate'], 'Bearer', 'WWW-Authenticate');
        });
    }
    test('POST /v1/audio/speech without a key → 401 (no synthesis)', async () => {
        expectError(await speech(srv.port, BODY), { status: 401, code: 'invalid_api_key' });
    });
    test('wrong key, wrong scheme, key prefix → 401 with the "Incorrect API key" message', async () => {
        for (const h of [bearer('sk-wrong'), bearer(KEY_FLAG.slice(0, -1)), bearer(KEY_FLAG + 'x'),
            { Authorization: `Basic ${Buffer.from(KEY_FLAG + ':').toString('base64')}` }]) {
            const e = expectError(await srv.request('GET', '/v1/models', { headers: h }), { status: 401, code: 'invalid_api_key' });
            if (h.Authorization.startsWith('Bearer'))
                assert.match(e.message, /^Incorrect API key provided/, `message: ${e.message}`);
            assert.ok(!e.message.includes('sk-'), `the message must not echo the key: ${e.message}`);
        }
    });
    test('each key (flag, env, file) is accepted; scheme in any case', async () => {
        for (const k of [KEY_FLAG, KEY_ENV, KEY_FILE1, KEY_FILE2]) {
            const r = await srv.request('GET', '/v1/models', { headers: bearer(k) });
            assert.equal(r.status, 200, `key ${k}: ${r.text().slice(0, 200)}`);
        }
        const r = await srv.request('GET', '/v1/models', { headers: { Authorization: `bearer ${KEY_ENV}` } });
        assert.equal(r.status, 200);
    });
    test('speech with a key → 200 audio', async () => {
        const r = await speech(srv.port, BODY, { headers: bearer(KEY_FILE1) });
        assert.equal(r.status, 200, r.text().slice(0, 200));
        assert.equal(r.headers['content-type'], 'audio/wav');
        assert.ok(r.body.length > 10000, `wav bytes: ${r.body.length}`);
    });
    test('/health, /health/live, /metrics and / stay open', async () => {
        for (const p of ['/health', '/health/live', '/metrics', '/']) {
            const r = await srv.request('GET', p);
            assert.equal(r.status, 200, `${p}: ${r.text().slice(0, 200)}`);
        }
    });
    test('CORS preflight is answered without a key', async () => {
        const r = await srv.request('OPTIONS', '/v1/audio/speech', {
            headers: { Origin: 'http://x', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' },
        });
        assert.equal(r.status, 204);
        assert.match(r.headers['access-control-allow-headers'] || '', /Authorization/i);
    });
    test('SIGHUP re-reads the keys file', async () => {
        fs.writeFileSync(keysFile, 'sk-rotated-9999\n');
        srv.proc.kill('SIGHUP');
        let st = 0;
        for (let i = 0; i < 40 && st !== 200; i++) {
            await sleep(50);
            st = (await srv.request('GET', '/v1/models', { headers: bearer('sk-rotated-9999') })).status;
        }
        assert.equal(st, 200, 'the new key works after SIGHUP');
        assert.equal((await srv.request('GET', '/v1/models', { headers: bearer(KEY_FILE1) })).status, 401, 'the removed key is refused');
        assert.equal((await srv.request('GET', '/v1/models', { headers: bearer(KEY_FLAG) })).status, 200, 'flag keys stay');
        assert.match(srv.stderr(), /API keys reloaded: 3/);
        // a broken file keeps the old keys
        fs.writeFileSync(keysFile, 'bad key with spaces\n');
        srv.proc.kill('SIGHUP');
        for (let i = 0; i < 40 && !/not reloaded/.test(srv.stderr()); i++) await sleep(50);
        assert.match(srv.stderr(), /API keys not reloaded, old keys stay/);
        assert.equal((await srv.request('GET', '/v1/models', { headers: bearer('sk-rotated-9999') })).status, 200);
    });
    test('a changed keys file is picked up without a signal; an emptied one is refused', async () => {
        fs.writeFileSync(keysFile, 'sk-auto-4242\n');
        let st = 0;
        for (let i = 0; i < 80 && st !== 200; i++) {
            await sleep(100);
            st = (await srv.request('GET', '/v1/models', { headers: bearer('sk-auto-4242') })).status;
        }
        assert.equal(st, 200, 'the new key works within a few seconds');
        fs.writeFileSync(keysFile, '# nothing here\n');
        for (let i = 0; i < 80 && !/has no keys/.test(srv.stderr()); i++) {
            await sleep(100);
            await srv.request('GET', '/v1/models', { headers: bearer('sk-auto-4242') });
        }
        assert.match(srv.stderr(), /has no keys/);
        assert.equal((await srv.request('GET', '/v1/models', { headers: bearer('sk-auto-4242') })).status, 200, 'old keys stay');
        assert.equal((await srv.request('GET', '/v1/models')).status, 401, 'still keyed');
    });
    test('no key ever appears in the log', () => {
        const log = srv.stderr();
        for (const k of [KEY_FLAG, KEY_ENV, KEY_FILE1, KEY_FILE2, 'sk-rotated-9999', 'sk-auto-4242', 'sk-wrong', 'bad key'])
            assert.ok(!log.includes(k), `log contains key ${k}`);
        assert.match(log, /status=401/, 'the 401s are logged');
    });
});

describe('bad key configuration', () => {
    test('a keys file without keys, or a malformed key, stops the start (exit 2 or 1, no key in the message)', async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pockettts-ops-'));
        try {
            const empty = path.join(dir, 'empty.txt');
            fs.writeFileSync(empty, '# no keys yet\n');
            for (const [args, env, re] of [
                [['--api-keys-file', empty], {}, /has no keys/],
                [['--api-keys-file', path.join(dir, 'missing.txt')], {}, /cannot open API keys file/],
                [[], { POCKET_TTS_API_KEYS: 'ok-key,secret with space' }, /item 2/],
            ]) {
                let err = null;
                try {
                    const s = await startServer({ args, env, readyTimeoutMs: 5000 });
                    await s.stop();
                } catch (e) { err = e; }
                assert.ok(err, `start with ${JSON.stringify(args)} ${JSON.stringify(env)} must fail`);
                assert.match(err.message, re);
                assert.ok(!err.message.includes('secret with space'), 'the key is not echoed');
            }
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe('no keys configured', () => {
    let srv;
    before(async () => { srv = await startServer(); });
    after(async () => { if (srv) await srv.stop(); });
    test('any Authorization header (or none) is accepted', async () => {
        for (const h of [{}, bearer('whatever'), { Authorization: 'Basic abc' }])
            assert.equal((await srv.request('GET', '/v1/models', { headers: h })).status, 200);
    });
});

describe('/metrics', () => {
    let srv;
    before(async () => { srv = await startServer({ args: ['--workers', '1', '--queue', '1'] }); });
    after(async () => { if (srv) await srv.stop(); });

    const scrape = async () => {
        const r = await srv.request('GET', '/metrics');
        assert.equal(r.status, 200);
        assert.match(r.headers['content-type'] || '', /^text\/plain; version=0\.0\.4/);
        return parseProm(r.text());
    };

    test('parses; build, engine, gauges and process metrics are there', async () => {
        const { samples, types } = await scrape();
        assert.equal(pick(samples, 'pockettts_build_info').length, 1);
        assert.match(pick(samples, 'pockettts_build_info')[0].labels.version, /^\d+\.\d+/);
        const eng = pick(samples, 'pockettts_engine_info', { id: 'espeak' });
        assert.equal(eng.length, 1, 'espeak engine_info');
        assert.equal(eng[0].labels.default, 'true');
        for (const g of ['pockettts_workers', 'pockettts_workers_busy', 'pockettts_queue_depth', 'pockettts_queue_capacity',
            'pockettts_in_flight_requests', 'pockettts_uptime_seconds', 'process_resident_memory_bytes', 'pockettts_ready'])
            assert.equal(types[g], 'gauge', `${g} is a gauge`);
        assert.equal(value(samples, 'pockettts_workers'), 1);
        assert.equal(value(samples, 'pockettts_ready'), 1);
        assert.ok(value(samples, 'process_resident_memory_bytes') > 1 << 20, 'RSS > 1 MiB');
        assert.equal(types.pockettts_requests_total, 'counter');
        assert.equal(types.pockettts_request_duration_seconds, 'histogram');
    });

    test('counters move after requests; histograms are cumulative', async () => {
        const a = (await scrape()).samples;
        const n = 3;
        for (let i = 0; i < n; i++) {
            const r = await speech(srv.port, BODY);
            assert.equal(r.status, 200, r.text().slice(0, 200));
        }
        await srv.request('GET', '/v1/nope');
        await sleep(100); // the completion callback records after the last byte
        const b = (await scrape()).samples;
        const req = { route: 'speech', status: '200', model: 'espeak' };
        assert.equal(value(b, 'pockettts_requests_total', req) - value(a, 'pockettts_requests_total', req), n,
            'speech 200 counter grew by the number of requests');
        assert.equal(value(b, 'pockettts_requests_total', { route: 'unknown', status: '404' }) -
            value(a, 'pockettts_requests_total', { route: 'unknown', status: '404' }), 1, '404 counted');
        const audio = value(b, 'pockettts_audio_seconds_total', { model: 'espeak' }) - value(a, 'pockettts_audio_seconds_total', { model: 'espeak' });
        assert.ok(audio > 0.5 * n && audio < 3 * n, `audio seconds for ${n} × "Hello there.": ${audio}`);
        const chars = value(b, 'pockettts_characters_total', { model: 'espeak' }) - value(a, 'pockettts_characters_total', { model: 'espeak' });
        assert.equal(chars, n * BODY.input.length, 'characters');
        for (const [name, lab] of [['pockettts_request_duration_seconds', { route: 'speech' }],
            ['pockettts_time_to_first_byte_seconds', { model: 'espeak' }]]) {
            const buckets = pick(b, `${name}_bucket`, lab);
            assert.ok(buckets.length >= 5, `${name} buckets`);
            let prevLe = -Infinity, prev = 0;
            for (const s of buckets) {
                const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
                assert.ok(le > prevLe, `${name}: le increasing (${s.labels.le})`);
                assert.ok(s.value >= prev, `${name}: bucket le=${s.labels.le} ${s.value} < previous ${prev}`);
                prevLe = le;
                prev = s.value;
            }
            assert.equal(prevLe, Infinity, `${name}: last bucket is +Inf`);
            assert.equal(prev, value(b, `${name}_count`, lab), `${name}: +Inf bucket == _count`);
            assert.ok(prev >= n, `${name}: count >= ${n}`);
            assert.ok(value(b, `${name}_sum`, lab) > 0, `${name}_sum > 0`);
        }
    });

    test('429s are counted', async () => {
        const a = (await scrape()).samples;
        // one worker, one queue slot: of four long requests at once at least two are refused
        const long = { ...BODY, input: 'This sentence is repeated to keep the only worker busy. '.repeat(20) };
        const rs = await Promise.all([0, 1, 2, 3].map(() => speech(srv.port, long, { timeoutMs: 60000 })));
        const n429 = rs.filter((r) => r.status === 429).length;
        assert.ok(n429 >= 2, `429s among 4 concurrent requests: ${rs.map((r) => r.status)}`);
        await sleep(100);
        const b = (await scrape()).samples;
        assert.equal(value(b, 'pockettts_rate_limited_total') - value(a, 'pockettts_rate_limited_total'), n429, 'rate_limited_total grew by the 429s');
    });

    test('a client that hangs up counts as cancelled', async () => {
        const a = (await scrape()).samples;
        const long = { ...BODY, input: 'A long text for a client that leaves early. '.repeat(60), stream: true };
        await speech(srv.port, long, { abortAfterBytes: 1 }).catch(() => {});
        let d = 0;
        for (let i = 0; i < 40 && d < 1; i++) {
            await sleep(50);
            d = value((await scrape()).samples, 'pockettts_cancelled_total') - value(a, 'pockettts_cancelled_total');
        }
        assert.ok(d >= 1, `cancelled_total grew by ${d}`);
    });
});

describe('--workers 1 --queue 0', () => {
    let srv;
    before(async () => { srv = await startServer({ args: ['--workers', '1', '--queue', '0'] }); });
    after(async () => { if (srv) await srv.stop(); });
    test('back-to-back requests never meet a 429 from the worker that just answered', async () => {
        const st = [];
        for (let i = 0; i < 12; i++) {
            st.push((await speech(srv.port, BODY)).status);
            st.push((await speech(srv.port, { ...BODY, stream: true })).status);
        }
        assert.deepEqual(st, st.map(() => 200), `statuses: ${st}`);
    });
});

describe('--metrics-auth', () => {
    let srv;
    before(async () => { srv = await startServer({ args: ['--metrics-auth'], env: { POCKET_TTS_API_KEYS: KEY_ENV } }); });
    after(async () => { if (srv) await srv.stop(); });
    test('/metrics needs a key; health stays open', async () => {
        expectError(await srv.request('GET', '/metrics'), { status: 401, code: 'invalid_api_key' });
        assert.equal((await srv.request('GET', '/metrics', { headers: bearer(KEY_ENV) })).status, 200);
        assert.equal((await srv.request('GET', '/health')).status, 200);
        assert.equal((await srv.request('GET', '/health/live')).status, 200);
    });
});

describe('drain', () => {
    test('after SIGTERM /health on a kept-alive connection answers 503 draining at once', async () => {
        const srv = await startServer({ args: ['--drain-seconds', '3', '--workers', '1'] });
        try {
            const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
            const get = (p) => new Promise((resolve, reject) => {
                const req = http.request({ host: '127.0.0.1', port: srv.port, path: p, agent }, (r) => {
                    const parts = [];
                    r.on('data', (c) => parts.push(c));
                    r.on('end', () => resolve({ status: r.statusCode, body: Buffer.concat(parts).toString() }));
                });
                req.on('error', reject);
                req.setTimeout(5000, () => req.destroy(new Error('timeout')));
                req.end();
            });
            assert.equal((await get('/health')).status, 200);
            // a running request keeps the server draining for a while
            const long = speech(srv.port, { ...BODY, input: 'Drain me slowly please. '.repeat(80), stream: true }, { timeoutMs: 30000 }).catch(() => null);
            await sleep(100);
            srv.proc.kill('SIGTERM');
            await sleep(50);
            const r = await get('/health');
            assert.equal(r.status, 503, `status after SIGTERM: ${r.status} ${r.body}`);
            assert.equal(JSON.parse(r.body).status, 'draining');
            const live = await get('/health/live');
            assert.equal(live.status, 200, '/health/live stays 200 while the process serves HTTP');
            agent.destroy();
            await long;
        } finally {
            await srv.stop({ graceMs: 15000 });
        }
    });
});

// The deploy files cannot be built here (no docker, no helm in CI); these checks pin what
// the operator-facing contract needs: the probe paths the server serves, the grace period
// covering preStop + drain, the non-root user and the health check. They read the files
// as text; the routes they name are exercised above against the real server.
describe('deploy files', () => {
    const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
    const read = (p) => fs.readFileSync(path.join(ROOT, p), 'utf8');
    test('Dockerfile: two stages, runtime without -dev packages, non-root, volume, health, port', () => {
        const d = read('deploy/Dockerfile');
        const stages = d.split(/^FROM /m).slice(1);
        assert.equal(stages.length, 2, 'two FROM lines');
        assert.match(stages[0], /-dev\b/, 'build stage installs -dev packages');
        assert.doesNotMatch(stages[1], /^\s+[^#\n]*-dev\b/m, 'runtime stage has no -dev package');
        assert.match(stages[1], /^USER 10001/m);
        assert.match(stages[1], /^VOLUME \["\/cache"\]/m);
        assert.match(stages[1], /^EXPOSE 49112$/m);
        assert.match(stages[1], /^HEALTHCHECK [^\n]*\\\n[^\n]*\/health\b/m);
        // every runtime library the Makefile links has its runtime package
        for (const pkg of ['libmicrohttpd12', 'libcjson1', 'libopenblas0', 'libespeak-ng1', 'libmp3lame0', 'libopusenc0',
            'libflac12', 'libavcodec59', 'libavutil57', 'libsoxr0', 'libsonic0', 'libcurl4'])
            assert.match(stages[1], new RegExp(`\\b${pkg}`), `runtime package ${pkg}`);
    });
    test('Helm chart: probes on served paths, grace period > preStop + drain, keys Secret', () => {
        const chart = read('deploy/helm/pockettts/Chart.yaml');
        assert.match(chart, /^apiVersion: v2$/m);
        assert.match(chart, /^name: pockettts$/m);
        const values = read('deploy/helm/pockettts/values.yaml');
        const dep = read('deploy/helm/pockettts/templates/deployment.yaml');
        assert.match(dep, /livenessProbe:\s+httpGet:\s+path: \/health\/live\b/);
        assert.match(dep, /readinessProbe:\s+httpGet:\s+path: \/health\n/);
        assert.match(dep, /startupProbe:\s+httpGet:\s+path: \/health\n/);
        assert.match(dep, /terminationGracePeriodSeconds: \{\{ add \.Values\.preStopSleepSeconds \.Values\.config\.drainSeconds 10 \}\}/);
        assert.match(dep, /preStop:[\s\S]*?\/bin\/sleep/);
        assert.match(dep, /POCKET_TTS_DRAIN_SECONDS/);
        assert.match(dep, /POCKET_TTS_API_KEYS_FILE/);
        assert.match(values, /^preStopSleepSeconds: \d+$/m);
        assert.match(values, /^\s+drainSeconds: \d+/m);
        for (const t of ['service.yaml', 'pvc.yaml', 'secret.yaml', 'servicemonitor.yaml'])
            assert.ok(fs.existsSync(path.join(ROOT, 'deploy/helm/pockettts/templates', t)), t);
        assert.match(read('deploy/helm/pockettts/templates/servicemonitor.yaml'), /path: \/metrics/);
        // every {{ ... }} is closed and {{- if/range/with/define }} blocks balance in each template
        const dir = path.join(ROOT, 'deploy/helm/pockettts/templates');
        for (const f of fs.readdirSync(dir)) {
            const t = fs.readFileSync(path.join(dir, f), 'utf8');
            assert.equal((t.match(/\{\{/g) || []).length, (t.match(/\}\}/g) || []).length, `${f}: {{ vs }}`);
            const open = (t.match(/\{\{-?\s*(if|range|with|define)\b/g) || []).length;
            const end = (t.match(/\{\{-?\s*end\b/g) || []).length;
            assert.equal(open, end, `${f}: if/range/with/define vs end`);
        }
    });
});
