// A document whose Yjs client id was taken (issue 73): the server refused an update of this
// replica, nothing applied, because its new items name a client id another person owns
// (4409 on /sync, a CLOSE of that document whose reason starts with 4409 on /collab, 422
// `client_id_taken` over HTTP). The replica starts a new Y.Doc from the server's state and
// re-applies its unsent edits to it as new edits, each under a fresh client id.
//
// Why not a diff against the server's state vector: the other owner of the taken id has
// already used its first clocks on the server, so the server's state vector says it holds
// this replica's first items under that id, and a diff leaves them out (the new entry a
// later item is written into, say): they would be lost, and the items after them would be
// read against the other person's. So every item of this replica under a taken id is
// unsent, from clock 0; under any other id, what is past the server's clock. Those items are
// written again as they are (the same content, parents, neighbours and deletions, so text
// keeps its places and an entry its fields), each client's run under a fresh id that
// nobody has written under: the server makes them this person's.

import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'

/** The origin of the server's state loaded into the new document. */
export const FROM_SERVER = 'crdt-server:from-server'
/** The origin of the unsent edits re-applied to it. */
export const REAPPLIED = 'crdt-server:reapplied'

/** The client id a refusal names ("... Yjs client id 123 belongs to someone else ..."),
 *  or null. */
export function takenIdOf (text) {
  const found = /client id (\d+)/.exec(text || '')
  return found ? Number(found[1]) : null
}

function freshClientId (used) {
  const bytes = new Uint32Array(1)
  do crypto.getRandomValues(bytes)
  while (used.has(bytes[0]))
  used.add(bytes[0])
  return bytes[0]
}

/** Per client, sorted ranges `[start, end)` with overlapping ones merged. */
function rangesByClient (ds) {
  const out = new Map()
  ds.clients.forEach((items, client) => {
    const sorted = items.map((i) => [i.clock, i.clock + i.len]).sort((a, b) => a[0] - b[0])
    const merged = []
    for (const [start, end] of sorted) {
      const last = merged[merged.length - 1]
      if (last && start <= last[1]) last[1] = Math.max(last[1], end)
      else merged.push([start, end])
    }
    out.set(client, merged)
  })
  return out
}

/** `[start, end)` less every range of `taken` (sorted, merged). */
function subtract ([start, end], taken = []) {
  const left = []
  let at = start
  for (const [s, e] of taken) {
    if (e <= at || s >= end) continue
    if (s > at) left.push([at, s])
    at = Math.max(at, e)
  }
  if (at < end) left.push([at, end])
  return left
}

/**
 * What `doc` holds that the server (`serverState`, its whole state as an update) does not,
 * as one update whose items are under fresh client ids: `{ update, clients }`, `update` null
 * when nothing is unsent, `clients` the fresh id of each client whose items moved. `taken`:
 * the client ids the server refused (every item of this replica under them is unsent).
 */
export function unsentEdits (doc, serverState, taken = []) {
  const server = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(serverState))
  const from = new Map(server)
  for (const client of taken) from.delete(client)
  const diff = Y.decodeUpdate(Y.encodeStateAsUpdate(doc, Y.encodeStateVector(from)))
  const used = new Set([...server.keys(), ...doc.store.clients.keys()])
  const clients = new Map() // old client -> fresh client
  for (const struct of diff.structs) {
    if (!clients.has(struct.id.client)) clients.set(struct.id.client, freshClientId(used))
  }
  const start = (client) => from.get(client) || 0
  const moved = (id) => id instanceof Y.ID && clients.has(id.client) && id.clock >= start(id.client)
  const rename = (id) => (moved(id) ? Y.createID(clients.get(id.client), id.clock - start(id.client)) : id)

  // Deletions the server has not made: ours, moved with their items where they are ours.
  const serverDeleted = rangesByClient(Y.decodeUpdate(serverState).ds)
  const deletes = new Map()
  const addDelete = (client, s, e) => {
    if (!deletes.has(client)) deletes.set(client, [])
    deletes.get(client).push([s, e])
  }
  rangesByClient(diff.ds).forEach((ranges, client) => {
    const cut = clients.has(client) ? start(client) : Infinity
    for (const [s, e] of ranges) {
      // Below the cut, items the server holds (unless it deleted them too); past it, ours.
      if (s < Math.min(e, cut)) {
        for (const [a, b] of subtract([s, Math.min(e, cut)], serverDeleted.get(client))) addDelete(client, a, b)
      }
      if (Math.max(s, cut) < e) addDelete(clients.get(client), Math.max(s, cut) - cut, e - cut)
    }
  })
  if (!diff.structs.length && !deletes.size) return { update: null, clients }

  const runs = new Map() // fresh client -> its structs, in clock order
  for (const struct of diff.structs) {
    if (struct instanceof Y.Item) {
      struct.origin = rename(struct.origin)
      struct.rightOrigin = rename(struct.rightOrigin)
      if (struct.parent instanceof Y.ID) struct.parent = rename(struct.parent)
    }
    struct.id = rename(struct.id)
    if (!runs.has(struct.id.client)) runs.set(struct.id.client, [])
    runs.get(struct.id.client).push(struct)
  }
  const encoder = new Y.UpdateEncoderV1()
  const out = encoder.restEncoder
  encoding.writeVarUint(out, runs.size)
  for (const [client, structs] of [...runs].sort((a, b) => b[0] - a[0])) {
    encoding.writeVarUint(out, structs.length)
    encoder.writeClient(client)
    encoding.writeVarUint(out, structs[0].id.clock)
    for (const struct of structs) struct.write(encoder, 0)
  }
  encoding.writeVarUint(out, deletes.size)
  for (const [client, ranges] of [...deletes].sort((a, b) => b[0] - a[0])) {
    encoder.resetDsCurVal()
    encoding.writeVarUint(out, client)
    encoding.writeVarUint(out, ranges.length)
    for (const [s, e] of ranges.sort((a, b) => a[0] - b[0])) {
      encoder.writeDsClock(s)
      encoder.writeDsLen(e - s)
    }
  }
  return { update: encoder.toUint8Array(), clients }
}

/**
 * A new Y.Doc (a new client id) holding the server's state (`serverState`) and, re-applied
 * to it, what `doc` holds that the server does not (`unsentEdits`): `{ doc, update,
 * clients }`, `update` being what was re-applied (null if nothing).
 */
export function rebuild (doc, serverState, taken = []) {
  const unsent = unsentEdits(doc, serverState, taken)
  const next = new Y.Doc({ gc: doc.gc })
  Y.applyUpdate(next, serverState, FROM_SERVER)
  if (unsent.update) Y.applyUpdate(next, unsent.update, REAPPLIED)
  return { doc: next, ...unsent }
}
