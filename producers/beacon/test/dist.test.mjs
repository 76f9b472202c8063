// The committed dist/beacon.min.js: built from the current source, within the size target.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { gzipSync } from 'node:zlib';

import { DIST, SOURCE, build, sourceHash } from '../build.mjs';

const MAX_GZIP_BYTES = 5120;

const terserInstalled = async () => {
  try {
    await import('terser');
    return true;
  } catch {
    return false;
  }
};

it('names the SHA-256 of the current source (no npm needed to check)', () => {
  const firstLine = readFileSync(DIST, 'utf8').split('\n', 1)[0];
  assert.equal(
    firstLine.match(/sha256:([0-9a-f]{64})/)?.[1],
    sourceHash(readFileSync(SOURCE, 'utf8')),
    'dist/beacon.min.js is out of date: run `make beacon`',
  );
});

it('is byte for byte what the locked minifier builds', async (t) => {
  if (!(await terserInstalled())) {
    t.skip('terser is not installed: run `npm ci` in producers/beacon (the hash check still ran)');
    return;
  }
  assert.equal(readFileSync(DIST, 'utf8'), await build());
});

it(`is at most ${MAX_GZIP_BYTES} bytes minified and gzipped`, () => {
  const size = gzipSync(readFileSync(DIST), { level: 9 }).length;
  assert.ok(size <= MAX_GZIP_BYTES, `${size} bytes`);
});

it('mentions no cookie or web storage at all', () => {
  assert.doesNotMatch(readFileSync(DIST, 'utf8'), /cookie|localStorage|sessionStorage|indexedDB/i);
});
