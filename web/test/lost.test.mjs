// The notice of a write of yours that was lost in a race (web/src/lost.js), without a
// browser: node --test web/test/ (run by tests/web/test_web_units.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'

const { LostWrites, lostNotice, hidden, canUseMine } = await import('../src/lost.js')

const names = { person: (sub) => ({ pat: 'Pat' })[sub], entry: (doc, path) => `Ann’s ${path[2] || 'entry'}` }

/** A finding as GET /conflicts shows it (``cut``: to a role that may not read the field). */
function race ({ field = 'meal', kind = 'concurrent_edit', cut = false, lost = 'beef', kept = 'vegan' } = {}) {
  const side = (sub, role, value) => (cut ? { actor: { sub, role }, at: 't' } : { actor: { sub, role }, value, at: 't' })
  return {
    id: 'cw:1',
    concurrent: {
      kind,
      doc: 'guests',
      path: ['guests', 'g1', field],
      field,
      lost: side('vic', 'vendor', lost),
      kept: kind === 'edited_removed_entry' ? null : side('pat', 'planner', kept),
      same_actor: false
    }
  }
}

test('both values are shown, with "Use mine" and "Keep theirs"', () => {
  const notice = lostNotice(race().concurrent, names)
  assert.equal(notice.text, 'You set Ann’s meal to “beef”, but Pat set it to “vegan” at the same time, and theirs was kept.')
  assert.equal(notice.useMine, true)
  assert.equal(notice.keep, 'Keep theirs')
})

test('a value of null is a value ("nothing"), not a hidden one', () => {
  const c = race({ lost: null }).concurrent
  assert.equal(hidden(c.lost), false)
  assert.match(lostNotice(c, names).text, /to nothing, but Pat set it to “vegan”/)
  assert.equal(canUseMine(c), true)
})

test('a field hidden from the role: no value shown, no "Use mine"', () => {
  const c = race({ field: 'contact', cut: true }).concurrent
  const notice = lostNotice(c, names)
  assert.equal(notice.text, 'You set Ann’s contact, but Pat set it at the same time, and theirs was kept. The values are hidden from you.')
  assert.doesNotMatch(notice.text, /nothing|undefined/)
  assert.equal(notice.useMine, false)
  assert.equal(notice.keep, 'OK') // acknowledges it; the kept value stays
})

test('an edit of a removed entry whose value is hidden', () => {
  const c = race({ field: 'contact', kind: 'edited_removed_entry', cut: true }).concurrent
  const notice = lostNotice(c, names)
  assert.equal(notice.text, 'You changed Ann’s contact, but someone removed it at the same time. Its value is hidden from you.')
  assert.equal(notice.useMine, false)
  assert.equal(notice.keep, 'OK')
})

test('"Use mine" never writes a hidden value, even if asked', () => {
  const lost = new LostWrites({ wedding: 'w1', sub: 'vic', token: () => 't', onChange: () => {} })
  const item = race({ field: 'contact', cut: true })
  lost.items = [item]
  let wrote = false
  const doc = { getMap: () => ({ get: () => ({ get: () => null, set: () => { wrote = true } }) }), transact: (f) => f() }
  assert.equal(lost.useMine(item, { guests: doc }), false)
  assert.equal(wrote, false)
  assert.deepEqual(lost.items, [item]) // still shown
  const visible = race()
  assert.equal(lost.useMine(visible, { guests: doc }), true)
  assert.equal(wrote, true)
})

test('a role that may not acknowledge puts the notice away on this device', async () => {
  const store = new Map()
  globalThis.localStorage = {
    getItem: (k) => (store.has(k) ? store.get(k) : null),
    setItem: (k, v) => store.set(k, String(v)),
    removeItem: (k) => store.delete(k)
  }
  const finding = race({ field: 'contact', cut: true })
  let open = [finding]
  const posted = []
  globalThis.fetch = async (url, init) => {
    if (init && init.method === 'POST') {
      posted.push(url)
      return { ok: false, status: 403, json: async () => ({}) }
    }
    return { ok: true, status: 200, json: async () => ({ conflicts: open }) }
  }
  const make = () => new LostWrites({ wedding: 'w1', sub: 'vic', token: () => 't', onChange: () => {} })
  const lost = make()
  await lost.refresh()
  assert.deepEqual(lost.items.map((i) => i.id), ['cw:1'])
  await lost.keepTheirs(lost.items[0])
  assert.deepEqual(posted, ['/api/weddings/w1/conflicts/cw%3A1/resolve'])
  assert.deepEqual(lost.items, [])
  // Kept across a reload; forgotten once the finding is gone.
  const again = make()
  await again.refresh()
  assert.deepEqual(again.items, [])
  open = []
  await again.refresh()
  assert.equal(store.size, 0)
})

test('without conflicts.resolve in /access, "Keep theirs" asks the server nothing and puts the notice away here', async () => {
  const store = new Map()
  globalThis.localStorage = {
    getItem: (k) => (store.has(k) ? store.get(k) : null),
    setItem: (k, v) => store.set(k, String(v)),
    removeItem: (k) => store.delete(k)
  }
  const finding = race({ field: 'meal' })
  const posted = []
  globalThis.fetch = async (url, init) => {
    if (init && init.method === 'POST') posted.push(url)
    return { ok: true, status: 200, json: async () => ({ conflicts: [finding] }) }
  }
  const lost = new LostWrites({ wedding: 'w1', sub: 'vic', token: () => 't', onChange: () => {}, canResolve: () => false })
  await lost.refresh()
  await lost.keepTheirs(lost.items[0])
  assert.deepEqual(posted, [])
  assert.deepEqual(lost.items, [])
})
