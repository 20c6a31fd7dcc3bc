// The wedding's documents in this browser: one Y.Doc per document the person may read, kept
// on the device (IndexedDB, so edits made offline survive a reload) and synced with the
// server through the stock y-websocket provider.
//
// The server echoes every update to its sender once it is committed; that echo is the proof
// an edit is safe. `PendingEdits` counts local edits the server has not confirmed yet, and
// keeps the count across reloads.

import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { WebsocketProvider } from 'y-websocket'
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

export const KINDS = ['guests', 'seating', 'timeline', 'budget']

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

/** Reads the server's sync messages as they arrive, to confirm pending edits. */
function watchServer (provider, pending) {
  provider.on('status', ({ status }) => {
    if (status !== 'connected' || !provider.ws) return
    provider.ws.addEventListener('message', (event) => {
      try {
        const decoder = decoding.createDecoder(new Uint8Array(event.data))
        if (decoding.readVarUint(decoder) !== MESSAGE_SYNC) return
        const type = decoding.readVarUint(decoder)
        const payload = decoding.readVarUint8Array(decoder)
        if (type === SYNC_STEP1) pending.confirmStateVector(payload)
        else if (type === SYNC_STEP2 || type === SYNC_UPDATE) pending.confirmUpdate(payload)
      } catch {
        // Not a sync message we can read: y-websocket handles (or reports) it.
      }
    })
  })
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
    this.provider = new WebsocketProvider(sync.wsUrl, this.name, this.doc, {
      params: { token: sync.token },
      // Each tab speaks to the server itself: the echo is what confirms an edit.
      disableBc: true,
      maxBackoffTime: 2000
    })
    this.closed = null
    this.everConnected = false
    watchServer(this.provider, this.pending)
    this.doc.on('update', (update, origin) => {
      if (isLocal(origin)) {
        this.pending.add(update, this.doc.clientID)
        this.markStored()
      }
      sync.changed()
    })
    this.provider.on('status', ({ status }) => {
      if (status === 'connected') this.everConnected = true
      sync.changed()
    })
    this.provider.on('sync', () => sync.changed())
    this.provider.awareness.on('change', () => sync.changed())
    this.provider.on('closed', (event) => sync.closed(this, event))
    this.provider.on('connection-close', () => sync.changed())
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
    return this.provider.wsconnected
  }

  get synced () {
    return this.provider.synced
  }
}

/**
 * The wedding's rooms and their combined state. `onChange()` is called (at most once per
 * animation frame) whenever anything a view shows may have changed.
 */
export class WeddingSync {
  constructor ({ wedding, token, access, onChange, onClosed }) {
    this.wedding = wedding
    this.token = token
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    this.wsUrl = `${scheme}://${location.host}/sync`
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
      room.provider.params = { token }
      if (!reconnect) continue
      room.closed = null
      room.provider.disconnect()
      room.provider.connect()
    }
  }

  disconnect () {
    for (const room of this.all()) room.provider.disconnect()
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
      const failing = rooms.some((room) => !room.connected && room.provider.wsUnsuccessfulReconnects > 0)
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
