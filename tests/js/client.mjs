#!/usr/bin/env node
// A stock Yjs + y-websocket client, remote-controlled by pytest (see tests/jsclient.py).
//
// Protocol (line-delimited JSON):
//   stdin : one command per line: {"id": <any>, "cmd": "<name>", ...args}
//   stdout: exactly one reply per command, in completion order:
//             {"id": <same id>, "ok": true, ...result}
//             {"id": <same id>, "ok": false, "error": "<message>"}
//           plus unsolicited event lines: {"event": "<name>", ...}
//   stderr: free-form diagnostics (never parsed).
// Nothing else is ever written to stdout: console.log/info/debug are redirected to stderr, so
// chatter from libraries cannot corrupt the protocol stream.
//
// Usage: node client.mjs --version 2|3

import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { isDeepStrictEqual } from 'node:util'

const rawWrite = process.stdout.write.bind(process.stdout)
for (const level of ['log', 'info', 'debug']) {
  console[level] = (...args) => console.error(...args)
}

const parseVersion = (argv) => {
  const i = argv.indexOf('--version')
  const v = i >= 0 ? argv[i + 1] : '2'
  if (v !== '2' && v !== '3') {
    console.error(`client.mjs: --version must be 2 or 3, got ${JSON.stringify(v)}`)
    process.exit(2)
  }
  return Number(v)
}

const VERSION = parseVersion(process.argv.slice(2))

const { WebSocket } = await import('ws')
// y-websocket references the global `WebSocket` in a few places even when a polyfill is passed
// (e.g. `WebSocket.OPEN` in the resyncInterval timer). Node 20 has no global WebSocket.
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = WebSocket
}
const Y = await import('yjs')
const { WebsocketProvider } = await import(VERSION === 3 ? 'y-websocket-v3' : 'y-websocket')
const readPkg = (dir) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${dir}/package.json`, import.meta.url), 'utf8'))
const providerPkgJson = readPkg(VERSION === 3 ? 'y-websocket-v3' : 'y-websocket')
const yjsPkgJson = readPkg('yjs')

// ---------------------------------------------------------------------------------------------
// output

const emit = (obj) => {
  rawWrite(JSON.stringify(obj) + '\n')
}

const emitEvent = (name, fields) => emit({ event: name, ...fields })

// ---------------------------------------------------------------------------------------------
// state

/** @type {Y.Doc | null} */
let doc = null
/** @type {any} */
let provider = null
/** Every binary frame the provider's sockets received, as they came (see "received"). */
const receivedFrames = []
/** root name -> 'map' | 'array' | 'text' */
const rootTypes = new Map()
/** callbacks run whenever the doc or the awareness changes (used by waitFor / waitAwareness) */
const changeListeners = new Set()

const notifyChange = () => {
  for (const fn of Array.from(changeListeners)) {
    try {
      fn()
    } catch (err) {
      console.error('change listener failed', err)
    }
  }
}

const b64encode = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('base64')
const b64decode = (s) => new Uint8Array(Buffer.from(s, 'base64'))

class CommandError extends Error {}

const fail = (msg) => {
  throw new CommandError(msg)
}

const requireDoc = () => {
  if (doc === null) fail('not connected: send "connect" first')
  return doc
}

const requireProvider = () => {
  if (provider === null) fail('no provider: send "connect" first (or it was destroyed)')
  return provider
}

const ROOT_KINDS = ['map', 'array', 'text', 'xml']

const getRoot = (name, kind) => {
  const d = requireDoc()
  if (typeof name !== 'string') fail(`root name must be a string, got ${JSON.stringify(name)}`)
  if (!ROOT_KINDS.includes(kind)) fail(`unknown root type ${JSON.stringify(kind)} for ${name}`)
  const known = rootTypes.get(name)
  if (known !== undefined && known !== kind) {
    fail(`root ${JSON.stringify(name)} is a ${known}, not a ${kind}`)
  }
  rootTypes.set(name, kind)
  if (kind === 'map') return d.getMap(name)
  if (kind === 'array') return d.getArray(name)
  // A rich text (what Tiptap edits): its JSON is its XML string, `<paragraph>text</paragraph>`.
  if (kind === 'xml') return d.getXmlFragment(name)
  return d.getText(name)
}

/**
 * Normalise a `roots` argument: {name: kind} or [name, ...] (types already known) -> Map.
 * `fallbackNames` are used when roots is absent.
 */
const resolveRoots = (roots, fallbackNames) => {
  const out = new Map()
  if (roots == null) {
    for (const name of fallbackNames) {
      const kind = rootTypes.get(name)
      if (kind === undefined) {
        fail(`type of root ${JSON.stringify(name)} unknown: pass roots={${JSON.stringify(name)}: "map"|"array"|"text"}`)
      }
      out.set(name, kind)
    }
  } else if (Array.isArray(roots)) {
    for (const name of roots) {
      const kind = rootTypes.get(name)
      if (kind === undefined) {
        fail(`type of root ${JSON.stringify(name)} unknown: pass roots as {name: "map"|"array"|"text"}`)
      }
      out.set(name, kind)
    }
  } else if (typeof roots === 'object') {
    for (const [name, kind] of Object.entries(roots)) out.set(name, kind)
  } else {
    fail('roots must be an object {name: type} or a list of names')
  }
  return out
}

const readRoots = (roots) => {
  const json = {}
  for (const [name, kind] of roots) json[name] = getRoot(name, kind).toJSON()
  return json
}

/**
 * Values written by edit ops are plain JSON. A value of the form
 *   {"$ytype": "map", "value": {...}} | {"$ytype": "array", "value": [...]} |
 *   {"$ytype": "text", "value": "..."}
 * creates a nested shared type instead (recursively).
 */
const toYValue = (v) => {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v.$ytype === 'string') {
    const inner = v.value
    switch (v.$ytype) {
      case 'map': {
        const m = new Y.Map()
        for (const [k, x] of Object.entries(inner ?? {})) m.set(k, toYValue(x))
        return m
      }
      case 'array': {
        const a = new Y.Array()
        a.push((inner ?? []).map(toYValue))
        return a
      }
      case 'text':
        return new Y.Text(inner ?? '')
      default:
        fail(`unknown $ytype ${JSON.stringify(v.$ytype)}`)
    }
  }
  return v
}

/**
 * The shared type an op targets: root `op.name`, or, with `op.path` (keys / indices), a nested
 * shared type below it. The root's type is `op.rootType`, else the one already known, else
 * guessed from the first path step (number -> array, otherwise map).
 */
const resolveTarget = (op, kind) => {
  const path = op.path ?? []
  if (!Array.isArray(path)) fail(`"path" must be a list: ${JSON.stringify(op)}`)
  if (path.length === 0) return getRoot(op.name, kind)
  const rootKind =
    op.rootType ?? rootTypes.get(op.name) ?? (typeof path[0] === 'number' ? 'array' : 'map')
  return walk(getRoot(op.name, rootKind), path, kind)
}

const walk = (start, path, kind) => {
  let cur = start
  for (const step of path) {
    if (cur instanceof Y.Map) cur = cur.get(String(step))
    else if (cur instanceof Y.Array) cur = cur.get(Number(step))
    else fail(`cannot descend into ${cur?.constructor?.name} with ${JSON.stringify(step)}`)
    if (cur === undefined) fail(`path ${JSON.stringify(path)} does not exist`)
  }
  const want = { map: Y.Map, array: Y.Array, text: Y.Text }[kind]
  if (!(cur instanceof want)) fail(`path ${JSON.stringify(path)} is not a Y.${kind}`)
  return cur
}

const applyOp = (op) => {
  if (op === null || typeof op !== 'object') fail(`op must be an object: ${JSON.stringify(op)}`)
  switch (op.type) {
    case 'map.set':
      resolveTarget(op, 'map').set(String(op.key), toYValue(op.value))
      return
    case 'map.delete':
      resolveTarget(op, 'map').delete(String(op.key))
      return
    case 'map.clear':
      resolveTarget(op, 'map').clear()
      return
    case 'array.push':
      resolveTarget(op, 'array').push((op.values ?? []).map(toYValue))
      return
    case 'array.unshift':
      resolveTarget(op, 'array').unshift((op.values ?? []).map(toYValue))
      return
    case 'array.insert':
      resolveTarget(op, 'array').insert(op.index, (op.values ?? []).map(toYValue))
      return
    case 'array.delete':
      resolveTarget(op, 'array').delete(op.index, op.length ?? 1)
      return
    case 'text.insert':
      resolveTarget(op, 'text').insert(op.index, op.text, op.attributes ?? undefined)
      return
    case 'text.delete':
      resolveTarget(op, 'text').delete(op.index, op.length ?? 1)
      return
    case 'text.format':
      resolveTarget(op, 'text').format(op.index, op.length, op.attributes ?? {})
      return
    case 'xml.paragraph': {
      // A new block of a rich text, as Tiptap's paragraph: <paragraph>text</paragraph>.
      const paragraph = new Y.XmlElement('paragraph')
      paragraph.insert(0, [new Y.XmlText(op.text ?? '')])
      getRoot(op.name, 'xml').insert(op.index, [paragraph])
      return
    }
    case 'xml.insert': {
      // Text typed into block `index` of a rich text, at `offset` of its first text.
      const block = getRoot(op.name, 'xml').get(op.index)
      const text = block instanceof Y.XmlElement ? block.get(0) : undefined
      if (!(text instanceof Y.XmlText)) fail(`block ${op.index} of ${op.name} holds no text`)
      text.insert(op.offset, op.text)
      return
    }
    default:
      fail(`unknown op type ${JSON.stringify(op.type)}`)
  }
}

const awarenessStatesJson = () => {
  const states = {}
  for (const [clientID, state] of requireProvider().awareness.getStates()) {
    states[String(clientID)] = state
  }
  return states
}

/**
 * Resolve once `check()` returns a truthy value; re-checked on every doc/awareness change and
 * polled every 50 ms as a fallback. Rejects with `describe()` after `timeoutMs`.
 */
const waitUntil = (check, timeoutMs, describe) =>
  new Promise((resolve, reject) => {
    let done = false
    let poll = null
    let timer = null
    const finish = (fn, value) => {
      if (done) return
      done = true
      changeListeners.delete(listener)
      clearInterval(poll)
      clearTimeout(timer)
      fn(value)
    }
    const listener = () => {
      try {
        const r = check()
        if (r) finish(resolve, r)
      } catch (err) {
        finish(reject, err)
      }
    }
    changeListeners.add(listener)
    poll = setInterval(listener, 50)
    timer = setTimeout(() => {
      let detail = ''
      try {
        detail = describe()
      } catch (err) {
        detail = String(err)
      }
      finish(reject, new CommandError(`timed out after ${timeoutMs} ms: ${detail}`))
    }, timeoutMs)
    listener()
  })

/** Wait (bounded) until a `ws` socket is fully closed. Returns a description of how it ended. */
const waitSocketClosed = (sock, timeoutMs) =>
  new Promise((resolve) => {
    if (sock === null || sock === undefined) return resolve({ socket: 'none' })
    if (sock.readyState === WebSocket.CLOSED) return resolve({ socket: 'closed' })
    const timer = setTimeout(() => {
      sock.terminate()
      resolve({ socket: 'terminated' })
    }, timeoutMs)
    sock.once('close', (code, reason) => {
      clearTimeout(timer)
      resolve({ socket: 'closed', code, reason: reason.toString() })
    })
  })

const closeEventFields = (ev) =>
  ev == null
    ? { local: true, code: null, reason: null, wasClean: null }
    : { local: false, code: ev.code ?? null, reason: ev.reason ?? '', wasClean: ev.wasClean ?? null }

const attachProviderEvents = (p) => {
  p.on('status', ({ status }) => {
    emitEvent('status', { status })
    const ws = p.ws
    if (status === 'connected' && ws && !ws.__recorded) {
      ws.__recorded = true
      ws.addEventListener('message', (ev) => {
        const data = ev.data
        receivedFrames.push(Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data))
      })
    }
  })
  p.on('synced', (synced) => {
    emitEvent('synced', { synced: Boolean(synced) })
    notifyChange()
  })
  p.on('connection-close', (ev) => emitEvent('close', closeEventFields(ev)))
  p.on('connection-error', (ev) =>
    emitEvent('error', { message: String(ev?.message ?? ev?.error?.message ?? ev?.type ?? ev) })
  )
  // y-websocket >= 3.1: the server closed with a code that shouldReconnect() rejects
  // (4400-4499 by default); the provider stopped reconnecting.
  p.on('closed', (info) => emitEvent('closed', { code: info?.code ?? null, reason: info?.reason ?? '' }))
  p.awareness.on('change', ({ added, updated, removed }, origin) => {
    emitEvent('awareness', { added, updated, removed, local: origin === 'local' })
    notifyChange()
  })
}

// ---------------------------------------------------------------------------------------------
// commands

const commands = {
  ping: async () => ({ version: VERSION, yWebsocket: providerPkgJson.version, yjs: yjsPkgJson.version }),

  connect: async (a) => {
    if (provider !== null) fail('already connected: use "reconnect", or "destroy" first')
    if (typeof a.url !== 'string') fail('connect needs "url"')
    if (typeof a.room !== 'string') fail('connect needs "room"')
    if (doc !== null) doc.destroy()
    rootTypes.clear()
    doc = new Y.Doc(a.gc === undefined ? {} : { gc: Boolean(a.gc) })
    if (a.clientID != null) doc.clientID = Number(a.clientID)
    doc.on('update', () => notifyChange())
    const opts = {
      WebSocketPolyfill: WebSocket,
      params: a.params ?? {},
      connect: a.connect ?? true,
      disableBc: true
    }
    if (a.resyncInterval != null) opts.resyncInterval = a.resyncInterval
    if (a.maxBackoffTime != null) opts.maxBackoffTime = a.maxBackoffTime
    if (a.protocols != null) opts.protocols = a.protocols
    // attach listeners before connecting so that no status event is missed
    provider = new WebsocketProvider(a.url, a.room, doc, { ...opts, connect: false })
    attachProviderEvents(provider)
    if (opts.connect) provider.connect()
    return { clientID: doc.clientID, url: provider.url }
  },

  waitSynced: async (a) => {
    const p = requireProvider()
    await waitUntil(() => p.synced, a.timeout_ms ?? 10000, () =>
      `provider not synced (wsconnected=${p.wsconnected}, url=${p.url})`)
    return {}
  },

  edit: async (a) => {
    const d = requireDoc()
    if (!Array.isArray(a.ops)) fail('edit needs "ops": [...]')
    // validate everything first would need a dry run; instead any failure aborts the rest of
    // the transaction's ops (already applied ops stay: Yjs has no rollback).
    d.transact(() => {
      for (const op of a.ops) applyOp(op)
    }, a.origin ?? null)
    return {}
  },

  state: async (a) => {
    const d = requireDoc()
    const roots = resolveRoots(a.roots, Array.from(rootTypes.keys()))
    for (const [name, kind] of rootTypes) if (!roots.has(name)) roots.set(name, kind)
    const result = {
      json: readRoots(roots),
      stateVector: b64encode(Y.encodeStateVector(d)),
      update: b64encode(
        a.since != null ? Y.encodeStateAsUpdate(d, b64decode(a.since)) : Y.encodeStateAsUpdate(d)
      )
    }
    return result
  },

  // Yjs's own relative position in a text (what an editor keeps for a cursor):
  // {name, path, index, assoc} -> base64 of Y.encodeRelativePosition.
  relativePosition: async (a) => {
    requireDoc()
    const text = resolveTarget(a, 'text')
    const position = Y.createRelativePositionFromTypeIndex(text, a.index, a.assoc ?? 0)
    return { position: b64encode(Y.encodeRelativePosition(position)) }
  },

  waitFor: async (a) => {
    requireDoc()
    if (a.expected === null || typeof a.expected !== 'object') fail('waitFor needs "expected": {root: json}')
    // compare exactly the roots named in `expected`; `roots` only supplies their types
    const hints = a.roots != null && !Array.isArray(a.roots) ? a.roots : {}
    const roots = new Map()
    for (const name of Object.keys(a.expected)) {
      const kind = hints[name] ?? rootTypes.get(name)
      if (kind === undefined) {
        fail(`type of root ${JSON.stringify(name)} unknown: pass roots={${JSON.stringify(name)}: "map"|"array"|"text"}`)
      }
      roots.set(name, kind)
    }
    let last
    await waitUntil(
      () => {
        last = readRoots(roots)
        return isDeepStrictEqual(last, a.expected)
      },
      a.timeout_ms ?? 10000,
      () => `state ${JSON.stringify(last)} != expected ${JSON.stringify(a.expected)}`
    )
    return { json: last }
  },

  setAwareness: async (a) => {
    requireProvider().awareness.setLocalState(a.state ?? null)
    return {}
  },

  setAwarenessField: async (a) => {
    requireProvider().awareness.setLocalStateField(a.field, a.value)
    return {}
  },

  awareness: async () => ({ clientID: requireDoc().clientID, states: awarenessStatesJson() }),

  waitAwareness: async (a) => {
    const p = requireProvider()
    const pred = a.predicate ?? {}
    if (pred.clientID == null) fail('waitAwareness needs predicate.clientID')
    const id = Number(pred.clientID)
    const present = pred.present ?? true
    const check = () => {
      const states = p.awareness.getStates()
      if (!present) return !states.has(id)
      if (!states.has(id)) return false
      if (pred.field === undefined) return true
      let v = states.get(id)
      for (const k of Array.isArray(pred.field) ? pred.field : [pred.field]) {
        if (v === null || typeof v !== 'object') return false
        v = v[k]
      }
      return 'equals' in pred ? isDeepStrictEqual(v, pred.equals) : v !== undefined
    }
    await waitUntil(check, a.timeout_ms ?? 10000, () =>
      `awareness predicate ${JSON.stringify(pred)} not met; states=${JSON.stringify(awarenessStatesJson())}`)
    return { states: awarenessStatesJson() }
  },

  disconnect: async (a) => {
    const p = requireProvider()
    const sock = p.ws
    p.disconnect()
    return await waitSocketClosed(sock, a.timeout_ms ?? 5000)
  },

  reconnect: async () => {
    requireProvider().connect()
    return {}
  },

  destroy: async (a) => {
    const p = requireProvider()
    const sock = p.ws
    p.destroy()
    provider = null
    // the doc stays readable via "state"
    return await waitSocketClosed(sock, a.timeout_ms ?? 5000)
  },

  applyUpdate: async (a) => {
    Y.applyUpdate(requireDoc(), b64decode(a.update), a.origin ?? null)
    return {}
  },

  // every binary frame received so far, concatenated, as base64 (raw bytes: what a
  // client was sent, whether or not its Y.Doc kept it)
  received: async () => ({ frames: receivedFrames.length, bytes: b64encode(Buffer.concat(receivedFrames)) }),

  status: async () => {
    const p = requireProvider()
    return {
      wsconnected: p.wsconnected,
      wsconnecting: p.wsconnecting,
      synced: p.synced,
      shouldConnect: p.shouldConnect,
      url: p.url
    }
  },

  exit: async (a) => {
    // graceful: close the socket cleanly, reply, then exit once stdout is flushed
    let closed = { socket: 'none' }
    if (provider !== null) {
      const sock = provider.ws
      provider.destroy()
      provider = null
      closed = await waitSocketClosed(sock, a.timeout_ms ?? 5000)
    }
    setImmediate(() => rawWrite('', () => process.exit(0)))
    return closed
  }
}

// ---------------------------------------------------------------------------------------------
// main loop

const handleLine = async (line) => {
  if (line.trim() === '') return
  let msg
  try {
    msg = JSON.parse(line)
  } catch (err) {
    emit({ id: null, ok: false, error: `invalid JSON command: ${err.message}` })
    return
  }
  const id = msg?.id ?? null
  const fn = Object.hasOwn(commands, msg?.cmd) ? commands[msg.cmd] : undefined
  if (fn === undefined) {
    emit({ id, ok: false, error: `unknown command ${JSON.stringify(msg?.cmd)}` })
    return
  }
  try {
    const result = (await fn(msg)) ?? {}
    emit({ ...result, id, ok: true })
  } catch (err) {
    if (!(err instanceof CommandError)) console.error(`command ${msg.cmd} failed:`, err)
    emit({ id, ok: false, error: err instanceof Error ? err.message : String(err) })
  }
}

process.on('uncaughtException', (err) => {
  console.error('uncaught exception:', err)
  emitEvent('fatal', { error: String(err?.stack ?? err) })
  process.exit(70)
})

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => {
  handleLine(line)
})
rl.on('close', () => {
  // the controlling test process went away (or closed stdin): exit without lingering
  try {
    if (provider !== null) provider.destroy()
  } catch (err) {
    console.error(err)
  }
  process.exit(0)
})

console.error(
  `client.mjs ready: y-websocket ${providerPkgJson.version} (v${VERSION}), yjs ${yjsPkgJson.version}, node ${process.version}`
)
emitEvent('ready', { version: VERSION, yWebsocket: providerPkgJson.version, yjs: yjsPkgJson.version })
