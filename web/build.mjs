// Builds the browser bundles into dist/ (committed, so the relay embeds them and `cargo run`
// needs no Node). `--check` builds into memory and fails when dist/ differs: the committed
// bundle must be exactly what the sources produce. `--tests` bundles the Node unit tests into
// target/test/.
import { build } from 'esbuild';
import { readFileSync, readdirSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = new Set(process.argv.slice(2));

/** The bundles the relay serves and the Jellyfin plugin embeds. */
const bundles = [
  { entry: 'src/demo.ts', out: 'dist/lockstep-demo.js', format: 'iife' },
  { entry: 'src/jellyfin.ts', out: 'dist/lockstep-jellyfin.js', format: 'iife' },
  { entry: 'src/index.ts', out: 'dist/lockstep.mjs', format: 'esm' },
];

const common = {
  bundle: true,
  target: ['es2020', 'chrome87', 'firefox78', 'safari15'],
  legalComments: 'none',
  charset: 'utf8',
  logLevel: 'warning',
  absWorkingDir: here,
};

async function buildBundles(write) {
  const outputs = [];
  for (const b of bundles) {
    const result = await build({
      ...common,
      entryPoints: [b.entry],
      format: b.format,
      minify: true,
      write: false,
      outfile: b.out,
    });
    const text = result.outputFiles[0].text;
    outputs.push({ path: b.out, text });
    if (write) {
      mkdirSync(join(here, dirname(b.out)), { recursive: true });
      writeFileSync(join(here, b.out), text);
    }
  }
  return outputs;
}

async function buildTests() {
  const dir = join(here, 'test/unit');
  const entries = readdirSync(dir).filter((f) => f.endsWith('.test.ts'));
  await build({
    ...common,
    target: ['node18'],
    platform: 'node',
    format: 'esm',
    entryPoints: entries.map((f) => join('test/unit', f)),
    outdir: 'target/test',
    outExtension: { '.js': '.mjs' },
    sourcemap: 'inline',
  });
}

if (args.has('--tests')) {
  await buildTests();
} else if (args.has('--check')) {
  const outputs = await buildBundles(false);
  const stale = outputs.filter(
    (o) => !existsSync(join(here, o.path)) || readFileSync(join(here, o.path), 'utf8') !== o.text,
  );
  if (stale.length > 0) {
    console.error(
      `web/${stale.map((o) => o.path).join(', web/')} differ from a fresh build of web/src: ` +
        'run `npm run build` in web/ and commit dist/',
    );
    process.exit(1);
  }
  console.log(`dist/ matches a fresh build (${outputs.length} bundles)`);
} else {
  const outputs = await buildBundles(true);
  for (const o of outputs) console.log(`${o.path}  ${(o.text.length / 1024).toFixed(1)} KiB`);
}
