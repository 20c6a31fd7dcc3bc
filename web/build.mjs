// Build the planner app into the Python package (crdt_server/edge/webapp_bundle/), so that
// `pip install` + `crdt-server serve` serves it with no Node. Run: npm run build.
//
// The script and style sheet get content hashes in their names (cached for a year by the
// server); index.html, the service worker (with its list of files to keep offline) and the
// manifest keep fixed names and are revalidated on every load.
import * as esbuild from 'esbuild'
import { createHash } from 'node:crypto'
import { mkdir, readFile, readdir, rm, writeFile, copyFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { execSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, '..', 'crdt_server', 'edge', 'webapp_bundle')

await rm(out, { recursive: true, force: true })
await mkdir(out, { recursive: true })
const result = await esbuild.build({
  entryPoints: [join(here, 'src', 'main.js'), join(here, 'src', 'styles.css')],
  bundle: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  legalComments: 'eof',
  entryNames: 'app-[hash]',
  // The run of show's editor (Tiptap) is imported on demand: its own chunk, loaded only
  // when someone opens it (chunks are content-hashed like the app).
  splitting: true,
  chunkNames: 'chunk-[hash]',
  outdir: out,
  metafile: true,
  logLevel: 'warning'
})
const outputs = Object.entries(result.metafile.outputs)
const entry = (source) => basename(outputs.find(([, o]) => o.entryPoint && o.entryPoint.endsWith(source))[0])
const js = entry('src/main.js')
const css = entry('src/styles.css')
for (const [file, output] of outputs) {
  if (output.entryPoint && output.entryPoint.endsWith('src/runofshow.js')) console.log(`run of show chunk: ${basename(file)}, ${output.bytes} bytes`)
}
const html = (await readFile(join(here, 'src', 'index.html'), 'utf8')).replace('__JS__', js).replace('__CSS__', css)
await writeFile(join(out, 'index.html'), html)
for (const file of await readdir(join(here, 'public'))) await copyFile(join(here, 'public', file), join(out, file))

const files = (await readdir(out)).filter((f) => f !== 'sw.js').sort()
const shell = ['/app/', ...files.filter(Boolean).map((f) => `/app/${f}`)]
const hash = createHash('sha256')
for (const file of files) hash.update(file).update(await readFile(join(out, file)))
const version = hash.digest('hex').slice(0, 16)
const sw = (await readFile(join(here, 'src', 'sw.js'), 'utf8'))
  .replace('__VERSION__', version)
  .replace('__SHELL__', JSON.stringify(shell))
await writeFile(join(out, 'sw.js'), sw)
// The hash of the sources this bundle was built from: scripts/build-web rebuilds only when
// it differs (file times cannot tell, a fresh clone gives every file the same time).
const sources = execSync(
  'find src public build.mjs package.json package-lock.json -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-64',
  { cwd: here, encoding: 'utf8' }
)
await writeFile(join(out, '.sources'), sources)
console.log(`built ${js}, ${css} into ${out} (version ${version})`)
