// The seating chart's and print views' pure parts (web/src/chart.js, web/src/print.js):
// node --test web/test/ (run by tests/web/test_web_units.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { geometry, occupancy, placeOf } from '../src/chart.js'
import { escortCards, printRoute, runSheetItems, vendorsOf } from '../src/print.js'
import { positionOf, readSeating, setTablePosition } from '../src/model.js'

const guest = (id, name, extra = {}) => ({ id, name, rsvp: 'accepted', dietary: [], plus_one: false, plus_one_of: null, ...extra })

test('every shape seats as many as the table has, up to 60 drawn', () => {
  for (const shape of ['round', 'rectangular', 'square', 'oval']) {
    for (const capacity of [1, 2, 5, 8, 13]) assert.equal(geometry(shape, capacity).seats.length, capacity, `${shape} ${capacity}`)
    assert.equal(geometry(shape, 1000).seats.length, 60)
  }
})

test('an unplaced table stands in the grid; a placed one where it was put', () => {
  assert.deepEqual(placeOf({ position: null }, 5), { x: 470, y: 470, rotation: 0 })
  assert.deepEqual(placeOf({ position: { x: 1, y: 2, rotation: 90 } }, 5), { x: 1, y: 2, rotation: 90 })
})

test('seat numbers first, then the others and unnamed plus-ones on the free seats', () => {
  const ctx = {
    guests: [guest('a', 'Ann Lee', { plus_one: true }), guest('b', 'Bob Ray'), guest('c', 'Cy Dow')],
    seating: {
      tables: [{ id: 't1', name: 'Rose', capacity: 3, shape: 'round', position: null }],
      assignments: new Map([['a', { table_id: 't1', seat: null }], ['b', { table_id: 't1', seat: 1 }], ['c', { table_id: 't1', seat: null }]])
    }
  }
  const at = occupancy(ctx).get('t1')
  assert.equal(at.seats.get(1).guest.id, 'b')
  assert.equal(at.seats.get(2).guest.id, 'a')
  assert.equal(at.seats.get(3).plusOne, true)
  assert.equal(at.over, 1) // Cy has no seat left
})

test('a position is one value: set whole, read back, a bad one reads as unplaced', () => {
  const doc = new Y.Doc()
  const table = new Y.Map()
  doc.getMap('tables').set('t1', table)
  table.set('name', 'Rose')
  table.set('capacity', 8)
  setTablePosition(doc, 't1', { x: 120.4, y: -5, rotation: 370 })
  assert.deepEqual(table.get('position'), { x: 120, y: 0, rotation: 10 })
  assert.deepEqual(readSeating(doc).tables[0].position, { x: 120, y: 0, rotation: 10 })
  table.set('position', { x: 1, y: 'far', rotation: 0 })
  assert.equal(readSeating(doc).tables[0].position, null)
  assert.equal(positionOf({ x: 1, y: 2, rotation: 0, z: 3 }), null)
  assert.equal(positionOf({ x: 1, y: 2, rotation: 360 }), null)
})

test('print routes, run sheets and escort cards', () => {
  assert.equal(printRoute('#guests'), null)
  assert.equal(printRoute('#/print').page, '')
  const route = printRoute('#/print/run-sheet?vendor=Harbour%20Catering')
  assert.equal(route.page, 'run-sheet')
  assert.equal(route.params.get('vendor'), 'Harbour Catering')
  const timeline = [
    { id: 'i1', title: 'Dinner', vendor: 'Harbour Catering', owner: null, status: 'planned' },
    { id: 'i2', title: 'Speeches', vendor: null, owner: 'harbour catering', status: 'planned' },
    { id: 'i3', title: 'Old lunch', vendor: 'Harbour Catering', owner: null, status: 'cancelled' },
    { id: 'i4', title: 'Band', vendor: 'The Night Owls', owner: null, status: 'planned' }
  ]
  assert.deepEqual(runSheetItems(timeline, ' harbour CATERING ').map((i) => i.id), ['i1', 'i2'])
  assert.deepEqual(vendorsOf(timeline), ['Harbour Catering', 'The Night Owls'])
  const ctx = {
    guests: [guest('z', 'Zoe Ng', { plus_one: true }), guest('a', 'Ann Lee'), guest('d', 'Di Fox', { rsvp: 'declined' }), guest('u', 'Uma Oz')],
    seating: {
      tables: [{ id: 't1', name: 'Rose' }],
      assignments: new Map([['z', { table_id: 't1' }], ['a', { table_id: 't1' }], ['d', { table_id: 't1' }], ['u', { table_id: 'gone' }]])
    }
  }
  assert.deepEqual(escortCards(ctx).map((c) => [c.name, c.table]), [['Ann Lee', 'Rose'], ['Zoe Ng and guest', 'Rose']])
})
