// The app reads the server's schema (src/schema.js, generated from the domain): the guest
// list's fields, words, CSV columns and answers come from it, with the words people saw before.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { defaultAccess, entities, guestFieldSets, kinds, operate, roles } from '../src/schema.js'
import { FIELD_WORDS, csvColumns, fieldError, fieldsOf, formFields, readRecord, shownValue, storedValue } from '../src/fields.js'
import { RSVP, SHAPES, SIDES, STATUSES } from '../src/model.js'
import { selectionCsv } from '../src/guestlist.js'
import { GUEST_FIELDS, ROLES } from '../src/invites.js'
import { KINDS } from '../src/sync.js'

test('the schema holds every document, record type and role the app knows', () => {
  assert.deepEqual([...KINDS], ['guests', 'seating', 'timeline', 'budget', 'tasks'])
  assert.deepEqual([...KINDS].sort(), [...kinds].sort())
  assert.deepEqual(new Set(Object.values(entities).map((e) => e.kind)), new Set(kinds))
  assert.deepEqual(ROLES.map(([r]) => r).sort(), [...roles].sort())
  assert.deepEqual(GUEST_FIELDS.map(([v]) => v).sort(), Object.keys(guestFieldSets).sort())
  assert.equal(defaultAccess.family.guests, 'operate')
  assert.equal(defaultAccess.vendor.conflicts, 'none')
  assert.equal(defaultAccess.couple.conflicts, 'read')
})

test('choices and words are what the app said before', () => {
  assert.deepEqual(RSVP, ['pending', 'accepted', 'declined'])
  assert.deepEqual(SIDES, { partner_a: 'Partner A', partner_b: 'Partner B', both: 'Both' })
  assert.deepEqual(STATUSES, ['planned', 'confirmed', 'done', 'cancelled'])
  assert.deepEqual(SHAPES, ['round', 'rectangular', 'square', 'oval'])
  const before = {
    name: 'name', household: 'household', side: 'side', meal: 'meal', dietary: 'dietary needs', plus_one: 'plus-one',
    contact: 'contact', capacity: 'seats', shape: 'shape', position: 'place on the chart', title: 'title',
    location: 'location', owner: 'owner', vendor: 'vendor', status: 'status', notes: 'notes', planned: 'planned amount',
    amount: 'amount', category_id: 'category', date: 'date', payer: 'payer', due: 'due date'
  }
  for (const [name, words] of Object.entries(before)) assert.equal(FIELD_WORDS[name], words, name)
})

// Each of these names the fields the app showed before; a field added to the domain joins
// them without a change here.
const BEFORE = ['name', 'household', 'side', 'rsvp', 'meal', 'dietary', 'plus_one', 'contact']
const known = (names) => names.filter((n) => BEFORE.includes(n))

test('a guest reads leniently, as before: bad values as defaults, no name no guest', () => {
  const read = readRecord('guests', {
    id: 'g1', name: '  Ann ', side: 'bride', rsvp: 'maybe', dietary: ['vegan', 7], plus_one: 'yes', contact: ' ', notes: 'hi', household_id: 'bad id'
  })
  const expected = {
    id: 'g1', name: 'Ann', household: null, side: null, rsvp: 'pending', meal: null, dietary: ['vegan'], plus_one: false,
    contact: null, notes: 'hi', household_id: null, plus_one_of: null
  }
  for (const [name, value] of Object.entries(expected)) assert.deepEqual(read[name], value, name)
  assert.deepEqual(Object.keys(read), ['id', ...fieldsOf('guests').map((f) => f.name)])
  assert.equal(readRecord('guests', { id: 'g2', name: '  ' }), null)
})

test("the guest form's fields, answers and values", () => {
  const form = formFields('guests')
  assert.deepEqual(known(form.map((f) => f.name)), ['name', 'household', 'side', 'rsvp', 'meal', 'dietary', 'contact', 'plus_one'])
  assert.deepEqual(form.filter((f) => BEFORE.includes(f.name)).map((f) => f.label), ['Name', 'Household', 'Side', 'RSVP', 'Meal', 'Dietary', 'Contact', 'Plus one'])
  assert.ok(form.every((f) => f.type !== 'identifier' && !f.text))
  assert.deepEqual(operate.guests.update_guest, ['dietary', 'meal', 'plus_one', 'rsvp'])
  const field = (name) => fieldsOf('guests').find((f) => f.name === name)
  assert.equal(shownValue(field('dietary'), ['vegan', 'nuts']), 'vegan, nuts')
  assert.equal(shownValue(field('plus_one'), true), 'on')
  assert.deepEqual(storedValue(field('dietary'), 'vegan, vegan , nuts,'), ['vegan', 'nuts'])
  assert.equal(storedValue(field('contact'), '  '), null)
  assert.equal(storedValue(field('side'), ''), null)
  assert.equal(storedValue(field('name'), ` ${'x'.repeat(250)}`), 'x'.repeat(200))
  assert.equal(fieldError('guests', field('dietary'), 'x'.repeat(201)), 'Each dietary need is at most 200 characters: separate them with commas.')
  assert.equal(fieldError('guests', field('dietary'), 'vegan'), null)
})

test('the selection CSV has the columns people read, as before', () => {
  const columns = csvColumns('guests')
  assert.deepEqual(known(columns), BEFORE)
  assert.ok(!columns.includes('notes') && !columns.includes('household_id'))
  const guest = readRecord('guests', { id: 'g1', name: 'Ann', dietary: ['vegan', 'nuts'], plus_one: true })
  const [head, row] = selectionCsv([guest], () => 'T1').split('\r\n')
  assert.equal(head, [...columns, 'table'].join(','))
  const cells = Object.fromEntries(row.split(',').map((cell, i) => [[...columns, 'table'][i], cell]))
  assert.deepEqual(cells, { ...Object.fromEntries(columns.map((c) => [c, ''])), name: 'Ann', rsvp: 'pending', dietary: 'vegan; nuts', plus_one: 'true', table: 'T1' })
})
