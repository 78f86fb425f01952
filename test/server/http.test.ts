/**
 * The error handling of server/http.ts on a real express app on 127.0.0.1: `apiErrorHandler` and
 * `appErrorHandler` answer JSON `{error: {code, message}}` under /api and `message [CODE]` text
 * elsewhere, keep express's 4xx statuses, hide a 5xx's cause from the client, and log the stack
 * of 5xx errors only; `notFound` gives 404s of the same two shapes.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { MorphError } from '../../src/errors.ts';
import { apiErrorHandler, appErrorHandler, errorBody, jsonBody, notFound } from '../../server/http.ts';

/**
 * A stack trace line as V8 prints it (`\n    at fn (file.ts:12:34)`), also HTML-escaped as in
 * express's default error page (`<br> &nbsp; &nbsp;at decodeParam (…/layer.js:332:12)`).
 */
const STACK_LINE = /(?:\n\s*|&nbsp;|<br>\s*)at .+?:\d+:\d+/;

describe('error handlers', () => {
  let server: Server;
  let base: string;
  const logs: string[] = [];

  before(async () => {
    const app = express();
    const api = express.Router();
    api.post('/echo', jsonBody(64), (req, res) => void res.json(req.body));
    api.get('/quota', () => {
      throw new MorphError('MORPH_ERR_QUOTA', '3 things are kept already (the limit)', { limit: 3 });
    });
    api.get('/boom', () => {
      throw new Error('kaboom: secret detail');
    });
    api.use(apiErrorHandler((l) => logs.push(l)));
    app.use('/api/r', api);
    app.get('/page/:name', (_req, res) => void res.send('ok'));
    app.get('/boom', () => {
      throw new TypeError('page kaboom');
    });
    app.use(notFound);
    app.use(appErrorHandler((l) => logs.push(l)));
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const get = async (path: string, init: RequestInit = {}): Promise<{ status: number; type: string; text: string }> => {
    const res = await fetch(`${base}${path}`, init);
    return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
  };

  it('answers JSON under /api with the status of the code, hiding a 5xx cause, logging its stack only', async () => {
    const quota = await get('/api/r/quota?token=s3cret');
    assert.equal(quota.status, 409);
    assert.match(quota.type, /^application\/json/);
    assert.deepEqual(JSON.parse(quota.text), { error: { code: 'MORPH_ERR_QUOTA', message: '3 things are kept already (the limit)', details: { limit: 3 } } });
    const big = await get('/api/r/echo', { method: 'POST', body: JSON.stringify({ pad: 'x'.repeat(100) }) });
    assert.equal(big.status, 413);
    assert.deepEqual(JSON.parse(big.text), { error: { code: 'MORPH_ERR_LIMIT', message: 'the request body is larger than 64 bytes' } });
    const boom = await get('/api/r/boom?token=s3cret');
    assert.equal(boom.status, 500);
    assert.deepEqual(JSON.parse(boom.text), { error: { code: 'MORPH_ERR_INTERNAL', message: 'internal error; the server log has the details' } });
    assert.equal(logs.length, 1, logs.join('\n'));
    assert.match(logs[0], /^GET \/api\/r\/boom\?token=\*\*\*: Error: kaboom: secret detail\n/, 'method, redacted URL, then the stack');
    assert.match(logs[0], STACK_LINE, 'the log has the stack');
    logs.length = 0;
  });

  it('answers short text elsewhere: 400 for an undecodable path, 404 for none, 500 without its cause', async () => {
    const bad = await get('/page/%ZZ');
    assert.equal(bad.status, 400);
    assert.match(bad.type, /^text\/plain/);
    assert.equal(bad.text, "Failed to decode param '%ZZ' [MORPH_ERR_BAD_ARGUMENT]\n");
    const none = await get('/nothing/here');
    assert.equal(none.status, 404);
    assert.match(none.type, /^text\/plain/);
    assert.match(none.text, /^no such page; .* \[MORPH_ERR_NOT_FOUND\]\n$/);
    const apiNone = await get('/api/nothing?x=1');
    assert.equal(apiNone.status, 404);
    assert.deepEqual(JSON.parse(apiNone.text), { error: { code: 'MORPH_ERR_NOT_FOUND', message: 'no API endpoint GET /api/nothing; docs/api.md lists them' } });
    assert.equal(logs.length, 0, 'a 4xx is not logged');
    const boom = await get('/boom');
    assert.equal(boom.status, 500);
    assert.equal(boom.text, 'internal error; the server log has the details [MORPH_ERR_INTERNAL]\n');
    for (const r of [bad, none, apiNone, boom]) assert.ok(!STACK_LINE.test(r.text) && !/kaboom|URIError/.test(r.text), r.text);
    assert.equal(logs.length, 1);
    assert.match(logs[0], /^GET \/boom: TypeError: page kaboom/);
    assert.match(logs[0], STACK_LINE);
  });

  it('maps body-parser errors and odd throws', () => {
    assert.deepEqual(errorBody({ type: 'entity.parse.failed', status: 400, message: 'Unexpected token' }), { status: 400, body: { error: { code: 'MORPH_ERR_NOT_JSON', message: 'the request body is not valid JSON: Unexpected token' } } });
    assert.deepEqual(errorBody({ type: 'charset.unsupported', message: 'utf-16 no' }), { status: 415, body: { error: { code: 'MORPH_ERR_BAD_ARGUMENT', message: 'utf-16 no' } } });
    assert.equal(errorBody(null).status, 500);
    assert.equal(errorBody('a string').status, 500);
    assert.equal(errorBody({ status: 302 }).status, 500, 'only 4xx statuses are kept');
  });
});
