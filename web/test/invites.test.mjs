// What the invitation form suggests a vendor sees of the guest list.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GUEST_FIELDS, guestFieldsText, suggestedGuestFields } from '../src/invites.js'

test('a caterer is suggested the meals and dietary needs, anyone else the counts', () => {
  const directory = [{ name: 'Rosa & Co', category: 'Catering' }, { name: 'Bloom', category: 'florist' }]
  assert.equal(suggestedGuestFields('Rosa & Co', directory), 'names_meals')
  assert.equal(suggestedGuestFields('  rosa & co ', directory), 'names_meals')
  assert.equal(suggestedGuestFields('Bloom', directory), 'counts')
  // No record: the name says it, or nothing does.
  assert.equal(suggestedGuestFields('Green Kitchen Caterers', directory), 'names_meals')
  assert.equal(suggestedGuestFields('Pia Photo', directory), 'counts')
  assert.equal(suggestedGuestFields('', directory), 'counts')
  // A record's category wins over its name.
  assert.equal(suggestedGuestFields('Cater Pillar', [{ name: 'Cater Pillar', category: 'band' }]), 'counts')
})

test('every field set the server knows has words', () => {
  assert.deepEqual(GUEST_FIELDS.map(([v]) => v), ['names_meals', 'names', 'counts', 'nothing'])
  assert.equal(guestFieldsText('names'), 'Names only')
  assert.equal(guestFieldsText(undefined), 'what vendors see')
})
