// streaming.test.mjs — streaming, SSE, cancellation and overload through the real server
// (issue 2, §5 and the stream/stream_format fields of §3).
//
// Streaming is judged by time: for a long multi-sentence input the first body chunk must
// arrive well before the response ends and well before a non-streamed synthesis of the same
// text finishes. Bytes are judged too: a streamed pcm body matches the non-streamed one, a
// streamed WAV has the open-ended header. Cancellation: hang up mid-stream on a server with
// one worker; the server must answer /health and serve a new request promptly (it could not
// if the abandoned synthesis kept the only worker busy). Overload: one worker, queue of one,
// several long requests at once → some clean 429/503 with Retry-After, never a 500, then
// recovery. All waits are bounded.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { useServer, startServer, speech, expectError, sleep, parseSse } from './lib/server.mjs';
import { parseWav, decodeSpeechWav, s16ToFloat, rms, plausibleSeconds, assertSimilarAudio, medianPitch } from './lib/audio.mjs';

const SENTENCES = [
    'The first sentence is short.',
    'Streaming means the listener hears the beginning while the end is still being made.',
    'Every sentence after this one exists only to make the whole input take a while to synthesise.',
    'A server that waits for the last word before sending the first byte fails this test.',
    'Small local servers can answer in tens of milliseconds, which is what users notice.',
    'The quick brown fox jumps over the lazy dog, again and again, without getting tired.',
    'Numbers like three hundred and forty two take longer to say than to write.',
    'Here is one more sentence, so that the total is comfortably long.',
];
const LONG = Array.from({ length: 3 }, () => SENTENCES.join(' ')).join(' '); // ~1700 chars
const VERY_LONG = Array.from({ length: 30 }, () => SENTENCES.join(' ')).join(' ').slice(0, 16000); // needs --max-input-chars

const base = { model: 'tts-1', voice: 'alloy' };
const RATE_BYTES = 48000; // one second of 24 kHz s16 mono

describe('streaming (default server)', () => {
    const srv = useServer();
    const say = (body, o) => speech(srv.port, body, o);

    test('stream:true wav is chunked, open-ended header, decodes to plausible speech', async () => {
        const r = await say({ ...base, input: LONG, response_format: 'wav', stream: true }, { timeoutMs: 60000 });
        assert.equal(r.status, 200, r.text().slice(0, 300));
        assert.equal(r.headers['content-type'], 'audio/wav');
        assert.equal(r.headers['transfer-encoding'], 'chunked', 'Transfer-Encoding');
        assert.equal(r.headers['content-length'], undefined, 'no Content-Length on a stream');
        const w = parseWav(r.body);
        assert.equal(w.openEnded, true, `open-ended WAV sizes: RIFF ${w.riffSize.toString(16)}, data ${w.dataSize.toString(16)}`);
        assert.equal(w.dataSize, 0xffffffff, 'data size 0xFFFFFFFF');
        const a = decodeSpeechWav(r.body);
        assert.equal(a.wav.data.length % 2, 0, 'whole samples');
        // Not just the header early: the first 0.1 s of audio must arrive before half the stream.
        let got = 0;
        const tAudio = r.chunks.find((c) => (got += c.n) >= w.dataOffset + 4800)?.t ?? Infinity;
        assert.ok(tAudio < 0.5 * r.tEnd, `first 0.1 s of audio at ${tAudio.toFixed(1)} ms, end ${r.tEnd.toFixed(1)} ms`);
        const { min, max } = plausibleSeconds(LONG);
        assert.ok(a.seconds >= min && a.seconds <= max, `duration ${a.seconds.toFixed(2)} s, expected ${min.toFixed(1)}..${max.toFixed(1)}`);
    });

    test('first audio leaves long before the end of the synthesis, the rest arrives progressively', async () => {
        await say({ ...base, input: 'Warm up.', response_format: 'pcm', stream: false }); // first-request costs out of the way
        const full = await say({ ...base, input: LONG, response_format: 'pcm', stream: false }, { timeoutMs: 60000 });
        assert.equal(full.status, 200);
        const r = await say({ ...base, input: LONG, response_format: 'pcm', stream: true }, { timeoutMs: 60000 });
        assert.equal(r.status, 200);
        assert.equal(r.headers['transfer-encoding'], 'chunked');
        const times = r.chunks.map((c) => c.t.toFixed(0)).slice(0, 12).join(',');
        const mid = r.tFirstByte + (r.tEnd - r.tFirstByte) / 2;
        const byMid = r.chunks.filter((c) => c.t <= mid).reduce((n, c) => n + c.n, 0) / r.body.length;
        console.log(`# stream ${LONG.length} chars: TTFB ${r.tFirstByte.toFixed(1)} ms, end ${r.tEnd.toFixed(1)} ms, ` +
            `${r.chunks.length} chunks, ${(100 * byMid).toFixed(0)} % of bytes by mid-stream; non-streamed total ${full.tEnd.toFixed(1)} ms`);
        assert.ok(r.chunks.length >= 3, `several chunks, got ${r.chunks.length}`);
        assert.ok(r.tFirstByte < 0.5 * r.tEnd, `first byte at ${r.tFirstByte.toFixed(1)} ms should be < half of end ${r.tEnd.toFixed(1)} ms (chunk times ${times})`);
        assert.ok(r.tFirstByte < 0.5 * full.tEnd, `streamed TTFB ${r.tFirstByte.toFixed(1)} ms should be < half the non-streamed time ${full.tEnd.toFixed(1)} ms`);
        assert.ok(byMid > 0.1 && byMid < 0.95, `audio arrives progressively, not in one burst: ${(100 * byMid).toFixed(0)} % of bytes by mid-stream`);
        assertSimilarAudio(s16ToFloat(r.body), s16ToFloat(full.body), 'streamed vs non-streamed pcm');
    });

    test('stream defaults to true (POCKET_TTS_STREAM_DEFAULT default)', async () => {
        const r = await say({ ...base, input: 'Default streaming.', response_format: 'pcm' });
        assert.equal(r.status, 200);
        assert.equal(r.headers['transfer-encoding'], 'chunked');
        assert.equal(r.body.length % 2, 0);
    });

    test('stream_format "audio" is the plain audio stream', async () => {
        const r = await say({ ...base, input: 'Audio stream format.', response_format: 'pcm', stream: true, stream_format: 'audio' });
        assert.equal(r.status, 200);
        assert.equal(r.headers['content-type'], 'audio/pcm');
        assert.ok(rms(s16ToFloat(r.body)) > 0.01);
    });

    test('stream_format "sse": speech.audio.delta events then speech.audio.done with usage', async () => {
        const input = 'Server sent events. Two sentences.';
        const r = await say({ ...base, input, response_format: 'pcm', stream_format: 'sse' }, { timeoutMs: 30000 });
        assert.equal(r.status, 200, r.text().slice(0, 300));
        assert.match(r.headers['content-type'] || '', /^text\/event-stream\b/);
        const events = parseSse(r.text());
        assert.ok(events.length >= 2, `at least one delta and one done, got ${events.length}`);
        const deltas = events.slice(0, -1);
        const done = events[events.length - 1];
        for (const e of deltas) {
            assert.equal(e.data.type, 'speech.audio.delta', `delta type: ${JSON.stringify(e.data).slice(0, 200)}`);
            assert.equal(typeof e.data.audio, 'string');
            assert.match(e.data.audio, /^[A-Za-z0-9+/]*={0,2}$/, 'audio is base64');
            if (e.event !== null) assert.equal(e.event, 'speech.audio.delta');
        }
        assert.equal(done.data.type, 'speech.audio.done', `last event: ${JSON.stringify(done.data)}`);
        const u = done.data.usage;
        assert.ok(u && typeof u === 'object', `usage object: ${JSON.stringify(done.data)}`);
        for (const k of ['input_tokens', 'output_tokens', 'total_tokens'])
            assert.ok(Number.isInteger(u[k]) && u[k] >= 0, `usage.${k} integer, got ${u[k]}`);
        assert.equal(u.total_tokens, u.input_tokens + u.output_tokens, 'total = input + output');
        const audio = Buffer.concat(deltas.map((e) => Buffer.from(e.data.audio, 'base64')));
        assert.equal(audio.length % 2, 0, 'pcm deltas hold whole samples');
        const plain = await say({ ...base, input, response_format: 'pcm', stream: false });
        assertSimilarAudio(s16ToFloat(audio), s16ToFloat(plain.body), 'SSE audio vs pcm body');
    });

    test('a second client is not stuck behind a long stream', async () => {
        let tSecondStart = -1;
        let second = null;
        const long = say({ ...base, input: LONG, response_format: 'pcm', stream: true, speed: 0.5 }, {
            timeoutMs: 60000,
            onChunk: (_c, t) => {
                if (!second) {
                    tSecondStart = t;
                    second = say({ ...base, input: 'Me too.', response_format: 'pcm', stream: true }, { timeoutMs: 60000 });
                }
            },
        });
        const a = await long;
        const b = await second;
        assert.equal(a.status, 200);
        assert.equal(b.status, 200);
        console.log(`# long stream ends at ${a.tEnd.toFixed(0)} ms; short request started at ${tSecondStart.toFixed(0)} ms, ` +
            `its TTFB ${b.tFirstByte.toFixed(0)} ms, total ${b.tEnd.toFixed(0)} ms`);
        const longRest = a.tEnd - tSecondStart;
        assert.ok(b.tEnd < 0.5 * longRest, `short request done in ${b.tEnd.toFixed(0)} ms, should be < half of the ${longRest.toFixed(0)} ms the long one still needed`);
    });

    test('a storm of clients hanging up at random points leaves the server healthy', async () => {
        const input = 'Storm sentence one. And two. And three. '.repeat(6);
        const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => {
            const body = { ...base, input, response_format: i % 2 ? 'wav' : 'pcm', stream: i % 4 !== 3 };
            if (i % 5 === 4) body.stream_format = 'sse';
            return say(body, { abortAfterBytes: 1 + i * 7919, timeoutMs: 30000 }).then((r) => r.status, (e) => e.message);
        }));
        for (const st of rs) assert.ok(st === 200 || st === 429, `status ${st} in ${rs}`);
        const h = await srv.request('GET', '/health');
        assert.equal(h.status, 200);
        const r = await say({ ...base, input: 'Still here.', response_format: 'wav', stream: false });
        assert.equal(r.status, 200);
        decodeSpeechWav(r.body);
    });

    test('hanging up before any audio, then the server still answers', async () => {
        const r = await say({ ...base, input: LONG, response_format: 'pcm', stream: true }, { abortAfterBytes: 1 });
        assert.ok(r.aborted);
        const h = await srv.request('GET', '/health');
        assert.equal(h.status, 200);
    });
});

describe('cancellation (--workers 1 --max-input-chars 20000)', () => {
    const srv = useServer({ args: ['--workers', '1', '--max-input-chars', '20000'] });
    const say = (body, o) => speech(srv.port, body, o);

    test('disconnect mid-stream stops the synthesis; the server answers and serves a new request at once', async () => {
        // Speed 0.25 makes espeak render four times as much audio: the full text takes seconds.
        // Estimate the full time from a short prefix (synthesis time is ~linear in text).
        const slow = { ...base, response_format: 'pcm', speed: 0.25 };
        const probe = await say({ ...slow, input: VERY_LONG.slice(0, 400), stream: false }, { timeoutMs: 60000 });
        assert.equal(probe.status, 200);
        const estFull = probe.tEnd * (VERY_LONG.length / 400);

        const r = await say({ ...slow, input: VERY_LONG, stream: true }, { abortAfterBytes: 4800, timeoutMs: 30000 });
        assert.equal(r.status, 200);
        assert.ok(r.aborted, 'we hung up mid-stream');
        const reqId = r.headers['x-request-id'];
        const t0 = performance.now();
        const h = await srv.request('GET', '/health', { timeoutMs: 5000 });
        assert.equal(h.status, 200);
        // With one worker, this request waits (or is refused) while the abandoned synthesis runs.
        let n = null;
        for (let i = 0; i < 40; i++) {
            n = await say({ ...base, input: 'After the hang up.', response_format: 'pcm', stream: false }, { timeoutMs: 60000 });
            if (n.status !== 429 && n.status !== 503) break;
            await sleep(100);
        }
        const took = performance.now() - t0;
        console.log(`# full synthesis of ${VERY_LONG.length} chars at speed 0.25 ≈ ${estFull.toFixed(0)} ms; ` +
            `after the hang-up a new request was served in ${took.toFixed(0)} ms`);
        assert.equal(n.status, 200, n.text().slice(0, 300));
        assert.ok(estFull > 3000, `the abandoned synthesis must be long for this test to mean anything (≈ ${estFull.toFixed(0)} ms)`);
        assert.ok(took < Math.min(2000, 0.5 * estFull),
            `new request done ${took.toFixed(0)} ms after the hang-up; the abandoned synthesis would need ≈ ${estFull.toFixed(0)} ms`);
        if (reqId) {
            await sleep(200);
            const line = srv.stderr().split('\n').find((l) => l.includes(reqId));
            assert.ok(line, `a log line for the aborted request ${reqId}`);
            assert.match(line, /abort|cancel|disconnect|499/i, `the log line says the client went away: ${line}`);
        }
    });
});

describe('overload (--workers 1 --queue 1)', () => {
    test('excess requests get 429/503 with Retry-After, never a 500; then recovery', async () => {
        const s = await startServer({ args: ['--workers', '1', '--queue', '1'] });
        try {
            const N = 6;
            const rs = await Promise.all(Array.from({ length: N }, (_, i) =>
                // Accepted streams are read to the end, so no slot frees up while the burst arrives.
                speech(s.port, { ...base, input: `${i}. ${LONG}`, response_format: 'pcm', stream: true },
                    { timeoutMs: 60000 })
                    .catch((e) => ({ status: -1, error: e }))));
            const statuses = rs.map((r) => r.status);
            console.log(`# overload statuses: ${statuses.join(',')}`);
            for (const r of rs) {
                assert.notEqual(r.status, -1, `request failed at transport level: ${r.error?.message}`);
                assert.ok([200, 429, 503].includes(r.status), `status ${r.status} in ${statuses}`);
                if (r.status === 429 || r.status === 503) {
                    expectError(r, { status: r.status });
                    const ra = r.headers['retry-after'];
                    assert.ok(ra !== undefined, `Retry-After on ${r.status}`);
                    assert.match(ra, /^\d+$/, `Retry-After as delay-seconds, got ${JSON.stringify(ra)}`);
                    assert.ok(Number(ra) >= 1 && Number(ra) <= 120, `Retry-After ${ra} s`);
                }
            }
            const ok = statuses.filter((x) => x === 200).length;
            const refused = statuses.filter((x) => x === 429 || x === 503).length;
            assert.ok(ok >= 1, `at least one request served, got ${statuses}`);
            assert.ok(ok <= 2, `one worker + one queue slot: at most 2 accepted at once, got ${statuses}`);
            assert.ok(refused >= N - 2, `at least ${N - 2} refused, got ${statuses}`);

            for (const r of rs) if (r.status === 200) assert.ok(r.body.length > RATE_BYTES, 'accepted streams deliver audio');
            // Recovery: a new request succeeds.
            let last = null;
            for (let i = 0; i < 50; i++) {
                last = await speech(s.port, { ...base, input: 'Recovered.', response_format: 'wav', stream: false }, { timeoutMs: 30000 });
                if (last.status === 200) break;
                assert.ok([429, 503].includes(last.status), `during recovery: status ${last.status}`);
                await sleep(100);
            }
            assert.equal(last.status, 200, `recovered within ~5 s: ${last.text().slice(0, 200)}`);
            decodeSpeechWav(last.body);
            assert.equal((await s.request('GET', '/health')).status, 200);
        } finally {
            await s.stop();
        }
    });
});

describe('concurrent streams do not mix (--http-threads 1 --workers 4)', () => {
    test('each response carries its own voice and its own text length', async () => {
        const s = await startServer({ args: ['--http-threads', '1', '--workers', '4'] });
        try {
            const jobs = [];
            for (let i = 0; i < 8; i++) {
                const high = i % 2 === 0;
                const n = 2 + (i % 4) * 3; // 2, 5, 8, 11 sentences
                const input = SENTENCES.slice(0, 8).concat(SENTENCES).slice(0, n).join(' ');
                jobs.push({ voice: high ? 'alloy' : 'onyx', input, stream: i % 3 !== 2 });
            }
            const rs = await Promise.all(jobs.map((j) =>
                speech(s.port, { model: 'tts-1', voice: j.voice, input: j.input, response_format: 'pcm', stream: j.stream }, { timeoutMs: 60000 })));
            const lows = [];
            rs.forEach((r, i) => {
                const j = jobs[i];
                assert.equal(r.status, 200, `job ${i}: ${r.text().slice(0, 200)}`);
                const x = s16ToFloat(r.body);
                const { min, max } = plausibleSeconds(j.input);
                const sec = x.length / 24000;
                assert.ok(sec >= min && sec <= max, `job ${i} (${j.input.length} chars): ${sec.toFixed(2)} s, expected ${min.toFixed(1)}..${max.toFixed(1)}`);
                const f0 = medianPitch(x);
                if (j.voice === 'alloy') assert.ok(f0 > 150, `job ${i} alloy: median pitch ${f0.toFixed(0)} Hz should be high`);
                else { assert.ok(f0 < 140, `job ${i} onyx: median pitch ${f0.toFixed(0)} Hz should be low`); lows.push(f0); }
            });
            // The same text at the same voice gives the same length whichever job it shared the engine with.
            const byKey = new Map();
            rs.forEach((r, i) => {
                const k = jobs[i].voice + jobs[i].input.length;
                if (byKey.has(k)) assertSimilarAudio(s16ToFloat(byKey.get(k)), s16ToFloat(r.body), `job ${i} vs its twin`);
                else byKey.set(k, r.body);
            });
        } finally { await s.stop(); }
    });
});

describe('a client that stops reading (--workers 1)', () => {
    test('does not hold the only worker forever: a new request is answered within 15 s', async () => {
        const s = await startServer({ args: ['--workers', '1'] });
        const c = net.connect(s.port, '127.0.0.1');
        try {
            const body = JSON.stringify({ ...base, input: LONG, response_format: 'pcm', stream: true, speed: 0.25 });
            c.on('error', () => {});
            c.write(`POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
                `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
            await new Promise((r) => c.once('data', r));
            c.pause(); // headers and first bytes arrived; now we stop reading, the socket stays open
            await sleep(500);
            const t0 = performance.now();
            const r = await speech(s.port, { ...base, input: 'Next in line.', response_format: 'pcm', stream: false }, { timeoutMs: 15000 })
                .catch((e) => e);
            const took = performance.now() - t0;
            console.log(`# stalled reader holds the worker; next request answered after ${took.toFixed(0)} ms: ${r.status ?? r.message}`);
            assert.ok(!(r instanceof Error), `no answer while a stalled client holds the worker: ${r.message}`);
            assert.ok([200, 429, 503].includes(r.status), `status ${r.status}`);
            if (r.status !== 200) {
                expectError(r, { status: r.status });
                assert.match(r.headers['retry-after'] || '', /^\d+$/, 'Retry-After');
            }
        } finally {
            c.destroy();
            await s.stop();
        }
    });
});
