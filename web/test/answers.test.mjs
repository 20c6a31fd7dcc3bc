// Who answered by their RSVP link, and when (web/src/answers.js), without a browser:
// node --test web/test/ (run by tests/web/test_web_units.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'

const { answerOf, householdNotes, mergeAnswers, RsvpAnswers } = await import('../src/answers.js')

const changed = (seq, id, to, actor = { sub: `guest:${id}`, role: 'guest' }) =>
  ({ seq, type: 'guest.rsvp_changed', actor, at: `2026-11-26T10:0${seq}:00Z`, data: { id, from: 'pending', to } })

test('only an answer a guest gave for themselves counts', () => {
  assert.deepEqual(answerOf(changed(1, 'g1', 'accepted')), { guestId: 'g1', to: 'accepted', at: '2026-11-26T10:01:00Z', seq: 1 })
  assert.equal(answerOf(changed(2, 'g1', 'accepted', { sub: 'cam', role: 'couple' })), null)
  assert.equal(answerOf(changed(3, 'g1', 'accepted', { sub: 'guest:g2', role: 'guest' })), null)
  assert.equal(answerOf({ ...changed(4, 'g1', 'accepted'), type: 'guest.updated' }), null)
  assert.equal(answerOf({ ...changed(5, 'g1', 'accepted'), data: { id: 7 } }), null)
  assert.equal(answerOf(null), null)
})

test('the newest answer per guest wins, whatever order they arrive in', () => {
  const latest = new Map()
  assert.equal(mergeAnswers(latest, [changed(2, 'g1', 'declined'), changed(1, 'g1', 'accepted')]), true)
  assert.equal(latest.get('g1').to, 'declined')
  assert.equal(mergeAnswers(latest, [changed(1, 'g1', 'accepted')]), false)
  mergeAnswers(latest, [changed(3, 'g2', 'accepted')])
  const answers = new RsvpAnswers({ wedding: 'w1', token: () => 't', onChange: () => {} })
  answers.latest = latest
  const shown = answers.shown([{ id: 'g1', name: 'Ann' }, { id: 'g2', name: 'Bo' }])
  assert.deepEqual(shown.map((a) => [a.guest.name, a.to]), [['Bo', 'accepted'], ['Ann', 'declined']])
  // An erased guest's answer is not shown.
  assert.deepEqual(answers.shown([{ id: 'g2', name: 'Bo' }]).map((a) => a.guestId), ['g2'])
})

test('the households\' notes to the couple, newest first', () => {
  const households = new Map([
    ['h1', { id: 'h1', name: 'Lees', note: 'We arrive Saturday only', noteAt: '2026-11-26T10:00:00+00:00' }],
    ['h2', { id: 'h2', name: 'Kims', note: null, noteAt: null }],
    ['h3', { id: 'h3', name: 'Ortiz', note: 'Sam is allergic to nuts', noteAt: '2026-11-27T09:00:00+00:00' }]
  ])
  assert.deepEqual(householdNotes(households).map((n) => [n.household.name, n.note]), [['Ortiz', 'Sam is allergic to nuts'], ['Lees', 'We arrive Saturday only']])
  assert.deepEqual(householdNotes(undefined), [])
})

test('every answer sent by a link counts, changed or not (rsvp.answered)', async () => {
  const { answersOf } = await import('../src/answers.js')
  const event = { seq: 9, type: 'rsvp.answered', at: '2026-11-26T10:09:00Z', actor: { sub: 'guest:g1', role: 'guest' }, data: { household: 'h1', answers: [{ id: 'g1', rsvp: 'accepted', changed: false }, { id: 'g2', rsvp: 'declined', changed: true }] } }
  assert.deepEqual(answersOf(event), [
    { guestId: 'g1', to: 'accepted', at: '2026-11-26T10:09:00Z', seq: 9, changed: false },
    { guestId: 'g2', to: 'declined', at: '2026-11-26T10:09:00Z', seq: 9, changed: true }
  ])
  assert.deepEqual(answersOf({ ...event, actor: { sub: 'cam', role: 'couple' } }), [])
  const latest = new Map()
  assert.equal(mergeAnswers(latest, [event]), true)
  assert.equal(latest.get('g1').changed, false)
})
