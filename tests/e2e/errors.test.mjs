// errors.test.mjs — every error path of the HTTP API (issue 2, §3): status code, JSON
// Content-Type and OpenAI's {"error":{"message","type","param","code"}} shape, with the
// field named in `param` where a field is at fault. Also: malformed or hostile requests
// never produce a 5xx (OpenAI SDKs retry 5xx, so a deterministic failure must not be one),
// and the server still answers afterwards.
//
// Two servers: one with default limits, one with small limits (--max-input-chars,
// --max-body-bytes) so the 413 boundaries are tested exactly and cheaply.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { useServer, speech, expectError } from './lib/server.mjs';

const srv = useServer();
const OK = { model: 'tts-1', input: 'Hello.', voice: 'alloy', response_format: 'wav', stream: false };
const post = (body, o) => speech(srv.port, body, o);
const raw = (body, contentType = 'application/json', o = {}) =>
    srv.request('POST', '/v1/audio/speech', { body, headers: { 'Content-Type': contentType }, ...o });

describe('400 invalid_request_error', () => {
    const cases = [
        ['bad JSON', () => raw('{"model":"tts-1","input":"x",'), undefined],
        ['empty body', () => raw(''), undefined],
        ['body is a JSON array', () => raw('[1,2,3]'), undefined],
        ['body is a JSON string', () => raw('"hello"'), undefined],
        ['body is JSON null', () => raw('null'), undefined],
        ['missing input', () => post({ model: 'tts-1', voice: 'alloy' }), 'input'],
        ['empty input', () => post({ ...OK, input: '' }), 'input'],
        ['input is a number', () => post({ ...OK, input: 42 }), 'input'],
        ['input is null', () => post({ ...OK, input: null }), 'input'],
        ['input is an array', () => post({ ...OK, input: ['a'] }), 'input'],
        ['unknown voice', () => post({ ...OK, voice: 'no-such-voice-xyz' }), 'voice'],
        ['unknown voice in object form', () => post({ ...OK, voice: { id: 'no-such-voice-xyz' } }), 'voice'],
        ['voice object without id', () => post({ ...OK, voice: { name: 'alloy' } }), 'voice'],
        ['voice is a number', () => post({ ...OK, voice: 7 }), 'voice'],
        ['voice is a relative path (traversal)', () => post({ ...OK, voice: '../../../../etc/passwd' }), 'voice'],
        ['voice is an absolute path', () => post({ ...OK, voice: '/etc/passwd' }), 'voice'],
        ['voice is a URL', () => post({ ...OK, voice: 'http://127.0.0.1:1/x.wav' }), 'voice'],
        ['voice with a traversal after a real id', () => post({ ...OK, voice: 'en-us+../../x' }), 'voice'],
        ['unknown response_format', () => post({ ...OK, response_format: 'ogg-vorbis' }), 'response_format'],
        ['response_format is a number', () => post({ ...OK, response_format: 1 }), 'response_format'],
        ['speed below 0.25', () => post({ ...OK, speed: 0.24 }), 'speed'],
        ['speed above 4.0', () => post({ ...OK, speed: 4.01 }), 'speed'],
        ['speed 0', () => post({ ...OK, speed: 0 }), 'speed'],
        ['speed negative', () => post({ ...OK, speed: -1 }), 'speed'],
        ['speed is a string', () => post({ ...OK, speed: 'fast' }), 'speed'],
        ['speed huge (1e309 parses as infinity)', () => raw('{"model":"tts-1","input":"x","voice":"alloy","speed":1e309}'), 'speed'],
        ['stream is a string', () => post({ ...OK, stream: 'yes' }), 'stream'],
        ['unknown stream_format', () => post({ ...OK, stream_format: 'websocket' }), 'stream_format'],
        ['instructions is a number', () => post({ ...OK, instructions: 5 }), 'instructions'],
        ['model is a number', () => post({ ...OK, model: 1 }), 'model'],
        ['invalid UTF-8 in input (0xFF)', () => raw(Buffer.concat([Buffer.from('{"model":"tts-1","voice":"alloy","input":"ab'),
            Buffer.from([0xff, 0xfe]), Buffer.from('cd"}')])), 'input'],
        ['invalid UTF-8 in input (overlong /)', () => raw(Buffer.concat([Buffer.from('{"model":"tts-1","voice":"alloy","input":"a'),
            Buffer.from([0xc0, 0xaf]), Buffer.from('b"}')])), 'input'],
        ['invalid UTF-8 in input (UTF-16 surrogate)', () => raw(Buffer.concat([Buffer.from('{"model":"tts-1","voice":"alloy","input":"a'),
            Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('b"}')])), 'input'],
        ['invalid UTF-8 in input (truncated sequence)', () => raw(Buffer.concat([Buffer.from('{"model":"tts-1","voice":"alloy","input":"a'),
            Buffer.from([0xe2, 0x82]), Buffer.from('"}')])), 'input'],
    ];
    for (const [name, fn, param] of cases) {
        test(name, async () => {
            const r = await fn();
            const e = expectError(r, { status: 400, type: 'invalid_request_error' });
            if (param !== undefined)
                assert.equal(e.param, param, `error.param for "${name}": expected ${param}, got ${JSON.stringify(e.param)}; message: ${e.message}`);
        });
    }

    test('the message names the problem (speed range)', async () => {
        const e = expectError(await post({ ...OK, speed: 9 }), { status: 400, param: 'speed' });
        assert.match(e.message, /0\.25|4(\.0)?|range|between/i, `message: ${e.message}`);
    });
});

describe('404', () => {
    test('unknown model → model_not_found', async () => {
        const e = expectError(await post({ ...OK, model: 'tts-9000' }), { status: 404, code: 'model_not_found', param: 'model' });
        assert.match(e.message, /tts-9000/, `message names the model: ${e.message}`);
    });
    for (const p of ['/v1/nope', '/v1/audio/speech/extra', '/v2/audio/speech', '/favicon.ico.nope', '/v1']) {
        test(`GET ${p} → 404 OpenAI-shaped`, async () => {
            expectError(await srv.request('GET', p), { status: 404 });
        });
    }
    test('POST to an unknown route → 404', async () => {
        expectError(await srv.request('POST', '/v1/audio/transcriptions', { body: {} }), { status: 404 });
    });
});

describe('405', () => {
    const cases = [
        ['GET', '/v1/audio/speech', /POST/],
        ['PUT', '/v1/audio/speech', /POST/],
        ['DELETE', '/v1/audio/speech', /POST/],
        ['POST', '/v1/voices', /GET/],
        ['POST', '/v1/models', /GET/],
        ['DELETE', '/health', /GET/],
        ['POST', '/v1/audio/voices', /GET/],
    ];
    for (const [m, p, allow] of cases) {
        test(`${m} ${p} → 405 with Allow`, async () => {
            const r = await srv.request(m, p, m === 'GET' || m === 'DELETE' ? {} : { body: {} });
            expectError(r, { status: 405 });
            assert.match(r.headers.allow || '', allow, `Allow header: got ${JSON.stringify(r.headers.allow)}`);
        });
    }
});

describe('415', () => {
    for (const ct of ['text/plain', 'multipart/form-data; boundary=x', 'application/xml']) {
        test(`Content-Type ${ct} → 415`, async () => {
            expectError(await raw(JSON.stringify(OK), ct), { status: 415 });
        });
    }
    test('a real form body (application/x-www-form-urlencoded, not JSON) → 415', async () => {
        expectError(await raw('input=abc&voice=alloy', 'application/x-www-form-urlencoded'), { status: 415 });
    });
    test('JSON sent as application/x-www-form-urlencoded (curl -d without -H) is accepted', async () => {
        const r = await raw(JSON.stringify(OK), 'application/x-www-form-urlencoded');
        assert.equal(r.status, 200, r.text().slice(0, 300));
    });
});

describe('413 with default limits', () => {
    test('input of 4097 characters → 413', async () => {
        const e = expectError(await post({ ...OK, input: 'a'.repeat(4097) }), { status: 413, param: 'input' });
        assert.match(e.message, /4096/, `message states the limit: ${e.message}`);
    });
    test('input of exactly 4096 characters is accepted (streamed, first bytes then hang up)', async () => {
        const input = ('Word ' .repeat(820)).slice(0, 4096);
        assert.equal(input.length, 4096);
        const r = await post({ ...OK, input, stream: true, response_format: 'pcm' }, { abortAfterBytes: 1, timeoutMs: 30000 });
        assert.equal(r.status, 200, `status (body ${r.text().slice(0, 200)})`);
        assert.ok(r.body.length > 0);
    });
    test('4096 multi-byte characters (12288 bytes) are within the character limit', async () => {
        const input = '€'.repeat(4096);
        const r = await post({ ...OK, input, stream: true, response_format: 'pcm' }, { abortAfterBytes: 1, timeoutMs: 30000 });
        assert.notEqual(r.status, 413, `4096 code points must not be "too long" (body ${r.text().slice(0, 200)})`);
        assert.ok(r.status < 500, `status ${r.status}`);
    });
    test('a body of 8 MiB → 413 (not a crash, not 5xx)', async () => {
        const big = JSON.stringify({ ...OK, input: 'x', pad: 'p'.repeat(8 << 20) });
        let r;
        try {
            r = await raw(big, 'application/json', { timeoutMs: 20000 });
        } catch (e) {
            // A server may answer 413 and close before reading everything; Node then may report
            // EPIPE/ECONNRESET instead of the response. That is acceptable only if the server lives.
            assert.match(e.message, /EPIPE|ECONNRESET|socket hang up/, e.message);
            const h = await srv.request('GET', '/health');
            assert.equal(h.status, 200);
            return;
        }
        expectError(r, { status: 413 });
    });
});

describe('keep-alive connections survive errors', () => {
    test('error responses (incl. an unread over-limit body) do not poison the next request on the connection', async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        const sockets = new Set();
        const send = (method, p, body) => new Promise((resolve, reject) => {
            const req = http.request({ host: '127.0.0.1', port: srv.port, method, path: p, agent,
                headers: body ? { 'Content-Type': 'application/json' } : {} }, (res) => {
                const parts = [];
                res.on('data', (c) => parts.push(c));
                res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
                res.on('error', reject);
            });
            req.on('socket', (sk) => sockets.add(sk));
            req.on('error', reject);
            req.setTimeout(30000, () => req.destroy(new Error('timeout')));
            req.end(body);
        });
        try {
            const seq = [
                ['POST', '/v1/audio/speech', '{"input":"a","speed":99}', 400],
                ['POST', '/v1/audio/speech', JSON.stringify({ ...OK, stream: true, response_format: 'pcm' }), 200],
                ['POST', '/v1/audio/speech', JSON.stringify({ ...OK, input: 'x', pad: 'p'.repeat(300000) }), 413],
                ['GET', '/v1/models', null, 200],
                ['POST', '/v1/audio/speech', JSON.stringify({ ...OK, model: 'nope' }), 404],
                ['POST', '/v1/audio/speech', JSON.stringify({ ...OK, response_format: 'pcm' }), 200],
            ];
            for (const [m, p, b, want] of seq) {
                let r;
                try { r = await send(m, p, b); } catch (e) {
                    // The server may close a connection after an error it did not read the body of;
                    // a fresh connection must then work.
                    if (want === 413 && /EPIPE|ECONNRESET|socket hang up/.test(e.message)) continue;
                    throw e;
                }
                assert.equal(r.status, want, `${m} ${p} (${b ? b.length : 0} B body): body ${r.body.toString().slice(0, 200)}`);
                if (want === 200 && p === '/v1/audio/speech') assert.ok(r.body.length > 1000 && r.body.length % 2 === 0);
            }
            console.log(`# keep-alive sequence of 6 requests used ${sockets.size} connection(s)`);
        } finally { agent.destroy(); }
    });
});

describe('never a 5xx for hostile input', () => {
    const bodies = [
        ['deeply nested JSON', '['.repeat(100000) + ']'.repeat(100000)],
        ['deeply nested input object', `{"model":"tts-1","voice":"alloy","input":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`],
        ['NUL inside input', '{"model":"tts-1","voice":"alloy","response_format":"wav","stream":false,"input":"a\\u0000b"}'],
        ['lone surrogate escape', '{"model":"tts-1","voice":"alloy","input":"a\\ud800b"}'],
        ['whitespace-only input', '{"model":"tts-1","voice":"alloy","response_format":"wav","stream":false,"input":"   \\n\\t "}'],
        ['punctuation-only input', '{"model":"tts-1","voice":"alloy","response_format":"wav","stream":false,"input":"...!?;"}'],
        ['duplicate keys', '{"input":"a","input":"b","voice":"alloy","voice":"nova","response_format":"wav","stream":false}'],
        ['trailing garbage', '{"input":"a","voice":"alloy"} xyz'],
        ['huge voice string', JSON.stringify({ ...OK, voice: 'v'.repeat(100000) })],
        ['huge model string', JSON.stringify({ ...OK, model: 'm'.repeat(100000) })],
        ['huge instructions', JSON.stringify({ ...OK, instructions: 'i'.repeat(200000) })],
        ['control characters in input', JSON.stringify({ ...OK, input: '\u0001\u0002 hello \u001b[31m red' })],
        ['emoji and RTL text', JSON.stringify({ ...OK, input: 'Hi 👋🏽 مرحبا שלום 漢字' })],
        ['non-JSON binary', Buffer.from([0, 1, 2, 3, 0xff, 0xfe, 0x80])],
        ['speed as numeric string', JSON.stringify({ ...OK, speed: '1.0' })],
        ['voice empty string', JSON.stringify({ ...OK, voice: '' })],
    ];
    for (const [name, body] of bodies) {
        test(name, async () => {
            const r = await raw(body, 'application/json', { timeoutMs: 30000 });
            assert.ok(r.status >= 200 && r.status < 500, `${name}: status ${r.status} (body ${r.text().slice(0, 300)})`);
            if (r.status >= 400) expectError(r, { status: r.status });
        });
    }
    test('missing Content-Type with a JSON body is not a 5xx', async () => {
        const r = await srv.request('POST', '/v1/audio/speech', { body: JSON.stringify(OK) });
        assert.ok(r.status === 200 || r.status === 415 || r.status === 400, `status ${r.status}`);
    });
    test('the server still answers after all that', async () => {
        const h = await srv.request('GET', '/health');
        assert.equal(h.status, 200);
        const r = await post(OK);
        assert.equal(r.status, 200, r.text().slice(0, 300));
    });
});

describe('small limits (--max-input-chars 20 --max-body-bytes 2048)', () => {
    const small = useServer({ args: ['--max-input-chars', '20', '--max-body-bytes', '2048'] });
    const post2 = (body, o) => speech(small.port, body, o);

    test('20 characters pass, 21 → 413', async () => {
        const ok = await post2({ ...OK, input: 'abcde fghij klmno pq' });
        assert.equal(ok.status, 200, ok.text().slice(0, 300));
        expectError(await post2({ ...OK, input: 'abcde fghij klmno pqr' }), { status: 413, param: 'input' });
    });
    test('limit counts characters, not bytes: 20 × "é" (40 bytes) pass, 21 → 413', async () => {
        const ok = await post2({ ...OK, input: 'é'.repeat(20) });
        assert.equal(ok.status, 200, ok.text().slice(0, 300));
        expectError(await post2({ ...OK, input: 'é'.repeat(21) }), { status: 413, param: 'input' });
    });
    test('a body over 2048 bytes → 413 even when the input is short', async () => {
        // Padding in an unknown (ignored) field, so only the body size can be at fault.
        const e = expectError(await post2({ ...OK, input: 'short', pad: 'x'.repeat(3000) }), { status: 413 });
        assert.notEqual(e.param, 'input', `the body, not the input, is too big: ${e.message}`);
    });
    test('a body just under 2048 bytes is read', async () => {
        const base = JSON.stringify({ ...OK, input: 'short', pad: '' });
        const body = JSON.stringify({ ...OK, input: 'short', pad: 'x'.repeat(2040 - base.length) });
        assert.ok(body.length <= 2048);
        const r = await small.request('POST', '/v1/audio/speech', { body, headers: { 'Content-Type': 'application/json' } });
        assert.equal(r.status, 200, r.text().slice(0, 300));
    });
    test('a chunked body over the limit → 413', async () => {
        // node:http sends a Buffer with Transfer-Encoding: chunked when no Content-Length is set
        // and the header is given explicitly.
        const r = await small.request('POST', '/v1/audio/speech', {
            body: JSON.stringify({ ...OK, input: 'short', pad: 'y'.repeat(5000) }),
            headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
        });
        expectError(r, { status: 413 });
    });
});
