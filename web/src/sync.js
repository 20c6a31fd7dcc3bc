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
//
// What a device keeps is per person (the token's `sub`): two people signed in on one browser
// (one origin, one IndexedDB) never load each other's copy, whose unsent items would go to
// the server as theirs. When the server refuses a document's update because its Yjs client
// id belongs to someone else (4409), the room starts a new Y.Doc from the server's state and
// re-applies its unsent edits to it (recover.js), and the app is told its document changed.

import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { IndexeddbPersistence } from 'y-indexeddb'
import { PendingEdits } from './pending.js'
import { rebuild, takenIdOf } from './recover.js'
import { kinds } from './schema.js'

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

// The documents (the server's kinds), in the order the app shows them: the guest list and
// the seating first, then the others as the server lists them.
const SHOWN_FIRST = ['guests', 'seating']
export const KINDS = [...SHOWN_FIRST, ...kinds.filter((kind) => !SHOWN_FIRST.includes(kind))]

/** The close code of a refused Yjs client id (the server's CLIENT_ID_TAKEN). */
export const CLIENT_ID_TAKEN = 4409

/** The IndexedDB name of person `sub`'s local copy of document `room` (`{wedding}/{kind}`):
 *  `crdt-server:{sub}:{wedding}/{kind}`, the sub URI-encoded (no `:` or `/` in it). */
export function localName (sub, room) {
  return `crdt-server:${encodeURIComponent(sub)}:${room}`
}

/** The localStorage key of person `sub`'s pending edits of document `room`. */
export function pendingKey (sub, room) {
  return `crdt-server.pending:${encodeURIComponent(sub)}:${room}`
}

const MESSAGE_SYNC = 0
const SYNC_STEP1 = 0
const SYNC_STEP2 = 1
const SYNC_UPDATE = 2

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

  /** For good (its document is replaced): the provider leaves the socket, which stays. */
  destroy () {
    this.provider.destroy()
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

  destroy () {
    this.provider.destroy()
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
    this.sync = sync
    this.kind = kind
    this.access = access
    this.name = `${sync.wedding}/${kind}`
    this.storedLocally = true
    // A projected document (the server hides some of its fields from this role: /access
    // lists it) is another room behind the same URL: its local copy has its own name, and
    // the copy kept of the other one (from before the server projected it, or since it
    // stopped) is dropped rather than merged into a read-only view.
    const projected = (sync.projected || []).includes(kind)
    const local = localName(sync.sub, this.name)
    this.localName = projected ? `${local}@projection` : local
    this.pending = new PendingEdits(pendingKey(sync.sub, this.name), () => sync.changed())
    if (access !== 'write' && this.pending.count) {
      // Edits made while this person could write it (before their role became `operate`,
      // say): the server now refuses them, so the local copy holding them is dropped
      // rather than shown as if they might still go through.
      this.pending.clear()
      if (persist) dropDatabase(this.localName)
    }
    if (persist) {
      dropDatabase(projected ? local : `${local}@projection`)
      // A projection kept under the name of the release before: nothing unsent in it.
      dropDatabase(`crdt-server:${this.name}@projection`)
    }
    this.persist = persist
    this.persistence = null
    this.closed = null
    this.everConnected = false
    this.recovering = null
    this.provider = { awareness: null }
    this.use(new Y.Doc())
    // Its local copy opens (once migrated, for a writer: `openLocal`) while it syncs.
    this.opened = persist
      ? this.openLocal(access === 'write' && !projected).catch(() => null)
      : Promise.resolve(null)
  }

  /** Sync `doc` (this room's from now on): a provider of its own, its edits counted. */
  use (doc) {
    const state = this.provider.awareness && this.provider.awareness.getLocalState()
    this.doc = doc
    this.link = this.sync.socket ? new CollabLink(this.sync, this) : new SyncLink(this.sync, this)
    /** The awareness of this document (`provider.awareness`, on either transport). */
    this.provider = { awareness: this.link.awareness }
    if (state) this.provider.awareness.setLocalState(state)
    doc.on('update', (update, origin) => {
      if (doc !== this.doc) return
      if (isLocal(origin)) {
        this.pending.add(update, doc.clientID)
        this.markStored()
      }
      this.sync.changed()
    })
    this.provider.awareness.on('change', () => this.sync.changed())
  }

  /**
   * This person's local copy of the document. Their first open since local copies became
   * per person takes over the device's one copy of the release before
   * (`crdt-server:{wedding}/{kind}`), its unsent edits included, when they may write it and
   * have no copy of their own yet, and deletes it: no one else's tab loads it afterwards.
   */
  async openLocal (migrate) {
    const old = `crdt-server:${this.name}`
    if (migrate && await databaseExists(old) && !(await databaseExists(this.localName))) {
      const before = new IndexeddbPersistence(old, this.doc)
      await before.whenSynced
      await before.destroy()
      this.pending.adopt(`crdt-server.pending:${this.name}`)
      const persistence = this.keepLocally(this.doc)
      await persistence.whenSynced
      await written(persistence.db)
      dropDatabase(old) // done once no tab has it open
      return persistence
    }
    const persistence = this.keepLocally(this.doc)
    await persistence.whenSynced
    return persistence
  }

  keepLocally (doc) {
    this.persistence = new IndexeddbPersistence(this.localName, doc)
    return this.persistence
  }

  /** Track that the local copy has this edit: a read transaction on the same store ends
   *  only after the write y-indexeddb started for it. */
  markStored () {
    if (!this.persist) return
    this.storedLocally = false
    const stamp = (this.storeStamp = (this.storeStamp || 0) + 1)
    this.opened.then(() => this.persistence && this.persistence.whenSynced).then(() => written(this.persistence && this.persistence.db)).then(() => {
      if (this.storeStamp === stamp) {
        this.storedLocally = true
        this.sync.changed()
      }
    })
  }

  /**
   * The server refused this document's update: a Yjs client id of it (`taken`) is someone
   * else's. Its provider goes at once (nothing more is sent from this Y.Doc); once the
   * server's state is fetched, a new Y.Doc holds it and this replica's unsent edits,
   * re-applied under fresh client ids (recover.js), and replaces this one everywhere: the
   * provider, the local copy, the pending edits and the views (`onDocChanged`). Offline,
   * the fetch is tried again until it is answered; edits made meanwhile go into the old
   * Y.Doc and are re-applied with the rest.
   */
  recover (taken) {
    if (this.recovering) return this.recovering
    this.link.destroy()
    this.recovering = (async () => {
      await this.opened
      let state = null
      for (let wait = 500; !this.sync.stopped; wait = Math.min(wait * 2, 30000)) {
        state = await this.serverState()
        if (state || this.sync.stopped) break
        await new Promise((resolve) => setTimeout(resolve, wait))
      }
      if (!state || this.sync.stopped) return
      const { doc, update } = rebuild(this.doc, state, taken)
      this.replaceWith(doc, update)
    })().catch((error) => {
      // Not expected (a copy Yjs cannot read back): the room stays offline, its pending
      // edits counted, rather than losing them to a fresh start.
      console.error(`${this.name}: could not re-apply the edits refused with 4409`, error)
    }).finally(() => { this.recovering = null })
    this.sync.changed()
    return this.recovering
  }

  /** The server's whole state of the document (its HTTP sync, asked with an empty state
   *  vector), or null when it does not answer. */
  async serverState () {
    if (!this.sync.token) return null
    try {
      const response = await fetch(`/api/weddings/${encodeURIComponent(this.sync.wedding)}/docs/${this.kind}/sync`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.sync.token}`, 'Content-Type': 'application/json' },
        body: '{}'
      })
      if (!response.ok) return null
      const body = await response.json()
      return Uint8Array.from(atob(body.update), (c) => c.charCodeAt(0))
    } catch {
      return null
    }
  }

  replaceWith (doc, reapplied) {
    const before = this.doc
    this.pending.clear()
    if (reapplied) this.pending.addAll(reapplied)
    if (this.persistence) {
      // The local copy becomes the new document's in one transaction (nothing of the old
      // one's items under the refused id is loaded again), then is kept by a new
      // persistence for it.
      const db = this.persistence.db
      if (db) {
        const txn = db.transaction(['updates'], 'readwrite')
        txn.objectStore('updates').clear()
        txn.objectStore('updates').add(Y.encodeStateAsUpdate(doc))
      }
      this.persistence.destroy()
      this.keepLocally(doc)
    }
    this.use(doc)
    this.closed = null
    this.markStored()
    before.destroy()
    this.sync.docChanged(this)
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
  constructor ({ wedding, token, access, onChange, onClosed, onDocChanged = () => {}, socket = null }) {
    this.wedding = wedding
    /** Whose local copies these are (the token's `sub`): see `localName`. */
    this.sub = access.sub || ''
    this.token = token
    this.stopped = false
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
    this.onDocChanged = onDocChanged
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
    if (event.code === CLIENT_ID_TAKEN && room.access === 'write') {
      // Not the end of the document: it goes on under a new client id (Room.recover).
      const taken = takenIdOf(event.reason)
      room.recover([taken === null ? room.doc.clientID : taken])
      return
    }
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
      if (room.recovering) continue // its provider is gone; the new one takes the token
      room.link.useToken(token)
      if (!reconnect) continue
      room.closed = null
      room.link.reconnect()
    }
  }

  /** The room's Y.Doc was replaced (Room.recover): views and undo history must use the
   *  new one, now (before any other event can write to the old one). */
  docChanged (room) {
    this.onDocChanged(room)
    this.changed()
  }

  disconnect () {
    this.stopped = true
    for (const room of this.all()) if (!room.recovering) room.link.disconnect()
    if (this.socket) this.socket.disconnect()
  }

  /** Forget everything kept on this device (the wedding was deleted). */
  async clearLocal () {
    this.disconnect()
    for (const room of this.all()) {
      room.pending.clear()
      await room.opened
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

/** Whether this device has an IndexedDB database of that name (made by nothing here: an
 *  open that would create it is aborted). */
function databaseExists (name) {
  return new Promise((resolve) => {
    if (typeof indexedDB === 'undefined') { resolve(false); return }
    const request = indexedDB.open(name)
    request.onupgradeneeded = () => request.transaction.abort()
    request.onsuccess = () => {
      request.result.close()
      resolve(true)
    }
    request.onerror = (event) => {
      event.preventDefault()
      resolve(false)
    }
  })
}

/** Resolves once y-indexeddb's writes started so far on `db` are done (a read transaction
 *  on the same store ends after them). */
function written (db) {
  return new Promise((resolve) => {
    if (!db) { resolve(); return }
    try {
      const txn = db.transaction(['updates'], 'readonly')
      txn.oncomplete = txn.onerror = txn.onabort = () => resolve()
      txn.objectStore('updates').count()
    } catch {
      resolve() // closed meanwhile (its document was replaced)
    }
  })
}

/** Whether `name` is `{prefix}{wedding}/...` (the release before's names) or
 *  `{prefix}{sub}:{wedding}/...` (a person's: the sub is URI-encoded, so has no `:`). */
function ofWedding (name, prefix, wedding) {
  if (!name || !name.startsWith(prefix)) return false
  const rest = name.slice(prefix.length)
  if (rest.startsWith(`${wedding}/`)) return true
  const colon = rest.indexOf(':')
  return colon >= 0 && !rest.slice(0, colon).includes('/') && rest.startsWith(`${wedding}/`, colon + 1)
}

/**
 * Forget everything this device keeps of a wedding (it was deleted): the documents'
 * IndexedDB copies and unconfirmed edits (everyone's), the activity feed, the names and
 * access seen.
 */
export async function forgetWedding (wedding) {
  const prefixes = [
    `crdt-server.ops:${wedding}:`,
    `crdt-server.activity:${wedding}:`,
    `crdt-server.access:${wedding}:`,
    `crdt-server.people:${wedding}`
  ]
  for (const key of Object.keys(localStorage)) {
    if (prefixes.some((p) => key.startsWith(p)) || ofWedding(key, 'crdt-server.pending:', wedding)) localStorage.removeItem(key)
  }
  const databases = indexedDB.databases ? await indexedDB.databases() : []
  await Promise.all(databases
    .filter((db) => ofWedding(db.name, 'crdt-server:', wedding))
    .map((db) => new Promise((resolve) => {
      const request = indexedDB.deleteDatabase(db.name)
      request.onsuccess = request.onerror = request.onblocked = () => resolve()
    })))
}

/**
 * Forget what this device keeps of wedding `wedding` for person `sub` (they lost access:
 * removed, or their session ended): their local copies of its documents
 * (`crdt-server:{sub}:{wedding}/{kind}`, and the unscoped names of the release before),
 * their unsent edits, and every localStorage entry of theirs for it (activity, queued
 * operations, thread outbox, check-ins, lost writes put away, push), the access and names
 * seen, and the wedding as the one used last. `sub` null: everyone's (the person is not
 * known any more). Resolves once the databases are deleted.
 */
export async function forgetPerson (wedding, sub) {
  const person = sub === null ? null : encodeURIComponent(sub)
  // `{prefix}{sub}:{wedding}/...` of this person, or the release before's `{prefix}{wedding}/...`.
  const theirs = (name, prefix) => {
    if (!ofWedding(name, prefix, wedding)) return false
    const rest = name.slice(prefix.length)
    return person === null || rest.startsWith(`${wedding}/`) || rest.startsWith(`${person}:`)
  }
  for (const key of Object.keys(localStorage)) {
    if (!key.startsWith('crdt-server.')) continue
    const rest = key.slice(key.indexOf(':') + 1)
    const mine = key.indexOf(':') > 0 && (rest === wedding || (sub === null ? rest.startsWith(`${wedding}:`) : rest === `${wedding}:${sub}`))
    if (mine || theirs(key, 'crdt-server.pending:')) localStorage.removeItem(key)
  }
  if (localStorage.getItem('crdt-server.last-wedding') === wedding) localStorage.removeItem('crdt-server.last-wedding')
  const databases = indexedDB.databases ? await indexedDB.databases() : []
  await Promise.all(databases
    .filter((db) => theirs(db.name, 'crdt-server:'))
    .map((db) => new Promise((resolve) => {
      const request = indexedDB.deleteDatabase(db.name)
      request.onsuccess = request.onerror = request.onblocked = () => resolve()
    })))
}

export { Y }
