// Pending edits (web/src/pending.js) are confirmed by the server's echoes: a deletion the
// server took in by parts comes back as several ranges, and their union confirms it.
// Without a browser: node --test web/test/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'

const stored = new Map()
globalThis.localStorage = {
  getItem: (key) => stored.get(key) ?? null,
  setItem: (key, value) => stored.set(key, value),
  removeItem: (key) => stored.delete(key)
}

const { PendingEdits, coveredBy } = await import('../src/pending.js')

/** An update of deletions only: `ranges` ([clock, len]) of `client`, as the server sends
 *  one part of a large deletion. */
function deletions (client, ranges) {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, 0) // no structs
  encoding.writeVarUint(encoder, 1) // one client in the delete set
  encoding.writeVarUint(encoder, client)
  encoding.writeVarUint(encoder, ranges.length)
  for (const [clock, len] of ranges) {
    encoding.writeVarUint(encoder, clock)
    encoding.writeVarUint(encoder, len)
  }
  return encoding.toUint8Array(encoder)
}

/** A person's one change removing 300 guests (one deleted range of 600 clocks). */
function removal () {
  const doc = new Y.Doc()
  doc.clientID = 77
  const guests = doc.getMap('guests')
  doc.transact(() => {
    for (let i = 0; i < 300; i++) guests.set(`g${i}`, new Y.Map([['name', `Guest ${i}`]]))
  })
  let change = null
  doc.on('update', (update) => { change = update })
  doc.transact(() => { for (let i = 0; i < 300; i++) guests.delete(`g${i}`) })
  return { doc, change }
}

test('a deleted range is confirmed by the union of the ranges echoed', () => {
  const { doc, change } = removal()
  const pending = new PendingEdits('pending-union', () => {})
  pending.add(change, doc.clientID)
  assert.deepEqual(pending.edits[0].ranges, [[77, 0, 600]])
  pending.confirmUpdate(deletions(77, [[0, 250]]))
  assert.equal(pending.count, 1)
  pending.confirmUpdate(deletions(77, [[250, 100]]))
  assert.equal(pending.count, 1)
  pending.confirmUpdate(deletions(77, [[350, 250]]))
  assert.equal(pending.count, 0)
  assert.equal(stored.has('pending-union'), false)
})

test('ranges with a gap, or of another client, confirm nothing', () => {
  assert.equal(coveredBy([[77, 0, 250], [77, 251, 349]], [77, 0, 600]), false)
  assert.equal(coveredBy([[78, 0, 600]], [77, 0, 600]), false)
  assert.equal(coveredBy([[77, 300, 300], [77, 0, 300]], [77, 0, 600]), true)
  assert.equal(coveredBy([[77, 0, 10]], [77, 2, 3]), true)
  const { doc, change } = removal()
  const pending = new PendingEdits('pending-gap', () => {})
  pending.add(change, doc.clientID)
  pending.confirmUpdate(deletions(77, [[0, 299], [300, 300]]))
  assert.equal(pending.count, 1)
})
