// openai.test.mjs — the official `openai` npm SDK (pinned in tests/package.json) against the
// real server (issue 2, §7): a custom baseURL and an API key, speech in wav and pcm that
// decodes, the voice object form, a streamed body read chunk by chunk, SSE, the model list,
// and errors that surface as the SDK's typed errors carrying our message, code and param.
// Deterministic failures must not be retried by the SDK (they are 4xx, never 5xx): a
// counting fetch proves one request went out.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { useServer, speech, parseSse } from '../e2e/lib/server.mjs';
import { decodeSpeechWav, s16ToFloat, rms, plausibleSeconds, RATE } from '../e2e/lib/audio.mjs';

const srv = useServer();
let calls = 0;
const countingFetch = (...a) => { calls++; return fetch(...a); };
const client = (o = {}) => new OpenAI({
    baseURL: `${srv.url}/v1`, apiKey: 'sk-pockettts-test', maxRetries: 0, timeout: 60000, fetch: countingFetch, ...o,
});
const TEXT = 'Hello from the official OpenAI client.';

describe('speech through the openai SDK', () => {
    test('wav decodes: 24 kHz mono s16, plausible duration', async () => {
        const res = await client().audio.speech.create({ model: 'tts-1', voice: 'alloy', input: TEXT, response_format: 'wav' });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), 'audio/wav');
        const a = decodeSpeechWav(Buffer.from(await res.arrayBuffer()));
        const { min, max } = plausibleSeconds(TEXT);
        assert.ok(a.seconds >= min && a.seconds <= max, `duration ${a.seconds.toFixed(2)} s, expected ${min.toFixed(2)}..${max.toFixed(2)}`);
    });

    test('pcm decodes: even length, not silent', async () => {
        const res = await client().audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'coral', input: TEXT,
            response_format: 'pcm', instructions: 'Speak calmly.' });
        assert.equal(res.headers.get('content-type'), 'audio/pcm');
        const b = Buffer.from(await res.arrayBuffer());
        assert.equal(b.length % 2, 0);
        assert.ok(rms(s16ToFloat(b)) > 0.01);
    });

    test('speed and the voice object form', async () => {
        const c = client();
        const slow = Buffer.from(await (await c.audio.speech.create({ model: 'tts-1-hd', voice: { id: 'onyx' }, input: TEXT, response_format: 'pcm' })).arrayBuffer());
        const fast = Buffer.from(await (await c.audio.speech.create({ model: 'tts-1-hd', voice: { id: 'onyx' }, input: TEXT, response_format: 'pcm', speed: 2 })).arrayBuffer());
        const ratio = fast.length / slow.length;
        assert.ok(ratio > 0.35 && ratio < 0.75, `speed 2 / speed 1 duration: expected ~0.5, got ${ratio.toFixed(3)}`);
    });

    test('the streamed body arrives in pieces, the first long before the last', async () => {
        const long = Array.from({ length: 24 }, (_, i) => `This is sentence number ${i + 1} of a long streamed answer.`).join(' ');
        const t0 = performance.now();
        const res = await client().audio.speech.create({ model: 'tts-1', voice: 'alloy', input: long, response_format: 'pcm', stream: true, speed: 0.5 });
        let first = -1;
        let n = 0;
        let bytes = 0;
        for await (const chunk of res.body) {
            if (first < 0) first = performance.now() - t0;
            n++;
            bytes += chunk.length;
        }
        const end = performance.now() - t0;
        console.log(`# SDK stream: first chunk ${first.toFixed(1)} ms, end ${end.toFixed(1)} ms, ${n} chunks, ${(bytes / 2 / RATE).toFixed(2)} s audio`);
        assert.ok(n >= 3, `several chunks, got ${n}`);
        assert.ok(first < 0.5 * end, `first chunk at ${first.toFixed(1)} ms, end at ${end.toFixed(1)} ms`);
        assert.equal(bytes % 2, 0);
    });

    test('stream_format sse gives speech.audio.delta events and a done event with usage', async () => {
        const res = await client().audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: TEXT,
            response_format: 'pcm', stream_format: 'sse' });
        assert.match(res.headers.get('content-type') || '', /^text\/event-stream/);
        const ev = parseSse(await res.text());
        assert.ok(ev.length >= 2);
        assert.ok(ev.slice(0, -1).every((e) => e.data.type === 'speech.audio.delta' && typeof e.data.audio === 'string'));
        const done = ev[ev.length - 1].data;
        assert.equal(done.type, 'speech.audio.done');
        assert.ok(Number.isInteger(done.usage?.total_tokens), JSON.stringify(done));
        const audio = Buffer.concat(ev.slice(0, -1).map((e) => Buffer.from(e.data.audio, 'base64')));
        assert.ok(rms(s16ToFloat(audio)) > 0.01);
    });

    test('models.list() reads our model list', async () => {
        const ids = [];
        for await (const m of client().models.list()) ids.push(m.id);
        for (const id of ['tts-1', 'tts-1-hd', 'gpt-4o-mini-tts', 'espeak']) assert.ok(ids.includes(id), `${id} in ${ids}`);
    });
});

describe('errors through the openai SDK', () => {
    async function rawError(body) {
        const r = await speech(srv.port, body);
        return r.json().error;
    }

    test('bad speed → BadRequestError carrying our message and param; not retried', async () => {
        const body = { model: 'tts-1', voice: 'alloy', input: TEXT, response_format: 'wav', speed: 10 };
        const ours = await rawError(body);
        calls = 0;
        const err = await client({ maxRetries: 2 }).audio.speech.create(body).then(() => null, (e) => e);
        assert.ok(err instanceof OpenAI.BadRequestError, `BadRequestError, got ${err?.constructor?.name}: ${err?.message}`);
        assert.equal(err.status, 400);
        assert.equal(err.param, 'speed');
        assert.equal(err.type, 'invalid_request_error');
        assert.ok(err.message.includes(ours.message), `SDK message ${JSON.stringify(err.message)} carries ours ${JSON.stringify(ours.message)}`);
        assert.equal(calls, 1, `a 400 is not retried: ${calls} requests went out`);
    });

    test('empty input → BadRequestError with param input', async () => {
        const err = await client().audio.speech.create({ model: 'tts-1', voice: 'alloy', input: '' }).then(() => null, (e) => e);
        assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err?.message}`);
        assert.equal(err.param, 'input');
    });

    test('unknown voice → BadRequestError with param voice', async () => {
        const err = await client().audio.speech.create({ model: 'tts-1', voice: 'no-such-voice', input: TEXT, response_format: 'wav' }).then(() => null, (e) => e);
        assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err?.message}`);
        assert.equal(err.param, 'voice');
        assert.match(err.message, /no-such-voice/);
    });

    test('unknown model → NotFoundError with code model_not_found', async () => {
        const err = await client().audio.speech.create({ model: 'tts-42', voice: 'alloy', input: TEXT }).then(() => null, (e) => e);
        assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err?.message}`);
        assert.equal(err.code, 'model_not_found');
        assert.match(err.message, /tts-42/);
    });

    test('input over 4096 characters → 413 APIError', async () => {
        calls = 0;
        const err = await client({ maxRetries: 2 }).audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'b'.repeat(5000), response_format: 'wav' }).then(() => null, (e) => e);
        assert.ok(err instanceof OpenAI.APIError, `got ${err?.constructor?.name}: ${err?.message}`);
        assert.equal(err.status, 413);
        assert.equal(err.param, 'input');
        assert.equal(calls, 1, `a 413 is not retried: ${calls} requests`);
    });

    test('any API key is accepted', async () => {
        for (const apiKey of ['x', 'sk-' + 'z'.repeat(120)]) {
            const res = await client({ apiKey }).audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'Key.', response_format: 'pcm' });
            assert.equal(res.status, 200);
            await res.arrayBuffer();
        }
    });
});
