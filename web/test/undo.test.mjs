// The undo history (web/src/undo.js): one user action is one step across documents, and an
// undo never touches what arrived from elsewhere. Without a browser: node --test web/test/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'

const { History } = await import('../src/undo.js')
const { LOCAL, HOUSEKEEPING, localOrigin } = await import('../src/sync.js')

function wedding () {
  const guests = new Y.Doc()
  const seating = new Y.Doc()
  return { guests, seating }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0))

test('removing a seated guest is one step across the guests and the seating', async () => {
  const docs = wedding()
  const history = new History(docs)
  docs.guests.transact(() => docs.guests.getMap('guests').set('g1', 'Ada'), LOCAL)
  await tick()
  docs.seating.transact(() => docs.seating.getMap('assignments').set('g1', 't1'), LOCAL)
  await tick()
  history.act('remove Ada', () => {
    docs.guests.transact(() => docs.guests.getMap('guests').delete('g1'), LOCAL)
    docs.seating.transact(() => docs.seating.getMap('assignments').delete('g1'), LOCAL)
  })
  await tick()
  assert.equal(history.nextUndo, 'remove Ada')
  assert.equal(history.undo(), true)
  assert.equal(docs.guests.getMap('guests').get('g1'), 'Ada')
  assert.equal(docs.seating.getMap('assignments').get('g1'), 't1')
  assert.equal(history.redo(), true)
  assert.equal(docs.guests.getMap('guests').has('g1'), false)
  assert.equal(docs.seating.getMap('assignments').has('g1'), false)
})

test('an undo leaves what came from elsewhere, and the housekeeping writes are no step', async () => {
  const docs = wedding()
  const history = new History(docs)
  const guests = docs.guests.getMap('guests')
  docs.guests.transact(() => guests.set('g1', 'Ada'), LOCAL)
  await tick()
  // Another person (through the provider), and the server's operation run as this person.
  docs.guests.transact(() => guests.set('g2', 'Grace'), { provider: true })
  docs.guests.transact(() => guests.set('g3', 'Alan'), null)
  docs.guests.transact(() => guests.set('notes', 'made when a form opened'), HOUSEKEEPING)
  await tick()
  assert.equal(history.undos.length, 1)
  history.undo()
  assert.deepEqual([...guests.keys()].sort(), ['g2', 'g3', 'notes'])
  assert.equal(history.canUndo, false)
})

test("a note's typing is one step per pause; a new action clears what could be redone", async () => {
  let clock = 0
  const docs = wedding()
  const history = new History(docs, { typingPause: 500, now: () => clock })
  const text = new Y.Text()
  docs.guests.transact(() => docs.guests.getMap('guests').set('n', text), HOUSEKEEPING)
  const origin = localOrigin('notes')
  for (const letter of 'abc') {
    docs.guests.transact(() => text.insert(text.length, letter), origin)
    await tick()
    clock += 100
  }
  clock += 1000
  docs.guests.transact(() => text.insert(text.length, 'd'), origin)
  await tick()
  assert.equal(history.undos.length, 2)
  history.undo()
  assert.equal(text.toString(), 'abc')
  assert.equal(history.canRedo, true)
  docs.guests.transact(() => docs.guests.getMap('guests').set('g9', 'Zoe'), LOCAL)
  await tick()
  assert.equal(history.canRedo, false)
  history.undo()
  history.undo()
  assert.equal(text.toString(), '')
})
