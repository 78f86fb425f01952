import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { it } from 'node:test';
import { ERROR_CODES, MorphError, VALID_ERROR_CODES } from '../src/errors.ts';

it('documents every error code in docs/errors.md', async () => {
  const doc = await readFile(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const missing = VALID_ERROR_CODES.filter((c) => !doc.includes(`\`${c}\``));
  assert.deepEqual(missing, [], `undocumented codes: ${missing.join(', ')}`);
});

it('gives every code a 4xx/5xx status and a non-zero exit code', () => {
  for (const [code, e] of Object.entries(ERROR_CODES)) {
    assert.ok(e.status >= 400 && e.status < 600, code);
    assert.ok(e.exit > 0, code);
  }
  const err = new MorphError('MORPH_ERR_NOT_FOUND', 'no such file x.json', { path: 'x.json' });
  assert.equal(err.status, 404);
  assert.equal(err.name, 'MorphError');
  assert.deepEqual(err.toJSON(), { code: 'MORPH_ERR_NOT_FOUND', message: 'no such file x.json', details: { path: 'x.json' } });
});
