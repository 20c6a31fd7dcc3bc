// The Guests' answers screen's rows (web/src/rsvplinks.js), without a browser:
// node --test web/test/ (run by tests/web/test_web_units.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { linkRows } from '../src/rsvplinks.js'
import { logAnswers } from '../src/answers.js'

const guest = (id, name, more = {}) => ({ id, name, rsvp: 'pending', ...more })

test('a link per household with anyone in it, then one per guest in no household', () => {
  const lee = [guest('g1', 'Ann Lee'), guest('g2', 'Bo Lee')]
  const households = new Map([
    ['h1', { id: 'h1', name: 'Lees', guests: lee }],
    ['h2', { id: 'h2', name: 'Empty', guests: [] }]
  ])
  const sam = guest('sam', 'Sam Solo', { plus_one: true })
  const pat = guest('po', 'Pat Plus', { plus_one_of: 'sam' })
  const rows = linkRows(households, [...lee, sam, pat, guest('kit', 'Kit')])
  assert.deepEqual(rows.map((r) => [r.kind, r.id, r.guests.map((g) => g.id)]), [
    ['household', 'h1', ['g1', 'g2']],
    ['guest', 'kit', ['kit']],
    ['guest', 'sam', ['sam', 'po']] // the named plus-one answers with their host
  ])
})

test('every answer by link is logged once, changed or not', () => {
  const log = new Map()
  const event = (seq, changed) => ({
    type: 'rsvp.answered', seq, at: '2027-01-01T10:00:00Z', actor: { sub: 'guest:sam', role: 'guest' },
    data: { household: null, guest: 'sam', answers: [{ id: 'sam', rsvp: 'accepted', changed }] }
  })
  assert.equal(logAnswers(log, [event(3, true), event(4, false)]), true)
  assert.equal(logAnswers(log, [event(4, false)]), false)
  assert.deepEqual([...log.values()].map((e) => [e.seq, e.answers[0].changed]), [[3, true], [4, false]])
})
