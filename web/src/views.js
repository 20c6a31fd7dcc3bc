// The four views. Each is a pure function of the app's state (`ctx`) returning a lit-html
// template; every change goes through model.js, one Yjs transaction each.

import { html, noChange, nothing } from 'lit-html'
import { live } from 'lit-html/directives/live.js'
import { ref } from 'lit-html/directives/ref.js'
import { repeat } from 'lit-html/directives/repeat.js'
import {
  RSVP, SHAPES, SIDES, STATUSES, addCategory, addDays, addGuest, addItem, addTable, dayName,
  firstDay, markPaid, parseMoney, recordPayment, removeGuest, removeItem, removePayment, removeTable,
  seatGuest, setTotal, timelineDays, updateCategory, updateGuest, updateItem, updateTable, zonedTime
} from './model.js'
import { cancelNotes, notesField } from './notes.js'
import { discussButton } from './panel.js'
import { theirsNote, valueOf } from './forms.js'
import { historyButton } from './history.js'
import { lateButton, latePanel } from './delays.js'
import { answersPanel } from './answers.js'
import { WINDOW_FROM, bulkBar, guestRows, seatHouseholdForm, selectBox, totalsPanel } from './guestlist.js'
import { peopleAt } from './households.js'
import { choiceWords, fieldError, formFields, hintOf, operateFields, shownValue, storedValue } from './fields.js'

const label = (s) => s.charAt(0).toUpperCase() + s.slice(1).replace('_', ' ')

function formValues (form) {
  const values = Object.fromEntries(new FormData(form).entries())
  for (const key of Object.keys(values)) values[key] = String(values[key]).trim()
  return values
}

/** The reasons of a refused form, first wrong field first (in the form's own order). */
function inOrder (order, errors) {
  return errors.sort((a, b) => order.indexOf(a.field) - order.indexOf(b.field))
}

/** One field of an edit form (`EditState`): the value to show, its attributes and notes. */
function editField (ctx, form, state, now, field, describe) {
  const f = ctx.errors.of(form)
  const shown = state.field(field, now[field])
  const pick = (name, which) => {
    state.pick(name, which, now[name])
    ctx.errors.of(form).edited({ target: { name } })
    ctx.refresh()
  }
  const theirs = theirsNote(form, state, field, shown, pick, describe)
  return {
    value: shown.value,
    cls: shown.clash ? 'clash-field' : shown.theirs ? 'theirs' : '',
    describedBy: f.describedBy(field, theirs.id),
    invalid: f.invalid(field),
    notes: html`${f.note(field)}${theirs.note}`
  }
}

/** The input handler of an edit form: what the person typed, and their refusals taken away. */
function editInput (ctx, form, state) {
  const f = ctx.errors.of(form)
  return (e) => {
    if (!e.target || !e.target.name) return
    state.typed(e.target.name, valueOf(e.target))
    f.edited(e)
  }
}

/** A clash the person has not settled yet, as a refusal of Save. */
const PICK_ONE = 'Someone else changed this too: use their value or keep yours first.'

/** Small avatars of the people editing one entity. */
export function editors (ctx, entityId) {
  const people = ctx.others.filter((p) => p.here.entity === entityId)
  if (!people.length) return nothing
  return html`<span class="editors">${people.map((p) => avatar(p, `${p.name} is editing this`))}</span>`
}

/** One of 12 colours, from the person's id (a class: the page's CSP allows no inline style). */
function hueOf (id) {
  let hash = 0
  for (const ch of String(id)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0
  return hash % 12
}

export function avatar (person, text) {
  const initials = person.name.replace(/\(.*\)/, '').split(/[\s&]+/).filter(Boolean).map((w) => w[0]).slice(0, 2).join('').toUpperCase()
  return html`<span role="img" aria-label=${text} title=${text} class=${`avatar hue-${hueOf(person.id)}`}>${initials || '?'}</span>`
}

function readOnlyNote (ctx, kind) {
  if (ctx.access.docs[kind] === 'operate') {
    const what = kind === 'guests' ? 'RSVPs, meals, dietary needs and plus-ones' : 'who sits at which table'
    return html`<p class="note" role="note">Your role (${ctx.access.role}) may change ${what} here; the rest is read-only.</p>`
  }
  return ctx.access.docs[kind] === 'read'
    ? html`<p class="note" role="note">Read-only: your role (${ctx.access.role}) may view the ${kind} but not change anything here.</p>`
    : nothing
}

// -- guests -----------------------------------------------------------------------------

export function guestsView (ctx) {
  const { guests, filters } = ctx
  const canWrite = ctx.access.docs.guests === 'write'
  // `operate`: the answers (RSVP, meal, dietary, plus one) only, sent as operations.
  const canAnswer = canWrite || ctx.access.docs.guests === 'operate'
  const seating = ctx.seating
  const households = [...new Set(guests.map((g) => g.household).filter(Boolean))].sort()
  const dietary = [...new Set(guests.flatMap((g) => g.dietary))].sort()
  const query = filters.query.trim().toLowerCase()
  const shown = guests.filter((g) =>
    (!query || g.name.toLowerCase().includes(query) || (g.household || '').toLowerCase().includes(query)) &&
    (!filters.rsvp || g.rsvp === filters.rsvp) &&
    (!filters.side || g.side === filters.side) &&
    (!filters.household || g.household === filters.household) &&
    (!filters.dietary || g.dietary.includes(filters.dietary))
  )
  const counts = Object.fromEntries(RSVP.map((r) => [r, guests.filter((g) => g.rsvp === r).length]))
  const setFilter = (key) => (e) => { filters[key] = e.target.value; ctx.refresh() }

  const addForm = ctx.errors.of('add-guest')
  const add = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    if (!v.name) { ctx.refuse('add-guest', [{ field: 'name', message: 'A guest needs a name.' }]); return }
    ctx.errors.clear('add-guest')
    const id = addGuest(ctx.docs.guests, {
      name: v.name.slice(0, 200),
      household: v.household || null,
      side: v.side || null,
      rsvp: v.rsvp || 'pending'
    })
    e.target.reset()
    e.target.querySelector('input[name=name]').focus()
    ctx.say(`${v.name} added.`)
    ctx.setEntity(id, false)
  }

  return html`
    <section class="view" aria-labelledby="guests-title">
      <div class="view-head">
        <h2 id="guests-title">Guests</h2>${historyButton(ctx, 'guests')}
        <p class="counts" aria-label="RSVP counts">
          <span class="pill accepted">${counts.accepted} accepted</span>
          <span class="pill pending">${counts.pending} pending</span>
          <span class="pill declined">${counts.declined} declined</span>
          <span class="pill">${guests.length} invited</span>
        </p>
      </div>
      ${readOnlyNote(ctx, 'guests')}
      ${totalsPanel(ctx)}
      ${answersPanel(ctx)}
      ${canWrite ? html`
        <form class="card add-form" data-form="add-guest" novalidate @submit=${add} @input=${addForm.edited} aria-label="Add a guest">
          <div class="field"><label>Name <input name="name" required maxlength="200" autocomplete="off"
            aria-describedby=${addForm.describedBy('name')} aria-invalid=${addForm.invalid('name')}></label>${addForm.note('name')}</div>
          <label>Household <input name="household" maxlength="200" list="households" autocomplete="off"></label>
          <label>Side <select name="side"><option value="">—</option>${Object.entries(SIDES).map(([v, t]) => html`<option value=${v}>${t}</option>`)}</select></label>
          <label>RSVP <select name="rsvp">${RSVP.map((r) => html`<option value=${r}>${label(r)}</option>`)}</select></label>
          <button type="submit" class="primary">Add guest</button>
          <datalist id="households">${households.map((h) => html`<option value=${h}></option>`)}</datalist>
        </form>` : nothing}
      <div class="filters" role="search" aria-label="Find guests">
        <label class="grow">Search <input type="search" .value=${filters.query} @input=${setFilter('query')} placeholder="Name or household"></label>
        <label>RSVP <select @change=${setFilter('rsvp')} .value=${filters.rsvp}><option value="">All</option>${RSVP.map((r) => html`<option value=${r} ?selected=${filters.rsvp === r}>${label(r)}</option>`)}</select></label>
        <label>Side <select @change=${setFilter('side')}><option value="">All</option>${Object.entries(SIDES).map(([v, t]) => html`<option value=${v} ?selected=${filters.side === v}>${t}</option>`)}</select></label>
        <label>Household <select @change=${setFilter('household')}><option value="">All</option>${households.map((h) => html`<option ?selected=${filters.household === h}>${h}</option>`)}</select></label>
        <label>Dietary <select @change=${setFilter('dietary')}><option value="">All</option>${dietary.map((d) => html`<option ?selected=${filters.dietary === d}>${d}</option>`)}</select></label>
      </div>
      <p class="muted" aria-live="polite">${shown.length === guests.length ? `${guests.length} guests` : `${shown.length} of ${guests.length} guests`}</p>
      ${canWrite ? bulkBar(ctx, shown) : nothing}
      ${shown.length > WINDOW_FROM ? html`<p class="muted">A long list: only the rows near the screen are drawn, so use the search above rather than the browser's find.</p>` : nothing}
      <ul class="rows" aria-label="Guest list">
        ${guestRows(ctx, shown, (g) => guestRow(ctx, g, canWrite, canAnswer, seating))}
      </ul>
    </section>`
}

/** The guest's fields its edit form shows (fields.js: from the server's schema), and those
 *  `operate` may change (the answers). */
const GUEST_FORM = formFields('guests')
const GUEST_ORDER = GUEST_FORM.map((f) => f.name)
const ANSWERS = operateFields('guests', 'update_guest')

/** A guest's fields as its edit form shows them (strings; a checkbox is 'on' or ''). */
const guestShown = (g) => Object.fromEntries(GUEST_FORM.map((f) => [f.name, shownValue(f, g[f.name])]))

function guestRow (ctx, g, canWrite, canAnswer, seating) {
  const editing = ctx.editing === g.id
  const seat = seating ? seating.assignments.get(g.id) : null
  const table = seat && seating.tables.find((t) => t.id === seat.table_id)
  const busy = ctx.others.some((p) => p.here.entity === g.id)
  if (editing && canAnswer) return guestForm(ctx, g, canWrite)
  const rsvpForm = `rsvp-${g.id}`
  const rsvpErrors = ctx.errors.of(rsvpForm)
  return html`<li class="row ${busy ? 'busy' : ''} ${g.queued ? 'queued' : ''}" data-entity=${g.id}>
    <div class="who">
      <span class="name-line">${canWrite ? selectBox(ctx, g) : nothing}<strong>${g.name}</strong>${editors(ctx, g.id)}</span>
      <span class="muted">${[g.household || (g.household_id && ctx.households?.get(g.household_id)?.name), g.side && SIDES[g.side], g.meal, ...g.dietary, g.plus_one ? '+1' : null,
        g.plus_one_of ? `plus-one of ${ctx.guests.find((h) => h.id === g.plus_one_of)?.name ?? 'a guest'}` : null].filter(Boolean).join(' · ')}</span>
      ${table ? html`<span class="muted">Table ${table.name}</span>` : nothing}
    </div>
    <div class="row-actions" data-form=${rsvpForm}>
      ${canAnswer
        ? html`<label class="sr-label">RSVP for ${g.name}
            <select name="rsvp" class="rsvp ${g.rsvp}" aria-label=${`RSVP for ${g.name}`}
              aria-describedby=${rsvpErrors.describedBy('rsvp')} aria-invalid=${rsvpErrors.invalid('rsvp')}
              @change=${(e) => { ctx.errors.clear(rsvpForm); ctx.answer(g.id, { rsvp: e.target.value }) }}>
              ${RSVP.map((r) => html`<option value=${r} .selected=${live(g.rsvp === r)}>${label(r)}</option>`)}
            </select></label>${rsvpErrors.note('rsvp')}
            ${discussButton(ctx, 'guests', g.id, g.name)}
            <button type="button" aria-label=${`Edit ${g.name}`} @click=${() => ctx.setEntity(g.id)}>Edit</button>
            ${canWrite ? html`<button type="button" class="danger" aria-label=${`Remove ${g.name}`} @click=${() => {
              ctx.removed(`${g.name} removed from the guest list`, () => removeGuest(ctx.docs.guests, ctx.canWrite('seating') ? ctx.docs.seating : null, g.id))
            }}>Remove</button>` : nothing}`
        : html`<span class="pill ${g.rsvp}">${label(g.rsvp)}</span>${discussButton(ctx, 'guests', g.id, g.name)}`}
    </div>
  </li>`
}

/** A guest's edit form: every field for a writer, the answers for an operator. It writes only
 *  what the person changed, never a field someone else changed meanwhile (`EditState`). */
function guestForm (ctx, g, canWrite) {
  const form = `guest-${g.id}`
  const now = guestShown(g)
  const state = ctx.editState(g.id, () => now)
  const field = (name, describe) => editField(ctx, form, state, now, name, describe)
  const save = (e) => {
    e.preventDefault()
    const { write, clashes } = state.changes(now)
    const errors = clashes.map((name) => ({ field: name, message: PICK_ONE }))
    if (canWrite && 'name' in write && !write.name.trim()) errors.push({ field: 'name', message: 'A guest needs a name.' })
    for (const spec of GUEST_FORM) {
      const refused = spec.name in write ? fieldError('guests', spec, write[spec.name]) : null
      if (refused) errors.push({ field: spec.name, message: refused })
    }
    if (errors.length) { ctx.refuse(form, inOrder(GUEST_ORDER, errors)); return }
    ctx.errors.clear(form)
    const fields = {}
    for (const [name, value] of Object.entries(write)) {
      if (canWrite || ANSWERS.includes(name)) fields[name] = storedValue(GUEST_FORM.find((f) => f.name === name), value)
    }
    if (Object.keys(fields).length) {
      if (canWrite) updateGuest(ctx.docs.guests, g.id, fields)
      else ctx.answer(g.id, fields, form)
    }
    ctx.setEntity(null)
    ctx.say(`${fields.name || g.name} saved.`)
  }
  const cancel = (e) => {
    if (canWrite) cancelNotes(e.target.closest('form'))
    ctx.errors.clear(form)
    ctx.setEntity(null)
  }
  const control = (spec) => {
    const { name } = spec
    if (spec.type === 'boolean') {
      const said = spec.label.toLowerCase()
      const f = field(name, (v) => (v === 'on' ? `a ${said}` : `no ${said}`))
      return html`<div class=${`field ${f.cls}`}><label class="check"><input type="checkbox" name=${name} .checked=${live(f.value === 'on')}
        aria-describedby=${f.describedBy} aria-invalid=${f.invalid}> ${spec.label}</label>${f.notes}</div>`
    }
    if (spec.type === 'choice') {
      const options = [...(spec.required || spec.default ? [] : [['', '—']]), ...spec.choices.map((v) => [v, choiceWords(v)])]
      const f = field(name, (v) => options.find(([value]) => value === v)?.[1] ?? v)
      return html`<div class=${`field ${f.cls}`}><label>${spec.label} <select name=${name} aria-describedby=${f.describedBy} aria-invalid=${f.invalid}>
        ${options.map(([value, text]) => html`<option value=${value} .selected=${live(f.value === value)}>${text}</option>`)}
      </select></label>${f.notes}</div>`
    }
    const f = field(name)
    const hint = hintOf('guests', name)
    return html`<div class=${`field ${f.cls}`}><label>${spec.label} <input name=${name} .value=${live(f.value)} maxlength=${spec.type === 'text_list' ? 2000 : spec.max || 200}
      ?required=${spec.required} placeholder=${hint.placeholder || nothing}
      aria-describedby=${f.describedBy} aria-invalid=${f.invalid}></label>${f.notes}</div>`
  }
  return html`<li class="row editing" data-entity=${g.id}>
    <form class="edit-form" data-form=${form} novalidate @submit=${save} @input=${editInput(ctx, form, state)} aria-label=${`Edit ${g.name}`}>
      ${canWrite ? nothing : html`<p><strong>${g.name}</strong></p>`}
      ${GUEST_FORM.filter((spec) => canWrite || ANSWERS.includes(spec.name)).map(control)}
      ${canWrite ? notesField(ctx.docs.guests, 'guests', g.id, `Notes for ${g.name}`) : nothing}
      <div class="actions">
        <button type="submit" class="primary">Save</button>
        <button type="button" @click=${cancel}>Cancel</button>
      </div>
    </form>
  </li>`
}

// -- seating ----------------------------------------------------------------------------

export function seatingView (ctx) {
  const { seating, guests } = ctx
  const canWrite = ctx.access.docs.seating === 'write'
  // `operate`: seat and unseat guests (operations), tables stay as they are.
  const canSeat = canWrite || ctx.access.docs.seating === 'operate'
  const byId = new Map(guests.map((g) => [g.id, g]))
  const seatedAt = new Map(seating.tables.map((t) => [t.id, []]))
  seating.assignments.forEach((a, guestId) => {
    if (seatedAt.has(a.table_id)) seatedAt.get(a.table_id).push({ id: guestId, seat: a.seat, guest: byId.get(guestId) })
  })
  const unseated = guests.filter((g) => g.rsvp !== 'declined' && !seating.assignments.has(g.id))
  const people = peopleAt(seating, guests) // an unnamed plus-one takes the seat beside their host
  const overIds = new Set(ctx.conflicts.flatMap((c) => c.paths).filter((p) => p.startsWith('seating/')).map((p) => p.split('/')[2]))
  const nameOf = (id) => (byId.get(id) ? byId.get(id).name : `Unknown guest ${id}`)

  const drop = (tableId) => (e) => {
    e.preventDefault()
    e.currentTarget.classList.remove('drop')
    const guestId = e.dataTransfer.getData('text/x-guest')
    if (guestId) ctx.seat(guestId, tableId)
  }
  const chip = (guestId, extra) => html`<li class="chip ${ctx.others.some((p) => p.here.entity === guestId) ? 'busy' : ''}" tabindex=${canSeat ? '0' : '-1'} draggable=${canSeat ? 'true' : 'false'} data-entity=${guestId}
      @dragstart=${(e) => { e.dataTransfer.setData('text/x-guest', guestId); e.dataTransfer.effectAllowed = 'move'; ctx.setEntity(guestId, false) }}>
      <span>${nameOf(guestId)}</span>${editors(ctx, guestId)}${extra || nothing}
      ${canSeat ? tablePicker(ctx, guestId, nameOf(guestId), seatedAt) : nothing}
    </li>`
  const tableForm = ctx.errors.of('add-table')
  const addTableForm = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    const capacity = seatsOf(v.capacity)
    const errors = []
    if (!v.name) errors.push({ field: 'name', message: 'A table needs a name.' })
    if (capacity === null) errors.push({ field: 'capacity', message: SEATS })
    if (errors.length) { ctx.refuse('add-table', errors); return }
    ctx.errors.clear('add-table')
    addTable(ctx.docs.seating, v.name.slice(0, 200), capacity, SHAPES.includes(v.shape) ? v.shape : 'round')
    e.target.reset()
    ctx.say(`Table ${v.name} added.`)
  }

  return html`
    <section class="view" aria-labelledby="seating-title">
      <div class="view-head">
        <h2 id="seating-title">Seating</h2>${historyButton(ctx, 'seating')}
        <p class="counts"><span class="pill">${seating.assignments.size} seated</span><span class="pill pending">${unseated.length} to seat</span><span class="pill">${seating.tables.length} tables</span></p>
      </div>
      ${readOnlyNote(ctx, 'seating')}
      ${canSeat ? html`<p class="muted">Drag a guest onto a table, or choose a table in the list next to their name.</p>` : nothing}
      ${canSeat && ctx.docs.guests ? seatHouseholdForm(ctx) : nothing}
      <p class="print-links"><a href="#/print/seating">Print the chart</a> · <a href="#/print/escort-cards">Print escort cards</a></p>
      <section class="card chart-card" aria-labelledby="chart-title">
        <h3 id="chart-title">Chart</h3>
        ${lazyChart(ctx)}
      </section>
      <h3 class="list-title">Tables as a list</h3>
      <div class="seating">
        <section class="card unseated" aria-labelledby="unseated-title"
          @dragover=${(e) => e.preventDefault()} @drop=${(e) => { e.preventDefault(); const id = e.dataTransfer.getData('text/x-guest'); if (id && canSeat) ctx.unseat(id) }}>
          <h3 id="unseated-title">Not seated yet (${unseated.length})</h3>
          <ul class="chips">${repeat(unseated, (g) => g.id, (g) => chip(g.id))}</ul>
        </section>
        <div class="tables">
          ${seating.tables.map((t) => {
            const seated = seatedAt.get(t.id).sort((a, b) => (a.seat ?? 999) - (b.seat ?? 999))
            const count = people.get(t.id)
            const over = count > t.capacity
            return html`<section class="card table ${over || overIds.has(t.id) ? 'conflict' : ''} ${count >= t.capacity ? 'full' : ''}" data-entity=${t.id}
                aria-label=${`Table ${t.name}, ${count} of ${t.capacity} seats`}
                @dragover=${(e) => { if (canSeat) { e.preventDefault(); e.currentTarget.classList.add('drop') } }}
                @dragleave=${(e) => e.currentTarget.classList.remove('drop')}
                @drop=${canSeat ? drop(t.id) : null}>
              <header>
                <h3>${t.name}</h3>
                <span class="capacity ${over ? 'over' : ''}">${count}/${t.capacity}${over ? ' — over capacity' : count === t.capacity ? ' — full' : ''}</span>
                ${discussButton(ctx, 'seating', t.id, `table ${t.name}`)}
              </header>
              <ul class="chips">
                ${repeat(seated, (s) => s.id, (s) => chip(s.id, html`${s.seat ? html`<span class="seat">#${s.seat}</span>` : nothing}${overIds.has(s.id) ? html`<span class="warn" title="Seat conflict">⚠</span>` : nothing}
                  ${canSeat ? html`<button type="button" class="link" aria-label=${`Unseat ${nameOf(s.id)}`} @click=${() => ctx.unseat(s.id)}>×</button>` : nothing}`))}
              </ul>
              ${canWrite ? html`<div class="table-tools" data-form=${`seats-${t.id}`}>
                ${seatsControl(ctx, t)}
                <label>Shape <select aria-label=${`Shape of ${t.name}`} @change=${(e) => updateTable(ctx.docs.seating, t.id, { shape: e.target.value })}>
                  ${SHAPES.map((shape) => html`<option value=${shape} .selected=${live(t.shape === shape)}>${label(shape)}</option>`)}</select></label>
                <button type="button" class="link danger" aria-label=${`Remove table ${t.name}`} @click=${() => ctx.removed(`Table ${t.name} removed`, () => removeTable(ctx.docs.seating, t.id))}>Remove</button>
              </div>` : nothing}
            </section>`
          })}
          ${canWrite ? html`<form class="card table add-table" data-form="add-table" novalidate @submit=${addTableForm} @input=${tableForm.edited} aria-label="Add a table">
            <div class="field"><label>Table name <input name="name" required maxlength="200"
              aria-describedby=${tableForm.describedBy('name')} aria-invalid=${tableForm.invalid('name')}></label>${tableForm.note('name')}</div>
            <div class="field"><label>Seats <input name="capacity" type="number" min="1" max="1000" value="10" required
              aria-describedby=${tableForm.describedBy('capacity')} aria-invalid=${tableForm.invalid('capacity')}></label>${tableForm.note('capacity')}</div>
            <div class="field"><label>Shape <select name="shape">${SHAPES.map((shape) => html`<option value=${shape}>${label(shape)}</option>`)}</select></label></div>
            <button type="submit">Add table</button>
          </form>` : nothing}
        </div>
      </div>
    </section>`
}

// The seating chart and the print views: chunks of their own, loaded when first shown.
const lazy = { chart: null, print: null }
const loading = {}

function loaded (ctx, name, load) {
  if (!loading[name]) {
    loading[name] = load().then((m) => { lazy[name] = m; ctx.refresh() }, () => { delete loading[name] })
  }
  return lazy[name]
}

function lazyChart (ctx) {
  const chart = loaded(ctx, 'chart', () => import('./chart.js'))
  return chart ? chart.chartView(ctx) : html`<p class="muted">Loading the chart…</p>`
}

/** A print view (`#/print/...`): the chart, escort cards, a vendor's run sheet. */
export function printPage (ctx) {
  const print = loaded(ctx, 'print', () => import('./print.js'))
  return print ? print.printView(ctx, print.printRoute(location.hash)) : html`<p class="muted">Loading…</p>`
}

const SEATS = 'A table has 1 to 1000 seats: type a whole number.'

/** A number of seats from a form's text, or null when it is not 1 to 1000. */
function seatsOf (text) {
  const n = /^\d+$/.test(String(text).trim()) ? parseInt(text, 10) : NaN
  return n >= 1 && n <= 1000 ? n : null
}

/** A table's seats, changed in place; a refused number stays, with the reason beside it. */
function seatsControl (ctx, t) {
  const form = `seats-${t.id}`
  const f = ctx.errors.of(form)
  const change = (e) => {
    const n = seatsOf(e.target.value)
    if (n === null) { ctx.refuse(form, [{ field: 'capacity', message: SEATS }]); return }
    ctx.errors.clear(form)
    updateTable(ctx.docs.seating, t.id, { capacity: n })
  }
  // A refused number stays as typed: the stored capacity shows again once it is fixed.
  const value = f.invalid('capacity') === 'true' ? noChange : String(t.capacity)
  return html`<label>Seats <input name="capacity" type="number" min="1" max="1000" .value=${value} aria-label=${`Seats at ${t.name}`}
    aria-describedby=${f.describedBy('capacity')} aria-invalid=${f.invalid('capacity')} @change=${change}></label>${f.note('capacity')}`
}

/** The keyboard path for seating: a select per guest listing every table and how full it is.
 *  Its options' selection is set from the seating on every render (`live`), never left from
 *  an earlier pick. */
function tablePicker (ctx, guestId, name, seatedAt) {
  const current = ctx.seating.assignments.get(guestId)
  const form = `seat-${guestId}`
  const f = ctx.errors.of(form)
  return html`<span class="picker" data-form=${form}><select name="table" class="table-picker" aria-label=${`Table for ${name}`}
    aria-describedby=${f.describedBy('table')} aria-invalid=${f.invalid('table')} @change=${(e) => {
      const value = e.target.value
      ctx.errors.clear(form)
      if (value === '') ctx.unseat(guestId)
      else ctx.seat(guestId, value)
    }}>
    <option value="" .selected=${live(!current)}>No table</option>
    ${ctx.seating.tables.map((t) => {
      const n = seatedAt.get(t.id).length
      return html`<option value=${t.id} .selected=${live(Boolean(current && current.table_id === t.id))}>${t.name} (${n}/${t.capacity}${n >= t.capacity ? ', full' : ''})</option>`
    })}
  </select>${f.note('table')}</span>`
}

// -- timeline ---------------------------------------------------------------------------

/** The timestamp a day (YYYY-MM-DD) and time (HH:MM) typed for the timeline is written as:
 *  in the wedding's zone (the profile), with its offset on that date and at that time; without
 *  a zone, with `written`, the offset the timeline's times already carry. */
function stamp (ctx, day, time, written) {
  return zonedTime(day, time, ctx.local.zone, written)
}

/** The offset a timestamp was written with (`+02:00`), for weddings without a zone. */
function writtenOffset (iso) {
  return (/([+-]\d\d:\d\d|Z)$/.exec(iso) || ['+00:00'])[0].replace('Z', '+00:00')
}

/** "Fri, 23 October 2026 (the day before)": a day of the timeline in words. */
function dayWords (ctx, day) {
  const name = dayName(day, ctx.profile && ctx.profile.date)
  return `${ctx.local.day(day)}${name ? ` (${name.toLowerCase()})` : ''}`
}

/** The days the timeline shows, and the one shown now: each item's start day in the
 *  wedding's zone and the wedding's date; the day picked, else the wedding's, else the first. */
function timelineDaysOf (ctx) {
  const { timeline } = ctx
  const fallback = firstDay(timeline, ctx.profile)
  const days = timelineDays(timeline, ctx.profile, (iso) => ctx.local.wall(iso).day)
  if (!days.length) days.push(fallback.day)
  const wedding = ctx.profile && ctx.profile.date
  const shown = days.includes(ctx.timelineDay) ? ctx.timelineDay : days.includes(wedding) ? wedding : days[0]
  return { days, shown, offset: timeline.length ? writtenOffset(timeline[0].start) : fallback.offset }
}

/** The day switcher: one button per day, the day shown pressed. */
function daySwitcher (ctx, days, shown) {
  const count = (day) => ctx.timeline.filter((i) => ctx.local.wall(i.start).day === day).length
  return html`<nav class="days" aria-label="Days of the timeline">
    ${days.map((day) => {
      const name = dayName(day, ctx.profile && ctx.profile.date)
      const n = count(day)
      return html`<button type="button" class="day" aria-pressed=${day === shown ? 'true' : 'false'}
        aria-label=${`${dayWords(ctx, day)}: ${n} ${n === 1 ? 'item' : 'items'}`} @click=${() => ctx.showDay(day)}>
        ${name ? html`<strong>${name}</strong>` : nothing}<span>${ctx.local.day(day)}</span><span class="pill">${n}</span>
      </button>`
    })}
  </nav>`
}

/** When an item ends, if not on the day it starts: "next day" or that day in words. */
function endsLater (ctx, item) {
  const start = ctx.local.wall(item.start).day
  const end = ctx.local.wall(item.end).day
  if (!end || end <= start) return nothing
  const words = end === addDays(start, 1) ? 'ends the next day' : `ends ${ctx.local.day(end)}`
  return html`<span class="muted ends-later"> (${words})</span>`
}

export function timelineView (ctx) {
  const { timeline, overlaps } = ctx
  const canWrite = ctx.access.docs.timeline === 'write'
  const { days, shown, offset } = timelineDaysOf(ctx)
  const items = timeline.filter((i) => ctx.local.wall(i.start).day === shown)
  // A new item may go on any day shown, or the day before the first or after the last.
  const choices = [addDays(days[0], -1), ...days, addDays(days[days.length - 1], 1)]
  const addForm = ctx.errors.of('add-item')
  const add = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    const errors = itemErrors(v)
    if (errors.length) { ctx.refuse('add-item', inOrder(ITEM_ORDER, errors)); return }
    ctx.errors.clear('add-item')
    addItem(ctx.docs.timeline, {
      title: v.title.slice(0, 200),
      start: stamp(ctx, v.day, v.start, offset),
      end: stamp(ctx, v.next_day ? addDays(v.day, 1) : v.day, v.end, offset),
      location: v.location || null,
      owner: v.owner || null,
      vendor: v.vendor || null
    })
    e.target.reset()
    ctx.showDay(v.day)
    ctx.say(`${v.title} added to ${dayWords(ctx, v.day)}.`)
  }
  return html`
    ${runOfShow(ctx, canWrite)}
    <section class="view" aria-labelledby="timeline-title">
      <div class="view-head">
        <h2 id="timeline-title">Timeline</h2>${historyButton(ctx, 'timeline')}
        <p class="counts"><span class="pill">${ctx.local.day(shown)}</span><span class="pill">${timeline.length} items</span>${overlaps.size ? html`<span class="pill declined">${overlaps.size} overlapping</span>` : nothing}</p>
      </div>
      ${readOnlyNote(ctx, 'timeline')}
      ${daySwitcher(ctx, days, shown)}
      <p class="print-links"><a href="#/print">Run sheets and other print views</a></p>
      <ol class="timeline" aria-label=${`Schedule for ${dayWords(ctx, shown)}`}>
        ${items.map((item) => {
          const flags = overlaps.get(item.id)
          if (canWrite && ctx.editing === item.id) return timelineEdit(ctx, item)
          return html`<li class="item ${flags ? 'conflict' : ''} status-${item.status}" data-entity=${item.id}>
            <span><time datetime=${item.start}>${ctx.local.time(item.start)}–${ctx.local.time(item.end)}</time>${endsLater(ctx, item)}</span>
            <div class="what">
              <span class="name-line"><strong>${item.title}</strong>${editors(ctx, item.id)}</span>
              <span class="muted">${[item.location, item.owner && `Owner: ${item.owner}`, item.vendor && `Vendor: ${item.vendor}`].filter(Boolean).join(' · ')}</span>
              ${flags ? html`<span class="warn-text">⚠ ${flags.join('; ')}</span>` : nothing}
            </div>
            ${canWrite
              ? html`<div class="row-actions">
                  <select aria-label=${`Status of ${item.title}`} @focus=${() => ctx.setEntity(item.id, false)} @change=${(e) => updateItem(ctx.docs.timeline, item.id, { status: e.target.value })}>
                    ${STATUSES.map((s) => html`<option value=${s} ?selected=${item.status === s}>${label(s)}</option>`)}
                  </select>
                  ${discussButton(ctx, 'timeline', item.id, item.title)}
                  <button type="button" aria-label=${`Edit ${item.title}`} @click=${() => ctx.setEntity(item.id)}>Edit</button>
                  ${lateButton(ctx, item)}
                  <button type="button" class="link danger" aria-label=${`Remove ${item.title}`} @click=${() => ctx.removed(`${item.title} removed from the timeline`, () => removeItem(ctx.docs.timeline, item.id))}>Remove</button>
                </div>`
              : html`<div class="row-actions"><span class=${`pill item-status ${item.status}`}>${label(item.status)}</span>${discussButton(ctx, 'timeline', item.id, item.title)}</div>`}
            ${canWrite ? latePanel(ctx, item) : nothing}
          </li>`
        })}
      </ol>
      ${items.length ? nothing : html`<p class="muted empty-day">Nothing planned on ${dayWords(ctx, shown)} yet.</p>`}
      ${canWrite ? html`<form class="card add-form" data-form="add-item" novalidate @submit=${add} @input=${addForm.edited} aria-label="Add a timeline item">
        <div class="field"><label>Title <input name="title" required maxlength="200"
          aria-describedby=${addForm.describedBy('title')} aria-invalid=${addForm.invalid('title')}></label>${addForm.note('title')}</div>
        <div class="field"><label>Day <select name="day" aria-describedby=${addForm.describedBy('day')} aria-invalid=${addForm.invalid('day')}>
          ${choices.map((day) => html`<option value=${day} ?selected=${day === shown}>${dayWords(ctx, day)}</option>`)}
        </select></label>${addForm.note('day')}</div>
        <div class="field"><label>Starts <input name="start" type="time" required
          aria-describedby=${addForm.describedBy('start')} aria-invalid=${addForm.invalid('start')}></label>${addForm.note('start')}</div>
        <div class="field"><label>Ends <input name="end" type="time" required
          aria-describedby=${addForm.describedBy('end')} aria-invalid=${addForm.invalid('end')}></label>${addForm.note('end')}</div>
        <label class="check"><input name="next_day" type="checkbox"> Runs past midnight</label>
        <label>Location <input name="location" maxlength="200"></label>
        <label>Owner <input name="owner" maxlength="200"></label>
        <label>Vendor <input name="vendor" maxlength="200"></label>
        <button type="submit" class="primary">Add item</button>
      </form>` : nothing}
    </section>`
}

// The run of show: Tiptap, in a chunk of its own, loaded when someone opens it.
const runOfShowEditors = new WeakMap() // container -> Promise of the editor
const runOfShowDocs = new WeakMap() // container -> the Y.Doc its editor is on

function openRunOfShow (ctx, container, editable) {
  if (!container || runOfShowEditors.has(container)) return
  const room = ctx.sync.rooms.timeline
  runOfShowDocs.set(container, ctx.docs.timeline)
  runOfShowEditors.set(container, import('./runofshow.js').then(({ mountRunOfShow }) =>
    mountRunOfShow(container, { doc: ctx.docs.timeline, awareness: room.provider.awareness, editable })))
}

/** The timeline's Y.Doc was replaced (sync.js, 4409): an open editor moves to the new one. */
function followRunOfShow (ctx, editable) {
  const container = runOfShowContainer
  const editor = container && runOfShowEditors.get(container)
  if (!editor || runOfShowDocs.get(container) === ctx.docs.timeline) return
  runOfShowEditors.delete(container)
  editor.then((e) => {
    e.destroy()
    openRunOfShow(ctx, container, editable)
  })
}

let runOfShowContainer = null

/** Stable across renders (lit calls a new ref callback with undefined, then the element):
 *  the editor is destroyed only when its container leaves the page. */
function keepRunOfShow (element) {
  if (element) { runOfShowContainer = element; return }
  const container = runOfShowContainer
  const editor = container && runOfShowEditors.get(container)
  if (editor) editor.then((e) => e.destroy())
  if (container) runOfShowEditors.delete(container)
  runOfShowContainer = null
}

function runOfShow (ctx, canWrite) {
  followRunOfShow(ctx, canWrite)
  const toggle = (e) => { if (e.target.open) openRunOfShow(ctx, e.target.querySelector('.ros-editor'), canWrite) }
  return html`<details class="view runofshow" @toggle=${toggle}>
    <summary><h2>Run of show</h2></summary>
    <div class="ros-editor" ${ref(keepRunOfShow)}></div>
  </details>`
}

/** A timeline item's fields as its edit form shows them: its day and times in the wedding's
 *  zone, and whether it ends on a later day. */
function itemShown (ctx, item) {
  const start = ctx.local.wall(item.start)
  const end = ctx.local.wall(item.end)
  return {
    title: item.title,
    day: start.day,
    start: start.time,
    end: end.time,
    next_day: end.day > start.day ? 'on' : '',
    location: item.location || '',
    owner: item.owner || '',
    vendor: item.vendor || ''
  }
}
const ITEM_ORDER = ['title', 'day', 'start', 'end', 'location', 'owner', 'vendor']
const WHEN = ['day', 'start', 'end', 'next_day']

/** Why an item's form values (title, day, start and end as HH:MM, next_day) are refused. */
function itemErrors (v) {
  const errors = []
  if (!v.title.trim()) errors.push({ field: 'title', message: 'An item needs a title.' })
  if (!/^\d{4}-\d\d-\d\d$/.test(v.day || '')) errors.push({ field: 'day', message: 'An item needs a day.' })
  if (!v.start) errors.push({ field: 'start', message: 'An item needs a start time.' })
  if (!v.end) errors.push({ field: 'end', message: 'An item needs an end time.' })
  if (v.start && v.end && !v.next_day && v.end < v.start) {
    errors.push({ field: 'end', message: `The item ends (${v.end}) before it starts (${v.start}). If it runs past midnight, tick “Runs past midnight”.` })
  }
  return errors
}

/** An item's edit form: it writes only what the person changed (`EditState`); a changed day
 *  or time writes the start and end it moves, in the wedding's zone on that day. */
function timelineEdit (ctx, item) {
  const form = `item-${item.id}`
  const now = itemShown(ctx, item)
  const state = ctx.editState(item.id, () => now)
  const save = (e) => {
    e.preventDefault()
    const { write, clashes } = state.changes(now)
    const errors = clashes.map((name) => ({ field: name, message: PICK_ONE }))
    const v = { ...now, ...write }
    errors.push(...itemErrors(v).filter((x) => !clashes.includes(x.field)))
    if (errors.length) { ctx.refuse(form, inOrder(ITEM_ORDER, errors)); return }
    ctx.errors.clear(form)
    const fields = {}
    for (const [name, value] of Object.entries(write)) {
      if (WHEN.includes(name)) continue
      if (name === 'title') fields.title = value.trim().slice(0, 200)
      else fields[name] = value.trim() || null
    }
    if (WHEN.some((name) => name in write)) {
      const start = stamp(ctx, v.day, v.start, writtenOffset(item.start))
      const end = stamp(ctx, v.next_day ? addDays(v.day, 1) : v.day, v.end, writtenOffset(item.end))
      if (Date.parse(start) !== Date.parse(item.start)) fields.start = start
      if (Date.parse(end) !== Date.parse(item.end)) fields.end = end
    }
    if (Object.keys(fields).length) updateItem(ctx.docs.timeline, item.id, fields)
    ctx.setEntity(null)
    if (v.day !== now.day) ctx.showDay(v.day)
    ctx.say(`${fields.title || item.title} saved.`)
  }
  const input = (name, title, type = 'text') => {
    const f = editField(ctx, form, state, now, name)
    return html`<div class=${`field ${f.cls}`}><label>${title} <input name=${name} type=${type} .value=${live(f.value)} maxlength="200"
      ?required=${name === 'title' || type === 'time' || type === 'date'} aria-describedby=${f.describedBy} aria-invalid=${f.invalid}></label>${f.notes}</div>`
  }
  const nextDay = editField(ctx, form, state, now, 'next_day', (v) => (v ? 'runs past midnight' : 'ends the same day'))
  return html`<li class="item editing" data-entity=${item.id}>
    <form class="edit-form" data-form=${form} novalidate @submit=${save} @input=${editInput(ctx, form, state)} aria-label=${`Edit ${item.title}`}>
      ${input('title', 'Title')}
      ${input('day', 'Day', 'date')}
      ${input('start', 'Starts', 'time')}
      ${input('end', 'Ends', 'time')}
      <div class=${`field ${nextDay.cls}`}><label class="check"><input name="next_day" type="checkbox" .checked=${live(nextDay.value === 'on')}
        aria-describedby=${nextDay.describedBy}> Runs past midnight</label>${nextDay.notes}</div>
      ${input('location', 'Location')}
      ${input('owner', 'Owner')}
      ${input('vendor', 'Vendor')}
      ${notesField(ctx.docs.timeline, 'items', item.id, `Notes for ${item.title}`)}
      <div class="actions">
        <button type="submit" class="primary">Save</button>
        <button type="button" @click=${(e) => { cancelNotes(e.target.closest('form')); ctx.errors.clear(form); ctx.setEntity(null) }}>Cancel</button>
      </div>
    </form>
  </li>`
}

// -- budget -----------------------------------------------------------------------------

// The budget's chart: its own chunk (budgetchart.js), loaded when the budget is first shown.
let budgetChartModule = null
let budgetChartLoading = null

function budgetChartPart (ctx, budget) {
  if (budgetChartModule) {
    const { budgetChart, chartRows } = budgetChartModule
    return budgetChart(chartRows(budget), (n) => ctx.local.money(n))
  }
  if (!budgetChartLoading) {
    budgetChartLoading = import('./budgetchart.js')
      .then((module) => { budgetChartModule = module; ctx.render() })
      .catch(() => { budgetChartLoading = null }) // offline and not cached: the table stays
  }
  return html`<p class="muted budget-chart-loading">Loading the chart…</p>`
}

/** Today in this browser's calendar, as `YYYY-MM-DD`. */
function today () {
  const now = new Date()
  const pad = (n) => String(n).padStart(2, '0')
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`
}

export function budgetView (ctx) {
  const { budget } = ctx
  const canWrite = ctx.access.docs.budget === 'write'
  const money = (n) => ctx.local.money(n)
  // Paid totals count paid payments only; scheduled ones are shown beside them.
  const paidBy = new Map()
  const scheduledBy = new Map()
  for (const p of budget.payments) {
    const into = p.status === 'scheduled' ? scheduledBy : paidBy
    into.set(p.category_id, (into.get(p.category_id) || 0) + p.amount)
  }
  const planned = budget.categories.reduce((n, c) => n + c.planned, 0)
  const paid = budget.payments.reduce((n, p) => n + (p.status === 'scheduled' ? 0 : p.amount), 0)
  const scheduled = budget.payments.reduce((n, p) => n + (p.status === 'scheduled' ? p.amount : 0), 0)
  const upcoming = budget.payments.filter((p) => p.status === 'scheduled')
    .sort((a, b) => (a.due || '9999').localeCompare(b.due || '9999') || a.id.localeCompare(b.id))
  const made = budget.payments.filter((p) => p.status !== 'scheduled')
  const names = new Map(budget.categories.map((c) => [c.id, c.name]))
  const payForm = ctx.errors.of('add-payment')
  const categoryForm = ctx.errors.of('add-category')
  const totalErrors = ctx.errors.of('total')
  const isDay = (v) => /^\d{4}-\d\d-\d\d$/.test(v || '')
  const record = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    const amount = parseMoney(v.amount)
    const later = v.status === 'scheduled'
    const errors = []
    if (amount === null) errors.push({ field: 'amount', message: MONEY })
    if (!v.category_id) errors.push({ field: 'category_id', message: 'Pick the category this payment is for (add one first if there is none).' })
    if (!later && !isDay(v.date)) errors.push({ field: 'date', message: 'A payment needs the date it was paid (or choose Scheduled for one still to pay).' })
    if (later && v.date && !isDay(v.date)) errors.push({ field: 'date', message: 'Type the date it was paid, or leave it empty.' })
    if (later && !isDay(v.due)) errors.push({ field: 'due', message: 'A scheduled payment needs the date it is due.' })
    if (!later && v.due && !isDay(v.due)) errors.push({ field: 'due', message: 'Type the date it was due, or leave it empty.' })
    if (errors.length) { ctx.refuse('add-payment', errors); return }
    ctx.errors.clear('add-payment')
    recordPayment(ctx.docs.budget, {
      amount,
      category_id: v.category_id,
      date: later ? null : v.date,
      due: v.due || null,
      status: later ? 'scheduled' : null,
      payer: v.payer || null,
      vendor: v.vendor || null
    })
    e.target.reset()
    ctx.say(later ? `Payment scheduled for ${ctx.local.day(v.due)}.` : 'Payment recorded.')
  }
  const addCategoryForm = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    const planned = parseMoney(v.planned)
    const errors = []
    if (!v.name) errors.push({ field: 'name', message: 'A category needs a name.' })
    if (planned === null) errors.push({ field: 'planned', message: MONEY })
    if (errors.length) { ctx.refuse('add-category', errors); return }
    ctx.errors.clear('add-category')
    addCategory(ctx.docs.budget, v.name.slice(0, 200), planned)
    e.target.reset()
    ctx.say(`Category ${v.name} added.`)
  }
  const totalForm = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    const total = v.total === '' ? null : parseMoney(v.total)
    if (v.total !== '' && total === null) { ctx.refuse('total', [{ field: 'total', message: 'Type an amount such as 30000.00, or leave it empty for no total.' }]); return }
    ctx.errors.clear('total')
    setTotal(ctx.docs.budget, total)
    ctx.say(total === null ? 'Budget total removed.' : `Budget total set to ${money(total)}.`)
  }
  const day = today()
  const paymentLine = (p) => [
    p.status === 'scheduled' ? (p.due ? `due ${ctx.local.day(p.due)}` : 'no due date') : ctx.local.day(p.date),
    names.get(p.category_id) || p.category_id,
    p.vendor,
    p.payer && `${p.status === 'scheduled' ? 'to be paid' : 'paid'} by ${p.payer}`
  ].filter(Boolean).join(' · ')
  const removeButton = (p) => html`<button type="button" class="link danger" aria-label=${`Remove payment of ${money(p.amount)} ${p.status === 'scheduled' ? `due ${p.due ? ctx.local.day(p.due) : ''}` : `on ${ctx.local.day(p.date)}`}`} @click=${() => ctx.removed(`Payment of ${money(p.amount)} removed`, () => removePayment(ctx.docs.budget, p.id))}>Remove</button>`
  return html`
    <section class="view" aria-labelledby="budget-title">
      <div class="view-head">
        <h2 id="budget-title">Budget</h2>${historyButton(ctx, 'budget')}
        <p class="counts"><span class="pill">Total ${budget.total === null ? 'not set' : money(budget.total)}</span><span class="pill">Planned ${money(planned)}</span><span class="pill accepted">Paid ${money(paid)}</span>${scheduled ? html`<span class="pill pending">Scheduled ${money(scheduled)}</span>` : nothing}</p>
      </div>
      ${readOnlyNote(ctx, 'budget')}
      <table class="card budget">
        <caption>Categories: planned against paid and scheduled</caption>
        <thead><tr><th scope="col">Category</th><th scope="col">Planned</th><th scope="col">Paid</th><th scope="col">Scheduled</th><th scope="col">Progress</th><th scope="col"><span class="sr-only">Threads</span></th></tr></thead>
        <tbody>${budget.categories.map((c) => {
          const p = paidBy.get(c.id) || 0
          const s = scheduledBy.get(c.id) || 0
          const share = c.planned ? Math.min(100, Math.round((100 * p) / c.planned)) : 0
          const plannedCell = canWrite ? plannedControl(ctx, c) : money(c.planned)
          return html`<tr class=${p + s > c.planned ? 'conflict' : ''} data-entity=${c.id}><th scope="row">${c.name}${editors(ctx, c.id)}</th><td>${plannedCell}</td><td>${money(p)}</td><td>${money(s)}</td>
            <td><progress max="100" value=${share} aria-label=${`${c.name}: ${share}% paid`}></progress></td>
            <td>${discussButton(ctx, 'budget', c.id, c.name)}</td></tr>`
        })}</tbody>
        <tfoot><tr><th scope="row">Total</th><td>${money(planned)}</td><td>${money(paid)}</td><td>${money(scheduled)}</td><td></td><td></td></tr></tfoot>
      </table>
      ${budget.categories.length ? budgetChartPart(ctx, budget) : nothing}
      ${canWrite ? html`<div class="budget-tools">
        <form class="card add-form" data-form="add-category" novalidate @submit=${addCategoryForm} @input=${categoryForm.edited} aria-label="Add a category">
          <div class="field"><label>Category name <input name="name" required maxlength="200"
            aria-describedby=${categoryForm.describedBy('name')} aria-invalid=${categoryForm.invalid('name')}></label>${categoryForm.note('name')}</div>
          <div class="field"><label>Planned <input name="planned" inputmode="decimal" required placeholder="1000.00"
            aria-describedby=${categoryForm.describedBy('planned')} aria-invalid=${categoryForm.invalid('planned')}></label>${categoryForm.note('planned')}</div>
          <button type="submit">Add category</button>
        </form>
        <form class="card add-form" data-form="total" novalidate @submit=${totalForm} aria-label="Budget total">
          <div class="field"><label>Total budget <input name="total" inputmode="decimal" placeholder="No total"
            .value=${totalErrors.invalid('total') === 'true' ? noChange : budget.total === null ? '' : (budget.total / 100).toFixed(2)}
            aria-describedby=${totalErrors.describedBy('total')} aria-invalid=${totalErrors.invalid('total')}></label>${totalErrors.note('total')}</div>
          <button type="submit">Set total</button>
        </form>
      </div>` : nothing}
      <h3 id="upcoming-title">Upcoming</h3>
      ${upcoming.length ? html`<ul class="rows upcoming" aria-labelledby="upcoming-title">
        ${upcoming.map((p) => {
          const overdue = p.due && p.due < day
          return html`<li class=${`row${overdue ? ' conflict' : ''}`} data-entity=${p.id}>
            <div class="who"><strong>${money(p.amount)}</strong><span class="muted">${paymentLine(p)}${overdue ? html` · <span class="overdue">overdue</span>` : nothing}</span></div>
            ${canWrite ? html`<div class="row-actions">
              <button type="button" class="link" aria-label=${`Mark the payment of ${money(p.amount)} paid today`} @click=${() => { markPaid(ctx.docs.budget, p.id, day); ctx.say(`Payment of ${money(p.amount)} marked paid.`) }}>Mark paid</button>
              ${removeButton(p)}</div>` : nothing}
          </li>`
        })}
      </ul>` : html`<p class="muted">No payments scheduled.</p>`}
      <h3>Payments</h3>
      <ul class="rows" aria-label="Payments">
        ${made.map((p) => html`<li class="row" data-entity=${p.id}>
          <div class="who"><strong>${money(p.amount)}</strong><span class="muted">${paymentLine(p)}</span></div>
          ${canWrite ? html`<div class="row-actions">${removeButton(p)}</div>` : nothing}
        </li>`)}
      </ul>
      ${canWrite ? html`<form class="card add-form" data-form="add-payment" novalidate @submit=${record} @input=${payForm.edited} aria-label="Record a payment">
        <div class="field"><label>Amount <input name="amount" inputmode="decimal" required placeholder="250.00"
          aria-describedby=${payForm.describedBy('amount')} aria-invalid=${payForm.invalid('amount')}></label>${payForm.note('amount')}</div>
        <div class="field"><label>Category <select name="category_id" required
          aria-describedby=${payForm.describedBy('category_id')} aria-invalid=${payForm.invalid('category_id')}>${budget.categories.map((c) => html`<option value=${c.id}>${c.name}</option>`)}</select></label>${payForm.note('category_id')}</div>
        <div class="field"><label>Status <select name="status"><option value="paid">Paid</option><option value="scheduled">Scheduled</option></select></label></div>
        <div class="field"><label>Date paid <input name="date" type="date"
          aria-describedby=${payForm.describedBy('date')} aria-invalid=${payForm.invalid('date')}></label>${payForm.note('date')}</div>
        <div class="field"><label>Due <input name="due" type="date"
          aria-describedby=${payForm.describedBy('due')} aria-invalid=${payForm.invalid('due')}></label>${payForm.note('due')}</div>
        <label>Paid by <input name="payer" maxlength="200"></label>
        <label>Vendor <input name="vendor" maxlength="200"></label>
        <button type="submit" class="primary">Record payment</button>
      </form>` : nothing}
    </section>`
}

const MONEY = 'Type an amount such as 1250.00.'

/** A category's planned amount, changed in place; a refused amount stays, with the reason. */
function plannedControl (ctx, c) {
  const form = `planned-${c.id}`
  const f = ctx.errors.of(form)
  const change = (e) => {
    const n = parseMoney(e.target.value)
    if (n === null) { ctx.refuse(form, [{ field: 'planned', message: MONEY }]); return }
    ctx.errors.clear(form)
    updateCategory(ctx.docs.budget, c.id, { planned: n })
  }
  const value = f.invalid('planned') === 'true' ? noChange : (c.planned / 100).toFixed(2)
  return html`<span data-form=${form}><input name="planned" class="money" inputmode="decimal" aria-label=${`Planned for ${c.name}`} .value=${value}
    aria-describedby=${f.describedBy('planned')} aria-invalid=${f.invalid('planned')}
    @focus=${() => ctx.setEntity(c.id, false)} @change=${change}>${f.note('planned')}</span>`
}
