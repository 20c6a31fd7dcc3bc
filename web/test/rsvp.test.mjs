// The RSVP page's offline queue (web/src/rsvp/queue.js), without a browser:
// node --test web/test/ (run by tests/web/test_web_units.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { keep, lastPage, pending, rememberPage, send } from '../src/rsvp/queue.js'

function storage () {
  const store = new Map()
  return {
    store,
    getItem: (k) => (store.has(k) ? store.get(k) : null),
    setItem: (k, v) => store.set(k, String(v)),
    removeItem: (k) => store.delete(k)
  }
}

const body = { people: [{ guest_id: 'g1', attending: true }] }

test('an answer is kept with its key under rsvp: keys only, for its own link', () => {
  const s = storage()
  const entry = keep(s, 'w.h.code', body)
  assert.match(entry.key, /^rsvp-[0-9a-f]{32}$/)
  assert.deepEqual(pending(s, 'w.h.code'), entry)
  assert.equal(pending(s, 'w.h.other'), null)
  rememberPage(s, 'w.h.code', { household: 'Lee' })
  assert.deepEqual(lastPage(s, 'w.h.code'), { household: 'Lee' })
  assert.ok([...s.store.keys()].every((k) => k.startsWith('rsvp:')))
  s.setItem('rsvp:pending', '{not json')
  assert.equal(pending(s, 'w.h.code'), null)
})

test('offline keeps the answer and its key; a reply forgets it; the key is sent each time', async () => {
  const s = storage()
  const entry = keep(s, 'w.h.code', body)
  const seen = []
  const down = async () => { throw new TypeError('Failed to fetch') }
  assert.equal((await send(s, entry, down)).state, 'offline')
  assert.deepEqual(pending(s, 'w.h.code'), entry)
  const busy = async () => ({ status: 503, ok: false, json: async () => ({}) })
  assert.equal((await send(s, entry, busy)).state, 'offline')
  const up = async (url, init) => {
    seen.push([url, init.method, init.headers['Idempotency-Key'], init.body])
    return { status: 200, ok: true, json: async () => ({ answered: [] }) }
  }
  const result = await send(s, entry, up)
  assert.equal(result.state, 'sent')
  assert.deepEqual(seen, [['/api/rsvp/w.h.code', 'PUT', entry.key, JSON.stringify(body)]])
  assert.equal(pending(s, 'w.h.code'), null)
})

test('a refusal is reported and forgotten (sending it again would be refused again)', async () => {
  const s = storage()
  const entry = keep(s, 'w.h.code', body)
  const closed = async () => ({ status: 410, ok: false, json: async () => ({ detail: 'closed' }) })
  const result = await send(s, entry, closed)
  assert.equal(result.state, 'refused')
  assert.equal(result.status, 410)
  assert.equal(pending(s, 'w.h.code'), null)
})

test('a day and a moment are written for people, never as stored', async () => {
  const { spoken } = await import('../src/rsvp/words.js')
  const day = spoken('2027-06-12')
  assert.notEqual(day, '2027-06-12')
  assert.match(day, /2027/)
  assert.match(day, /12/)
  // A calendar day is that day in every zone, whatever the device's.
  assert.equal(spoken('2027-06-12', 'Pacific/Kiritimati'), day)
  const moment = spoken('2027-06-01T18:00:00Z', 'Europe/Berlin')
  assert.match(moment, /20/) // 18:00 UTC is 20:00 in Berlin in June
  assert.equal(spoken('not a date'), 'not a date')
  assert.match(spoken('2027-06-01T18:00:00Z', 'Mars/Olympus'), /2027/) // an unknown zone
})
