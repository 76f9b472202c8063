// Builds dist/beacon.min.js from beacon.js with terser (locked in package-lock.json).
//
//   node build.mjs          write dist/beacon.min.js
//   node build.mjs --check  exit 1 when dist/beacon.min.js is not what the source builds to
//
// The built file is committed, so a machine without npm serves /beacon.js. Its first line names
// the SHA-256 of the source it was built from: a check that needs no npm (tests read it).
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const SOURCE = fileURLToPath(new URL('./beacon.js', import.meta.url));
export const DIST = fileURLToPath(new URL('./dist/beacon.min.js', import.meta.url));

export function sourceHash(source) {
  return createHash('sha256').update(source).digest('hex');
}

export function banner(source) {
  return `/*! perfplat beacon.js (MIT) source sha256:${sourceHash(source)} */\n`;
}

export async function build(source = readFileSync(SOURCE, 'utf8')) {
  const { minify } = await import('terser');
  const out = await minify(source, {
    ecma: 2017,
    compress: { passes: 2 },
    mangle: true,
    format: { comments: false },
  });
  return banner(source) + out.code + '\n';
}

async function main() {
  const built = await build();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(DIST, 'utf8');
    } catch {
      // missing: reported below
    }
    if (current !== built) {
      console.error('dist/beacon.min.js is out of date with beacon.js: run `make beacon` and commit it');
      process.exit(1);
    }
    console.log('dist/beacon.min.js is up to date');
    return;
  }
  mkdirSync(new URL('./dist/', import.meta.url), { recursive: true });
  writeFileSync(DIST, built);
  console.log(`wrote ${DIST} (${Buffer.byteLength(built)} bytes)`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
