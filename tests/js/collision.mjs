#!/usr/bin/env node
// A stock Yjs + y-websocket client forced onto a Yjs client id someone else owns (issue 73):
// its offline edits, made before it connects, sit at the clocks the owner used, so the two
// state vectors look alike and sync sends nothing of them; its next edit is past them and
// is refused: the server closes its socket with 4409. As the close-codes reference says, it
// starts a new Y.Doc (a new client id), syncs it, and applies its unsent edits to it as new
// edits, plus one made while it recovered. A second client then checks that every edit is
// on the server, none lost.
//
// Usage: node collision.mjs WS_BASE ROOM TOKEN TAKEN_ID   (prints one JSON object)

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

for (const level of ['log', 'info', 'debug']) console[level] = (...a) => console.error(...a)
const [base, room, token, taken] = process.argv.slice(2)
const deadline = Date.now() + 30000

function waitFor (check, what) {
  return new Promise((resolve, reject) => {
    const tick = () => {
      const found = check()
      if (found) return resolve(found)
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`))
      setTimeout(tick, 20)
    }
    tick()
  })
}

function connect (doc) {
  return new WebsocketProvider(base, room, doc, {
    WebSocketPolyfill: WebSocket, params: { token }, disableBc: true
  })
}

// The app's unsent edits: what it meant to write, kept until the server has it.
const unsent = [['g-off-1', 'Offline 1'], ['g-off-2', 'Offline 2'], ['g-off-3', 'Offline 3']]
const write = (doc, [key, name]) => doc.getMap('guests').set(key, { name })

const first = new Y.Doc()
first.clientID = Number(taken)
for (const edit of unsent) write(first, edit)
let closed = null
const provider = connect(first)
provider.on('connection-close', (event) => {
  if (closed === null && event) closed = event.code
})
await waitFor(() => provider.synced, 'the first sync')
unsent.push(['g-in-flight', 'In flight'])
write(first, unsent[unsent.length - 1])
await waitFor(() => closed !== null, 'the refusal')
provider.destroy()

const next = new Y.Doc()
const again = connect(next)
await waitFor(() => again.synced, 'the new document to sync')
unsent.push(['g-late', 'Written while recovering'])
for (const edit of unsent) write(next, edit)

const checker = new Y.Doc()
const check = connect(checker)
const wanted = Object.fromEntries(unsent.map(([key, name]) => [key, name]))
await waitFor(() => check.synced && Object.entries(wanted).every(
  ([key, name]) => checker.getMap('guests').get(key)?.name === name), 'every edit on the server')
const guests = Object.fromEntries(
  [...checker.getMap('guests').entries()].map(([key, value]) => [key, value.name]))
process.stdout.write(JSON.stringify({
  closed, firstClientID: first.clientID, nextClientID: next.clientID, guests
}) + '\n')
again.destroy()
check.destroy()
process.exit(0)
