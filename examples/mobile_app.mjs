// A native mobile app's loop, in Node: sign in from an emailed link with PKCE, keep the
// device secret in the keychain, edit offline into IndexedDB, restart, reconnect, converge.
// Usage: node mobile_app.mjs http://127.0.0.1:8000 you@example.com w1
// (`./scripts/example mobile_app ...` installs yjs, y-websocket, ws, y-indexeddb and
// fake-indexeddb into examples/node_modules.)
//
// It talks to whoever runs it on stdin/stdout, one JSON line per step: it prints
// {"step": "asked"} and reads the emailed link (what iOS or Android hands the app when the
// person taps it: the app claims /app/sign-in-app); it prints {"step": "offline"} and
// reads one line once the world has moved on without it; it ends with
// {"step": "converged", "guests": {...}}. On a phone, IndexedDB is the app's own storage and
// the keychain is the platform's; here fake-indexeddb and a Map stand in for them, and a
// "restart" drops every object of the app but those two, as a phone's process death would.
import 'fake-indexeddb/auto' // a real IndexedDB for Node, before y-indexeddb looks for it
import { createHash, randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence } from 'y-indexeddb'
import WebSocket from 'ws'

const base = (process.argv[2] ?? 'http://127.0.0.1:8000').replace(/\/$/, '')
const email = process.argv[3] ?? 'you@example.com'
const wedding = process.argv[4] ?? 'w1'
const room = `${wedding}/guests`
const keychain = new Map() // the platform keychain: survives a restart, never logged

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const say = (step, more = {}) => console.log(JSON.stringify({ step, ...more }))
const hear = async () => (await lines.next()).value ?? ''

async function api (path, body, headers = {}) {
  const answer = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body)
  })
  if (!answer.ok) throw new Error(`${path}: ${answer.status} ${await answer.text()}`)
  return answer.status === 204 ? null : answer.json()
}

// 1. Sign in. The verifier never leaves the app; the link's code is useless without it.
const verifier = randomBytes(48).toString('base64url')
const challenge = createHash('sha256').update(verifier).digest('base64url')
await api('/api/sign-in', { email, client: 'app', code_challenge: challenge })
say('asked')
const link = new URL(await hear()) // https://.../app/sign-in-app#code=...
const code = new URLSearchParams(link.hash.slice(1)).get('code')
const signedIn = await api('/api/sign-in/complete', {
  code, code_verifier: verifier, client: 'app', device_name: 'Example phone'
})
keychain.set('device_secret', signedIn.device_secret)
say('signed-in', { wedding: signedIn.wedding, role: signedIn.role })

// 2. A short token for the wedding, whenever one is needed, from the keychain's secret.
async function freshToken () {
  const answer = await api('/api/session/refresh', { wedding }, {
    Authorization: `Device ${keychain.get('device_secret')}`
  })
  // Rotated (once a day): keep the new secret before anything else.
  if (answer.device_secret) keychain.set('device_secret', answer.device_secret)
  return answer.token
}

// 3. The app: a document kept in IndexedDB (every edit lands there first), synced when
// online. Reads and edits work the same offline; the store is the offline queue.
async function startApp () {
  const doc = new Y.Doc()
  const stored = new IndexeddbPersistence(room, doc)
  await stored.whenSynced // what the last run left, before any network
  const provider = new WebsocketProvider(base.replace(/^http/, 'ws') + '/sync', room, doc, {
    WebSocketPolyfill: WebSocket,
    params: { token: await freshToken() },
    disableBc: true,
    connect: false
  })
  // A token lives 15 minutes; the socket of a device session's token outlives it, and
  // closes 4401 only when the device is signed out. Reconnects get a fresh token.
  provider.on('connection-close', (event) => {
    if (event?.code === 4401) {
      provider.disconnect() // signed out elsewhere: back to the sign-in screen
      return
    }
    freshToken().then((token) => { provider.params.token = token }, () => {})
  })
  return { doc, stored, provider, guests: doc.getMap('guests') }
}

const online = (app) => new Promise((resolve) => {
  if (app.provider.synced) return resolve()
  const onSync = (synced) => { if (synced) { app.provider.off('sync', onSync); resolve() } }
  app.provider.on('sync', onSync)
  app.provider.connect()
})

// The guests the server holds (committed): a read over HTTP.
async function serverGuests () {
  const answer = await fetch(`${base}/api/weddings/${wedding}/docs/guests`, {
    headers: { Authorization: `Bearer ${await freshToken()}` }
  })
  if (!answer.ok) throw new Error(`read: ${answer.status}`)
  return Object.keys((await answer.json()).guests ?? {})
}
const serverHas = async (guestId) => (await serverGuests()).includes(guestId)

async function until (check, what, seconds = 30) {
  const deadline = Date.now() + seconds * 1000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function addGuest (app, id, name) {
  app.doc.transact(() => {
    let guest = app.guests.get(id)
    if (!(guest instanceof Y.Map)) {
      guest = new Y.Map()
      app.guests.set(id, guest)
    }
    guest.set('name', name)
    guest.set('rsvp', 'accepted')
  })
}

let app = await startApp()
await online(app)
addGuest(app, 'g-online', 'Olive Online')
await until(() => serverHas('g-online'), 'the server to hold the online edit')

// 4. Offline: the edit goes to IndexedDB only. Then the process dies.
app.provider.disconnect()
say('offline')
await hear() // someone else edits meanwhile
addGuest(app, 'g-phone', 'Pip Phone')
app.provider.destroy()
await app.stored.destroy() // closes IndexedDB; its data stays
app.doc.destroy()

// 5. Restart: the offline edit is there before any network; then reconnect and converge.
app = await startApp()
say('restored', { guests: Object.keys(app.guests.toJSON()).sort() })
await online(app)
await until(() => serverHas('g-phone'), 'the server to hold the offline edit')
await until(async () => {
  const mine = app.guests.toJSON()
  return (await serverGuests()).every((id) => id in mine)
}, 'every edit the server holds')
say('converged', { guests: app.guests.toJSON() })
app.provider.destroy()
await app.stored.destroy()
app.doc.destroy()
lines.return?.()
process.stdin.destroy()
