// An edit form's rule (web/src/forms.js): it writes only the fields its person changed since it
// opened; someone else's change meanwhile is shown and never written back; a field both
// changed is written only after the person picks one. Without a browser: node --test web/test/.
import { test } from 'node:test'
import assert from 'node:assert/strict'

const { EditState, FormErrors } = await import('../src/forms.js')

const opened = { name: 'Ann', meal: 'fish', rsvp: 'pending' }

test('nothing typed: nothing is written, whatever others changed', () => {
  const state = new EditState('g1', opened)
  const now = { ...opened, meal: 'vegan' }
  assert.deepEqual(state.changes(now), { write: {}, clashes: [] })
  assert.deepEqual(state.field('meal', 'vegan'), { value: 'vegan', theirs: true, clash: null })
  assert.deepEqual(state.field('name', 'Ann'), { value: 'Ann', theirs: false, clash: null })
})

test('only the typed field is written; another field changed meanwhile is left as it is', () => {
  const state = new EditState('g1', opened)
  state.typed('name', 'Ann Lee')
  const now = { ...opened, meal: 'vegan' }
  assert.deepEqual(state.changes(now), { write: { name: 'Ann Lee' }, clashes: [] })
})

test('typing the opened value back writes nothing', () => {
  const state = new EditState('g1', opened)
  state.typed('meal', 'beef')
  state.typed('meal', 'fish')
  assert.deepEqual(state.changes(opened), { write: {}, clashes: [] })
})

test('a field both changed is a clash until the person picks a side', () => {
  const state = new EditState('g1', opened)
  state.typed('meal', 'beef')
  const now = { ...opened, meal: 'vegan' }
  assert.deepEqual(state.changes(now), { write: {}, clashes: ['meal'] })
  assert.deepEqual(state.field('meal', 'vegan'), { value: 'beef', theirs: true, clash: { mine: 'beef', theirs: 'vegan' } })
  state.pick('meal', 'mine', 'vegan')
  assert.deepEqual(state.changes(now), { write: { meal: 'beef' }, clashes: [] })
  // A further change of theirs after the pick asks again.
  assert.deepEqual(state.changes({ ...now, meal: 'chicken' }), { write: {}, clashes: ['meal'] })
})

test('picking theirs drops what the person typed there', () => {
  const state = new EditState('g1', opened)
  state.typed('meal', 'beef')
  state.typed('name', 'Ann Lee')
  const now = { ...opened, meal: 'vegan' }
  state.pick('meal', 'theirs', 'vegan')
  assert.deepEqual(state.field('meal', 'vegan'), { value: 'vegan', theirs: false, clash: null })
  assert.deepEqual(state.changes(now), { write: { name: 'Ann Lee' }, clashes: [] })
})

test('both typing the same value is no clash and no write', () => {
  const state = new EditState('g1', opened)
  state.typed('meal', 'vegan')
  assert.deepEqual(state.changes({ ...opened, meal: 'vegan' }), { write: {}, clashes: [] })
})

test('a refusal names its fields; editing one takes its reason away, the first is focused', () => {
  let renders = 0
  const errors = new FormErrors(() => { renders += 1 })
  errors.refuse('add-item', [{ field: 'title', message: 'An item needs a title.' }, { field: 'end', message: 'Ends too early.' }])
  assert.equal(errors.message('add-item', 'title'), 'An item needs a title.')
  assert.deepEqual(errors.pending, { form: 'add-item', field: 'title' })
  const f = errors.of('add-item')
  assert.equal(f.describedBy('end'), 'error-add-item-end')
  assert.equal(f.invalid('end'), 'true')
  f.edited({ target: { name: 'title' } })
  assert.equal(errors.message('add-item', 'title'), null)
  assert.equal(errors.message('add-item', 'end'), 'Ends too early.')
  errors.clear('add-item')
  assert.equal(errors.message('add-item', 'end'), null)
  assert.equal(renders, 3)
})

test('a CSV cell never runs as a formula; a long list draws a window around the screen', async () => {
  const { csvCell, windowOf } = await import('../src/guestlist.js')
  assert.equal(csvCell('=SUM(A1)'), "'=SUM(A1)")
  assert.equal(csvCell('a "b", c'), '"a ""b"", c"')
  assert.equal(csvCell(['vegan', 'nuts']), 'vegan; nuts')
  assert.deepEqual(windowOf(150, -5000, 800), { from: 0, to: 150 })
  assert.deepEqual(windowOf(1000, 0, 800, 100), { from: 0, to: 48 })
  assert.deepEqual(windowOf(1000, -50_000, 800, 100), { from: 460, to: 548 })
  assert.deepEqual(windowOf(1000, -500_000, 800, 100), { from: 959, to: 1000 })
})
