// The one-tap check-in of the wedding day (web/src/weddingday.js), without a browser: a tap
// made offline is kept on the device and sent when the server answers, with the time it was
// tapped (`at`) and the same Idempotency-Key on every try; a refusal is dropped and said.
import { test } from 'node:test'
import assert from 'node:assert/strict'

const { CheckInQueue, WeddingDay, cateringWords, checkInForm, checkInText, dayVendors } = await import('../src/weddingday.js')

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

test("a vendor's phone shows its own vendor first, and check-in buttons only there", () => {
  const vendors = [
    { vendor: 'v-band', name: 'The Night Owls', may_check_in: true, yours: false },
    { vendor: 'v-photo', name: 'Lens & Light', may_check_in: true, yours: true },
    { vendor: 'Cake Co', name: 'Cake Co', may_check_in: true, yours: false },
    { vendor: 'v-flowers', name: 'Petal Co.', may_check_in: false, yours: false }
  ]
  const shown = dayVendors(vendors, 'vendor')
  assert.deepEqual(shown.map((s) => [s.vendor.vendor, s.mayTap]), [
    ['v-photo', true], ['v-band', false], ['Cake Co', false], ['v-flowers', false]
  ])
  // The planner taps for any vendor the server lets them; the order is the server's.
  const planner = dayVendors(vendors.map((v) => ({ ...v, yours: false, may_check_in: true })), 'planner')
  assert.deepEqual(planner.map((s) => s.mayTap), [true, true, true, true])
  // A vendor listed on no vendor taps where the server says it may (free-text vendors).
  const unlisted = dayVendors(vendors.map((v) => ({ ...v, yours: false })), 'vendor')
  assert.deepEqual(unlisted.map((s) => s.mayTap), [true, true, true, false])
  // Family reads the day; the server gives them no check-in.
  assert.deepEqual(dayVendors([{ vendor: 'x', name: 'X' }], 'family').map((s) => s.mayTap), [false])
})

test("a caterer's counts are said in words, with no one's name", () => {
  assert.equal(cateringWords(null), '')
  assert.equal(
    cateringWords({ people: 3, meals: { fish: 1, beef: 1 }, no_meal: 1, dietary: { vegan: 1, 'nut allergy': 1 } }),
    'For 3 people: beef 1, fish 1, no meal chosen 1. Dietary: nut allergy 1, vegan 1.'
  )
  assert.equal(cateringWords({ people: 1, meals: {}, no_meal: 0, dietary: {} }), 'For 1 person.')
})

test("the planner's day-of switch puts the mode, reads the day again, and says a refusal", async () => {
  const calls = []
  const answers = [
    { status: 200, body: { mode: 'on' } },
    { status: 200, body: { mode: 'on', active: true, vendors: [], items: [] } },
    { status: 403, body: { detail: 'only the planner switches day-of mode' } },
    'down'
  ]
  const fetcher = async (url, init = {}) => {
    calls.push({ url, method: init.method || 'GET', body: init.body ? JSON.parse(init.body) : null })
    const answer = answers.shift()
    if (answer === 'down') throw new TypeError('Failed to fetch')
    return { ok: answer.status < 300, status: answer.status, json: async () => answer.body }
  }
  let changed = 0
  const day = new WeddingDay({ wedding: 'w1', sub: 'p', token: () => 'tok', fetcher, storage: null, onChange: () => { changed += 1 } })
  assert.equal(await day.setMode('on'), null)
  assert.deepEqual(calls.map((c) => [c.method, c.url, c.body]), [
    ['PUT', '/api/weddings/w1/day/mode', { mode: 'on' }],
    ['GET', '/api/weddings/w1/day', null]
  ])
  assert.equal(day.state.active, true)
  assert.ok(changed >= 1)
  assert.equal(await day.setMode('off'), 'only the planner switches day-of mode')
  assert.equal(await day.setMode('auto'), 'the server cannot be reached')
  assert.equal(day.state.mode, 'on') // what was shown stays
})
