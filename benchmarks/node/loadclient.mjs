// The Node load client of benchmarks/run.py (`--client node`): y-protocols clients as a
// browser runs them. Every client is one `ws` WebSocket and one Y.Doc; it applies everything
// it receives to its doc, and every local edit (a one-character insert into a Y.Text root at
// the client's own cursor) is its own transaction, hence its own update and its own WebSocket
// frame, as y-websocket's provider and Hocuspocus' provider send them.
//
//   node loadclient.mjs --url ws://127.0.0.1:PORT --scenario throughput --rooms 10 --writers 10
//       --window 32 --seconds 10 [--dialect y-websocket|hocuspocus --collab-path /collab]
//   node loadclient.mjs --url ... --scenario fanout --readers 100 --rate 50 --seconds 10
//
// Protocol with the driver (one JSON object per stdout line): {"event":"ready"} once every
// client is open and synced; then the client waits for a line "go" on stdin (so several
// client processes start together and the driver reads the server's CPU at the same moment),
// runs for --seconds, prints {"event":"stop"} when the measuring window ends, drains, checks
// convergence and prints {"event":"result", ...}. Every wait has a deadline; the process
// exits 1 with {"event":"error"} when one passes.
//
// An update counts as accepted when the server's echo of it comes back to its sender (the
// clock ranges of every received update, Y.parseUpdateMeta); a merged echo acknowledges
// every update it carries, as it would for a provider's sync state.
import readline from 'node:readline'
import WebSocket from 'ws'
import * as Y from 'yjs'

const REMOTE = Symbol('remote')
const SYNC = 0
const AWARENESS = 1
const AUTH = 2
const SYNC_REPLY = 4 // Hocuspocus: the answer to the client's step 1
const STEP1 = 0
const STEP2 = 1
const UPDATE = 2

const options = {
  url: '',
  scenario: 'throughput',
  dialect: 'y-websocket',
  collabPath: '/collab',
  doc: 'guests',
  root: 'notes',
  prefix: `n${Math.floor(Math.random() * 1e9).toString(36)}`,
  rooms: 10,
  writers: 10,
  window: 32,
  seconds: 10,
  readers: 100,
  rate: 50,
  budget: 1_000_000,
  drain: 30,
  connectTimeout: 30,
  concurrency: 50,
  noGo: false,
}

const parse = (argv) => {
  const numeric = new Set([
    'rooms', 'writers', 'window', 'seconds', 'readers', 'rate', 'budget', 'drain',
    'connectTimeout', 'concurrency',
  ])
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    if (!flag.startsWith('--')) throw new Error(`unexpected argument ${flag}`)
    const key = flag.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    if (!(key in options)) throw new Error(`unknown option ${flag}`)
    if (typeof options[key] === 'boolean') {
      options[key] = true
      continue
    }
    const value = argv[++i]
    if (value === undefined) throw new Error(`${flag} needs a value`)
    options[key] = numeric.has(key) ? Number(value) : value
  }
  if (!options.url) throw new Error('--url is required')
}

// -- lib0 encoding, the little of it the protocol needs ------------------------------------

const varUint = (n, out) => {
  while (n > 0x7f) {
    out.push(0x80 | (n & 0x7f))
    n = Math.floor(n / 128)
  }
  out.push(n)
}

const varBytes = (bytes, out) => {
  varUint(bytes.length, out)
  for (let i = 0; i < bytes.length; i++) out.push(bytes[i])
}

const varString = (s, out) => varBytes(new TextEncoder().encode(s), out)

const readUint = (data, pos) => {
  let n = 0
  let mult = 1
  for (;;) {
    const byte = data[pos++]
    n += (byte & 0x7f) * mult
    if (byte < 0x80) return [n, pos]
    mult *= 128
    if (mult > 2 ** 53) throw new Error('varuint too long')
  }
}

// -- one client ------------------------------------------------------------------------------

const now = () => performance.now() / 1000

class Client {
  constructor(wedding, writer) {
    this.wedding = wedding
    this.writer = writer
    this.doc = new Y.Doc()
    this.text = this.doc.getText(options.root)
    this.id = this.doc.clientID
    this.prefix = []
    if (options.dialect === 'hocuspocus') varString(`${wedding}/${options.doc}`, this.prefix)
    this.sent = 0
    this.acked = 0
    this.seen = new Map() // client id -> clock seen in received updates
    this.deliveries = 0
    this.cursor = null // relative position after this client's last character
    this.onRemote = null // (client, meta, t) => void
    this.onAck = null
    this.synced = false
    this.ws = null
    this.doc.on('update', (update, origin) => {
      if (origin !== REMOTE) this.sendSync(UPDATE, update)
    })
  }

  path() {
    if (options.dialect === 'hocuspocus') return options.collabPath
    return `/sync/${this.wedding}/${options.doc}`
  }

  frame(bytes) {
    const out = this.prefix.slice()
    for (let i = 0; i < bytes.length; i++) out.push(bytes[i])
    return Uint8Array.from(out)
  }

  sendSync(sub, payload) {
    const out = this.prefix.slice()
    out.push(SYNC, sub)
    varBytes(payload, out)
    this.ws.send(Uint8Array.from(out))
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${options.url}${this.path()}`, { perMessageDeflate: false })
      ws.binaryType = 'nodebuffer'
      this.ws = ws
      const timer = setTimeout(
        () => reject(new Error(`${this.wedding}: not synced in ${options.connectTimeout} s`)),
        options.connectTimeout * 1000,
      )
      this.resolveSynced = () => {
        clearTimeout(timer)
        resolve(this)
      }
      ws.on('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      ws.on('close', () => {
        this.closed = true
      })
      ws.on('open', () => {
        if (options.dialect === 'hocuspocus') {
          const auth = [AUTH, 0]
          varString('', auth)
          ws.send(this.frame(auth))
        } else {
          this.sendSync(STEP1, Y.encodeStateVector(this.doc))
        }
      })
      ws.on('message', (data) => this.receive(data))
    })
  }

  receive(data) {
    const t = now()
    let pos = 0
    if (this.prefix.length) {
      const [size, after] = readUint(data, 0)
      pos = after + size // the document name: one document per socket here
    }
    const kind = data[pos++]
    if (kind === SYNC || (kind === SYNC_REPLY && this.prefix.length)) {
      const sub = data[pos++]
      const [size, start] = readUint(data, pos)
      const payload = data.subarray(start, start + size)
      if (sub === STEP1) {
        this.sendSync(STEP2, Y.encodeStateAsUpdate(this.doc, payload))
      } else {
        this.apply(payload, t)
        if (sub === STEP2 && !this.synced) {
          this.synced = true
          this.resolveSynced()
        }
      }
    } else if (kind === AUTH && this.prefix.length) {
      if (data[pos] === 2) this.sendSync(STEP1, Y.encodeStateVector(this.doc))
      else if (data[pos] === 1) this.ws.close()
    }
    // AWARENESS, SyncStatus and the rest: nothing to do for this client.
  }

  apply(update, t) {
    const meta = Y.parseUpdateMeta(update)
    let delivered = 0
    for (const [cid, end] of meta.to) {
      const prev = this.seen.get(cid) ?? 0
      if (end > prev) {
        if (cid !== this.id) delivered += end - Math.max(meta.from.get(cid) ?? 0, prev)
        this.seen.set(cid, end)
      }
    }
    this.deliveries += delivered
    Y.applyUpdate(this.doc, update, REMOTE)
    if (this.onRemote !== null && delivered) this.onRemote(this, meta, t)
    const mine = this.seen.get(this.id) ?? 0
    if (mine > this.acked) {
      this.acked = mine
      if (this.onAck !== null) this.onAck(this, t)
    }
  }

  type() {
    // One character at this client's cursor (after its own last character), as typing does.
    const text = this.text
    let index = 0
    if (this.cursor !== null) {
      const abs = Y.createAbsolutePositionFromRelativePosition(this.cursor, this.doc)
      index = abs === null ? text.length : abs.index
    }
    text.insert(index, String.fromCharCode(97 + (this.sent % 26)))
    this.cursor = Y.createRelativePositionFromTypeIndex(text, index + 1, -1)
    this.sent += 1
  }

  close() {
    if (this.ws !== null && !this.closed) this.ws.terminate()
  }
}

// -- helpers ----------------------------------------------------------------------------------

const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`)

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const waitUntil = async (predicate, seconds) => {
  const deadline = now() + seconds
  while (!predicate()) {
    if (now() > deadline) return false
    await sleep(20)
  }
  return true
}

const openAll = async (clients) => {
  let next = 0
  const worker = async () => {
    while (next < clients.length) await clients[next++].open()
  }
  await Promise.all(Array.from({ length: Math.min(options.concurrency, clients.length) }, worker))
}

const waitGo = () => {
  if (options.noGo) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: process.stdin })
    lines.on('line', (line) => {
      if (line.trim() === 'go') resolve()
    })
    lines.on('close', () => reject(new Error('stdin closed before "go"')))
  })
}

const percentile = (values, q) => {
  if (!values.length) return null
  const sorted = Float64Array.from(values).sort()
  return sorted[Math.max(1, Math.ceil((q / 100) * sorted.length)) - 1]
}

const roomConverged = async (wedding, members, expected) => {
  // Every member holds every writer's updates, the same text, and so does a fresh client.
  const total = [...expected.values()].reduce((a, b) => a + b, 0)
  const complete = (c) => [...expected].every(([cid, n]) => (c.seen.get(cid) ?? 0) >= n || c.id === cid)
  const reached = await waitUntil(() => members.every(complete), options.drain)
  const texts = new Set(members.map((c) => c.text.toString()))
  const fresh = new Client(wedding, false)
  let freshLength = -1
  try {
    await fresh.open()
    freshLength = fresh.text.length
  } finally {
    fresh.close()
  }
  const ok = reached && texts.size === 1 && members[0].text.length === total && freshLength === total
  return ok ? null : `${wedding}: members complete ${reached}, ${texts.size} distinct texts, ` +
    `length ${members[0].text.length} of ${total}, a fresh client ${freshLength}`
}

// -- scenarios --------------------------------------------------------------------------------

const throughput = async () => {
  const weddings = Array.from({ length: options.rooms }, (_, i) => `${options.prefix}r${i}`)
  const members = new Map(weddings.map((w) => [w, Array.from({ length: options.writers }, () => new Client(w, true))]))
  const clients = [...members.values()].flat()
  try {
    await openAll(clients)
    let open = false
    const pump = (c) => {
      if (!open) return
      const limit = Math.min(c.acked + options.window, options.budget)
      while (c.sent < limit) c.type()
    }
    for (const c of clients) c.onAck = pump
    emit({ event: 'ready', clients: clients.length })
    await waitGo()
    const t0 = now()
    open = true
    for (const c of clients) pump(c)
    await sleep(options.seconds * 1000)
    open = false
    const wall = now() - t0
    const accepted = clients.reduce((a, c) => a + c.acked, 0)
    const deliveries = clients.reduce((a, c) => a + c.deliveries, 0)
    emit({ event: 'stop' })
    const closed = clients.filter((c) => c.closed).length
    const drained = await waitUntil(() => clients.every((c) => c.acked >= c.sent), options.drain)
    const unconverged = []
    for (const [wedding, room] of members) {
      const expected = new Map(room.map((c) => [c.id, c.sent]))
      const problem = await roomConverged(wedding, room, expected)
      if (problem !== null) unconverged.push(problem)
    }
    const sent = clients.reduce((a, c) => a + c.sent, 0)
    emit({
      event: 'result', scenario: 'throughput', rooms: options.rooms, writers: options.writers,
      window: options.window, wall, accepted, deliveries, sent,
      unechoed: sent - clients.reduce((a, c) => a + c.acked, 0), drained, closed,
      converged: options.rooms - unconverged.length, unconverged,
    })
  } finally {
    for (const c of clients) c.close()
  }
}

const fanout = async () => {
  const wedding = `${options.prefix}f`
  const readers = Array.from({ length: options.readers }, () => new Client(wedding, false))
  const writer = new Client(wedding, true)
  const count = Math.max(1, Math.floor(options.rate * options.seconds))
  const sentAt = new Float64Array(count)
  const latencies = []
  const acks = []
  try {
    await openAll([...readers, writer])
    const onRemote = (c, meta, t) => {
      const end = Math.min(meta.to.get(writer.id) ?? 0, count)
      const start = Math.max(meta.from.get(writer.id) ?? 0, c.cursorSeen ?? 0)
      for (let i = start; i < end; i++) latencies.push(t - sentAt[i])
      if (end > (c.cursorSeen ?? 0)) c.cursorSeen = end
    }
    for (const r of readers) r.onRemote = onRemote
    let acked = 0
    writer.onAck = (c, t) => {
      for (let i = acked; i < Math.min(c.acked, count); i++) acks.push(t - sentAt[i])
      acked = Math.max(acked, c.acked)
    }
    emit({ event: 'ready', clients: readers.length + 1 })
    await waitGo()
    const t0 = now()
    for (let i = 0; i < count; i++) {
      const due = t0 + i / options.rate
      const wait = due - now()
      if (wait > 0) await sleep(wait * 1000)
      sentAt[i] = now()
      writer.type()
    }
    const all = () => writer.acked >= count && readers.every((r) => (r.seen.get(writer.id) ?? 0) >= count)
    const done = await waitUntil(all, options.drain)
    emit({ event: 'stop' })
    const ms = (xs, q) => {
      const v = percentile(xs, q)
      return v === null ? null : v * 1000
    }
    emit({
      event: 'result', scenario: 'fanout', readers: options.readers, count, done,
      missing: options.readers * count - latencies.length,
      p50: ms(latencies, 50), p95: ms(latencies, 95), p99: ms(latencies, 99),
      max: latencies.length ? Math.max(...latencies) * 1000 : null, ack_p50: ms(acks, 50),
      closed: [...readers, writer].filter((c) => c.closed).length,
    })
  } finally {
    for (const c of [...readers, writer]) c.close()
  }
}

try {
  parse(process.argv.slice(2))
  if (options.scenario === 'throughput') await throughput()
  else if (options.scenario === 'fanout') await fanout()
  else throw new Error(`unknown scenario ${options.scenario}`)
  process.exit(0)
} catch (err) {
  emit({ event: 'error', message: String(err?.stack ?? err) })
  process.exit(1)
}
