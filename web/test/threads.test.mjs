// The thread panel's bookkeeping (web/src/threads.js), without a browser: which threads are
// about an entity, their unread counts, and the outbox that sends each message once.
import { test } from 'node:test'
import assert from 'node:assert/strict'

const store = new Map()
globalThis.localStorage = {
  getItem: (k) => (store.has(k) ? store.get(k) : null),
  setItem: (k, v) => store.set(k, String(v)),
  removeItem: (k) => store.delete(k)
}
const { ThreadStore, anchoredTo, unreadFor, retryable, KIND_OF } = await import('../src/threads.js')
const { describe } = await import('../src/activity.js')

const threads = [
  { id: 't1', subject: 'Diet', anchors: [{ doc: 'guests', id: 'g1' }], unread: 2 },
  { id: 't2', subject: 'Seat', anchors: [{ doc: 'guests', id: 'g1' }, { doc: 'seating', id: 'tb1' }], unread: 1 },
  { id: 't3', subject: 'Other', anchors: [], unread: 5 }
]

test('threads about an entity and their unread messages', () => {
  assert.deepEqual(anchoredTo(threads, 'guests', 'g1').map((t) => t.id), ['t1', 't2'])
  assert.deepEqual(anchoredTo(threads, 'seating', 'tb1').map((t) => t.id), ['t2'])
  assert.equal(unreadFor(threads, 'guests', 'g1'), 3)
  assert.equal(unreadFor(threads, 'guests', 'g2'), 0)
  assert.equal(KIND_OF.guests, 'guest')
  assert.equal(KIND_OF.budget, 'budget')
})

test('what is retried: no network, busy, restarting, a token being renewed; not a refusal', () => {
  for (const s of [0, 401, 429, 500, 503]) assert.ok(retryable(s), s)
  for (const s of [400, 403, 404, 409, 413, 422]) assert.ok(!retryable(s), s)
})

test('a message is retried with the same client id until stored, and kept across a reload', async () => {
  const puts = []
  let failures = 2
  globalThis.fetch = async (url, init) => {
    if (init.method === 'PUT') {
      puts.push(url)
      if (failures-- > 0) throw new TypeError('Failed to fetch')
      const { body } = JSON.parse(init.body)
      return new Response(JSON.stringify({ id: url.split('/').pop(), seq: 1, body }), { status: 201 })
    }
    return new Response(JSON.stringify({ threads: [], next: null, members: [] }), { status: 200 })
  }
  const made = new ThreadStore({ wedding: 'w', sub: 'me', token: () => 'tok', onChange: () => {} })
  const message = made.post('t1', 'hello')
  assert.match(message.id, /^[A-Za-z0-9_-]{1,64}$/)
  // Kept on the device while not stored: a reload would send it again.
  const reloaded = new ThreadStore({ wedding: 'w', sub: 'me', token: () => 'tok', onChange: () => {} })
  assert.deepEqual(reloaded.pending('t1').map((m) => m.id), [message.id])
  const deadline = Date.now() + 10_000
  while (made.pending('t1').length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  made.stop()
  assert.equal(made.pending('t1').length, 0)
  assert.equal(puts.length, 3)
  assert.equal(new Set(puts).size, 1)
  assert.ok(puts[0].endsWith(`/threads/t1/messages/${message.id}`))
})

test('a refused message is kept with the reason, not retried', async () => {
  store.clear()
  let puts = 0
  globalThis.fetch = async (url, init) => {
    if (init.method === 'PUT') {
      puts++
      return new Response(JSON.stringify({ detail: 'no such thread' }), { status: 404 })
    }
    return new Response(JSON.stringify({ threads: [], next: null }), { status: 200 })
  }
  const made = new ThreadStore({ wedding: 'w', sub: 'me', token: () => 'tok', onChange: () => {} })
  const message = made.post('t9', 'hello')
  const deadline = Date.now() + 5000
  while (!made.pending('t9')[0].error && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(made.pending('t9')[0].error, 'no such thread')
  await made.flush()
  assert.equal(puts, 1)
  made.discard(message.id)
  assert.equal(made.pending('t9').length, 0)
  made.stop()
})

test('thread events in words', () => {
  const names = { person: (sub) => (sub === 'c' ? 'Alex & Sam' : null), thread: (id) => (id === 't1' ? 'Diet' : null) }
  const say = (type, data) => {
    const d = describe({ type, at: 'x', actor: { sub: 'c', role: 'couple' }, priority: 'normal', events: [{ type, data, actor: { sub: 'c', role: 'couple' } }] }, names)
    return `${d.who} ${d.what}`
  }
  assert.equal(say('thread.created', { thread: 't1', subject: 'Diet' }), 'Alex & Sam started the thread “Diet”')
  assert.equal(say('thread.message_posted', { thread: 't1', body: 'Vegan?' }), 'Alex & Sam wrote in “Diet”: Vegan?')
  assert.equal(say('thread.resolved', { thread: 't1' }), 'Alex & Sam resolved the thread “Diet”')
})

test('what a sent message could not notify, in words, each name once', async () => {
  const { unnotifiedLines } = await import('../src/panel.js')
  const names = { dj: 'DJ Sol' }
  const lines = unnotifiedLines([
    { name: 'Ghost', sub: 'zed', reason: 'unknown_member' },
    { name: 'Ghost', reason: 'unknown_member' },
    { name: 'Sam Lee', reason: 'ambiguous_name' },
    { sub: 'dj', reason: 'cannot_see_thread' },
    { sub: 'zed', reason: 'not_a_member' },
    { name: 'x', reason: 'a reason of a later server' },
    null
  ], (sub) => names[sub])
  assert.deepEqual(lines, [
    'Nobody named Ghost was notified.',
    'Sam Lee was not notified: two members have that name; pick one after typing @.',
    'DJ Sol was not notified: they cannot see this thread.',
    'zed was not notified: not a member of this wedding.'
  ])
  assert.deepEqual(unnotifiedLines(undefined, () => null), [])
})
