// The one-tap check-in of the wedding day (web/src/weddingday.js), without a browser: a tap
// made offline is kept on the device and sent when the server answers, with the time it was
// tapped (`at`) and the same Idempotency-Key on every try; a refusal is dropped and said.
import { test } from 'node:test'
import assert from 'node:assert/strict'

const { CheckInQueue, WeddingDay, checkInForm, checkInText } = await import('../src/weddingday.js')

function memory () {
  const store = new Map()
  return {
    store,
    getItem: (k) => (store.has(k) ? store.get(k) : null),
    setItem: (k, v) => store.set(k, String(v)),
    removeItem: (k) => store.delete(k)
  }
}

/** A fake server answering in turn with `answers` (a status, or 'down': no network). */
function server (answers) {
  const sent = []
  const fetcher = async (url, init) => {
    const answer = answers.shift() ?? 201
    sent.push({ url, body: JSON.parse(init.body), key: init.headers['Idempotency-Key'] })
    if (answer === 'down') throw new TypeError('Failed to fetch')
    return { ok: answer < 300, status: answer, json: async () => ({ detail: `refused ${answer}` }) }
  }
  return { sent, fetcher }
}

test('a tap made offline is kept, then sent once with its tap time and one key', async () => {
  const storage = memory()
  const { sent, fetcher } = server(['down', 'down', 201])
  const retries = []
  const tapped = new Date('2031-06-13T07:50:00Z')
  const queue = new CheckInQueue({
    wedding: 'w1', sub: 'flo', token: () => 'tok', fetcher, storage,
    now: () => tapped, schedule: (fn) => retries.push(fn)
  })
  await queue.tap('flo', 'arrived')
  assert.equal(queue.count, 1)
  assert.equal(queue.pendingFor('flo').body.status, 'arrived')
  // A reload of the page offline still has it.
  const reloaded = new CheckInQueue({ wedding: 'w1', sub: 'flo', token: () => 'tok', fetcher, storage, schedule: (fn) => retries.push(fn) })
  assert.equal(reloaded.count, 1)
  await retries.shift()()
  assert.equal(queue.count, 1)
  await reloaded.kick()
  assert.equal(reloaded.count, 0)
  assert.equal(storage.store.size, 0)
  assert.equal(sent.length, 3)
  assert.deepEqual(sent.map((s) => s.body), Array(3).fill({ vendor: 'flo', status: 'arrived', at: '2031-06-13T07:50:00.000Z' }))
  assert.equal(new Set(sent.map((s) => s.key)).size, 1)
  assert.equal(sent[0].url, '/api/weddings/w1/day/check-ins')
})

test('a refusal is dropped and said; a 401 or 503 is tried again', async () => {
  const { sent, fetcher } = server([503, 403])
  const refused = []
  const retries = []
  const queue = new CheckInQueue({
    wedding: 'w1', sub: 'dj', token: () => 'tok', fetcher, storage: memory(),
    onRefused: (entry, reason) => refused.push([entry.body.vendor, reason]),
    schedule: (fn) => retries.push(fn)
  })
  await queue.tap('flo', 'running_late', '2031-06-13T09:20:00Z')
  assert.equal(queue.count, 1)
  await retries.shift()()
  assert.equal(queue.count, 0)
  assert.deepEqual(refused, [['flo', 'refused 403']])
  assert.equal(sent[1].body.eta, '2031-06-13T09:20:00Z')
})

test('a tap refused for good is said beside the button tapped (its vendor\'s form, its status)', async () => {
  const { fetcher } = server([403, 200])
  const said = []
  const day = new WeddingDay({
    wedding: 'w1', sub: 'dj', token: () => 'tok', fetcher, storage: memory(),
    onChange: () => {}, onRefused: (form, errors) => said.push([form, errors]), schedule: () => {}
  })
  await day.queue.tap('flo', 'running_late')
  assert.deepEqual(said, [[checkInForm('flo'), [{ field: 'running_late', message: 'Check-in refused: refused 403.' }]]])
})

test('what a vendor row says: the queued tap first, then the server\'s report', () => {
  const pending = { body: { status: 'arrived', at: '2031-06-13T07:50:00.000Z' } }
  assert.match(checkInText({ check_in: null }, pending), /^Arrived \(tapped at .*, waiting to send\)$/)
  assert.equal(checkInText({ check_in: null }, null), 'Not checked in')
  const shown = { status: 'running_late', at: '2031-06-13T07:50:00.000Z' }
  assert.match(checkInText({ check_in: shown }, null), /^Running late, reported at /)
})
