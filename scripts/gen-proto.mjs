// Generates static protobuf code (JS + .d.ts) from proto/*.proto into src/generated/.
// The output is build output: never edit it, never commit it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const bin = (name) => join('node_modules', '.bin', name);
mkdirSync('src/generated', { recursive: true });
for (const file of readdirSync('proto').filter((f) => f.endsWith('.proto'))) {
  const base = file.replace(/\.proto$/, '');
  const js = join('src/generated', `${base}.js`);
  execFileSync(bin('pbjs'), ['-t', 'static-module', '-w', 'es6', '--force-number', '--no-verify', '--no-convert', '--no-delimited', '-o', js, join('proto', file)], { stdio: 'inherit' });
  // ESM needs the explicit file name of protobufjs' minimal runtime.
  writeFileSync(js, readFileSync(js, 'utf8').replace('"protobufjs/minimal"', '"protobufjs/minimal.js"'));
  execFileSync(bin('pbts'), ['-o', join('src/generated', `${base}.d.ts`), js], { stdio: 'inherit' });
}
