// The Overview's figures (web/src/overview.js) without a browser: which events ask for a new
// read, and that reads are throttled with the last one always made: node --test web/test/.
import { test } from 'node:test'
import assert from 'node:assert/strict'

const { OverviewFigures, concerns } = await import('../src/overview.js')

test('the events of the documents ask for a new read; a thread message does not', () => {
  assert.equal(concerns([{ type: 'guest.rsvp_changed' }]), true)
  assert.equal(concerns([{ type: 'rsvp.answered' }]), true)
  assert.equal(concerns([{ type: 'task.completed' }]), true)
  assert.equal(concerns([{ type: 'budget.payment_recorded' }]), true)
  assert.equal(concerns([{ type: 'thread.message_posted' }, { type: 'member.joined' }]), false)
  assert.equal(concerns([null, {}]), false)
})

test('reads are throttled: a burst of events makes one more read, after the first', async () => {
  const calls = []
  globalThis.fetch = async (url) => {
    calls.push(url)
    return { status: 200, json: async () => ({ today: '2027-01-01', n: calls.length }) }
  }
  let changes = 0
  const figures = new OverviewFigures({ wedding: 'w 1', token: () => 't', onChange: () => { changes++ }, throttle: 40 })
  await figures.read()
  assert.deepEqual(calls, ['/api/weddings/w%201/overview'])
  for (let i = 0; i < 5; i++) figures.onEvents([{ type: 'task.completed' }])
  assert.equal(calls.length, 1) // not at once: the last read is younger than the throttle
  const deadline = Date.now() + 2000
  while (calls.length < 2) {
    assert.ok(Date.now() < deadline, 'no second read')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal(calls.length, 2)
  assert.equal(figures.figures.n, 2)
  assert.ok(changes >= 2)
})

test('an unreachable server keeps the last figures and says so', async () => {
  globalThis.fetch = async () => { throw new TypeError('offline') }
  const figures = new OverviewFigures({ wedding: 'w1', token: () => 't', onChange: () => {} })
  figures.figures = { today: '2027-01-01' }
  await figures.read()
  assert.deepEqual(figures.figures, { today: '2027-01-01' })
  assert.match(figures.error, /cannot be reached/)
})
