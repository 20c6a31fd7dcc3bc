#!/usr/bin/env node
// One stock Yjs writer of the fault campaign (benchmarks/faults): y-websocket's
// WebsocketProvider on /sync, or @hocuspocus/provider on /collab/{wedding}, writing the
// wedding's guests document at a steady rate: a guest added (a Y.Map with a Y.Text for its
// notes), an RSVP answer, a note typed into the guest's notes, a guest's name changed.
//
//   node faultclient.mjs --url ws://HOST:PORT --protocol sync|collab --wedding W --name N
//       --rate 2 [--store DIR]
//
// stdout, one JSON object per line: {"event":"ready"} once synced; on stdin "stop" it stops
// writing; on "drain" it answers {"event":"drained","pending":n}; on {"cmd":"final","sv":B64,
// "timeout_ms":n} it waits until its document holds the state vector sv (the store's), then
// prints {"event":"final","ops":[...],"state":B64 of its whole state,"reconnects":n} and
// exits. Every op is {id, kind, guest, value, client, clock, sent, acked} (wall-clock seconds; acked
// null when it never was). Acknowledged means: on /sync, the server's echo of the op's clock
// came back (the protocol echoes only what is committed); on /collab, the provider had no
// unsynced changes left (SyncStatus answers commits) after the op was made.
import { createInterface } from 'node:readline'

const rawWrite = process.stdout.write.bind(process.stdout)
for (const level of ['log', 'info', 'debug', 'warn']) console[level] = (...a) => console.error(...a)
const emit = (obj) => rawWrite(JSON.stringify(obj) + '\n')

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const url = arg('url')
const protocol = arg('protocol', 'sync')
const wedding = arg('wedding')
const name = arg('name')
const rate = Number(arg('rate', '2'))
// --store DIR: a phone app (protocol sync) that keeps its document on disk with y-leveldb
// (stock Yjs persistence, as y-indexeddb keeps a browser app's: each update stored as it is
// made; written to the OS, it survives a SIGKILL of the app, not a crash of the machine),
// and its ops and acknowledgements in DIR/ops.jsonl, each op once its update is stored.
// Started again on the same DIR, it loads both, says ready at once (an app works offline)
// and re-sends what the server lacks when it connects.
const storeDir = arg('store')

const { WebSocket } = await import('ws')
if (typeof globalThis.WebSocket === 'undefined') globalThis.WebSocket = WebSocket
const Y = await import('yjs')
const decoding = await import('lib0/decoding')

const doc = new Y.Doc()
const now = () => Date.now() / 1000
const ops = []
let restored = false
let persistOp = () => {}
if (storeDir) {
  const fs = await import('node:fs')
  const path = await import('node:path')
  const { LeveldbPersistence } = await import('y-leveldb')
  fs.mkdirSync(storeDir, { recursive: true })
  const docDir = path.join(storeDir, 'ydoc')
  const opsFile = path.join(storeDir, 'ops.jsonl')
  restored = fs.existsSync(docDir)
  const persistence = new LeveldbPersistence(docDir)
  if (restored) {
    const kept = await persistence.getYDoc(wedding)
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(kept), 'store')
  }
  if (fs.existsSync(opsFile)) {
    const byId = new Map()
    for (const line of fs.readFileSync(opsFile, 'utf8').split('\n')) {
      let record
      try {
        record = JSON.parse(line)
      } catch {
        continue // empty, or cut short by the kill
      }
      if (record.ack !== undefined) {
        const op = byId.get(record.ack)
        if (op && op.acked === null) op.acked = record.at
      } else {
        byId.set(record.id, record)
        ops.push(record)
      }
    }
  }
  // y-leveldb stores updates one after the other: once the last is stored, so are those
  // before it, and an op recorded after it has its content on disk.
  let stored = Promise.resolve()
  doc.on('update', (update, origin) => {
    if (origin !== 'store') stored = persistence.storeUpdate(wedding, update)
  })
  persistOp = (record) => {
    const line = JSON.stringify(record) + '\n'
    stored = stored.then(() => fs.appendFileSync(opsFile, line))
  }
}
let reconnects = 0
let opens = 0

// /sync: every frame the server sends passes through here first; the clock range of each
// sync step 2 or update it carries acknowledges this client's ops up to that clock.
// Each op names the client id that wrote it (a phone started again writes under a new one).
const acknowledge = (op, at) => {
  op.acked = at
  persistOp({ ack: op.id, at })
}
const seeFrame = (data) => {
  try {
    const bytes = new Uint8Array(data)
    const decoder = decoding.createDecoder(bytes)
    if (decoding.readVarUint(decoder) !== 0) return
    const sub = decoding.readVarUint(decoder)
    if (sub !== 1 && sub !== 2) return
    const meta = Y.parseUpdateMeta(decoding.readVarUint8Array(decoder))
    const at = now()
    for (const op of ops) {
      if (op.acked !== null) continue
      const to = meta.to.get(op.client)
      if (to !== undefined && op.clock < to) acknowledge(op, at)
    }
  } catch (err) {
    console.error('faultclient: unreadable frame', err)
  }
}
class TeeSocket extends WebSocket {
  constructor(...args) {
    super(...args)
    this.addEventListener('message', (event) => seeFrame(event.data))
    this.addEventListener('open', () => {
      opens += 1
      if (opens > 1) reconnects += 1
    })
  }
}

let provider
let synced = () => false
let savedAll = () => false
if (protocol === 'sync') {
  const { WebsocketProvider } = await import('y-websocket')
  provider = new WebsocketProvider(`${url}/sync`, `${wedding}/guests`, doc, {
    WebSocketPolyfill: TeeSocket,
    maxBackoffTime: 1000,
    disableBc: true,
  })
  synced = () => provider.synced
} else {
  const { HocuspocusProvider, HocuspocusProviderWebsocket } = await import('@hocuspocus/provider')
  const socket = new HocuspocusProviderWebsocket({
    url: `${url}/collab/${wedding}`,
    WebSocketPolyfill: TeeSocket,
    delay: 100,
    minDelay: 100,
    maxDelay: 1000,
  })
  provider = new HocuspocusProvider({ websocketProvider: socket, name: `${wedding}/guests`, document: doc, token: '' })
  provider.attach()
  synced = () => provider.isSynced
  savedAll = () => provider.isSynced && provider.unsyncedChanges === 0
  const settle = () => {
    if (savedAll()) {
      const at = now()
      for (const op of ops) if (op.acked === null) acknowledge(op, at)
    }
  }
  provider.on('unsyncedChanges', settle)
  provider.on('synced', settle)
  setInterval(settle, 20).unref()
}

const waitFor = (cond, timeoutMs) =>
  new Promise((resolve) => {
    const started = Date.now()
    const tick = () => {
      if (cond() || Date.now() - started > timeoutMs) resolve(cond())
      else setTimeout(tick, 20)
    }
    tick()
  })

if (!restored && !(await waitFor(synced, 30000))) {
  emit({ event: 'error', error: 'not synced in 30 s' })
  process.exit(1)
}
emit({ event: 'ready', clientID: doc.clientID })

const guests = doc.getMap('guests')
let n = ops.length
let guest = [...ops].reverse().find((op) => op.kind === 'guest')?.guest ?? null
const write = () => {
  const id = `${name}-${n}`
  let op
  if (n % 4 === 0 || guest === null) {
    const gid = `g-${name}-${n}`
    doc.transact(() => {
      const entry = new Y.Map()
      guests.set(gid, entry)
      entry.set('name', `Guest ${id}`)
      entry.set('side', 'both')
      entry.set('rsvp', 'pending')
      entry.set('notes', new Y.Text(''))
    })
    guest = gid
    op = { id, kind: 'guest', guest: gid, value: `Guest ${id}` }
  } else if (n % 4 === 1) {
    const value = (n >> 2) % 2 === 0 ? 'accepted' : 'declined'
    guests.get(guest).set('rsvp', value)
    op = { id, kind: 'rsvp', guest, value }
  } else if (n % 4 === 2) {
    const token = `<${id}>`
    const notes = guests.get(guest).get('notes')
    notes.insert(notes.length, token)
    op = { id, kind: 'text', guest, value: token }
  } else {
    guests.get(guest).set('name', `Guest ${id} renamed`)
    op = { id, kind: 'name', guest, value: `Guest ${id} renamed` }
  }
  op.client = doc.clientID
  op.clock = Y.getState(doc.store, doc.clientID) - 1
  op.sent = now()
  op.acked = null
  ops.push(op)
  persistOp(op)
  n += 1
}
let timer = setInterval(write, 1000 / rate)

const lines = createInterface({ input: process.stdin })
lines.on('line', async (line) => {
  const msg = line.trim().startsWith('{') ? JSON.parse(line) : { cmd: line.trim() }
  if (msg.cmd === 'stop') {
    clearInterval(timer)
    timer = null
    emit({ event: 'stopped', ops: ops.length })
  } else if (msg.cmd === 'drain') {
    emit({ event: 'drained', pending: ops.filter((op) => op.acked === null).length })
  } else if (msg.cmd === 'final') {
    const target = Buffer.from(msg.sv, 'base64')
    const holds = () => {
      const mine = Y.decodeStateVector(Y.encodeStateVector(doc))
      for (const [client, clock] of Y.decodeStateVector(target)) {
        if ((mine.get(client) ?? 0) < clock) return false
      }
      return true
    }
    await waitFor(holds, msg.timeout_ms ?? 20000)
    const state = Buffer.from(Y.encodeStateAsUpdate(doc)).toString('base64')
    emit({ event: 'final', ops, state, reconnects })
    provider.destroy()
    setTimeout(() => process.exit(0), 100)
  }
})
