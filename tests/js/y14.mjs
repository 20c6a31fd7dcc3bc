#!/usr/bin/env node
// yjs 14 over y-websocket: @y/websocket 4.0.0-3 with @y/y 14.0.0-rc.7, one document per
// process, remote-controlled by pytest (tests/wire/test_yjs14_js.py) over line-delimited JSON
// as hocus.mjs is. The document's root "m" is one Y.Type whose attributes are what a yjs 13
// peer reads as the Y.Map "m"; "t" is one Y.Type whose text a yjs 13 peer reads as Y.Text "t".
//
// Commands: connect {url, room, token}, set {key, value}, insert {index, text},
// wait {until: "synced" | "value" | "text", key, value, text, timeout_ms}, info, exit.

import { createInterface } from 'node:readline'

const rawWrite = process.stdout.write.bind(process.stdout)
for (const level of ['log', 'info', 'debug', 'warn']) {
  console[level] = (...args) => console.error(...args)
}

const { WebSocket } = await import('ws')
const Y = await import('@y/y')
const { WebsocketProvider } = await import('@y/websocket')

const emit = (obj) => rawWrite(JSON.stringify(obj) + '\n')

const doc = new Y.Doc()
let provider = null

const textOf = () => doc.get('t').toString()
const infoOf = () => ({
  synced: provider?.synced ?? false,
  map: doc.get('m').getAttrs ? doc.get('m').getAttrs() : null,
  text: textOf(),
})

const conditions = {
  synced: () => provider?.synced,
  value: (a) => JSON.stringify(doc.get('m').getAttr(a.key)) === JSON.stringify(a.value),
  text: (a) => textOf() === a.text,
}

const waitUntil = (check, timeoutMs) =>
  new Promise((resolve, reject) => {
    const started = Date.now()
    const tick = () => {
      if (check()) resolve()
      else if (Date.now() - started > timeoutMs) reject(new Error(`timed out after ${timeoutMs} ms`))
      else setTimeout(tick, 10)
    }
    tick()
  })

const commands = {
  connect: ({ url, room, token }) => {
    provider = new WebsocketProvider(url, room, doc, {
      params: token ? { token } : {},
      WebSocketPolyfill: WebSocket,
    })
    return {}
  },
  set: ({ key, value }) => {
    doc.get('m').setAttr(key, value)
    return {}
  },
  insert: ({ index, text }) => {
    doc.get('t').insert(index, text)
    return {}
  },
  info: () => infoOf(),
  wait: async (args) => {
    const condition = conditions[args.until]
    if (!condition) throw new Error(`unknown condition ${args.until}`)
    await waitUntil(() => condition(args), args.timeout_ms ?? 10000)
    return infoOf()
  },
  exit: () => {
    provider?.destroy()
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
