// Hocuspocus (@hocuspocus/server 3.4.4, the last major that runs on Node 20) with its SQLite
// extension as a benchmark peer, bound to 127.0.0.1. Default debounce (the whole document
// is stored 2 s after the last change, at most 10 s late) and no auth hooks.
//
// Hocuspocus speaks its own dialect of y-protocols: every message starts with the document
// name, and a client must authenticate (an empty token is fine here) before syncing. The
// load generator speaks it when the server's dialect is "hocuspocus".
//
//   node hocuspocus-server.mjs --port 0 --data-dir DIR
import path from 'node:path'
import { Server } from '@hocuspocus/server'
import { SQLite } from '@hocuspocus/extension-sqlite'
import { parseArgs } from './args.mjs'

const { port, dataDir } = parseArgs(process.argv.slice(2))
const sqlite = new SQLite({ database: path.join(dataDir, 'hocuspocus.sqlite') })
const server = new Server({ quiet: true, stopOnSignals: false, extensions: [sqlite] })
// The extension creates its table without waiting for it (onConfigure), so a document
// loaded right after start fails with "no such table". Wait for the table before listening.
for (let i = 0; i < 100 && sqlite.db === undefined; i++) {
  await new Promise((resolve) => setTimeout(resolve, 10))
}
await new Promise((resolve, reject) => {
  sqlite.db.run(sqlite.configuration.schema, (error) => (error ? reject(error) : resolve()))
})
// Server.listen() passes `address` where Node expects `host` (it would bind every
// interface), so listen on its HTTP server directly.
server.httpServer.listen(port, '127.0.0.1', () => {
  console.log(`hocuspocus listening on http://127.0.0.1:${server.httpServer.address().port}`)
})
let stopping = false
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, async () => {
    if (stopping) return
    stopping = true
    const timer = setTimeout(() => process.exit(1), 10000)
    try {
      await server.destroy() // stores every loaded document
    } finally {
      clearTimeout(timer)
      process.exit(0)
    }
  })
}
