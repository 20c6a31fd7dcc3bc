// The queue of operations an `operate` role sends over HTTP (web/src/operations.js), without
// a browser: node --test web/test/ (run by tests/web/test_web_units.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'

const store = new Map()
globalThis.localStorage = {
  getItem: (k) => (store.has(k) ? store.get(k) : null),
  setItem: (k, v) => store.set(k, String(v)),
  removeItem: (k) => store.delete(k)
}
const { OperationQueue } = await import('../src/operations.js')

/** A fake server: answers the queued requests with `answers` in turn (a status, or 'down'). */
function serve (answers) {
  const sent = []
  globalThis.fetch = async (url, init) => {
    const answer = answers.shift() ?? 200
    sent.push({ url, op: JSON.parse(init.body), key: init.headers['Idempotency-Key'] })
    if (answer === 'down') throw new TypeError('Failed to fetch')
    return { ok: answer < 300, status: answer, json: async () => ({ detail: `refused ${answer}` }) }
  }
  return sent
}

function queue (refused = []) {
  const q = new OperationQueue({
    wedding: 'w1',
    sub: 'aunt',
    token: () => 'tok',
    onChange: () => {},
    onRefused: (entry, detail) => refused.push([entry.op.op, detail]),
    onGone: () => {}
  })
  q.retryLater = () => {} // the tests kick by hand
  return q
}

const settled = (q) => new Promise((resolve) => {
  const wait = () => (q.sending ? setTimeout(wait, 1) : resolve())
  wait()
})

test('operations go in order, each with its own Idempotency-Key, and leave the device once answered', async () => {
  store.clear()
  const sent = serve([200, 200])
  const q = queue()
  q.add('guests', { op: 'set_rsvp', guest_id: 'g1', rsvp: 'accepted' })
  q.add('seating', { op: 'assign_seat', guest_id: 'g1', table_id: 't1', seat: 2 })
  await settled(q)
  q.kick()
  await settled(q)
  assert.deepEqual(sent.map((s) => s.url), ['/api/weddings/w1/docs/guests/ops', '/api/weddings/w1/docs/seating/ops'])
  assert.notEqual(sent[0].key, sent[1].key)
  assert.equal(q.count, 0)
  assert.equal(store.get('crdt-server.ops:w1:aunt'), undefined)
})

test('offline, the queue is kept on the device and sent, in order, when the server answers', async () => {
  store.clear()
  serve(['down', 'down'])
  const q = queue()
  q.add('guests', { op: 'set_rsvp', guest_id: 'g1', rsvp: 'declined' })
  await settled(q)
  q.add('seating', { op: 'unassign_seat', guest_id: 'g2' })
  await settled(q)
  assert.equal(q.count, 2)
  // A reload: a new queue reads what the last one kept.
  const sent = serve([200, 200])
  const again = queue()
  assert.equal(again.count, 2)
  again.kick()
  await settled(again)
  assert.deepEqual(sent.map((s) => s.op.op), ['set_rsvp', 'unassign_seat'])
  assert.equal(again.count, 0)
})

test('a refusal drops the operation and says why; an unseat already done is no refusal', async () => {
  store.clear()
  const refused = []
  serve([403, 422, 422, 503])
  const q = queue(refused)
  q.entries.push(
    { key: 'a', doc: 'guests', op: { op: 'update_guest', guest_id: 'g1', name: 'Eve' } },
    { key: 'b', doc: 'seating', op: { op: 'unassign_seat', guest_id: 'g1' } },
    { key: 'c', doc: 'seating', op: { op: 'assign_seat', guest_id: 'g1', table_id: 'gone' } },
    { key: 'd', doc: 'guests', op: { op: 'set_rsvp', guest_id: 'g1', rsvp: 'pending' } }
  )
  q.kick()
  await settled(q)
  assert.deepEqual(refused, [['update_guest', 'refused 403'], ['assign_seat', 'refused 422']])
  assert.deepEqual(q.entries.map((e) => e.key), ['d']) // a 503 is retried, not dropped
})

test('queued operations are shown over the documents', () => {
  store.clear()
  serve(['down'])
  const q = queue()
  q.entries.push(
    { key: 'a', doc: 'guests', op: { op: 'update_guest', guest_id: 'g1', meal: 'fish', plus_one: true } },
    { key: 'b', doc: 'seating', op: { op: 'assign_seat', guest_id: 'g1', table_id: 't2', seat: 1 } },
    { key: 'c', doc: 'seating', op: { op: 'unassign_seat', guest_id: 'g2' } }
  )
  const guests = q.overlayGuests([{ id: 'g1', rsvp: 'pending', meal: null, dietary: [], plus_one: false }])
  assert.deepEqual(guests[0], { id: 'g1', rsvp: 'pending', meal: 'fish', dietary: [], plus_one: true, queued: true })
  const seating = q.overlaySeating({ tables: [], assignments: new Map([['g2', { table_id: 't1', seat: 3 }]]) })
  assert.deepEqual([...seating.assignments], [['g1', { table_id: 't2', seat: 1 }]])
})
