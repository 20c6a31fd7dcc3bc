// The wedding's documents in this browser: one Y.Doc per document the person may read, kept
// on the device (IndexedDB, so edits made offline survive a reload) and synced with the
// server over one of two transports, as the server's access answer says (`transport`,
// CRDT_SERVER_APP_TRANSPORT):
//
// - `collab`: one socket per wedding (`/collab/{wedding}`) carrying every document, through
//   Tiptap's own `@hocuspocus/provider` (a HocuspocusProviderWebsocket shared by one
//   HocuspocusProvider per document);
// - `sync`: one socket per document (`/sync/{wedding}/{doc}`), the stock y-websocket provider.
//
// The server echoes every update to its sender once it is committed; that echo is the proof
// an edit is safe. `PendingEdits` counts local edits the server has not confirmed yet, and
// keeps the count across reloads.

import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { IndexeddbPersistence } from 'y-indexeddb'

/** The origin of every edit made in this app (other origins are remote or from storage). */
export const LOCAL = 'planner-app'

/** The origin of one writer in this app (a notes field): its edits are this app's like
 *  LOCAL's, and a Y.UndoManager can track that writer alone (or all of them, by class). */
export class LocalOrigin {
  constructor (what) {
    this.app = LOCAL
    this.what = what
  }
}

export const localOrigin = (what) => new LocalOrigin(what)

/** Writes the app makes for itself, not as a person's action (a notes field's Y.Text made
 *  when its form opens): local, but no step of the undo history. */
export const HOUSEKEEPING = { app: LOCAL, what: 'housekeeping' }

export function isHousekeeping (origin) {
  return origin === HOUSEKEEPING
}

/** Whether an edit was made in this app: LOCAL, a `localOrigin`, or an undo of either. */
export function isLocal (origin) {
  if (origin === LOCAL) return true
  // An undo manager tracks itself too (its own undos and redos).
  if (origin instanceof Y.UndoManager) return [...origin.trackedOrigins].some((o) => o !== origin && isLocal(o))
  return origin !== null && typeof origin === 'object' && origin.app === LOCAL
}

export const KINDS = ['guests', 'seating', 'timeline', 'budget', 'tasks']

const MESSAGE_SYNC = 0
const SYNC_STEP1 = 0
const SYNC_STEP2 = 1
const SYNC_UPDATE = 2

function rangesOf (deleteSet) {
  const ranges = []
  deleteSet.clients.forEach((items, client) => {
    for (const item of items) ranges.push([client, item.clock, item.len])
  })
  return ranges
}

/**
 * Local edits not yet confirmed by the server: each is remembered by the clock its items end
 * at (per Yjs client) and the ranges it deleted. An edit is confirmed once the server's
 * messages (its echo of the update, its state vector, its sync step 2) cover both.
 */
class PendingEdits {
  constructor (key, onChange) {
    this.key = key
    this.onChange = onChange
    this.confirmedClock = new Map()
    this.confirmedRanges = []
    try {
      this.edits = JSON.parse(localStorage.getItem(key) || '[]')
    } catch {
      this.edits = []
    }
  }

  get count () {
    return this.edits.length
  }

  add (update, clientID) {
    const meta = Y.parseUpdateMeta(update)
    const { ds } = Y.decodeUpdate(update)
    this.edits.push({ client: clientID, clock: meta.to.get(clientID) ?? null, ranges: rangesOf(ds) })
    this.save()
  }

  confirmUpdate (update) {
    const meta = Y.parseUpdateMeta(update)
    meta.to.forEach((clock, client) => this.confirmClock(client, clock))
    this.confirmedRanges.push(...rangesOf(Y.decodeUpdate(update).ds))
    this.settle()
  }

  confirmStateVector (stateVector) {
    Y.decodeStateVector(stateVector).forEach((clock, client) => this.confirmClock(client, clock))
    this.settle()
  }

  confirmClock (client, clock) {
    if ((this.confirmedClock.get(client) ?? 0) < clock) this.confirmedClock.set(client, clock)
  }

  covered ([client, clock, len]) {
    return this.confirmedRanges.some(([c, start, n]) => c === client && start <= clock && clock + len <= start + n)
  }

  settle () {
    const before = this.edits.length
    this.edits = this.edits.filter((edit) =>
      (edit.clock !== null && (this.confirmedClock.get(edit.client) ?? 0) < edit.clock) ||
      !edit.ranges.every((range) => this.covered(range))
    )
    if (this.edits.length === 0) this.confirmedRanges = []
    if (this.edits.length !== before) this.save()
  }

  save () {
    if (this.edits.length) localStorage.setItem(this.key, JSON.stringify(this.edits))
    else localStorage.removeItem(this.key)
    this.onChange()
  }

  clear () {
    this.edits = []
    this.save()
  }
}

/** Confirm pending edits from one server message (its y-protocols part: a sync step 1's
 *  state vector, a step 2 or an update); other messages are not ours to read. */
function confirmFrom (decoder, pending) {
  try {
    if (decoding.readVarUint(decoder) !== MESSAGE_SYNC) return
    const type = decoding.readVarUint(decoder)
    const payload = decoding.readVarUint8Array(decoder)
    if (type === SYNC_STEP1) pending.confirmStateVector(payload)
    else if (type === SYNC_STEP2 || type === SYNC_UPDATE) pending.confirmUpdate(payload)
  } catch {
    // Not a sync message we can read: the provider handles (or reports) it.
  }
}

/** Reads the server's sync messages as they arrive, to confirm pending edits. */
function watchServer (provider, pending) {
  provider.on('status', ({ status }) => {
    if (status !== 'connected' || !provider.ws) return
    provider.ws.addEventListener('message', (event) => {
      confirmFrom(decoding.createDecoder(new Uint8Array(event.data)), pending)
    })
  })
}

/** A close code at the start of a Hocuspocus CLOSE message's reason ("4404 ..."). */
function codeOf (reason) {
  const found = /^(\d{4})\b/.exec(reason || '')
  return found ? Number(found[1]) : 1000
}

/** One document on the wedding's shared `/collab` socket: a HocuspocusProvider, shown to
 *  the rest of the app as the y-websocket provider is (awareness, connected, synced,
 *  closed with a code). */
class CollabLink {
  constructor (sync, room) {
    this.socket = sync.socket
    this.provider = new HocuspocusProvider({
      websocketProvider: sync.socket,
      name: room.name,
      document: room.doc,
      // A function: the server asks for the token again before it expires (in band).
      token: () => sync.token
    })
    // The first refusal after an authentication may be an expired token: the app gets a
    // fresh one and attaches again. A second in a row is a refusal (4403), not asked again.
    this.refusals = 0
    this.provider.on('message', ({ event }) => {
      const decoder = decoding.createDecoder(new Uint8Array(event.data))
      decoding.readVarString(decoder)
      confirmFrom(decoder, room.pending)
    })
    this.provider.on('authenticated', () => {
      this.refusals = 0
      room.everConnected = true
      sync.changed()
    })
    this.provider.on('authenticationFailed', ({ reason }) => {
      this.refusals += 1
      sync.closed(room, { code: this.refusals > 1 ? 4403 : 4401, reason })
    })
    // A CLOSE message (a document ended for good: its reason starts with the code) or the
    // shared socket's own close (transient: the socket reconnects by itself).
    this.provider.on('close', ({ event }) => {
      if (event && event.code === 1000 && codeOf(event.reason) !== 1000) {
        sync.closed(room, { code: codeOf(event.reason), reason: event.reason })
      }
      sync.changed()
    })
    this.provider.on('synced', () => sync.changed())
    this.provider.on('unsyncedChanges', () => sync.changed())
    this.provider.attach()
  }

  get awareness () {
    return this.provider.awareness
  }

  get connected () {
    return this.socket.status === 'connected' && this.provider.isAuthenticated
  }

  get synced () {
    return this.provider.isSynced
  }

  get failing () {
    return this.socket.status !== 'connected' && this.socket.failedAttempts > 0
  }

  /** Decided afresh under the current token (a new Auth): detach, then attach again. */
  reconnect () {
    this.provider.detach()
    this.provider.attach()
  }

  useToken () {}

  disconnect () {
    this.provider.detach()
  }
}

/** One document on its own `/sync` socket: the stock y-websocket provider. */
class SyncLink {
  constructor (sync, room) {
    this.provider = new WebsocketProvider(sync.wsUrl, room.name, room.doc, {
      params: { token: sync.token },
      // Each tab speaks to the server itself: the echo is what confirms an edit.
      disableBc: true,
      maxBackoffTime: 2000
    })
    watchServer(this.provider, room.pending)
    this.provider.on('status', ({ status }) => {
      if (status === 'connected') room.everConnected = true
      sync.changed()
    })
    this.provider.on('sync', () => sync.changed())
    this.provider.on('closed', (event) => sync.closed(room, event))
    this.provider.on('connection-close', () => sync.changed())
  }

  get awareness () {
    return this.provider.awareness
  }

  get connected () {
    return this.provider.wsconnected
  }

  get synced () {
    return this.provider.synced
  }

  get failing () {
    return !this.provider.wsconnected && this.provider.wsUnsuccessfulReconnects > 0
  }

  useToken (token) {
    this.provider.params = { token }
  }

  reconnect () {
    this.provider.disconnect()
    this.provider.connect()
  }

  disconnect () {
    this.provider.disconnect()
  }
}

/**
 * The wedding's one socket of the `collab` transport. The app opens it as soon as it knows
 * the wedding, before the server has said what the person may open: its handshake (a round
 * trip, 562.5 ms on a slow phone) then overlaps that request, and the documents attach to
 * it when the answer comes (HocuspocusProviderWebsocket takes providers at any time).
 */
export function collabSocket (wedding) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  const socket = new HocuspocusProviderWebsocket({
    url: `${scheme}://${location.host}/collab/${encodeURIComponent(wedding)}`,
    maxDelay: 2000
  })
  // Attempts that closed before the server said anything (as y-websocket's
  // wsUnsuccessfulReconnects): more than none and the app shows itself offline.
  socket.failedAttempts = 0
  socket.answered = false
  socket.onChanged = () => {}
  socket.on('connect', () => {
    socket.failedAttempts = 0
    socket.answered = true
    socket.onChanged()
  })
  socket.on('disconnect', () => {
    if (!socket.answered) socket.failedAttempts += 1
    socket.answered = false
    socket.onChanged()
  })
  socket.on('status', () => socket.onChanged())
  return socket
}

/** One room: its Y.Doc, its local copy, its provider and its pending edits. */
class Room {
  constructor (sync, kind, access, { persist }) {
    this.kind = kind
    this.access = access
    this.name = `${sync.wedding}/${kind}`
    this.doc = new Y.Doc()
    this.storedLocally = true
    // A projected document (the server hides some of its fields from this role: /access
    // lists it) is another room behind the same URL: its local copy has its own name, and
    // the copy kept of the other one (from before the server projected it, or since it
    // stopped) is dropped rather than merged into a read-only view.
    const projected = (sync.projected || []).includes(kind)
    const local = `crdt-server:${this.name}`
    this.pending = new PendingEdits(`crdt-server.pending:${this.name}`, () => sync.changed())
    if (access !== 'write' && this.pending.count) {
      // Edits made while this person could write it (before their role became `operate`,
      // say): the server now refuses them, so the local copy holding them is dropped
      // rather than shown as if they might still go through.
      this.pending.clear()
      if (persist) dropDatabase(projected ? `${local}@projection` : local)
    }
    if (persist) dropDatabase(projected ? local : `${local}@projection`)
    this.persistence = persist
      ? new IndexeddbPersistence(projected ? `${local}@projection` : local, this.doc)
      : null
    this.closed = null
    this.everConnected = false
    this.link = sync.socket ? new CollabLink(sync, this) : new SyncLink(sync, this)
    /** The awareness of this document (`provider.awareness`, on either transport). */
    this.provider = { awareness: this.link.awareness }
    this.doc.on('update', (update, origin) => {
      if (isLocal(origin)) {
        this.pending.add(update, this.doc.clientID)
        this.markStored()
      }
      sync.changed()
    })
    this.provider.awareness.on('change', () => sync.changed())
  }

  /** Track that the local copy has this edit: a read transaction on the same store ends
   *  only after the write y-indexeddb started for it. */
  markStored () {
    if (!this.persistence) return
    this.storedLocally = false
    const stamp = (this.storeStamp = (this.storeStamp || 0) + 1)
    this.persistence.whenSynced.then(() => {
      const db = this.persistence.db
      if (!db) return
      const txn = db.transaction(['updates'], 'readonly')
      txn.oncomplete = () => {
        if (this.storeStamp === stamp) {
          this.storedLocally = true
          this.syncChanged()
        }
      }
      txn.objectStore('updates').count()
    })
  }

  get connected () {
    return this.link.connected
  }

  get synced () {
    return this.link.synced
  }
}

/**
 * The wedding's rooms and their combined state. `onChange()` is called (at most once per
 * animation frame) whenever anything a view shows may have changed.
 */
export class WeddingSync {
  /** `socket`: the wedding's `collab` socket when the app opened it already
   *  (collabSocket), used for `collab` and closed for `sync`. */
  constructor ({ wedding, token, access, onChange, onClosed, socket = null }) {
    this.wedding = wedding
    this.token = token
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    this.wsUrl = `${scheme}://${location.host}/sync`
    /** `collab` (one socket for the wedding) or `sync` (one per document). */
    this.transport = access.transport === 'sync' ? 'sync' : 'collab'
    this.socket = null
    if (this.transport === 'collab') {
      this.socket = socket || collabSocket(wedding)
      this.socket.onChanged = () => this.changed()
    } else if (socket) {
      socket.destroy()
    }
    this.onChange = onChange
    this.onClosed = onClosed
    this.frame = 0
    this.rooms = {}
    this.projected = access.projected || []
    for (const kind of KINDS) {
      if (access.docs[kind] && access.docs[kind] !== 'none') {
        this.rooms[kind] = new Room(this, kind, access.docs[kind], { persist: true })
      }
    }
    this.conflicts = access.docs.conflicts && access.docs.conflicts !== 'none'
      ? new Room(this, 'conflicts', 'read', { persist: false })
      : null
    for (const room of this.all()) room.syncChanged = () => this.changed()
    addEventListener('online', () => this.changed())
    addEventListener('offline', () => this.changed())
  }

  all () {
    return [...Object.values(this.rooms), ...(this.conflicts ? [this.conflicts] : [])]
  }

  changed () {
    if (this.frame) return
    this.frame = requestAnimationFrame(() => {
      this.frame = 0
      this.onChange()
    })
  }

  closed (room, event) {
    room.closed = event
    this.onClosed(room, event)
    this.changed()
  }

  /** Use a fresh token. A link's token: the open connections carry the old one's expiry,
   *  so reconnect. A device session's (`reconnect: false`): its sockets live while the
   *  session does, so only the next connection takes the new token. */
  setToken (token, { reconnect = true } = {}) {
    this.token = token
    for (const room of this.all()) {
      room.link.useToken(token)
      if (!reconnect) continue
      room.closed = null
      room.link.reconnect()
    }
  }

  disconnect () {
    for (const room of this.all()) room.link.disconnect()
    if (this.socket) this.socket.disconnect()
  }

  /** Forget everything kept on this device (the wedding was deleted). */
  async clearLocal () {
    this.disconnect()
    for (const room of this.all()) {
      room.pending.clear()
      if (room.persistence) await room.persistence.clearData()
    }
  }

  get pendingCount () {
    return this.all().reduce((n, room) => n + room.pending.count, 0)
  }

  get storedLocally () {
    return this.all().every((room) => room.storedLocally)
  }

  /** `offline`, `connecting`, `syncing` or `synced`. */
  get status () {
    const rooms = this.all()
    if (!navigator.onLine) return 'offline'
    if (rooms.some((room) => !room.connected)) {
      const failing = rooms.some((room) => room.link.failing)
      return failing ? 'offline' : 'connecting'
    }
    if (rooms.some((room) => !room.synced) || this.pendingCount > 0) return 'syncing'
    return 'synced'
  }

  /** Set this person's presence (section and the entity being edited) in every room. */
  setPresence (state) {
    for (const room of this.all()) {
      room.provider.awareness.setLocalStateField('here', state)
    }
  }

  setUser (user) {
    for (const room of this.all()) room.provider.awareness.setLocalStateField('user', user)
  }

  /** Everyone else here: one entry per user, with the section and entity they are on. */
  others () {
    const people = new Map()
    for (const room of this.all()) {
      const awareness = room.provider.awareness
      awareness.getStates().forEach((state, clientID) => {
        if (clientID === awareness.clientID || !state || !state.user) return
        const id = state.user.id || `client-${clientID}`
        const here = state.here || {}
        const seen = people.get(id)
        if (!seen || (here.at || 0) > (seen.here.at || 0)) {
          people.set(id, { id, name: state.user.name || 'Someone', role: state.user.role || '', color: state.user.color, here })
        }
      })
    }
    return [...people.values()].sort((a, b) => a.name.localeCompare(b.name))
  }
}

/** Delete one IndexedDB database if this device has it (no error if not). */
function dropDatabase (name) {
  if (typeof indexedDB === 'undefined') return
  const request = indexedDB.deleteDatabase(name)
  request.onerror = request.onblocked = () => {}
}

/**
 * Forget everything this device keeps of a wedding (it was deleted): the documents'
 * IndexedDB copies, unconfirmed edits, the activity feed, the names and access seen.
 */
export async function forgetWedding (wedding) {
  const prefixes = [
    `crdt-server.pending:${wedding}/`,
    `crdt-server.ops:${wedding}:`,
    `crdt-server.activity:${wedding}:`,
    `crdt-server.access:${wedding}:`,
    `crdt-server.people:${wedding}`
  ]
  for (const key of Object.keys(localStorage)) {
    if (prefixes.some((p) => key.startsWith(p))) localStorage.removeItem(key)
  }
  const databases = indexedDB.databases ? await indexedDB.databases() : []
  await Promise.all(databases
    .filter((db) => db.name && db.name.startsWith(`crdt-server:${wedding}/`))
    .map((db) => new Promise((resolve) => {
      const request = indexedDB.deleteDatabase(db.name)
      request.onsuccess = request.onerror = request.onblocked = () => resolve()
    })))
}

export { Y }
