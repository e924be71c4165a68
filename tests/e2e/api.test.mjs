// api.test.mjs — every non-error endpoint of the real server over loopback (issue 2, §3).
//
// One server for the file (default config). Checks status, headers and JSON shapes of
// /health, /, the voice and model lists, and that POST /v1/audio/speech returns decodable
// 24 kHz mono s16 audio for wav and pcm, for every model alias, the voice object form,
// speed, instructions and an Authorization header. Audio is judged by its header fields,
// RMS (not silent) and duration (plausible for the text; speed 2 shorter than speed 1).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, speech, binPath } from './lib/server.mjs';
import { decodeSpeechWav, s16ToFloat, rms, plausibleSeconds, medianPitch, assertSimilarAudio, ffprobe, ffmpegDecode, RATE } from './lib/audio.mjs';

const srv = useServer();
const TEXT = 'The quick brown fox jumps over the lazy dog.';
const OPENAI_VOICES = ['alloy', 'ash', 'ballad', 'coral', 'echo', 'fable', 'nova', 'onyx', 'sage', 'shimmer', 'verse'];
const MODEL_ALIASES = ['tts-1', 'tts-1-hd', 'gpt-4o-mini-tts'];

const get = (p, o) => srv.request('GET', p, o);
const say = (body, o) => speech(srv.port, body, o);

function assertJson(res, status = 200) {
    assert.equal(res.status, status, `status (body: ${res.text().slice(0, 300)})`);
    assert.match(res.headers['content-type'] || '', /^application\/json\b/i, 'Content-Type');
    return res.json();
}

function assertDuration(seconds, text, speed = 1) {
    const { min, max } = plausibleSeconds(text, speed);
    assert.ok(seconds >= min && seconds <= max,
        `duration ${seconds.toFixed(3)} s for ${[...text].length} chars at speed ${speed}: expected ${min.toFixed(2)}..${max.toFixed(2)} s`);
}

/** Non-streamed WAV: exact RIFF sizes, Content-Length matches, 24 kHz mono s16, speech-like. */
function assertWavResponse(res, text, speed = 1) {
    assert.equal(res.status, 200, `status (body: ${res.status !== 200 ? res.text().slice(0, 300) : ''})`);
    assert.equal(res.headers['content-type'], 'audio/wav', 'Content-Type');
    const a = decodeSpeechWav(res.body);
    assertDuration(a.seconds, text, speed);
    return a;
}

describe('startup', () => {
    test('ready (GET /health 200) in under a second (3 s under ASan)', () => {
        const asan = /\/asan\//.test(binPath());
        const limit = asan ? 3000 : 1000;
        console.log(`# spawn → /health 200: ${srv.readyMs.toFixed(0)} ms (${asan ? 'ASan' : 'release'} build, 50 ms polling)`);
        assert.ok(srv.readyMs < limit, `ready after ${srv.readyMs.toFixed(0)} ms, limit ${limit} ms`);
    });
});

describe('GET /health', () => {
    test('200 with status, version, engines, voices and uptime', async () => {
        const j = assertJson(await get('/health'));
        assert.equal(typeof j.status, 'string');
        assert.match(j.status, /^(ok|ready|healthy)$/i, `status field: got ${JSON.stringify(j.status)}`);
        assert.equal(typeof j.version, 'string');
        assert.match(j.version, /^\d+\.\d+/, `version: got ${JSON.stringify(j.version)}`);
        const uptimeKey = Object.keys(j).find((k) => /uptime/i.test(k));
        assert.ok(uptimeKey, `an uptime field, got keys ${Object.keys(j)}`);
        assert.equal(typeof j[uptimeKey], 'number');
        assert.ok(j[uptimeKey] >= 0, `uptime >= 0, got ${j[uptimeKey]}`);
        assert.ok('engines' in j, `engines field, got keys ${Object.keys(j)}`);
        assert.match(JSON.stringify(j.engines), /espeak/, `espeak among engines: ${JSON.stringify(j.engines)}`);
        const voicesKey = Object.keys(j).find((k) => /^voices/i.test(k));
        assert.ok(voicesKey, `a voices (loaded) field, got keys ${Object.keys(j)}`);
        const v = j[voicesKey];
        const nv = typeof v === 'number' ? v : Array.isArray(v) ? v.length : NaN;
        assert.ok(nv >= OPENAI_VOICES.length, `voices loaded >= ${OPENAI_VOICES.length}, got ${JSON.stringify(v)}`);
    });

    test('uptime grows', async () => {
        const k = (j) => j[Object.keys(j).find((x) => /uptime/i.test(x))];
        const a = k((await get('/health')).json());
        await new Promise((r) => setTimeout(r, 1100));
        const b = k((await get('/health')).json());
        assert.ok(b > a, `uptime after 1.1 s: expected > ${a}, got ${b}`);
    });
});

describe('GET /', () => {
    test('a minimal HTML page', async () => {
        const r = await get('/');
        assert.equal(r.status, 200);
        assert.match(r.headers['content-type'] || '', /^text\/html\b/i);
        assert.match(r.text(), /<html|<!doctype html/i);
    });
});

describe('voices', () => {
    test('GET /v1/voices is an OpenAI-style list with real espeak ids and the OpenAI names', async () => {
        const j = assertJson(await get('/v1/voices'));
        assert.equal(j.object, 'list');
        assert.ok(Array.isArray(j.data) && j.data.length > OPENAI_VOICES.length, `data length: got ${j.data?.length}`);
        for (const v of j.data) {
            assert.equal(typeof v.id, 'string', `id of ${JSON.stringify(v)}`);
            assert.ok(v.id.length > 0);
            assert.equal(typeof v.name, 'string', `name of ${JSON.stringify(v)}`);
            assert.equal(v.object, 'voice', `object of ${JSON.stringify(v)}`);
            assert.equal(typeof v.type, 'string', `type of ${JSON.stringify(v)}`);
        }
        const ids = new Set(j.data.map((v) => v.id));
        assert.equal(ids.size, j.data.length, 'voice ids are unique');
        for (const n of OPENAI_VOICES) assert.ok(ids.has(n), `OpenAI voice ${n} listed`);
        assert.ok(ids.has('en-us') || [...ids].some((x) => /^en/.test(x) && !OPENAI_VOICES.includes(x)),
            `a real espeak English voice id (e.g. en-us) listed; got ${[...ids].slice(0, 20)}`);
        const alloy = j.data.find((v) => v.id === 'alloy');
        assert.equal(alloy.type, 'alias', 'OpenAI names are type "alias"');
    });

    test('GET /v1/audio/voices lists the same ids as /v1/voices', async () => {
        const a = assertJson(await get('/v1/audio/voices'));
        assert.ok(Array.isArray(a.voices), `voices array, got ${JSON.stringify(a).slice(0, 200)}`);
        for (const v of a.voices) {
            assert.equal(typeof v.id, 'string');
            assert.equal(typeof v.name, 'string');
        }
        const b = (await get('/v1/voices')).json();
        assert.deepEqual(a.voices.map((v) => v.id).sort(), b.data.map((v) => v.id).sort());
    });

    test('OpenAI voices speak, and a high and a low one differ in pitch', async () => {
        const f0 = {};
        for (const voice of ['alloy', 'onyx', 'nova']) {
            const r = await say({ model: 'tts-1', input: 'Hello there, how are you today?', voice, response_format: 'pcm', stream: false });
            assert.equal(r.status, 200, `voice ${voice}: ${r.text().slice(0, 200)}`);
            const x = s16ToFloat(r.body);
            assert.ok(rms(x) > 0.01, `voice ${voice} not silent`);
            f0[voice] = medianPitch(x);
        }
        // espeak maps alloy and nova to female variants, onyx to a male one.
        assert.ok(f0.alloy > 1.3 * f0.onyx, `median pitch alloy ${f0.alloy.toFixed(0)} Hz vs onyx ${f0.onyx.toFixed(0)} Hz`);
        assert.ok(f0.nova > 1.3 * f0.onyx, `median pitch nova ${f0.nova.toFixed(0)} Hz vs onyx ${f0.onyx.toFixed(0)} Hz`);
    });

    test('a real espeak voice id from the list speaks', async () => {
        const j = (await get('/v1/voices')).json();
        const real = j.data.find((v) => v.type !== 'alias' && /^en/i.test(v.id)) || j.data.find((v) => v.type !== 'alias');
        assert.ok(real, 'a non-alias voice exists');
        const r = await say({ model: 'espeak', input: 'Hello there.', voice: real.id, response_format: 'wav', stream: false });
        assertWavResponse(r, 'Hello there.');
    });
});

describe('routing details', () => {
    test('a query string does not change the route', async () => {
        const j = assertJson(await get('/v1/models?limit=5'));
        assert.equal(j.object, 'list');
        assert.equal((await get('/health?probe=1')).status, 200);
    });
    test('HEAD /health is not an error', async () => {
        const r = await srv.request('HEAD', '/health');
        assert.ok(r.status === 200 || r.status === 405, `status ${r.status}`);
    });
});

describe('models', () => {
    test('GET /v1/models is OpenAI\'s list shape with the aliases and the engine id', async () => {
        const j = assertJson(await get('/v1/models'));
        assert.equal(j.object, 'list');
        assert.ok(Array.isArray(j.data));
        for (const m of j.data) {
            assert.equal(typeof m.id, 'string');
            assert.equal(m.object, 'model', `object of ${JSON.stringify(m)}`);
            assert.ok(Number.isInteger(m.created) && m.created > 0, `created of ${JSON.stringify(m)}`);
            assert.equal(typeof m.owned_by, 'string', `owned_by of ${JSON.stringify(m)}`);
        }
        const ids = j.data.map((m) => m.id);
        for (const id of [...MODEL_ALIASES, 'espeak']) assert.ok(ids.includes(id), `${id} in ${ids}`);
    });

    test('GET /v1/audio/models lists the same ids', async () => {
        const j = assertJson(await get('/v1/audio/models'));
        assert.ok(Array.isArray(j.models));
        for (const m of j.models) assert.equal(typeof m.id, 'string');
        const ids = j.models.map((m) => m.id);
        for (const id of [...MODEL_ALIASES, 'espeak']) assert.ok(ids.includes(id), `${id} in ${ids}`);
    });
});

describe('POST /v1/audio/speech', () => {
    test('wav, not streamed: exact sizes, Content-Length, 24 kHz mono s16, plausible duration', async () => {
        const r = await say({ model: 'tts-1', input: TEXT, voice: 'alloy', response_format: 'wav', stream: false });
        const a = assertWavResponse(r, TEXT);
        assert.equal(a.wav.openEnded, false, 'non-streamed WAV has exact sizes');
        assert.equal(a.wav.riffSize, r.body.length - 8, 'RIFF size = file size - 8');
        assert.equal(a.wav.dataSize, r.body.length - a.wav.dataOffset, 'data size = bytes after the data header');
        assert.equal(r.headers['content-length'], String(r.body.length), 'Content-Length');
        assert.notEqual(r.headers['transfer-encoding'], 'chunked');
    });

    test('pcm, not streamed: raw s16le mono 24 kHz, even length, speech-like', async () => {
        const r = await say({ model: 'tts-1', input: TEXT, voice: 'alloy', response_format: 'pcm', stream: false });
        assert.equal(r.status, 200, r.text().slice(0, 300));
        assert.equal(r.headers['content-type'], 'audio/pcm');
        assert.equal(r.body.length % 2, 0, `pcm length ${r.body.length} is even`);
        assert.notEqual(r.body.toString('latin1', 0, 4), 'RIFF', 'pcm has no WAV header');
        const x = s16ToFloat(r.body);
        assert.ok(rms(x) > 0.01, `RMS ${rms(x)}`);
        assertDuration(x.length / RATE, TEXT);
    });

    test('ffprobe/ffmpeg agree: wav is pcm_s16le 24 kHz mono; raw pcm decodes to the same length', async () => {
        const w = await say({ model: 'tts-1', input: TEXT, voice: 'alloy', response_format: 'wav', stream: false });
        const a = decodeSpeechWav(w.body);
        const p = await ffprobe(w.body, 'wav');
        assert.equal(p.codec, 'pcm_s16le');
        assert.equal(p.sampleRate, RATE);
        assert.equal(p.channels, 1);
        assert.ok(Math.abs(p.duration - a.seconds) < 0.01, `ffprobe duration ${p.duration} vs header ${a.seconds}`);
        const pcm = await say({ model: 'tts-1', input: TEXT, voice: 'alloy', response_format: 'pcm', stream: false });
        const x = await ffmpegDecode(pcm.body, { ext: 'raw', inputArgs: ['-f', 's16le', '-ar', String(RATE), '-ac', '1'] });
        assert.equal(x.length, pcm.body.length / 2, 'ffmpeg reads raw s16le mono 24 kHz sample for sample');
    });

    test('wav and pcm carry the same audio', async () => {
        const body = { model: 'espeak', input: 'Same samples.', voice: 'alloy', stream: false };
        const w = await say({ ...body, response_format: 'wav' });
        const p = await say({ ...body, response_format: 'pcm' });
        const a = decodeSpeechWav(w.body);
        // espeak-ng output varies slightly from call to call, so compare duration and loudness.
        assertSimilarAudio(a.samples, s16ToFloat(p.body), 'wav vs pcm');
    });

    for (const model of [...MODEL_ALIASES, 'espeak']) {
        test(`model ${model} speaks`, async () => {
            assertWavResponse(await say({ model, input: 'Model test.', voice: 'alloy', response_format: 'wav', stream: false }), 'Model test.');
        });
    }

    test('model may be omitted (default engine)', async () => {
        assertWavResponse(await say({ input: 'No model.', voice: 'alloy', response_format: 'wav', stream: false }), 'No model.');
    });

    test('voice object form {"id": ...} works like the string', async () => {
        const base = { model: 'tts-1', input: 'Object voice.', response_format: 'pcm', stream: false };
        const a = await say({ ...base, voice: { id: 'onyx' } });
        const b = await say({ ...base, voice: 'onyx' });
        assert.equal(a.status, 200, a.text().slice(0, 300));
        assert.equal(b.status, 200, b.text().slice(0, 300));
        const xa = s16ToFloat(a.body), xb = s16ToFloat(b.body);
        assertSimilarAudio(xa, xb, '{"id":"onyx"} vs "onyx"');
        const fa = medianPitch(xa), fb = medianPitch(xb);
        assert.ok(Math.abs(fa - fb) < 0.1 * fb, `same voice, same pitch: ${fa.toFixed(0)} vs ${fb.toFixed(0)} Hz`);
    });

    test('speed 2.0 is shorter than 1.0, 0.5 longer', async () => {
        const base = { model: 'tts-1', input: TEXT, voice: 'alloy', response_format: 'pcm', stream: false };
        const secs = {};
        for (const speed of [0.5, 1.0, 2.0]) {
            const r = await say({ ...base, speed });
            assert.equal(r.status, 200, `speed ${speed}: ${r.text().slice(0, 200)}`);
            assert.ok(rms(s16ToFloat(r.body)) > 0.01, `speed ${speed} not silent`);
            secs[speed] = r.body.length / 2 / RATE;
        }
        const r2 = secs[2] / secs[1];
        const r05 = secs[0.5] / secs[1];
        assert.ok(r2 > 0.35 && r2 < 0.75, `duration(2.0)/duration(1.0): expected ~0.5, got ${r2.toFixed(3)} (${JSON.stringify(secs)})`);
        assert.ok(r05 > 1.4 && r05 < 2.8, `duration(0.5)/duration(1.0): expected ~2, got ${r05.toFixed(3)} (${JSON.stringify(secs)})`);
    });

    test('speed bounds 0.25 and 4.0 are accepted', async () => {
        for (const speed of [0.25, 4.0]) {
            const r = await say({ model: 'tts-1', input: 'Edge.', voice: 'alloy', response_format: 'pcm', speed, stream: false });
            assert.equal(r.status, 200, `speed ${speed}: ${r.text().slice(0, 200)}`);
            assert.ok(r.body.length > 0 && r.body.length % 2 === 0);
        }
    });

    test('instructions are accepted', async () => {
        assertWavResponse(await say({ model: 'gpt-4o-mini-tts', input: 'Instructions.', voice: 'coral',
            instructions: 'Speak in a cheerful and positive tone.', response_format: 'wav', stream: false }), 'Instructions.');
    });

    test('Authorization: Bearer <anything> is accepted', async () => {
        const r = await say({ model: 'tts-1', input: 'Key.', voice: 'alloy', response_format: 'wav', stream: false },
            { headers: { Authorization: 'Bearer sk-whatever-1234' } });
        assertWavResponse(r, 'Key.');
        const g = await get('/v1/models', { headers: { Authorization: 'Bearer x' } });
        assert.equal(g.status, 200);
    });

    test('unknown request fields are ignored', async () => {
        assertWavResponse(await say({ model: 'tts-1', input: 'Extra.', voice: 'alloy', response_format: 'wav',
            stream: false, user: 'abc', foo: { bar: [1, 2] } }), 'Extra.');
    });

    test('non-ASCII input is spoken and counted in characters', async () => {
        const input = 'Café déjà vu, naïve façade.';
        assertWavResponse(await say({ model: 'tts-1', input, voice: 'alloy', response_format: 'wav', stream: false }), input);
    });

    for (const ct of ['application/json; charset=utf-8', 'application/json;charset=UTF-8', 'Application/JSON']) {
        test(`Content-Type "${ct}" is accepted`, async () => {
            const r = await say(JSON.stringify({ model: 'tts-1', input: 'Charset.', voice: 'alloy', response_format: 'wav', stream: false }),
                { headers: { 'Content-Type': ct } });
            assertWavResponse(r, 'Charset.');
        });
    }

    test('several clients at once all get their audio', async () => {
        const texts = ['First client.', 'Second client here.', 'Third one.', 'Fourth and last client.'];
        const rs = await Promise.all(texts.map((input) =>
            say({ model: 'tts-1', input, voice: 'alloy', response_format: 'wav', stream: false }, { timeoutMs: 60000 })));
        rs.forEach((r, i) => assertWavResponse(r, texts[i]));
    });

    test('a newline in a request field cannot forge a log line', async () => {
        await say({ model: 'tts-1', input: 'Hi.\n2099-01-01T00:00:00Z INFO  forged-input-line', response_format: 'pcm', stream: false,
            voice: 'alloy\n2099-01-01T00:00:00Z INFO  req id=FORGED POST /admin status=200' });
        await say({ model: 'tts-1\r\n2099-01-01T00:00:00Z INFO  forged-model-line', input: 'Hi.', voice: 'alloy' });
        await new Promise((res) => setTimeout(res, 200));
        const forged = srv.stderr().split('\n').filter((l) => l.startsWith('2099-01-01'));
        assert.deepEqual(forged, [], `forged log lines:\n${forged.join('\n')}`);
    });

    test('the request id: a sane X-Request-Id is echoed, an unsafe one replaced', async () => {
        const a = await get('/health', { headers: { 'X-Request-Id': 'client-id_42.a' } });
        assert.equal(a.headers['x-request-id'], 'client-id_42.a');
        for (const bad of ['x'.repeat(1000), 'has space', 'quo"te']) {
            const r = await get('/health', { headers: { 'X-Request-Id': bad } });
            const id = r.headers['x-request-id'] || '';
            assert.ok(id.length > 0 && id.length <= 128 && id !== bad && /^[\w.-]+$/.test(id), `unsafe id ${JSON.stringify(bad.slice(0, 20))} → ${JSON.stringify(id.slice(0, 40))}`);
        }
        const b = await get('/health');
        assert.match(b.headers['x-request-id'] || '', /^[\w.-]{4,128}$/, 'every response carries an id');
    });

    test('one log line per request on stderr with route and status', async () => {
        const marker = 'Logline marker sentence.';
        const r = await say({ model: 'tts-1', input: marker, voice: 'fable', response_format: 'wav', stream: false });
        assert.equal(r.status, 200);
        await new Promise((res) => setTimeout(res, 200));
        const lines = srv.stderr().split('\n').filter((l) => l.includes('/v1/audio/speech') && /\bfable\b/.test(l));
        assert.equal(lines.length, 1, `exactly one log line for the request, got:\n${lines.join('\n')}\n--- stderr tail:\n${srv.stderr().slice(-1500)}`);
        const l = lines[0];
        assert.match(l, /\b200\b/, `status in log line: ${l}`);
        assert.match(l, new RegExp(`\\b${[...marker].length}\\b`), `character count ${[...marker].length} in log line: ${l}`);
        assert.match(l, /INFO/i, `INFO level: ${l}`);
        const id = r.headers['x-request-id'];
        if (id) assert.ok(l.includes(id), `request id ${id} in log line: ${l}`);
        for (const field of [/audio_?s(ec)?/i, /ttfb/i, /rtf/i])
            assert.match(l, field, `log line has ${field}: ${l}`);
    });
});
