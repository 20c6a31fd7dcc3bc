// The guest list at size (issue 53, point 6): a selection with bulk actions (set the RSVP,
// assign a table, set the side, remove: each one undo step; export the selection as CSV), and
// a list that renders only the rows near the screen once it holds more than WINDOW_FROM
// guests (the list's own search replaces the browser's find-in-page there). Issue 51: the
// meal totals (people, not rows) and seating a household in one action.

import { html, nothing } from 'lit-html'
import { ref } from 'lit-html/directives/ref.js'
import { repeat } from 'lit-html/directives/repeat.js'
import { RSVP, SIDES, removeGuest, seatGuest, updateGuest } from './model.js'
import { guestTotals, unnamedPlusOnes } from './households.js'
import { csvColumns } from './fields.js'

export const WINDOW_FROM = 200
const ROW = 64 // px: a row's height until rows drawn on this screen have been measured
const AROUND = 40 // rows rendered above and below the screen
const FIRST_DRAW = 30 // rows of the list's first drawing (the rest follow when idle)

const label = (s) => s.charAt(0).toUpperCase() + s.slice(1).replace('_', ' ')

/** A CSV cell as the server's export writes it: quoted where needed, and a cell a
 *  spreadsheet would run as a formula (=, +, -, @, tab, CR) prefixed with an apostrophe. */
export function csvCell (value) {
  let text = value === null || value === undefined ? '' : Array.isArray(value) ? value.join('; ') : String(value)
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

/** The selected guests as CSV (the columns people read, fields.js; never notes), and their
 *  tables. */
export function selectionCsv (guests, tableOf) {
  const columns = [...csvColumns('guests'), 'table']
  const lines = [columns.join(',')]
  for (const g of guests) {
    lines.push(columns.map((c) => csvCell(c === 'table' ? tableOf(g.id) : typeof g[c] === 'boolean' ? String(g[c]) : g[c])).join(','))
  }
  return lines.join('\r\n') + '\r\n'
}

/** Rows [from, to) of `count` to render, from where the list sits on the screen (`listTop`,
 *  its top's distance from the screen's, negative once scrolled past) and a row's height. */
export function windowOf (count, listTop, viewport, row = ROW) {
  if (count <= WINDOW_FROM) return { from: 0, to: count }
  const first = Math.min(count - 1, Math.floor(Math.max(0, -listTop) / row))
  const shown = Math.ceil(viewport / row)
  return { from: Math.max(0, first - AROUND), to: Math.min(count, first + shown + AROUND) }
}

/** The guests `shown` grouped by household: [{household, guests}], households by name (a
 *  household's entry or, for a free-text one, its name as written), each with its guests in
 *  the order shown; the guests of no household last (`household` null). `households` is
 *  householdsOf(...): a named plus-one is in their host's household. */
export function byHousehold (shown, households) {
  const of = new Map()
  for (const h of households.values()) for (const g of h.guests) of.set(g.id, h)
  const groups = new Map()
  const alone = []
  for (const g of shown) {
    const h = of.get(g.id)
    if (!h) { alone.push(g); continue }
    if (!groups.has(h.id)) groups.set(h.id, { household: h, guests: [] })
    groups.get(h.id).guests.push(g)
  }
  const sorted = [...groups.values()].sort((a, b) => a.household.name.localeCompare(b.household.name) || (a.household.id < b.household.id ? -1 : 1))
  return alone.length ? [...sorted, { household: null, guests: alone }] : sorted
}

/** A household's counts, of all its guests (whatever the filters show): its people (each
 *  unnamed plus-one is one more) and how many of them have accepted or are pending. */
export function householdCounts (household, guests, unnamed = unnamedPlusOnes(guests)) {
  let people = 0
  let accepted = 0
  let pending = 0
  for (const g of household.guests) {
    const n = unnamed.has(g.id) ? 2 : 1
    people += n
    if (g.rsvp === 'accepted') accepted += n
    else if (g.rsvp === 'pending') pending += n
  }
  return { people, unnamed: household.guests.filter((g) => unnamed.has(g.id)).length, accepted, pending }
}

/** A household's heading in the list: its name and counts (a heading, so a screen reader
 *  moves from household to household). */
function householdHead (ctx, group, number, unnamed) {
  const id = `household-head-${number}`
  if (!group.household) {
    return html`<li class="household-head" data-household="">
      <h3 id=${id}>No household</h3><span class="muted">${group.guests.length} ${group.guests.length === 1 ? 'guest' : 'guests'}</span></li>`
  }
  const c = householdCounts(group.household, ctx.guests, unnamed)
  const words = [
    `${c.people} ${c.people === 1 ? 'person' : 'people'}${c.unnamed ? ` (${c.unnamed} unnamed plus-one${c.unnamed > 1 ? 's' : ''})` : ''}`,
    `${c.accepted} accepted`,
    c.pending ? `${c.pending} pending` : null
  ].filter(Boolean).join(' · ')
  return html`<li class="household-head" data-household=${group.household.id}>
    <h3 id=${id}>${group.household.name}</h3><span class="muted">${words}</span></li>`
}

/** The list's rows grouped by household, a heading before each household's guests (windowed
 *  when long, the headings counted as rows), `row(guest)` rendering each guest. */
export function guestRows (ctx, shown, row) {
  const items = []
  byHousehold(shown, ctx.households || new Map()).forEach((group, number) => {
    items.push({ key: `h:${group.household ? group.household.id : ''}`, head: group, number })
    for (const g of group.guests) items.push({ key: g.id, guest: g })
  })
  const height = ctx.rowHeight || ROW
  let { from, to } = windowOf(items.length, ctx.listTop ?? 0, innerHeight, height)
  if (!ctx.listComplete) {
    // The first time the list has rows: a screenful now, the rest once the page is idle
    // (on a slow phone, drawing a hundred rows at once keeps the first screen waiting).
    if (from === 0 && to > FIRST_DRAW) {
      to = FIRST_DRAW
      if (!ctx.listCompleting) {
        ctx.listCompleting = true
        const rest = () => { ctx.listComplete = true; ctx.refresh() }
        if (typeof requestIdleCallback === 'function') requestIdleCallback(rest, { timeout: 1000 })
        else setTimeout(rest, 200)
      }
    } else if (items.length) {
      ctx.listComplete = true
    }
  }
  ctx.listWindow = `${from}:${to}:${items.length}`
  // Its height through the CSSOM: the page's CSP allows no style attribute.
  const spacer = (rows) => (rows > 0
    ? html`<li class="spacer" aria-hidden="true" ${ref((el) => { if (el) el.style.height = `${rows * height}px` })}></li>`
    : nothing)
  const unnamed = unnamedPlusOnes(ctx.guests) // once per drawing, not once per household
  const draw = (item) => (item.head ? householdHead(ctx, item.head, item.number, unnamed) : row(item.guest))
  return html`${spacer(from)}${repeat(items.slice(from, to), (item) => item.key, draw)}${spacer(items.length - to)}`
}

/** Keep the windowed list's place as the page scrolls (one render per frame at most). */
export function followScroll (ctx) {
  let queued = false
  let watched = null
  // Drawing other rows changes the list's height, which can move the screen to other rows
  // without a scroll event (a jump to the end): the list's resizes are checked too.
  const resized = new ResizeObserver(() => check())
  const check = () => {
    if (queued) return
    queued = true
    requestAnimationFrame(() => {
      queued = false
      const list = document.querySelector('ul[aria-label="Guest list"]')
      if (list !== watched) {
        if (watched) resized.unobserve(watched)
        if (list) resized.observe(list)
        watched = list
      }
      if (!list || !list.querySelector('li.spacer') || !ctx.listComplete) return
      // The rows drawn say how tall a row is here (it wraps on a phone).
      const drawn = [...list.querySelectorAll(':scope > li.row')].slice(0, 30)
      if (drawn.length) ctx.rowHeight = drawn.reduce((n, li) => n + li.offsetHeight, 0) / drawn.length
      ctx.listTop = list.getBoundingClientRect().top
      const count = Number(String(ctx.listWindow || '').split(':')[2]) || 0
      const { from, to } = windowOf(count, ctx.listTop, innerHeight, ctx.rowHeight || ROW)
      if (`${from}:${to}:${count}` !== ctx.listWindow) ctx.refresh()
    })
  }
  addEventListener('scroll', check, { passive: true })
  addEventListener('resize', check)
  return check
}

/** The selection's toolbar: its count and the bulk actions. */
export function bulkBar (ctx, shown) {
  const selected = ctx.selected
  const picked = ctx.guests.filter((g) => selected.has(g.id))
  const allShown = shown.length > 0 && shown.every((g) => selected.has(g.id))
  const toggleAll = () => {
    if (allShown) for (const g of shown) selected.delete(g.id)
    else for (const g of shown) selected.add(g.id)
    ctx.refresh()
  }
  const each = (text, change) => {
    ctx.history.act(text, () => { for (const g of picked) change(g) })
    ctx.say(`${text}.`)
  }
  const seatingDoc = ctx.canWrite('seating') ? ctx.docs.seating : null
  const tableOf = (id) => {
    const a = ctx.seating && ctx.seating.assignments.get(id)
    const t = a && ctx.seating.tables.find((x) => x.id === a.table_id)
    return t ? t.name : ''
  }
  const value = (name) => document.querySelector(`.bulk [name="${name}"]`)?.value
  const download = () => {
    const url = URL.createObjectURL(new Blob([selectionCsv(picked, tableOf)], { type: 'text/csv' }))
    const link = Object.assign(document.createElement('a'), { href: url, download: 'guests-selected.csv' })
    document.body.append(link)
    link.click()
    link.remove()
    setTimeout(() => URL.revokeObjectURL(url), 10_000)
  }
  return html`<div class="bulk-head">
      <label class="check"><input type="checkbox" .checked=${allShown} @change=${toggleAll}> Select all ${shown.length} shown</label>
    </div>
    ${picked.length
      ? html`<section class="card bulk" role="region" aria-label="Selected guests">
          <strong>${picked.length} selected</strong>
          <label>RSVP <select name="rsvp">${RSVP.map((r) => html`<option value=${r}>${label(r)}</option>`)}</select></label>
          <button type="button" @click=${() => each(`RSVP of ${picked.length} guests set to ${value('rsvp')}`, (g) => updateGuest(ctx.docs.guests, g.id, { rsvp: value('rsvp') }))}>Set RSVP</button>
          <label>Side <select name="side"><option value="">—</option>${Object.entries(SIDES).map(([v, t]) => html`<option value=${v}>${t}</option>`)}</select></label>
          <button type="button" @click=${() => each(`Side of ${picked.length} guests set`, (g) => updateGuest(ctx.docs.guests, g.id, { side: value('side') || null }))}>Set side</button>
          ${seatingDoc && ctx.seating.tables.length
            ? html`<label>Table <select name="table">${ctx.seating.tables.map((t) => html`<option value=${t.id}>${t.name}</option>`)}</select></label>
                <button type="button" @click=${() => each(`${picked.length} guests seated at ${ctx.seating.tables.find((t) => t.id === value('table'))?.name}`, (g) => seatGuest(seatingDoc, g.id, value('table')))}>Assign table</button>`
            : nothing}
          <button type="button" @click=${download}>Export as CSV</button>
          <button type="button" class="danger" @click=${() => { ctx.removed(`${picked.length} guests removed`, () => { for (const g of picked) removeGuest(ctx.docs.guests, seatingDoc, g.id) }); selected.clear() }}>Remove</button>
          <button type="button" class="link" @click=${() => { selected.clear(); ctx.refresh() }}>Clear selection</button>
        </section>`
      : nothing}`
}

/** A row's selection checkbox. */
export function selectBox (ctx, g) {
  return html`<input type="checkbox" class="pick" aria-label=${`Select ${g.name}`} .checked=${ctx.selected.has(g.id)}
    @change=${(e) => { if (e.target.checked) ctx.selected.add(g.id); else ctx.selected.delete(g.id); ctx.refresh() }}>`
}

/** The caterer's numbers: people (unnamed plus-ones counted), meals by the menu's spelling,
 *  dietary needs, overall and per table (who may come: not declined). */
export function totalsPanel (ctx) {
  const totals = guestTotals(ctx.guests, ctx.menu, ctx.seating)
  const list = (counts) => Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k, n]) => `${k} ${n}`).join(' · ') || '—'
  const tables = Object.entries(totals.tables).filter(([, t]) => t.people)
  return html`<details class="card totals" aria-label="Meal totals">
    <summary><strong>${totals.people} people</strong>${totals.unnamed_plus_ones ? ` (${totals.unnamed_plus_ones} unnamed plus-one${totals.unnamed_plus_ones > 1 ? 's' : ''})` : ''}
      · Meals: ${list(totals.meals)}${totals.no_meal ? ` · no meal yet ${totals.no_meal}` : ''}</summary>
    ${ctx.menu ? html`<p class="muted">Menu: ${ctx.menu.join(', ')}</p>` : nothing}
    <p>Dietary: ${list(totals.dietary)}</p>
    ${tables.length
      ? html`<table class="per-table"><thead><tr><th scope="col">Table</th><th scope="col">People</th><th scope="col">Meals</th><th scope="col">Dietary</th></tr></thead>
        <tbody>${tables.map(([id, t]) => html`<tr data-table=${id}><th scope="row">${t.name}</th><td>${t.people}/${t.capacity}</td>
          <td>${list(t.meals)}${t.no_meal ? ` · no meal ${t.no_meal}` : ''}</td><td>${list(t.dietary)}</td></tr>`)}</tbody></table>
        <p class="muted">${totals.unseated} not seated yet.</p>`
      : nothing}
  </details>`
}

/** Seat a household (every person who may come, plus-ones with their host) at one table:
 *  one action. */
export function seatHouseholdForm (ctx) {
  const households = [...ctx.households.values()].filter((h) => h.guests.some((g) => g.rsvp !== 'declined')).sort((a, b) => a.name.localeCompare(b.name))
  if (!households.length || !ctx.seating.tables.length) return nothing
  const f = ctx.errors.of('seat-household')
  const submit = (e) => {
    e.preventDefault()
    const form = e.target
    ctx.seatHousehold(form.elements.household.value, form.elements.table.value)
  }
  return html`<form class="card seat-household" data-form="seat-household" @submit=${submit} aria-label="Seat a household together">
    <label>Household <select name="household">${households.map((h) => html`<option value=${h.id}>${h.name} (${h.guests.length})</option>`)}</select></label>
    <div class="field"><label>Table <select name="table" aria-describedby=${f.describedBy('table')} aria-invalid=${f.invalid('table')}>${ctx.seating.tables.map((t) => html`<option value=${t.id}>${t.name}</option>`)}</select></label>${f.note('table')}</div>
    <button type="submit">Seat together</button>
  </form>`
}
