// A stock Yjs client: yjs + y-websocket, exactly as a browser app embeds them.
// Usage: node js_client.mjs ws://127.0.0.1:8000/sync [token]
// (`./scripts/example js_client ...` installs yjs, y-websocket and ws into examples/node_modules)
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const url = process.argv[2] ?? 'ws://127.0.0.1:8000/sync'
const token = process.argv[3]

const ydoc = new Y.Doc()
const provider = new WebsocketProvider(url, 'w42/guests', ydoc, {
  WebSocketPolyfill: WebSocket, // browsers have WebSocket built in; Node needs `ws`
  params: token ? { token } : {},
  disableBc: true
})

provider.awareness.setLocalState({ user: { name: 'Ada (planner)' }, section: 'guests' })

const stop = () => {
  provider.destroy()
  ydoc.destroy() // stops the awareness timer, so Node can exit
}

// Refused at the upgrade (a bad or expired token, a wedding it may not open), the stock
// provider sees only a socket that closed (1006) and retries for ever. Stop after a few
// refusals in a row without ever syncing. (Never log `provider.url`: it holds the token.)
provider.on('connection-close', () => {
  if (!provider.synced && provider.wsUnsuccessfulReconnects >= 3) {
    console.error('refused by the server: check the token and the wedding id')
    process.exitCode = 1
    stop()
  }
})

provider.once('sync', () => {
  const guests = ydoc.getMap('guests')
  ydoc.transact(() => {
    // Create the entry only when it is absent: `guests.set(id, new Y.Map())` replaces a
    // whole existing entry (its contact, household, notes...) with an empty one.
    let guest = guests.get('g-grace')
    if (!(guest instanceof Y.Map)) {
      guest = new Y.Map()
      guests.set('g-grace', guest)
    }
    // Then write only the fields that change, in place: others' fields stay.
    guest.set('name', 'Grace Hopper')
    guest.set('rsvp', 'accepted')
  })
  console.log(JSON.stringify(guests.toJSON()))
  // The update is already queued on the socket; closing sends it, then the close frame.
  stop()
})
