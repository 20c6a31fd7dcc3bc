// The wedding documents as the server's schema defines them (documents/schema.py): every
// root is a map keyed by stable ids; guests, tables, timeline items, categories and payments
// are nested maps with one key per field (so concurrent edits of different fields merge);
// a seat assignment is one plain value {table_id, seat} under the guest's id (so a guest is
// never in two seats). Money is in integer minor units. Optional empty fields are absent,
// except `notes`: a Y.Text created with its entry (collaborative text, edited in place by
// the smallest splice, never replaced by a string).

import * as Y from 'yjs'
import { HOUSEKEEPING, LOCAL } from './sync.js'
import { choiceWords, fieldsOf, readRecord } from './fields.js'

const choices = (collection, name) => fieldsOf(collection).find((f) => f.name === name).choices
export const RSVP = choices('guests', 'rsvp')
/** A guest's side, as people read it (`partner_a`: "Partner A"). */
export const SIDES = Object.fromEntries(choices('guests', 'side').map((v) => [v, choiceWords(v)]))
export const STATUSES = choices('items', 'status')
const ID = /^[A-Za-z0-9_-]{1,64}$/

export function newId (prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(6))
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

function entries (doc, root) {
  const out = []
  if (!doc) return out
  doc.getMap(root).forEach((value, id) => {
    if (!ID.test(id)) return
    const plain = value instanceof Y.Map ? value.toJSON() : value
    if (plain && typeof plain === 'object' && !Array.isArray(plain)) out.push({ ...plain, id })
  })
  return out
}

const text = (value) => (typeof value === 'string' ? value.trim() : '')

export function readGuests (doc) {
  return entries(doc, 'guests')
    .map((g) => readRecord('guests', g))
    .filter(Boolean)
    .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id))
}

export const SHAPES = choices('tables', 'shape')
/** A seating chart's coordinates run from 0 to this (the server's `CHART_SIZE`). */
export const CHART_SIZE = 10000

const inRange = (n, high, below = false) => typeof n === 'number' && Number.isFinite(n) && n >= 0 && (below ? n < high : n <= high)

/** A table's stored `position` ({x, y, rotation}), or null when absent or not what the
 *  schema allows (the server reports such a value as a finding). */
export function positionOf (value) {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return null
  const { x, y, rotation } = value
  if (Object.keys(value).some((k) => !['x', 'y', 'rotation'].includes(k))) return null
  if (!inRange(x, CHART_SIZE) || !inRange(y, CHART_SIZE) || !inRange(rotation, 360, true)) return null
  return { x, y, rotation }
}

export function readSeating (doc) {
  const tables = entries(doc, 'tables')
    .filter((t) => text(t.name) && Number.isInteger(t.capacity) && t.capacity >= 1)
    .map((t) => ({ id: t.id, name: text(t.name), capacity: t.capacity, shape: SHAPES.includes(t.shape) ? t.shape : 'round', position: positionOf(t.position) }))
    .sort((a, b) => a.id.localeCompare(b.id))
  const assignments = new Map()
  for (const a of entries(doc, 'assignments')) {
    if (typeof a.table_id === 'string') assignments.set(a.id, { table_id: a.table_id, seat: Number.isInteger(a.seat) ? a.seat : null })
  }
  return { tables, assignments }
}

/** The wedding's profile (the timeline's `profile` map): names, date, IANA time zone, venue,
 * RSVP deadline; `null` where a field is missing or not what the schema says (an older
 * document has no profile at all). */
export function readProfile (doc) {
  const stored = doc.getMap('profile')
  const day = (v) => (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v) ? v : null)
  const names = stored.get('names')
  const zone = stored.get('time_zone')
  return {
    names: Array.isArray(names) ? names.filter((n) => typeof n === 'string').slice(0, 2) : null,
    date: day(stored.get('date')),
    time_zone: typeof zone === 'string' && zone.length <= 64 ? zone : null,
    venue: text(stored.get('venue')) || null,
    rsvp_deadline: day(stored.get('rsvp_deadline'))
  }
}

const offsetFormats = new Map() // zone -> Intl.DateTimeFormat naming its offset

/** The UTC offset of IANA zone `zone` at instant `at` (ms), in minutes east of UTC, or
 *  `null` when the browser does not know the zone. */
export function offsetMinutes (at, zone) {
  try {
    if (!offsetFormats.has(zone)) offsetFormats.set(zone, new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' }))
    const parts = offsetFormats.get(zone).formatToParts(new Date(at))
    const name = (parts.find((p) => p.type === 'timeZoneName') || {}).value || ''
    if (name === 'GMT') return 0
    const found = /^GMT([+-])(\d\d):?(\d\d)?$/.exec(name)
    if (!found) return null
    return (found[1] === '-' ? -1 : 1) * (Number(found[2]) * 60 + Number(found[3] || 0))
  } catch {
    return null
  }
}

/** `+02:00` for 120 minutes east of UTC. */
function offsetText (minutes) {
  const abs = Math.abs(minutes)
  const pad = (n) => String(n).padStart(2, '0')
  return `${minutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
}

/** The UTC offset (`+02:00`) of IANA zone `zone` at noon of `day`, or `null` when the
 * browser does not know the zone. */
export function zoneOffset (day, zone) {
  const minutes = offsetMinutes(Date.parse(`${day}T12:00:00Z`), zone)
  return minutes === null ? null : offsetText(minutes)
}

const DAY_MS = 86400000

/** The timestamp a wall clock (`day` YYYY-MM-DD, `time` HH:MM) has in IANA zone `zone`,
 *  written with the zone's offset at that moment (`2026-10-25T11:00:00+01:00`), as the
 *  server's zoneinfo writes it: a time the spring change skips moves on by the gap, one the
 *  autumn change repeats is its first occurrence. An unknown zone (or none): the wall
 *  clock with `fallback`, the offset written so far. `null` for a malformed day or time. */
export function zonedTime (day, time, zone, fallback = '+00:00') {
  const wall = Date.parse(`${day}T${time}:00Z`)
  if (!/^\d{4}-\d\d-\d\d$/.test(day) || !/^\d\d:\d\d$/.test(time) || Number.isNaN(wall)) return null
  const before = zone ? offsetMinutes(wall - DAY_MS, zone) : null
  const after = zone ? offsetMinutes(wall + DAY_MS, zone) : null
  if (before === null || after === null) return `${day}T${time}:00${fallback}`
  const fits = (o) => offsetMinutes(wall - o * 60000, zone) === o
  const at = wall - (fits(before) || !fits(after) ? before : after) * 60000
  const offset = offsetMinutes(at, zone)
  return `${new Date(at + offset * 60000).toISOString().slice(0, 19)}${offsetText(offset)}`
}

/** `day` (YYYY-MM-DD) moved by `n` calendar days. */
export function addDays (day, n) {
  return new Date(Date.parse(`${day}T12:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10)
}

/** The days the timeline shows (YYYY-MM-DD, in order): each item's start day in the
 *  wedding's zone (`dayOf`), and the wedding's date. */
export function timelineDays (items, profile, dayOf) {
  const days = new Set(items.map((i) => dayOf(i.start)).filter((d) => /^\d{4}-\d\d-\d\d$/.test(d)))
  if (profile && profile.date) days.add(profile.date)
  return [...days].sort()
}

/** "Wedding day", "The day before", "2 days after"...: `day` against the wedding's date;
 *  `null` without a date. */
export function dayName (day, weddingDate) {
  if (!weddingDate) return null
  const n = Math.round((Date.parse(`${day}T12:00:00Z`) - Date.parse(`${weddingDate}T12:00:00Z`)) / DAY_MS)
  if (Number.isNaN(n)) return null
  if (n === 0) return 'Wedding day'
  if (n === -1) return 'The day before'
  if (n === 1) return 'The day after'
  return `${Math.abs(n)} days ${n < 0 ? 'before' : 'after'}`
}

/** The day (`YYYY-MM-DD`) and offset a new timeline item is placed on: the first item's;
 * else the profile's date in its time zone; else today in UTC. */
export function firstDay (timeline, profile, now = new Date()) {
  if (timeline.length) {
    const start = timeline[0].start
    return { day: start.slice(0, 10), offset: (/([+-]\d\d:\d\d|Z)$/.exec(start) || ['+00:00'])[0] }
  }
  if (profile && profile.date) {
    const offset = profile.time_zone ? zoneOffset(profile.date, profile.time_zone) : null
    return { day: profile.date, offset: offset || '+00:00' }
  }
  return { day: now.toISOString().slice(0, 10), offset: '+00:00' }
}

export function readTimeline (doc) {
  return entries(doc, 'items')
    .filter((i) => text(i.title) && typeof i.start === 'string' && typeof i.end === 'string')
    .map((i) => ({
      id: i.id,
      title: text(i.title),
      start: i.start,
      end: i.end,
      location: text(i.location) || null,
      owner: text(i.owner) || null,
      vendor: text(i.vendor) || null,
      status: STATUSES.includes(i.status) ? i.status : 'planned',
      notes: typeof i.notes === 'string' ? i.notes : ''
    }))
    .sort((a, b) => Date.parse(a.start) - Date.parse(b.start) || a.id.localeCompare(b.id))
}

export function readBudget (doc) {
  const settings = doc ? doc.getMap('settings').toJSON() : {}
  const categories = entries(doc, 'categories')
    .filter((c) => text(c.name))
    .map((c) => ({ id: c.id, name: text(c.name), planned: Number.isInteger(c.planned) ? c.planned : 0 }))
    .sort((a, b) => a.name.localeCompare(b.name))
  // A payment with no status is paid (and needs its date); a scheduled one may have no date
  // yet, and is listed by its due date (documents/model.py's PAYMENT).
  const isDay = (v) => typeof v === 'string' && /^\d{4}-\d\d-\d\d$/.test(v)
  const payments = entries(doc, 'payments')
    .map((p) => ({ ...p, status: p.status === 'scheduled' ? 'scheduled' : 'paid' }))
    .filter((p) => Number.isInteger(p.amount) && typeof p.category_id === 'string' && (isDay(p.date) || p.status === 'scheduled'))
    .map((p) => ({
      id: p.id,
      amount: p.amount,
      category_id: p.category_id,
      date: isDay(p.date) ? p.date : null,
      due: isDay(p.due) ? p.due : null,
      status: p.status,
      payer: text(p.payer) || null,
      vendor: text(p.vendor) || null
    }))
    .sort((a, b) => (b.date || b.due || '').localeCompare(a.date || a.due || '') || a.id.localeCompare(b.id))
  return {
    currency: typeof settings.currency === 'string' ? settings.currency : 'EUR',
    total: Number.isInteger(settings.total) ? settings.total : null,
    categories,
    payments
  }
}

// -- writes: each one transaction, writing only the fields that change ---------------------

const TEXT_FIELDS = new Set(['notes'])
const highSurrogate = (code) => code >= 0xd800 && code <= 0xdbff
const lowSurrogate = (code) => code >= 0xdc00 && code <= 0xdfff

/** The one splice that turns `old` into `value` keeping their common prefix and suffix
 *  (in UTF-16 units, as Yjs counts), never splitting a surrogate pair: [index, delete,
 *  insert]. With `caret` (where the caret is in `value` after the edit), the inserted text
 *  ends at the caret when that is one of the smallest splices: typing "a" after the first
 *  "a" of "aa" inserts at 1, not at 2, so the typed letter is the one left of the caret. */
export function smallestSplice (old, value, caret = null) {
  const limit = Math.min(old.length, value.length)
  let start = 0
  let end = 0
  if (caret === null || caret === undefined) {
    while (start < limit && old[start] === value[start]) start++
    if (start > 0 && highSurrogate(old.charCodeAt(start - 1))) start--
    while (end < limit - start && old[old.length - 1 - end] === value[value.length - 1 - end]) end++
    if (end > 0 && lowSurrogate(old.charCodeAt(old.length - end))) end--
  } else {
    const after = Math.max(0, Math.min(limit, value.length - caret))
    while (end < after && old[old.length - 1 - end] === value[value.length - 1 - end]) end++
    if (end > 0 && lowSurrogate(old.charCodeAt(old.length - end))) end--
    while (start < limit - end && old[start] === value[start]) start++
    if (start > 0 && highSurrogate(old.charCodeAt(start - 1))) start--
  }
  return [start, old.length - start - end, value.slice(start, value.length - end)]
}

/** Make a Y.Text hold `value` by the smallest splice: what someone else is typing elsewhere
 *  in it survives. Call inside a transaction. */
export function setText (ytext, value) {
  const [index, remove, insert] = smallestSplice(ytext.toString(), value)
  if (remove) ytext.delete(index, remove)
  if (insert) ytext.insert(index, insert)
}

function writeFields (map, fields) {
  for (const [key, value] of Object.entries(fields)) {
    if (TEXT_FIELDS.has(key)) {
      const current = map.get(key)
      if (current instanceof Y.Text) setText(current, value || '')
      else map.set(key, new Y.Text(value || '')) // absent, or an old plain string
      continue
    }
    const empty = value === null || value === undefined || value === ''
    if (empty) {
      if (map.has(key)) map.delete(key)
    } else if (JSON.stringify(map.get(key)) !== JSON.stringify(value)) {
      map.set(key, value)
    }
  }
}

export function addGuest (doc, fields) {
  const id = newId('g-')
  doc.transact(() => {
    const guest = new Y.Map()
    doc.getMap('guests').set(id, guest)
    writeFields(guest, { rsvp: 'pending', dietary: [], plus_one: false, notes: '', ...fields })
  }, LOCAL)
  return id
}

export function updateGuest (doc, id, fields) {
  const guest = doc.getMap('guests').get(id)
  if (!(guest instanceof Y.Map)) return
  doc.transact(() => writeFields(guest, fields), LOCAL)
}

export function removeGuest (guestsDoc, seatingDoc, id) {
  guestsDoc.transact(() => guestsDoc.getMap('guests').delete(id), LOCAL)
  if (seatingDoc && seatingDoc.getMap('assignments').has(id)) {
    seatingDoc.transact(() => seatingDoc.getMap('assignments').delete(id), LOCAL)
  }
}

/** Seat a guest at a table, on its lowest free seat (none when the table is full: the
 *  conflict is then shown, not hidden). */
export function seatGuest (doc, guestId, tableId) {
  const value = seatFor(readSeating(doc), guestId, tableId)
  if (value) doc.transact(() => doc.getMap('assignments').set(guestId, value), LOCAL)
}

/** Where `seatGuest` puts a guest: `{table_id, seat}` on the table's lowest free seat, or
 *  `{table_id}` when it is full; `null` when there is no such table or the guest is there. */
export function seatFor ({ tables, assignments }, guestId, tableId) {
  const table = tables.find((t) => t.id === tableId)
  if (!table) return null
  const current = assignments.get(guestId)
  if (current && current.table_id === tableId) return null
  const taken = new Set()
  assignments.forEach((a, id) => { if (a.table_id === tableId && id !== guestId && a.seat) taken.add(a.seat) })
  let seat = null
  for (let n = 1; n <= table.capacity; n++) {
    if (!taken.has(n)) { seat = n; break }
  }
  return seat === null ? { table_id: tableId } : { table_id: tableId, seat }
}

export function unseatGuest (doc, guestId) {
  doc.transact(() => doc.getMap('assignments').delete(guestId), LOCAL)
}

export function addTable (doc, name, capacity, shape = 'round') {
  const id = newId('t-')
  doc.transact(() => {
    const table = new Y.Map()
    doc.getMap('tables').set(id, table)
    writeFields(table, { name, capacity, shape, notes: '' })
  }, LOCAL)
  return id
}

/** Place a table on the chart: its `position` set as ONE value (a plain object), so two
 *  people moving one table at once end with one of their two places, never a mix. */
export function setTablePosition (doc, id, { x, y, rotation }) {
  const table = doc.getMap('tables').get(id)
  const clamp = (n, high) => Math.round(Math.min(Math.max(n, 0), high))
  const position = { x: clamp(x, CHART_SIZE), y: clamp(y, CHART_SIZE), rotation: ((Math.round(rotation) % 360) + 360) % 360 }
  if (table instanceof Y.Map) doc.transact(() => table.set('position', position), LOCAL)
}

/** Seat a guest on one seat of a table (`seat` null: the lowest free one). */
export function seatGuestAt (doc, guestId, tableId, seat) {
  if (!seat) { seatGuest(doc, guestId, tableId); return }
  doc.transact(() => doc.getMap('assignments').set(guestId, { table_id: tableId, seat }), LOCAL)
}

export function updateTable (doc, id, fields) {
  const table = doc.getMap('tables').get(id)
  if (table instanceof Y.Map) doc.transact(() => writeFields(table, fields), LOCAL)
}

export function removeTable (doc, id) {
  doc.transact(() => {
    doc.getMap('tables').delete(id)
    const assignments = doc.getMap('assignments')
    for (const [guestId, a] of [...assignments.entries()]) {
      if (a && a.table_id === id) assignments.delete(guestId)
    }
  }, LOCAL)
}

export function addItem (doc, fields) {
  doc.transact(() => {
    const item = new Y.Map()
    doc.getMap('items').set(newId('i-'), item)
    writeFields(item, { status: 'planned', notes: '', ...fields })
  }, LOCAL)
}

export function updateItem (doc, id, fields) {
  const item = doc.getMap('items').get(id)
  if (item instanceof Y.Map) doc.transact(() => writeFields(item, fields), LOCAL)
}

export function removeItem (doc, id) {
  doc.transact(() => doc.getMap('items').delete(id), LOCAL)
}

export function recordPayment (doc, fields) {
  doc.transact(() => {
    const payment = new Y.Map()
    doc.getMap('payments').set(newId('p-'), payment)
    writeFields(payment, { notes: '', ...fields })
  }, LOCAL)
}

/** A scheduled payment made: paid on `date` (`YYYY-MM-DD`). */
export function markPaid (doc, id, date) {
  const payment = doc.getMap('payments').get(id)
  if (payment instanceof Y.Map) doc.transact(() => writeFields(payment, { status: 'paid', date }), LOCAL)
}

export function addCategory (doc, name, planned) {
  const id = newId('c-')
  doc.transact(() => {
    const category = new Y.Map()
    doc.getMap('categories').set(id, category)
    writeFields(category, { name, planned, notes: '' })
  }, LOCAL)
  return id
}

export function updateCategory (doc, id, fields) {
  const category = doc.getMap('categories').get(id)
  if (category instanceof Y.Map) doc.transact(() => writeFields(category, fields), LOCAL)
}

/** Set the budget's total (minor units), or remove it with null. */
export function setTotal (doc, total) {
  doc.transact(() => writeFields(doc.getMap('settings'), { total }), LOCAL)
}

export function removePayment (doc, id) {
  doc.transact(() => doc.getMap('payments').delete(id), LOCAL)
}

// -- conflicts this client can see at once (the server's room has the whole list) -----------

/** Seating conflicts, worded and keyed as the server words them (documents/invariants.py). */
export function seatingConflicts (seating, guests) {
  const found = []
  const byId = new Map(guests.map((g) => [g.id, g]))
  const named = new Set(guests.map((g) => g.plus_one_of).filter(Boolean))
  const unnamed = (id) => Boolean(byId.get(id)?.plus_one && !named.has(id))
  const who = (id) => (byId.get(id) ? byId.get(id).name : `guest '${id}'`)
  const atTable = new Map()
  const onSeat = new Map()
  seating.assignments.forEach((a, guestId) => {
    const table = seating.tables.find((t) => t.id === a.table_id)
    if (!table) return
    atTable.set(table.id, [...(atTable.get(table.id) || []), guestId])
    if (a.seat !== null) {
      const key = `${table.id}#${a.seat}`
      onSeat.set(key, [...(onSeat.get(key) || []), guestId])
    }
  })
  for (const table of seating.tables) {
    const seated = atTable.get(table.id) || []
    // People, not rows: an unnamed plus-one sits with their host.
    const extra = seated.filter(unnamed).length
    if (seated.length + extra > table.capacity) {
      const who = `${seated.length} guests` + (extra ? ` and ${extra} plus-one${extra > 1 ? 's' : ''}` : '')
      found.push({
        code: 'seating.table_over_capacity',
        paths: [`seating/tables/${table.id}`],
        message: `Table '${table.name}' has ${who} but seats ${table.capacity}.`
      })
    }
  }
  onSeat.forEach((ids, key) => {
    if (ids.length < 2) return
    const [tableId, seat] = key.split('#')
    const table = seating.tables.find((t) => t.id === tableId)
    found.push({
      code: 'seating.seat_double_booked',
      paths: ids.map((id) => `seating/assignments/${id}`).sort(),
      message: `Seat ${seat} at table '${table.name}' is assigned to ${ids.length} guests: ${ids.map(who).sort().join(', ')}.`
    })
  })
  return found
}

/** Timeline items that overlap another active item of the same vendor or location. */
export function timelineOverlaps (items) {
  const flagged = new Map()
  const active = items.filter((i) => i.status !== 'cancelled')
  for (let a = 0; a < active.length; a++) {
    for (let b = a + 1; b < active.length; b++) {
      const x = active[a]
      const y = active[b]
      const overlap = Date.parse(x.start) < Date.parse(y.end) && Date.parse(y.start) < Date.parse(x.end)
      if (!overlap) continue
      const same = (p, q) => p && q && p.trim().toLowerCase() === q.trim().toLowerCase()
      const why = same(x.vendor, y.vendor) ? `vendor ${x.vendor}` : same(x.location, y.location) ? `location ${x.location}` : null
      if (!why) continue
      flagged.set(x.id, [...(flagged.get(x.id) || []), `overlaps '${y.title}' (${why})`])
      flagged.set(y.id, [...(flagged.get(y.id) || []), `overlaps '${x.title}' (${why})`])
    }
  }
  return flagged
}

export function conflictKey (conflict) {
  return `${conflict.code}|${[...conflict.paths].sort().join(',')}`
}

export function formatMoney (amount, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(amount / 100)
  } catch {
    return `${(amount / 100).toFixed(2)} ${currency}`
  }
}

/** Money typed by a person ("1,250.50") in minor units, or null. */
export function parseMoney (value) {
  const cleaned = String(value).replace(/[\s,]/g, '')
  if (!/^\d+(\.\d{1,2})?$/.test(cleaned)) return null
  return Math.round(parseFloat(cleaned) * 100)
}

/** The Y.Text of an entry's notes (`root` is `guests`, `items`, `tables`...), or null when
 *  the entry holds none (an entry written before notes were collaborative text). */
export function notesText (doc, root, id) {
  const entry = doc ? doc.getMap(root).get(id) : null
  const notes = entry instanceof Y.Map ? entry.get('notes') : null
  return notes instanceof Y.Text ? notes : null
}

/** Give an entry a Y.Text for its notes (keeping an old plain string's content). */
export function ensureNotes (doc, root, id) {
  const entry = doc.getMap(root).get(id)
  if (!(entry instanceof Y.Map)) return null
  if (!(entry.get('notes') instanceof Y.Text)) {
    const old = entry.get('notes')
    doc.transact(() => entry.set('notes', new Y.Text(typeof old === 'string' ? old : '')), HOUSEKEEPING)
  }
  return entry.get('notes')
}
