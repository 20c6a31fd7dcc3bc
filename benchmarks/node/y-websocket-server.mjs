// y-websocket-server (@y/websocket-server 0.1.1, the server split out of y-websocket) as a
// benchmark peer: its stock setupWSConnection with y-leveldb persistence (YPERSISTENCE),
// bound to 127.0.0.1. The room is the request path, so /sync/{wedding}/{doc} works as is.
//
//   node y-websocket-server.mjs --port 0 --data-dir DIR
import http from 'node:http'
import path from 'node:path'
import { WebSocketServer } from 'ws'
import { parseArgs } from './args.mjs'

const { port, dataDir } = parseArgs(process.argv.slice(2))
// utils.js reads YPERSISTENCE when it is first imported.
process.env.YPERSISTENCE = path.join(dataDir, 'leveldb')
const { setupWSConnection } = await import('@y/websocket-server/utils')

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false })
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' })
  res.end('okay')
})
wss.on('connection', setupWSConnection)
server.on('upgrade', (request, socket, head) => {
  wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request))
})
server.listen(port, '127.0.0.1', () => {
  console.log(`y-websocket listening on http://127.0.0.1:${server.address().port}`)
})
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close()
    process.exit(0)
  })
}
