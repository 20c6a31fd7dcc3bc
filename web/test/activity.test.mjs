// The activity feed's words and bookkeeping (web/src/activity.js), without a browser:
// node --test web/test/ (run by tests/web/test_web_units.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'

const store = new Map()
globalThis.localStorage = {
  getItem: (k) => (store.has(k) ? store.get(k) : null),
  setItem: (k, v) => store.set(k, String(v)),
  removeItem: (k) => store.delete(k)
}
const { ActivityFeed, describe, placeOf, when } = await import('../src/activity.js')
const { useFormats } = await import('../src/local.js')

const AT = '2027-06-12T10:00:00.000Z'
let seq = 0
const event = (type, data, actor = { sub: 'demo-couple', role: 'couple' }, extra = {}) =>
  ({ id: `demo:${++seq}`, seq, type, doc: null, actor, priority: 'normal', at: AT, data, ...extra })

const names = {
  person: (sub) => ({ 'demo-couple': 'Alex & Sam', me: 'You' })[sub] || null,
  guest: (id) => ({ g1: 'Ada Lovelace', g2: 'Grace Hopper' })[id] || null,
  table: (id) => ({ t1: 'table Rose', t2: 'table Iris' })[id] || null,
  item: (id) => ({ i1: 'Ceremony' })[id] || null,
  category: (id) => ({ c1: 'Catering' })[id] || null,
  money: (n) => (Number.isInteger(n) ? `€${(n / 100).toFixed(2)}` : null)
}
const one = (e) => describe({ type: e.type, at: e.at, actor: e.actor, priority: e.priority, events: [e] }, names)
const said = (e) => { const d = one(e); return `${d.who} ${d.what}`.trim() }

test('guests: added, renamed, RSVP, removed (named from the event when gone)', () => {
  assert.equal(said(event('guest.added', { id: 'g9', fields: { name: 'Katherine' } })), 'Alex & Sam added guest Katherine')
  assert.equal(said(event('guest.updated', { id: 'g1', changes: { name: { from: 'Ada', to: 'Ada Lovelace' } } })), 'Alex & Sam renamed Ada to Ada Lovelace')
  assert.equal(said(event('guest.updated', { id: 'g1', changes: { meal: { from: null, to: 'fish' }, plus_one: { from: false, to: true } } })), 'Alex & Sam updated Ada Lovelace (meal and plus-one)')
  assert.equal(said(event('guest.rsvp_changed', { id: 'g2', from: 'pending', to: 'accepted' })), 'Alex & Sam set the RSVP of Grace Hopper to accepted')
  assert.equal(said(event('guest.removed', { id: 'g9', before: { name: 'Katherine' } })), 'Alex & Sam removed guest Katherine from the guest list')
  assert.equal(said(event('guest.removed', { id: 'g9' })), 'Alex & Sam removed a guest from the guest list')
})

test('a guest list file imported is said once, with what it did', () => {
  assert.equal(said(event('integration.guests_imported', { doc: 'guests', rows: 20000, added: 19998, changed: 1, unchanged: 1 })), 'Alex & Sam imported a guest list file (19998 guests added and one guest changed)')
  assert.equal(said(event('integration.guests_imported', { doc: 'guests', rows: 3, added: 3, changed: 0, unchanged: 0 })), 'Alex & Sam imported a guest list file (3 guests added)')
})

test('a guest answering from their RSVP link is named by the guest list', () => {
  const guest = { sub: 'guest:g2', role: 'guest' }
  assert.equal(said(event('guest.rsvp_changed', { id: 'g2', from: 'pending', to: 'accepted' }, guest)), 'Grace Hopper (RSVP link) answered: accepted')
  assert.equal(said(event('guest.updated', { id: 'g2', changes: { meal: { from: null, to: 'fish' } } }, guest)), 'Grace Hopper (RSVP link) updated Grace Hopper (meal)')
  assert.equal(said(event('guest.rsvp_changed', { id: 'g2', from: 'pending', to: 'accepted' }, { sub: 'guest:g9', role: 'guest' })), 'A guest (RSVP link) set the RSVP of Grace Hopper to accepted')
})

test('a household\'s note from its RSVP link is said without its words', () => {
  const guest = { sub: 'guest:g2', role: 'guest' }
  const at = '2026-11-26T10:00:00+00:00'
  assert.equal(said(event('guest.household_updated', { id: 'h1', changes: { rsvp_note_at: { from: null, to: at } } }, guest)), 'Grace Hopper (RSVP link) left the couple a note')
  assert.equal(said(event('guest.household_added', { id: 'h1', fields: { name: 'Hoppers', rsvp_note_at: at } }, guest)), 'Grace Hopper (RSVP link) left the couple a note')
  assert.equal(said(event('guest.household_updated', { id: 'h1', changes: { rsvp_note_at: { from: at, to: null } } }, guest)), 'Grace Hopper (RSVP link) cleared their note to the couple')
  // The couple's own household edits read as before.
  assert.equal(said(event('guest.household_updated', { id: 'h1', changes: { name: { from: 'A', to: 'B' } } })), 'Alex & Sam guest household updated')
})

test('seating: seated, moved, unseated, tables', () => {
  assert.equal(said(event('seating.guest_seated', { guest_id: 'g1', table_id: 't1', seat: 3 })), 'Alex & Sam seated Ada Lovelace at table Rose, seat 3')
  assert.equal(said(event('seating.guest_moved', { guest_id: 'g1', from: { table_id: 't1', seat: 3 }, to: { table_id: 't2', seat: null } })), 'Alex & Sam moved Ada Lovelace from table Rose, seat 3 to table Iris')
  assert.equal(said(event('seating.guest_unseated', { guest_id: 'g2', from: { table_id: 't2', seat: 1 } })), 'Alex & Sam unseated Grace Hopper (was at table Iris, seat 1)')
  assert.equal(said(event('seating.table_added', { id: 't3', fields: { name: 'Lily', capacity: 8 } })), 'Alex & Sam added table Lily (8 seats)')
  assert.equal(said(event('seating.table_updated', { id: 't1', changes: { capacity: { from: 8, to: 10 } } })), 'Alex & Sam changed the seats at table Rose from 8 to 10')
})

test('timeline and budget', () => {
  assert.equal(said(event('timeline.item_rescheduled', { id: 'i1', from: { start: '2027-06-12T14:00:00+02:00' }, to: { start: '2027-06-12T14:30:00+02:00' } })), 'Alex & Sam moved Ceremony from 14:00 to 14:30')
  // Moved to another day: the days are said too.
  const otherDay = said(event('timeline.item_rescheduled', { id: 'i1', from: { start: '2027-06-12T14:00:00+02:00' }, to: { start: '2027-06-11T19:00:00+02:00' } }))
  const day = useFormats('Europe/Berlin', 'EUR').dayMonth
  const inBerlin = said(event('timeline.item_rescheduled', { id: 'i1', from: { start: '2027-06-12T14:00:00+02:00' }, to: { start: '2027-06-11T17:00:00Z' } }))
  useFormats(null, 'EUR')
  assert.match(otherDay, /^Alex & Sam moved Ceremony from .*2027.* to .*2027.*$/)
  const at = (iso) => day.format(new Date(iso))
  assert.ok(inBerlin.includes(at('2027-06-12T12:00:00Z')) && inBerlin.includes('14:00'), inBerlin)
  assert.ok(inBerlin.includes(at('2027-06-11T17:00:00Z')) && inBerlin.includes('19:00'), inBerlin)
  assert.equal(said(event('timeline.item_updated', { id: 'i1', changes: { status: { from: 'planned', to: 'done' } } })), 'Alex & Sam marked Ceremony as done')
  assert.equal(said(event('timeline.item_removed', { id: 'i7', before: { title: 'Fireworks' } })), 'Alex & Sam removed Fireworks from the timeline')
  assert.equal(said(event('budget.payment_recorded', { id: 'p1', fields: { amount: 120000, vendor: 'Harbour Catering', category_id: 'c1' } })), 'Alex & Sam recorded a payment of €1200.00 to Harbour Catering (Catering)')
  assert.equal(said(event('budget.total_changed', { from: 3200000, to: 3500000 })), 'Alex & Sam set the budget total to €35000.00 (was €32000.00)')
  assert.equal(said(event('budget.category_updated', { id: 'c1', changes: { planned: { from: 1100000, to: 1200000 } } })), 'Alex & Sam changed the plan for Catering from €11000.00 to €12000.00')
  assert.equal(said(event('budget.payment_paid', { id: 'p1', from: 'scheduled', to: 'paid', date: '2027-03-01' })), 'Alex & Sam marked a payment paid')
  assert.equal(said(event('budget.payment_updated', { id: 'p1', changes: { due: { from: '2027-03-01', to: '2027-03-08' } } })), 'Alex & Sam updated a payment (due date)')
})

test('people: yourself, the names seen, else the role', () => {
  assert.equal(one(event('guest.added', { id: 'g1', fields: {} }, { sub: 'me', role: 'planner' })).who, 'You')
  assert.equal(one(event('guest.added', { id: 'g1', fields: {} }, { sub: 'someone', role: 'planner' })).who, 'The planner')
  assert.equal(one(event('guest.added', { id: 'g1', fields: {} }, { sub: 'x', role: 'wedding-dj' })).who, 'Someone (wedding-dj)')
})

test('conflicts and custom events', () => {
  const found = one(event('conflict.detected', { id: 'k', code: 'seating.table_over_capacity', paths: ['seating/tables/t1'] }, { sub: 'server', role: 'server' }))
  assert.deepEqual(found, { who: '', what: 'Conflict found: a table over capacity', kind: 'conflict' })
  assert.equal(one(event('conflict.resolved', { id: 'k', code: 'timeline.vendor_overlap', paths: [] })).what, 'Conflict resolved: one vendor booked twice at once')
  const arrived = one(event('day.vendor_arrived', { message: 'The caterer is here' }, undefined, { priority: 'urgent' }))
  assert.deepEqual(arrived, { who: 'Alex & Sam', what: 'vendor arrived: The caterer is here', kind: 'urgent' })
  // Markup in data stays text: describe returns strings, which lit-html renders as text.
  assert.equal(one(event('custom.note', { text: '<img src=x onerror=alert(1)>' })).what, 'note: <img src=x onerror=alert(1)>')
})

test('places: each change leads to its section and entry', () => {
  const group = (e) => ({ type: e.type, events: [e] })
  assert.deepEqual(placeOf(group(event('seating.guest_moved', { guest_id: 'g1' }))), { section: 'seating', entity: 'g1' })
  assert.deepEqual(placeOf(group(event('guest.removed', { id: 'g1' }))), { section: 'guests', entity: null })
  assert.deepEqual(placeOf(group(event('conflict.detected', { paths: ['timeline/items/i1'] }))), { section: 'timeline', entity: 'i1' })
  assert.equal(placeOf(group(event('custom.note', {}))), null)
})

test('the feed groups like events of one commit, resumes after its seq and keeps no repeats', () => {
  store.clear()
  const changes = []
  const feed = new ActivityFeed({ wedding: 'demo', sub: 'me', token: () => 't', onChange: () => changes.push(1), onGone: () => {} })
  const base = seq
  const added = [1, 2, 3, 4, 5].map((n) => event('guest.added', { id: `g${n}`, fields: { name: `Guest ${n}` } }))
  const later = event('guest.rsvp_changed', { id: 'g1', from: 'pending', to: 'declined' }, undefined, { at: '2027-06-12T10:01:00.000Z' })
  feed.add([...added, later])
  feed.add([added[2], later]) // delivered again (at least once): ignored
  assert.equal(feed.after, base + 6)
  const groups = feed.recent()
  assert.equal(groups.length, 2)
  assert.equal(groups[0].type, 'guest.rsvp_changed')
  assert.equal(describe(groups[1], names).what, 'added 5 guests: Guest 5, Guest 4, Guest 3 and 2 more')
  // Kept on the device: a new feed starts where this one was.
  const again = new ActivityFeed({ wedding: 'demo', sub: 'me', token: () => 't', onChange: () => {}, onGone: () => {} })
  assert.equal(again.after, base + 6)
  assert.equal(again.events.length, 6)
  // Another person on this device sees none of it.
  const other = new ActivityFeed({ wedding: 'demo', sub: 'someone-else', token: () => 't', onChange: () => {}, onGone: () => {} })
  assert.equal(other.events.length, 0)
  again.clear()
  assert.equal(store.size, 0)
})

test('times read as people say them', () => {
  const now = Date.parse('2027-06-12T10:10:00Z')
  assert.equal(when('2027-06-12T10:09:40Z', now), 'just now')
  assert.equal(when('2027-06-12T10:00:00Z', now), '10 min ago')
  assert.equal(when('not a time', now), '')
})

test('a notes edit session reads as who edited whose notes (issue 48)', () => {
  const priya = { sub: 'demo-planner', role: 'planner' }
  const withPriya = { ...names, person: (sub) => (sub === 'demo-planner' ? 'Priya' : names.person(sub)) }
  const notes = (type, id) => event(type, { id, field: 'notes', session: `s${id}`, before: '', after: 'x' }, priya)
  const line = (e) => { const d = describe({ type: e.type, at: e.at, actor: e.actor, priority: e.priority, events: [e] }, withPriya); return `${d.who} ${d.what}` }
  assert.equal(line(notes('guest.notes_edited', 'g1')), "Priya edited Ada Lovelace's notes")
  assert.equal(line(notes('guest.notes_edited', 'g9')), "Priya edited a guest's notes")
  assert.equal(line(notes('seating.table_notes_edited', 't1')), 'Priya edited the notes of table Rose')
  assert.equal(line(notes('timeline.item_notes_edited', 'i1')), 'Priya edited the notes of Ceremony')
  assert.equal(line(notes('budget.category_notes_edited', 'c1')), 'Priya edited the notes of the budget category Catering')
  assert.equal(line(notes('budget.payment_notes_edited', 'p1')), 'Priya edited the notes of a payment')
})

test('one person\'s notes edits within 10 minutes are one line, which expands (issue 48)', () => {
  store.clear()
  const feed = new ActivityFeed({ wedding: 'demo', sub: 'me', token: () => 't', onChange: () => {}, onGone: () => {} })
  const priya = { sub: 'demo-planner', role: 'planner' }
  const withPriya = {
    ...names,
    person: (sub) => (sub === 'demo-planner' ? 'Priya' : names.person(sub)),
    guest: (id) => ({ g1: 'Ada Dubois', g2: 'Grace Hopper', g3: 'Alan Turing', g4: 'Kai Ito' })[id] || null
  }
  const at = (minute) => ({ at: `2027-06-12T10:${String(minute).padStart(2, '0')}:00.000Z` })
  const notes = (id, minute, actor = priya) =>
    event('guest.notes_edited', { id, field: 'notes', session: `s${id}${minute}`, before: '', after: 'x' }, actor, at(minute))
  feed.add([
    notes('g4', 0), // 11 minutes before the next: its own line
    notes('g3', 11), notes('g2', 14), notes('g1', 16), notes('g1', 20),
    notes('g2', 21, { sub: 'demo-couple', role: 'couple' }), // someone else: its own line
    notes('g2', 22)
  ])
  const groups = feed.recent()
  const lines = groups.map((g) => { const d = describe(g, withPriya); return `${d.who} ${d.what}` })
  assert.deepEqual(lines, [
    "Priya edited Grace Hopper's notes",
    "Alex & Sam edited Grace Hopper's notes",
    'Priya edited the notes of Ada Dubois and 2 other guests',
    "Priya edited Kai Ito's notes"
  ])
  // The grouped line expands to one line per note, newest first.
  assert.deepEqual(describe(groups[2], withPriya).details, ["Ada Dubois's notes", "Ada Dubois's notes", "Grace Hopper's notes", "Alan Turing's notes"])
  assert.equal(describe(groups[0], withPriya).details, undefined)
  feed.clear()
})

test('a message with a mention reads @Name, as in its thread', () => {
  const e = event('thread.message_posted', { thread: 't1', body: '@[Alex & Sam](demo-couple) can Ada sit by the door?' })
  assert.match(one(e).what, /: @Alex & Sam can Ada sit by the door\?$/)
  assert.doesNotMatch(one(e).what, /demo-couple|\[/)
})

test('the scheduler\'s reminders: a task and a payment falling due', () => {
  const server = { sub: 'scheduler', role: 'server' }
  const due = (type, data) => one(event(type, data, server)).what
  assert.equal(due('task.due', { id: 'k1', title: 'Book the cake tasting', due: '2027-03-01', owner: null }), 'reminded: “Book the cake tasting” is due today')
  assert.equal(due('budget.payment_due', { id: 'p1', due: '2027-03-01', amount: 150000, category_id: 'c1', vendor: 'Petal Co.' }), 'reminded: a payment of €1500.00 to Petal Co. (Catering) is due today')
  assert.equal(due('budget.payment_due', { id: 'p1', due: '2027-02-03', when: 'overdue', amount: 150000, category_id: 'c1', vendor: 'Petal Co.' }), 'reminded: a payment of €1500.00 to Petal Co. (Catering) is overdue (it was due on 2027-02-03)')
  assert.equal(due('budget.payment_due', { id: 'p1', due: '2027-04-03', when: 'soon', amount: 150000, category_id: 'c1', vendor: null }), 'reminded: a payment of €1500.00 (Catering) is due on 2027-04-03')
  // A category the budget no longer has is left out, never shown as its id.
  assert.equal(due('budget.payment_due', { id: 'p1', due: '2027-03-01', when: 'today', amount: 150000, category_id: 'gone', vendor: null }), 'reminded: a payment of €1500.00 is due today')
  // A task's reminder says which of the three it is, as a payment's does.
  assert.equal(due('task.due', { id: 'k1', title: 'Book the cake tasting', due: '2027-03-01', when: 'today' }), 'reminded: “Book the cake tasting” is due today')
  assert.equal(due('task.due', { id: 'k1', title: 'Book the cake tasting', due: '2027-02-01', when: 'overdue' }), 'reminded: “Book the cake tasting” is overdue (it was due on 2027-02-01)')
  assert.equal(due('task.due', { id: 'k1', title: 'Book the cake tasting', due: '2027-04-01', when: 'soon' }), 'reminded: “Book the cake tasting” is due on 2027-04-01')
})

test('members: who joined, was removed or changed role, by name (never "You member removed")', () => {
  const me = { sub: 'me', role: 'couple' }
  assert.equal(said(event('member.removed', { sub: 'demo-couple', role: 'couple' }, me)), 'You removed Alex & Sam from the wedding')
  assert.equal(said(event('member.removed', { sub: 'm_x', role: 'family' }, me)), 'You removed a member (family) from the wedding')
  assert.equal(said(event('member.joined', { sub: 'm_f', name: 'Fay', role: 'family' }, { sub: 'm_f', role: 'family' })), 'Fay joined the wedding as family')
  assert.equal(said(event('member.role_changed', { sub: 'demo-couple', from: 'family', to: 'planner' }, me)), 'You made Alex & Sam the planner (was family)')
})

test('a vendor who has not checked in is named, with the call time', () => {
  useFormats('UTC', 'EUR')
  const alert = event('day.vendor_missing', { vendor: 'v-dj', name: 'DJ Nova', call_time: '2027-06-12T16:00:00+00:00' }, { sub: 'server', role: 'server' }, { priority: 'urgent' })
  const d = one(alert)
  assert.equal(d.who, '')
  assert.match(d.what, /^DJ Nova has not checked in \(called for 16:00\)$/)
  assert.equal(d.kind, 'urgent')
})

test('an answer sent by an RSVP link is told, changed or not', () => {
  const e = event('rsvp.answered', { household: 'h1', answers: [{ id: 'g1', rsvp: 'accepted', changed: false }] }, { sub: 'guest:g1', role: 'guest' })
  assert.equal(said(e), 'Ada Lovelace (RSVP link) answered for Ada Lovelace (accepted)')
})

test('taking every RSVP link is told in words', () => {
  const sheet = event('rsvp.links_exported', { format: 'sheet', by: 'u1' }, { sub: 'u1', role: 'couple' })
  assert.match(said(sheet), /opened the RSVP links’ printable sheet$/)
  const csv = event('rsvp.links_exported', { format: 'csv', by: 'u1' }, { sub: 'u1', role: 'couple' })
  assert.match(said(csv), /downloaded the RSVP links$/)
})

test('the planner switching day-of mode reads as a switch', () => {
  const at = '2031-06-14T09:00:00Z'
  const said = (mode) => describe({ type: 'day.mode_changed', at, actor: { sub: 'p', role: 'planner' }, events: [{ type: 'day.mode_changed', at, actor: { sub: 'p', role: 'planner' }, data: { mode } }] }, names).what
  assert.equal(said('on'), 'switched day-of mode on')
  assert.equal(said('off'), 'switched day-of mode off')
  assert.equal(said('auto'), 'set day-of mode back to automatic')
})
