// Build the planner app into the Python package (crdt_server/edge/webapp_bundle/), so that
// `pip install` + `crdt-server serve` serves it with no Node. Run: npm run build.
//
// The script and style sheet get content hashes in their names (cached for a year by the
// server); index.html, the service worker (with its list of files to keep offline) and the
// manifest keep fixed names and are revalidated on every load.
import * as esbuild from 'esbuild'
import { createHash } from 'node:crypto'
import { brotliCompressSync, gzipSync, constants as zlib } from 'node:zlib'
import { mkdir, readFile, readdir, rm, writeFile, copyFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { execSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, '..', 'crdt_server', 'edge', 'webapp_bundle')
const rsvpOut = join(here, '..', 'crdt_server', 'edge', 'rsvp_bundle')

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
// Every chunk the app imports statically, transitively: the page names them all
// (modulepreload), so the browser fetches them with the script instead of one round trip
// later, once it has read the script's imports (a round trip is 562.5 ms on a slow phone).
const outputOf = (name) => result.metafile.outputs[Object.keys(result.metafile.outputs).find((f) => basename(f) === name)]
const preload = []
for (const todo = [js]; todo.length;) {
  for (const imported of outputOf(todo.pop()).imports) {
    const name = basename(imported.path)
    if (imported.kind === 'import-statement' && !preload.includes(name)) { preload.push(name); todo.push(name) }
  }
}
const html = (await readFile(join(here, 'src', 'index.html'), 'utf8'))
  .replace('__JS__', js).replace('__CSS__', css)
  .replace('  __PRELOAD__\n', preload.map((name) => `  <link rel="modulepreload" href="/app/${name}">\n`).join(''))
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
// The guests' RSVP page (/rsvp/): a bundle of its own (no Yjs, no lit), its own service
// worker and scope, so a guest's phone loads a few kilobytes and nothing of the planner.
await rm(rsvpOut, { recursive: true, force: true })
await mkdir(rsvpOut, { recursive: true })
const rsvpResult = await esbuild.build({
  entryPoints: [join(here, 'src', 'rsvp', 'main.js'), join(here, 'src', 'rsvp', 'rsvp.css')],
  bundle: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  legalComments: 'eof',
  entryNames: 'rsvp-[hash]',
  outdir: rsvpOut,
  metafile: true,
  logLevel: 'warning'
})
const rsvpOutputs = Object.entries(rsvpResult.metafile.outputs)
const rsvpEntry = (source) => basename(rsvpOutputs.find(([, o]) => o.entryPoint && o.entryPoint.endsWith(source))[0])
const rsvpJs = rsvpEntry('src/rsvp/main.js')
const rsvpCss = rsvpEntry('src/rsvp/rsvp.css')
const rsvpHtml = (await readFile(join(here, 'src', 'rsvp', 'index.html'), 'utf8')).replace('__JS__', rsvpJs).replace('__CSS__', rsvpCss)
await writeFile(join(rsvpOut, 'index.html'), rsvpHtml)
const rsvpFiles = (await readdir(rsvpOut)).sort()
const rsvpHash = createHash('sha256')
for (const file of rsvpFiles) rsvpHash.update(file).update(await readFile(join(rsvpOut, file)))
const rsvpSw = (await readFile(join(here, 'src', 'rsvp', 'sw.js'), 'utf8'))
  .replace('__VERSION__', rsvpHash.digest('hex').slice(0, 16))
  .replace('__SHELL__', JSON.stringify(['/rsvp/', ...rsvpFiles.filter((f) => f !== 'index.html').map((f) => `/rsvp/${f}`)]))
await writeFile(join(rsvpOut, 'sw.js'), rsvpSw)
console.log(`built ${rsvpJs}, ${rsvpCss} into ${rsvpOut}`)

// Each text file also compressed, once, here (gzip at level 9, brotli at 11): the server
// sends the smallest the browser accepts (Content-Encoding, Vary: Accept-Encoding) and never
// compresses on a request. The service worker and the page stay small anyway, but go too.
async function precompress (dir) {
  for (const file of await readdir(dir)) {
    if (!/\.(js|css|html|svg|webmanifest|json)$/.test(file)) continue
    const body = await readFile(join(dir, file))
    const gz = gzipSync(body, { level: 9 })
    const br = brotliCompressSync(body, {
      params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length }
    })
    // Only where it saves something (a tiny icon may grow).
    if (gz.length < body.length) await writeFile(join(dir, `${file}.gz`), gz)
    if (br.length < body.length) await writeFile(join(dir, `${file}.br`), br)
  }
}
await precompress(out)
await precompress(rsvpOut)

// The hash of the sources this bundle was built from: scripts/build-web rebuilds only when
// it differs (file times cannot tell, a fresh clone gives every file the same time).
const sources = execSync(
  'find src public build.mjs package.json package-lock.json -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-64',
  { cwd: here, encoding: 'utf8' }
)
await writeFile(join(out, '.sources'), sources)
console.log(`built ${js}, ${css} into ${out} (version ${version})`)
