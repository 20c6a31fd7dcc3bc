// Households, plus-ones as people, the menu and the meal totals, as the server reads them
// (documents/households.py, documents/totals.py): a household is an entry of the guests
// document's `households` root that guests name by `household_id`; a guest with only the
// free-text `household` belongs to the entry of that name (spaces and case aside), else to
// a household that exists only in the reading, under `n-` and 16 hex digits of the SHA-256 of
// the normalised name (the server derives the same id). A guest with `plus_one: true` whom
// no guest names as host (`plus_one_of`) brings one unnamed person, who sits with them.

import * as Y from 'yjs'
import { LOCAL } from './sync.js'

const ID = /^[A-Za-z0-9_-]{1,64}$/
const text = (value) => (typeof value === 'string' ? value.trim() : '')

/** A household's name as households are matched by it. */
export const householdKey = (name) => name.split(/\s+/).filter(Boolean).join(' ').toLowerCase()

// SHA-256 (FIPS 180-4), synchronous: the id of a free-text household is needed while
// rendering, where WebCrypto's digest (a promise) cannot be awaited.
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
])

export function sha256hex (message) {
  const bytes = new TextEncoder().encode(message)
  const length = Math.ceil((bytes.length + 9) / 64) * 64
  const data = new Uint8Array(length)
  data.set(bytes)
  data[bytes.length] = 0x80
  const view = new DataView(data.buffer)
  view.setUint32(length - 4, bytes.length * 8)
  view.setUint32(length - 8, Math.floor(bytes.length / 0x20000000))
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19])
  const w = new Uint32Array(64)
  const rotr = (x, n) => (x >>> n) | (x << (32 - n))
  for (let block = 0; block < length; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + i * 4)
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3)
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10)
      w[i] = w[i - 16] + s0 + w[i - 7] + s1
    }
    let [a, b, c, d, e, f, g, k] = h
    for (let i = 0; i < 64; i++) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0
      k = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0
    }
    const next = [a, b, c, d, e, f, g, k]
    for (let i = 0; i < 8; i++) h[i] = (h[i] + next[i]) >>> 0
  }
  return Array.from(h, (x) => x.toString(16).padStart(8, '0')).join('')
}

/** The id a free-text household reads under (the server's `household_id_of`). */
export const householdIdOf = (name) => `n-${sha256hex(householdKey(name)).slice(0, 16)}`

/** The household entries: id -> {id, name, rsvp_deadline, mailing_address, rsvp_note,
 *  rsvp_note_at} (the note: what the household wrote to the couple from its RSVP page). */
export function readHouseholds (doc) {
  const found = new Map()
  if (!doc) return found
  doc.getMap('households').forEach((value, id) => {
    if (!ID.test(id) || !(value instanceof Y.Map)) return
    const name = text(value.get('name'))
    if (!name) return
    found.set(id, {
      id,
      name,
      rsvp_deadline: text(value.get('rsvp_deadline')) || null,
      mailing_address: text(value.get('mailing_address')) || null,
      rsvp_note: text(value.get('rsvp_note')).slice(0, 1000) || null,
      rsvp_note_at: text(value.get('rsvp_note_at')) || null
    })
  })
  return found
}

/** The menu's choices (in the order offered), or null where there is none. */
export function readMenu (doc) {
  const choices = doc ? doc.getMap('menu').get('choices') : null
  if (!Array.isArray(choices) || !choices.every((c) => typeof c === 'string' && c.trim())) return null
  return choices.map((c) => c.trim()).slice(0, 30)
}

/** Host id -> the ids of their named plus-ones. */
export function namedPlusOnes (guests) {
  const ids = new Set(guests.map((g) => g.id))
  const found = new Map()
  for (const g of guests) {
    if (g.plus_one_of && g.plus_one_of !== g.id && ids.has(g.plus_one_of)) found.set(g.plus_one_of, [...(found.get(g.plus_one_of) || []), g.id])
  }
  return found
}

/** The ids of the guests who bring an unnamed plus-one. */
export function unnamedPlusOnes (guests) {
  const named = namedPlusOnes(guests)
  return new Set(guests.filter((g) => g.plus_one && !named.has(g.id)).map((g) => g.id))
}

/** Every household by id: {id, name, entry, guests, note, noteAt}, the guests in id order
 *  (the note to the couple and when it was written: null where there is none). */
export function householdsOf (guests, entries) {
  const byName = new Map()
  for (const id of [...entries.keys()].sort()) {
    const key = householdKey(entries.get(id).name)
    if (!byName.has(key)) byName.set(key, id)
  }
  const own = new Map()
  for (const g of guests) {
    if (g.household_id) {
      own.set(g.id, [g.household_id, entries.get(g.household_id)?.name || g.household || g.household_id])
    } else if (g.household) {
      const derived = householdIdOf(g.household)
      const matched = entries.has(derived) ? derived : byName.get(householdKey(g.household))
      own.set(g.id, matched ? [matched, entries.get(matched).name] : [derived, g.household])
    }
  }
  for (const g of guests) {
    if (!own.has(g.id) && g.plus_one_of && own.has(g.plus_one_of)) own.set(g.id, own.get(g.plus_one_of))
  }
  const found = new Map()
  for (const [id, entry] of entries) found.set(id, { id, name: entry.name, entry: true, guests: [], note: entry.rsvp_note || null, noteAt: entry.rsvp_note_at || null })
  for (const g of [...guests].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const held = own.get(g.id)
    if (!held) continue
    if (!found.has(held[0])) found.set(held[0], { id: held[0], name: held[1], entry: false, guests: [], note: null, noteAt: null })
    found.get(held[0]).guests.push(g)
  }
  return found
}

function counts (people, spelled) {
  const meals = {}
  const dietary = {}
  let noMeal = 0
  for (const p of people) {
    if (p.meal) {
      const meal = spelled.get(householdKey(p.meal)) || p.meal
      meals[meal] = (meals[meal] || 0) + 1
    } else {
      noMeal++
    }
    for (const d of p.dietary) dietary[d] = (dietary[d] || 0) + 1
  }
  return { people: people.length, meals, no_meal: noMeal, dietary }
}

/** Headcount, meal and dietary totals (who may come: not declined), per table and overall,
 *  as the server's JSON view gives them (`totals`). */
export function guestTotals (guests, menu, seating) {
  const unnamed = unnamedPlusOnes(guests)
  const people = []
  for (const g of guests) {
    people.push({ seatOf: g.id, rsvp: g.rsvp, meal: g.meal, dietary: g.dietary })
    if (unnamed.has(g.id)) people.push({ seatOf: g.id, rsvp: g.rsvp, meal: null, dietary: [] })
  }
  const spelled = new Map((menu || []).map((c) => [householdKey(c), c]))
  const coming = people.filter((p) => p.rsvp !== 'declined')
  const tables = {}
  let unseated = 0
  const byTable = new Map(seating ? seating.tables.map((t) => [t.id, []]) : [])
  for (const p of coming) {
    const a = seating && seating.assignments.get(p.seatOf)
    if (a && byTable.has(a.table_id)) byTable.get(a.table_id).push(p)
    else unseated++
  }
  for (const t of seating ? seating.tables : []) tables[t.id] = { name: t.name, capacity: t.capacity, ...counts(byTable.get(t.id), spelled) }
  const { meals, no_meal: noMeal, dietary } = counts(coming, spelled)
  return { people: people.length, unnamed_plus_ones: unnamed.size, meals, no_meal: noMeal, dietary, tables, unseated }
}

/** People seated at each table: its guests and their unnamed plus-ones. */
export function peopleAt (seating, guests) {
  const unnamed = unnamedPlusOnes(guests)
  const found = new Map(seating.tables.map((t) => [t.id, 0]))
  seating.assignments.forEach((a, id) => {
    if (found.has(a.table_id)) found.set(a.table_id, found.get(a.table_id) + 1 + (unnamed.has(id) ? 1 : 0))
  })
  return found
}

/** Who of a household would move to `tableId` (not declined, not there yet), and how many
 *  people that is (unnamed plus-ones included). */
export function householdMove (household, seating, guests, tableId) {
  const unnamed = unnamedPlusOnes(guests)
  const moving = household.guests.filter((g) => g.rsvp !== 'declined' && seating.assignments.get(g.id)?.table_id !== tableId)
  return { moving, people: moving.length + moving.filter((g) => unnamed.has(g.id)).length }
}

/** Seat the household's people who may come at one table, in one transaction. */
export function seatHousehold (doc, moving, tableId) {
  doc.transact(() => {
    for (const g of moving) doc.getMap('assignments').set(g.id, { table_id: tableId })
  }, LOCAL)
}

/** Households seated at several tables, worded and keyed as the server words them. */
export function householdSplits (households, seating) {
  const found = []
  for (const h of households.values()) {
    if (h.guests.length < 2) continue
    const at = new Map()
    for (const g of h.guests) {
      const a = seating.assignments.get(g.id)
      if (g.rsvp !== 'declined' && a) at.set(a.table_id, [...(at.get(a.table_id) || []), g.id])
    }
    if (at.size < 2) continue
    const names = [...at.keys()].sort().map((id) => `'${seating.tables.find((t) => t.id === id)?.name ?? id}'`)
    found.push({
      code: 'seating.household_split',
      paths: [...at.values()].flat().sort().map((id) => `seating/assignments/${id}`),
      message: `Household '${h.name}' is seated at ${at.size} tables (${names.join(', ')}); seat them together.`
    })
  }
  return found
}
