// "Running late": how a proposal's move is said, and the panel's state before any answer.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DEFAULT_MINUTES, Delays, itemTitle, minutesError, moveWords } from '../src/delays.js'

const local = { time: (iso) => iso.slice(11, 16) }

test('a move is said as its old and new start', () => {
  const move = { start: '2031-06-13T09:00:00+01:00', new_start: '2031-06-13T09:30:00+01:00' }
  assert.equal(moveWords(local, move), '09:00 → 09:30')
})

test('opening an item starts from the default minutes, with no proposal yet', () => {
  let changes = 0
  const delays = new Delays({ wedding: 'w 1', token: () => 't', onChange: () => { changes += 1 } })
  assert.equal(delays.base, '/api/weddings/w%201/day/delays')
  delays.open('flowers')
  assert.equal(delays.item, 'flowers')
  assert.equal(delays.minutes, DEFAULT_MINUTES)
  assert.equal(delays.proposal, null)
  delays.close()
  assert.equal(delays.item, null)
  assert.equal(changes, 2)
})

test('minutes late are a whole number from 1 to 1440; anything else is refused in words', () => {
  for (const ok of ['1', '15', '1440']) assert.equal(minutesError(ok), null)
  for (const wrong of ['', ' ', '0', '-5', '1441', '2.5', 'soon']) {
    assert.equal(minutesError(wrong), 'Type how many minutes late, 1 to 1440.', wrong)
  }
})

test('a refusal is said in the words of the field it names, else its detail', async () => {
  const { fieldReasonOf } = await import('../src/api.js')
  const fixed = { status: 422, body: { detail: 'item: this item is fixed: it keeps its time', errors: [{ field: 'item', message: 'this item is fixed: it keeps its time' }] } }
  assert.equal(fieldReasonOf(fixed), 'this item is fixed: it keeps its time')
  assert.equal(fieldReasonOf({ status: 403, body: { detail: 'not yours' } }), 'not yours')
  assert.equal(fieldReasonOf({ status: 0, body: null }), 'the server cannot be reached')
})

test('an item of a proposal is named by its title, never its id', () => {
  const timeline = [{ id: 'd-ceremony', title: 'Ceremony' }, { id: 'd-dinner', title: 'Dinner' }]
  assert.equal(itemTitle(timeline, 'd-ceremony'), 'Ceremony')
  assert.equal(itemTitle(timeline, 'd-dinner', 'Dinner at eight'), 'Dinner at eight')
  assert.equal(itemTitle(timeline, 'd-gone'), 'an item no longer in the timeline')
  assert.equal(itemTitle(undefined, 'd-gone'), 'an item no longer in the timeline')
})
