// Households, plus-ones and totals as the app reads them (web/src/households.js), checked
// against the server's own values: node --test web/test/ (run by tests/web/test_web_units.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { guestTotals, householdIdOf, householdsOf, householdSplits, sha256hex } from '../src/households.js'

test('sha256 matches the standard vectors', () => {
  assert.equal(sha256hex('').slice(0, 16), 'e3b0c44298fc1c14')
  assert.equal(sha256hex('a'.repeat(200)).slice(0, 16), 'c2a908d98f5df987')
})

test('a free-text household reads under the id the server derives', () => {
  // documents.model.household_id_of, printed by the server's own code.
  assert.equal(householdIdOf('Dow family'), 'n-baa5da3ab628af4d')
  assert.equal(householdIdOf(' DOW   Family '), 'n-baa5da3ab628af4d')
  assert.equal(householdIdOf('Zoë 🎉 Ng'), 'n-89cc1f7df8343892')
})

const guest = (id, fields) => ({ id, name: id, household: null, household_id: null, plus_one_of: null, rsvp: 'accepted', meal: null, dietary: [], plus_one: false, ...fields })

test('households: entries, names matched, plus-ones with their host', () => {
  const entries = new Map([['h1', { id: 'h1', name: 'The Lees' }]])
  const guests = [
    guest('g1', { household_id: 'h1', plus_one: true }),
    guest('g2', { household: 'the  LEES' }),
    guest('g3', { household: 'Dows' }),
    guest('g4', { plus_one_of: 'g3' })
  ]
  const found = householdsOf(guests, entries)
  assert.deepEqual(found.get('h1').guests.map((g) => g.id), ['g1', 'g2'])
  assert.deepEqual(found.get(householdIdOf('Dows')).guests.map((g) => g.id), ['g3', 'g4'])
  const seating = { tables: [{ id: 't1', name: 'Rose', capacity: 4 }, { id: 't2', name: 'Lily', capacity: 2 }], assignments: new Map([['g1', { table_id: 't1' }], ['g2', { table_id: 't2' }]]) }
  assert.deepEqual(householdSplits(found, seating), [{
    code: 'seating.household_split',
    paths: ['seating/assignments/g1', 'seating/assignments/g2'],
    message: "Household 'The Lees' is seated at 2 tables ('Rose', 'Lily'); seat them together."
  }])
})

test('totals count people: an unnamed plus-one sits with their host', () => {
  const guests = [
    guest('g1', { meal: 'fish', plus_one: true, dietary: ['vegan'] }),
    guest('g2', { meal: 'Beef' }),
    guest('g3', { rsvp: 'declined', meal: 'fish' })
  ]
  const seating = { tables: [{ id: 't1', name: 'Rose', capacity: 4 }], assignments: new Map([['g1', { table_id: 't1' }]]) }
  const totals = guestTotals(guests, ['Fish', 'Beef'], seating)
  assert.equal(totals.people, 4)
  assert.equal(totals.unnamed_plus_ones, 1)
  assert.deepEqual(totals.meals, { Fish: 1, Beef: 1 })
  assert.equal(totals.no_meal, 1)
  assert.deepEqual(totals.dietary, { vegan: 1 })
  assert.equal(totals.tables.t1.people, 2)
  assert.equal(totals.unseated, 1)
})

test('the guest list groups guests under their household, by name; the ungrouped last', async () => {
  const { byHousehold, householdCounts } = await import('../src/guestlist.js')
  const entries = new Map([['h2', { id: 'h2', name: 'Zed family' }], ['h1', { id: 'h1', name: 'Abe family' }]])
  const guests = [
    guest('g1', { household_id: 'h2', plus_one: true }),
    guest('g2', { household: 'abe  FAMILY', rsvp: 'pending' }), // no id: matched by its name
    guest('g3', {}),
    guest('g4', { plus_one_of: 'g5' }), // a named plus-one, with their host
    guest('g5', { household: 'Free text', plus_one: true }),
    guest('g6', { household_id: 'h2', rsvp: 'declined' })
  ]
  const households = householdsOf(guests, entries)
  const groups = byHousehold(guests, households)
  assert.deepEqual(groups.map((g) => [g.household && g.household.name, g.guests.map((x) => x.id)]), [
    ['Abe family', ['g2']],
    ['Free text', ['g4', 'g5']],
    ['Zed family', ['g1', 'g6']],
    [null, ['g3']]
  ])
  // People: an unnamed plus-one is one more (g1 brings one; g5's plus-one is named, g4).
  assert.deepEqual(householdCounts(groups[2].household, guests), { people: 3, unnamed: 1, accepted: 2, pending: 0 })
  assert.deepEqual(householdCounts(groups[1].household, guests), { people: 2, unnamed: 0, accepted: 2, pending: 0 })
  assert.deepEqual(householdCounts(groups[0].household, guests), { people: 1, unnamed: 0, accepted: 0, pending: 1 })
  // A filtered list: only households with a guest shown, their counts still of everyone.
  const shown = byHousehold([guests[5]], households)
  assert.deepEqual(shown.map((g) => [g.household.name, g.guests.map((x) => x.id)]), [['Zed family', ['g6']]])
})
