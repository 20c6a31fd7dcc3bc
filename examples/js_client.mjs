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

provider.once('sync', () => {
  const guests = ydoc.getMap('guests')
  const guest = new Y.Map()
  guest.set('name', 'Grace Hopper')
  guest.set('rsvp', 'accepted')
  guests.set('g-grace', guest)
  console.log(JSON.stringify(guests.toJSON()))
  // The update is already queued on the socket; closing sends it, then the close frame.
  provider.destroy()
  ydoc.destroy() // stops the awareness timer, so Node can exit
})
