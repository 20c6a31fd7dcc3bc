// Collaborative notes in the app's model (web/src/model.js), without a browser:
// node --test web/test/ (run by tests/web/test_web_units.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'

const { addItem, notesText, readTimeline, setText, smallestSplice, updateItem } = await import('../src/model.js')

test('the smallest splice keeps prefix and suffix and never splits an emoji', () => {
  assert.deepEqual(smallestSplice('abc', 'abXc'), [2, 0, 'X'])
  assert.deepEqual(smallestSplice('a😀b', 'a😁b'), [1, 2, '😁']) // same high surrogate
  assert.deepEqual(smallestSplice('😀x', '😀'), [2, 1, ''])
  assert.deepEqual(smallestSplice('', 'hi'), [0, 0, 'hi'])
})

test('an entry is created with a Y.Text, and editing it keeps what others typed', () => {
  const one = new Y.Doc()
  addItem(one, { title: 'Dinner', start: '2027-06-12T17:00:00+02:00', end: '2027-06-12T19:00:00+02:00' })
  const [item] = readTimeline(one)
  assert.equal(item.notes, '')
  const text = notesText(one, 'items', item.id)
  assert.ok(text instanceof Y.Text)
  one.transact(() => setText(text, 'Vegan 🌱 plates marked'))
  const two = new Y.Doc()
  Y.applyUpdate(two, Y.encodeStateAsUpdate(one))
  // Concurrently: one person types at the start, the other changes the end through the form.
  one.transact(() => notesText(one, 'items', item.id).insert(0, 'Ada: '))
  updateItem(two, item.id, { notes: 'Vegan 🌱 plates marked with a leaf' })
  Y.applyUpdate(one, Y.encodeStateAsUpdate(two))
  Y.applyUpdate(two, Y.encodeStateAsUpdate(one))
  for (const doc of [one, two]) {
    assert.equal(readTimeline(doc)[0].notes, 'Ada: Vegan 🌱 plates marked with a leaf')
    assert.ok(notesText(doc, 'items', item.id) instanceof Y.Text) // never replaced by a string
  }
})
