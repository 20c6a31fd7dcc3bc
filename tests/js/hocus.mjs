#!/usr/bin/env node
// Tiptap's own provider, @hocuspocus/provider 4.8.0 (one HocuspocusProviderWebsocket shared by
// several HocuspocusProvider documents), remote-controlled by pytest (tests/hocusclient.py).
//
// Protocol (line-delimited JSON), as client.mjs:
//   stdin : {"id": n, "cmd": "<name>", ...args}
//   stdout: {"id": n, "ok": true, ...result} or {"id": n, "ok": false, "error": "..."}, and
//           {"event": "ready"} once loaded. Nothing else goes to stdout.
//
// Commands: socket {url} (the shared socket), attach {doc, name, token, sessionAwareness,
// user} (a provider on it; doc is the handle the other commands name), set {doc, key, value}
// (a key of the root map "m"), token {doc, token} (what its token function returns next),
// info {doc}, wait {doc, until, ..., timeout_ms} (until: synced, authenticated, failed,
// saved: no unsynced changes, value {key, value}, stateless {count}, closeMessage,
// awareness {key, value}, events {type, count}), stateless {doc, payload},
// awareness {doc, state}, detach {doc} (provider.destroy(): the provider sends CLOSE; the
// handle stays, its Y.Doc no longer synced, so info and wait still read it), socketInfo
// (opens, closes, pings, messages, and byName: messages received per document key), exit.

import { createInterface } from 'node:readline'

const rawWrite = process.stdout.write.bind(process.stdout)
for (const level of ['log', 'info', 'debug', 'warn']) {
  console[level] = (...args) => console.error(...args)
}

const { WebSocket } = await import('ws')
const Y = await import('yjs')
const { HocuspocusProvider, HocuspocusProviderWebsocket } = await import('@hocuspocus/provider')

const emit = (obj) => rawWrite(JSON.stringify(obj) + '\n')

let socket = null
const socketLog = { opens: 0, closes: [], pings: 0, messages: 0, byName: {} }

// The document key in front of a message (lib0 varString), or null for a ping or pong.
const keyOf = (bytes) => {
  if (bytes.length < 2) return null
  let length = 0
  let shift = 0
  let pos = 0
  while (pos < bytes.length) {
    const byte = bytes[pos++]
    length += (byte & 0x7f) * 2 ** shift
    shift += 7
    if (byte < 0x80) break
  }
  return new TextDecoder().decode(bytes.subarray(pos, pos + length))
}
const docs = new Map()

const need = (name) => {
  const d = docs.get(name)
  if (!d) throw new Error(`no document ${JSON.stringify(name)}`)
  return d
}

const infoOf = (d) => ({
  synced: d.provider.isSynced,
  authenticated: d.provider.isAuthenticated,
  scope: d.provider.authorizedScope ?? null,
  unsynced: d.provider.unsyncedChanges,
  map: d.doc.getMap('m').toJSON(),
  events: d.events,
  awareness: Array.from(d.provider.awareness.getStates().entries()).map(([client, state]) => ({
    client,
    state,
  })),
  clientID: d.doc.clientID,
  detached: !!d.detached,
})

const conditions = {
  synced: (d) => d.provider.isSynced,
  authenticated: (d) => d.provider.isAuthenticated,
  failed: (d) => d.events.some((e) => e.type === 'authenticationFailed'),
  saved: (d) => d.provider.isSynced && d.provider.unsyncedChanges === 0,
  value: (d, a) => JSON.stringify(d.doc.getMap('m').get(a.key)) === JSON.stringify(a.value),
  stateless: (d, a) => d.events.filter((e) => e.type === 'stateless').length >= (a.count ?? 1),
  closeMessage: (d) => d.events.some((e) => e.type === 'close'),
  events: (d, a) => d.events.filter((e) => e.type === a.type).length >= (a.count ?? 1),
  awareness: (d, a) =>
    Array.from(d.provider.awareness.getStates().values()).some(
      (s) => JSON.stringify(s[a.key]) === JSON.stringify(a.value),
    ),
}

const waitUntil = (check, timeoutMs) =>
  new Promise((resolve, reject) => {
    const started = Date.now()
    const tick = () => {
      let ok = false
      try {
        ok = check()
      } catch (err) {
        reject(err)
        return
      }
      if (ok) resolve()
      else if (Date.now() - started > timeoutMs) reject(new Error(`timed out after ${timeoutMs} ms`))
      else setTimeout(tick, 10)
    }
    tick()
  })

const commands = {
  socket: ({ url }) => {
    socket = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket, delay: 100, minDelay: 100, maxDelay: 1000 })
    socket.on('open', () => {
      socketLog.opens += 1
    })
    socket.on('close', ({ event }) => socketLog.closes.push({ code: event?.code, reason: event?.reason }))
    socket.on('message', ({ data }) => {
      const bytes = new Uint8Array(data)
      socketLog.messages += 1
      if (bytes.length === 1 && bytes[0] === 9) socketLog.pings += 1
      const key = keyOf(bytes)
      if (key !== null) socketLog.byName[key] = (socketLog.byName[key] ?? 0) + 1
    })
    return {}
  },
  attach: ({ doc, name, token, sessionAwareness, user }) => {
    if (!socket) throw new Error('no socket: send "socket" first')
    const ydoc = new Y.Doc()
    const d = { doc: ydoc, token, events: [], provider: null }
    d.provider = new HocuspocusProvider({
      websocketProvider: socket,
      name,
      document: ydoc,
      token: async () => d.token,
      sessionAwareness: !!sessionAwareness,
      onAuthenticated: ({ scope }) => d.events.push({ type: 'authenticated', scope }),
      onAuthenticationFailed: ({ reason }) => d.events.push({ type: 'authenticationFailed', reason }),
      onStateless: ({ payload }) => d.events.push({ type: 'stateless', payload }),
      onClose: ({ event }) => d.events.push({ type: 'close', code: event.code, reason: event.reason }),
    })
    if (user) d.provider.setAwarenessField('user', user)
    d.provider.attach()
    docs.set(doc, d)
    return { clientID: ydoc.clientID }
  },
  set: ({ doc, key, value }) => {
    need(doc).doc.getMap('m').set(key, value)
    return {}
  },
  token: ({ doc, token }) => {
    need(doc).token = token
    return {}
  },
  info: ({ doc }) => infoOf(need(doc)),
  wait: async (args) => {
    const d = need(args.doc)
    const condition = conditions[args.until]
    if (!condition) throw new Error(`unknown condition ${args.until}`)
    await waitUntil(() => condition(d, args), args.timeout_ms ?? 10000)
    return infoOf(d)
  },
  stateless: ({ doc, payload }) => {
    need(doc).provider.sendStateless(payload)
    return {}
  },
  awareness: ({ doc, state }) => {
    need(doc).provider.awareness.setLocalState(state)
    return {}
  },
  detach: ({ doc }) => {
    const d = need(doc)
    d.provider.destroy()
    d.detached = true
    return {}
  },
  socketInfo: () => ({ ...socketLog, status: socket?.status ?? null }),
  exit: () => {
    setTimeout(() => process.exit(0), 10)
    return {}
  },
}

const rl = createInterface({ input: process.stdin })
rl.on('close', () => process.exit(0))
rl.on('line', async (line) => {
  let request
  try {
    request = JSON.parse(line)
  } catch {
    return
  }
  const { id, cmd } = request
  try {
    const handler = commands[cmd]
    if (!handler) throw new Error(`unknown command ${cmd}`)
    emit({ id, ok: true, ...(await handler(request)) })
  } catch (err) {
    emit({ id, ok: false, error: String(err?.message ?? err) })
  }
})
emit({ event: 'ready' })
