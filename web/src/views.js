// The four views. Each is a pure function of the app's state (`ctx`) returning a lit-html
// template; every change goes through model.js, one Yjs transaction each.

import { html, nothing } from 'lit-html'
import { ref } from 'lit-html/directives/ref.js'
import {
  RSVP, SIDES, STATUSES, addCategory, addGuest, addItem, addTable, firstDay, formatMoney, parseMoney,
  recordPayment, removeGuest, removeItem, removePayment, removeTable, seatGuest, setTotal,
  updateCategory, updateGuest, updateItem, updateTable
} from './model.js'
import { cancelNotes, notesField } from './notes.js'
import { discussButton } from './panel.js'

const label = (s) => s.charAt(0).toUpperCase() + s.slice(1).replace('_', ' ')

function formValues (form) {
  const values = Object.fromEntries(new FormData(form).entries())
  for (const key of Object.keys(values)) values[key] = String(values[key]).trim()
  return values
}

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

  const add = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    if (!v.name) { ctx.say('A guest needs a name.'); return }
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
        <h2 id="guests-title">Guests</h2>
        <p class="counts" aria-label="RSVP counts">
          <span class="pill accepted">${counts.accepted} accepted</span>
          <span class="pill pending">${counts.pending} pending</span>
          <span class="pill declined">${counts.declined} declined</span>
          <span class="pill">${guests.length} invited</span>
        </p>
      </div>
      ${readOnlyNote(ctx, 'guests')}
      ${canWrite ? html`
        <form class="card add-form" @submit=${add} aria-label="Add a guest">
          <label>Name <input name="name" required maxlength="200" autocomplete="off"></label>
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
      <ul class="rows" aria-label="Guest list">
        ${shown.map((g) => guestRow(ctx, g, canWrite, canAnswer, seating))}
      </ul>
    </section>`
}

/** The fields `operate` may change, from the edit form's values. */
function answers (v) {
  return {
    rsvp: v.rsvp,
    meal: v.meal || null,
    dietary: v.dietary ? [...new Set(v.dietary.split(',').map((d) => d.trim()).filter(Boolean))].slice(0, 20) : [],
    plus_one: v.plus_one === 'on'
  }
}

function guestRow (ctx, g, canWrite, canAnswer, seating) {
  const editing = ctx.editing === g.id
  const seat = seating ? seating.assignments.get(g.id) : null
  const table = seat && seating.tables.find((t) => t.id === seat.table_id)
  const busy = ctx.others.some((p) => p.here.entity === g.id)
  const save = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    if (!canWrite) {
      ctx.answer(g.id, answers(v))
      ctx.setEntity(null)
      ctx.say(`${g.name} saved.`)
      return
    }
    if (!v.name) { ctx.say('A guest needs a name.'); return }
    updateGuest(ctx.docs.guests, g.id, {
      name: v.name.slice(0, 200),
      household: v.household || null,
      side: v.side || null,
      rsvp: v.rsvp,
      meal: v.meal || null,
      dietary: v.dietary ? [...new Set(v.dietary.split(',').map((d) => d.trim()).filter(Boolean))].slice(0, 20) : [],
      plus_one: v.plus_one === 'on',
      contact: v.contact || null
    })
    ctx.setEntity(null)
    ctx.say(`${v.name} saved.`)
  }
  if (editing && !canWrite) {
    return html`<li class="row editing" data-entity=${g.id}>
      <form class="edit-form" @submit=${save} aria-label=${`Edit ${g.name}`}>
        <p><strong>${g.name}</strong></p>
        <label>RSVP <select name="rsvp">${RSVP.map((r) => html`<option value=${r} ?selected=${g.rsvp === r}>${label(r)}</option>`)}</select></label>
        <label>Meal <input name="meal" .value=${g.meal || ''} maxlength="200"></label>
        <label>Dietary <input name="dietary" .value=${g.dietary.join(', ')} placeholder="vegan, nut allergy"></label>
        <label class="check"><input type="checkbox" name="plus_one" ?checked=${g.plus_one}> Plus one</label>
        <div class="actions">
          <button type="submit" class="primary">Save</button>
          <button type="button" @click=${() => ctx.setEntity(null)}>Cancel</button>
        </div>
      </form>
    </li>`
  }
  if (editing) {
    return html`<li class="row editing" data-entity=${g.id}>
      <form class="edit-form" @submit=${save} aria-label=${`Edit ${g.name}`}>
        <label>Name <input name="name" .value=${g.name} required maxlength="200"></label>
        <label>Household <input name="household" .value=${g.household || ''} maxlength="200"></label>
        <label>Side <select name="side"><option value="">—</option>${Object.entries(SIDES).map(([v, t]) => html`<option value=${v} ?selected=${g.side === v}>${t}</option>`)}</select></label>
        <label>RSVP <select name="rsvp">${RSVP.map((r) => html`<option value=${r} ?selected=${g.rsvp === r}>${label(r)}</option>`)}</select></label>
        <label>Meal <input name="meal" .value=${g.meal || ''} maxlength="200"></label>
        <label>Dietary <input name="dietary" .value=${g.dietary.join(', ')} placeholder="vegan, nut allergy"></label>
        <label>Contact <input name="contact" .value=${g.contact || ''} maxlength="200"></label>
        <label class="check"><input type="checkbox" name="plus_one" ?checked=${g.plus_one}> Plus one</label>
        ${notesField(ctx.docs.guests, 'guests', g.id, `Notes for ${g.name}`)}
        <div class="actions">
          <button type="submit" class="primary">Save</button>
          <button type="button" @click=${(e) => { cancelNotes(e.target.closest('form')); ctx.setEntity(null) }}>Cancel</button>
        </div>
      </form>
    </li>`
  }
  return html`<li class="row ${busy ? 'busy' : ''} ${g.queued ? 'queued' : ''}" data-entity=${g.id}>
    <div class="who">
      <span class="name-line"><strong>${g.name}</strong>${editors(ctx, g.id)}</span>
      <span class="muted">${[g.household, g.side && SIDES[g.side], g.meal, ...g.dietary, g.plus_one ? '+1' : null].filter(Boolean).join(' · ')}</span>
      ${table ? html`<span class="muted">Table ${table.name}</span>` : nothing}
    </div>
    <div class="row-actions">
      ${canAnswer
        ? html`<label class="sr-label">RSVP for ${g.name}
            <select class="rsvp ${g.rsvp}" aria-label=${`RSVP for ${g.name}`} .value=${g.rsvp} @change=${(e) => ctx.answer(g.id, { rsvp: e.target.value })}>
              ${RSVP.map((r) => html`<option value=${r} ?selected=${g.rsvp === r}>${label(r)}</option>`)}
            </select></label>
            ${discussButton(ctx, 'guests', g.id, g.name)}
            <button type="button" aria-label=${`Edit ${g.name}`} @click=${() => ctx.setEntity(g.id)}>Edit</button>
            ${canWrite ? html`<button type="button" class="danger" aria-label=${`Remove ${g.name}`} @click=${() => {
              if (confirm(`Remove ${g.name} from the guest list?`)) { removeGuest(ctx.docs.guests, ctx.canWrite('seating') ? ctx.docs.seating : null, g.id); ctx.say(`${g.name} removed.`) }
            }}>Remove</button>` : nothing}`
        : html`<span class="pill ${g.rsvp}">${label(g.rsvp)}</span>${discussButton(ctx, 'guests', g.id, g.name)}`}
    </div>
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
  const addTableForm = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    const capacity = parseInt(v.capacity, 10)
    if (!v.name || !(capacity >= 1 && capacity <= 1000)) { ctx.say('A table needs a name and 1 to 1000 seats.'); return }
    addTable(ctx.docs.seating, v.name.slice(0, 200), capacity)
    e.target.reset()
    ctx.say(`Table ${v.name} added.`)
  }

  return html`
    <section class="view" aria-labelledby="seating-title">
      <div class="view-head">
        <h2 id="seating-title">Seating</h2>
        <p class="counts"><span class="pill">${seating.assignments.size} seated</span><span class="pill pending">${unseated.length} to seat</span><span class="pill">${seating.tables.length} tables</span></p>
      </div>
      ${readOnlyNote(ctx, 'seating')}
      ${canSeat ? html`<p class="muted">Drag a guest onto a table, or choose a table in the list next to their name.</p>` : nothing}
      <div class="seating">
        <section class="card unseated" aria-labelledby="unseated-title"
          @dragover=${(e) => e.preventDefault()} @drop=${(e) => { e.preventDefault(); const id = e.dataTransfer.getData('text/x-guest'); if (id && canSeat) ctx.unseat(id) }}>
          <h3 id="unseated-title">Not seated yet (${unseated.length})</h3>
          <ul class="chips">${unseated.map((g) => chip(g.id))}</ul>
        </section>
        <div class="tables">
          ${seating.tables.map((t) => {
            const seated = seatedAt.get(t.id).sort((a, b) => (a.seat ?? 999) - (b.seat ?? 999))
            const over = seated.length > t.capacity
            return html`<section class="card table ${over || overIds.has(t.id) ? 'conflict' : ''} ${seated.length >= t.capacity ? 'full' : ''}" data-entity=${t.id}
                aria-label=${`Table ${t.name}, ${seated.length} of ${t.capacity} seats`}
                @dragover=${(e) => { if (canSeat) { e.preventDefault(); e.currentTarget.classList.add('drop') } }}
                @dragleave=${(e) => e.currentTarget.classList.remove('drop')}
                @drop=${canSeat ? drop(t.id) : null}>
              <header>
                <h3>${t.name}</h3>
                <span class="capacity ${over ? 'over' : ''}">${seated.length}/${t.capacity}${over ? ' — over capacity' : seated.length === t.capacity ? ' — full' : ''}</span>
                ${discussButton(ctx, 'seating', t.id, `table ${t.name}`)}
              </header>
              <ul class="chips">
                ${seated.map((s) => chip(s.id, html`${s.seat ? html`<span class="seat">#${s.seat}</span>` : nothing}${overIds.has(s.id) ? html`<span class="warn" title="Seat conflict">⚠</span>` : nothing}
                  ${canSeat ? html`<button type="button" class="link" aria-label=${`Unseat ${nameOf(s.id)}`} @click=${() => ctx.unseat(s.id)}>×</button>` : nothing}`))}
              </ul>
              ${canWrite ? html`<div class="table-tools">
                <label>Seats <input type="number" min="1" max="1000" .value=${String(t.capacity)} aria-label=${`Seats at ${t.name}`}
                  @change=${(e) => { const n = parseInt(e.target.value, 10); if (n >= 1 && n <= 1000) updateTable(ctx.docs.seating, t.id, { capacity: n }) }}></label>
                <button type="button" class="link danger" aria-label=${`Remove table ${t.name}`} @click=${() => { if (confirm(`Remove table ${t.name}? Its guests lose their seats.`)) removeTable(ctx.docs.seating, t.id) }}>Remove</button>
              </div>` : nothing}
            </section>`
          })}
          ${canWrite ? html`<form class="card table add-table" @submit=${addTableForm} aria-label="Add a table">
            <label>Table name <input name="name" required maxlength="200"></label>
            <label>Seats <input name="capacity" type="number" min="1" max="1000" value="10" required></label>
            <button type="submit">Add table</button>
          </form>` : nothing}
        </div>
      </div>
    </section>`
}

/** The keyboard path for seating: a select per guest listing every table and how full it is. */
function tablePicker (ctx, guestId, name, seatedAt) {
  const current = ctx.seating.assignments.get(guestId)
  return html`<select class="table-picker" aria-label=${`Table for ${name}`} @change=${(e) => {
      const value = e.target.value
      if (value === '') ctx.unseat(guestId)
      else ctx.seat(guestId, value)
    }}>
    <option value="" ?selected=${!current}>No table</option>
    ${ctx.seating.tables.map((t) => {
      const n = seatedAt.get(t.id).length
      return html`<option value=${t.id} ?selected=${current && current.table_id === t.id}>${t.name} (${n}/${t.capacity}${n >= t.capacity ? ', full' : ''})</option>`
    })}
  </select>`
}

// -- timeline ---------------------------------------------------------------------------

const clock = (iso) => (/T(\d\d:\d\d)/.exec(iso) || [])[1] || iso

export function timelineView (ctx) {
  const { timeline, overlaps } = ctx
  const canWrite = ctx.access.docs.timeline === 'write'
  // The first item's day; else the wedding's date in its time zone (the profile); else today.
  const { day, offset } = firstDay(timeline, ctx.profile)
  const add = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    if (!v.title || !v.start || !v.end) { ctx.say('An item needs a title, a start and an end.'); return }
    if (v.end < v.start) { ctx.say('The item ends before it starts.'); return }
    addItem(ctx.docs.timeline, {
      title: v.title.slice(0, 200),
      start: `${day}T${v.start}:00${offset}`,
      end: `${day}T${v.end}:00${offset}`,
      location: v.location || null,
      owner: v.owner || null,
      vendor: v.vendor || null
    })
    e.target.reset()
    ctx.say(`${v.title} added to the timeline.`)
  }
  return html`
    ${runOfShow(ctx, canWrite)}
    <section class="view" aria-labelledby="timeline-title">
      <div class="view-head">
        <h2 id="timeline-title">Timeline</h2>
        <p class="counts"><span class="pill">${day}</span><span class="pill">${timeline.length} items</span>${overlaps.size ? html`<span class="pill declined">${overlaps.size} overlapping</span>` : nothing}</p>
      </div>
      ${readOnlyNote(ctx, 'timeline')}
      <ol class="timeline" aria-label="The day's schedule">
        ${timeline.map((item) => {
          const flags = overlaps.get(item.id)
          if (canWrite && ctx.editing === item.id) return timelineEdit(ctx, item)
          return html`<li class="item ${flags ? 'conflict' : ''} status-${item.status}" data-entity=${item.id}>
            <time datetime=${item.start}>${clock(item.start)}–${clock(item.end)}</time>
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
                  <button type="button" class="link danger" aria-label=${`Remove ${item.title}`} @click=${() => { if (confirm(`Remove ${item.title}?`)) removeItem(ctx.docs.timeline, item.id) }}>Remove</button>
                </div>`
              : html`<div class="row-actions"><span class=${`pill item-status ${item.status}`}>${label(item.status)}</span>${discussButton(ctx, 'timeline', item.id, item.title)}</div>`}
          </li>`
        })}
      </ol>
      ${canWrite ? html`<form class="card add-form" @submit=${add} aria-label="Add a timeline item">
        <label>Title <input name="title" required maxlength="200"></label>
        <label>Starts <input name="start" type="time" required></label>
        <label>Ends <input name="end" type="time" required></label>
        <label>Location <input name="location" maxlength="200"></label>
        <label>Owner <input name="owner" maxlength="200"></label>
        <label>Vendor <input name="vendor" maxlength="200"></label>
        <button type="submit" class="primary">Add item</button>
      </form>` : nothing}
    </section>`
}

// The run of show: Tiptap, in a chunk of its own, loaded when someone opens it.
const runOfShowEditors = new WeakMap() // container -> Promise of the editor

function openRunOfShow (ctx, container, editable) {
  if (!container || runOfShowEditors.has(container)) return
  const room = ctx.sync.rooms.timeline
  runOfShowEditors.set(container, import('./runofshow.js').then(({ mountRunOfShow }) =>
    mountRunOfShow(container, { doc: ctx.docs.timeline, awareness: room.provider.awareness, editable })))
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
  const toggle = (e) => { if (e.target.open) openRunOfShow(ctx, e.target.querySelector('.ros-editor'), canWrite) }
  return html`<details class="view runofshow" @toggle=${toggle}>
    <summary><h2>Run of show</h2></summary>
    <div class="ros-editor" ${ref(keepRunOfShow)}></div>
  </details>`
}

function timelineEdit (ctx, item) {
  const day = item.start.slice(0, 10)
  const offset = (/([+-]\d\d:\d\d|Z)$/.exec(item.start) || ['+00:00'])[0]
  const save = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    if (!v.title || !v.start || !v.end) { ctx.say('An item needs a title, a start and an end.'); return }
    if (v.end < v.start) { ctx.say('The item ends before it starts.'); return }
    updateItem(ctx.docs.timeline, item.id, {
      title: v.title.slice(0, 200),
      start: `${day}T${v.start}:00${offset}`,
      end: `${day}T${v.end}:00${offset}`,
      location: v.location || null,
      owner: v.owner || null,
      vendor: v.vendor || null
    })
    ctx.setEntity(null)
    ctx.say(`${v.title} saved.`)
  }
  return html`<li class="item editing" data-entity=${item.id}>
    <form class="edit-form" @submit=${save} aria-label=${`Edit ${item.title}`}>
      <label>Title <input name="title" .value=${item.title} required maxlength="200"></label>
      <label>Starts <input name="start" type="time" .value=${clock(item.start)} required></label>
      <label>Ends <input name="end" type="time" .value=${clock(item.end)} required></label>
      <label>Location <input name="location" .value=${item.location || ''} maxlength="200"></label>
      <label>Owner <input name="owner" .value=${item.owner || ''} maxlength="200"></label>
      <label>Vendor <input name="vendor" .value=${item.vendor || ''} maxlength="200"></label>
      ${notesField(ctx.docs.timeline, 'items', item.id, `Notes for ${item.title}`)}
      <div class="actions">
        <button type="submit" class="primary">Save</button>
        <button type="button" @click=${(e) => { cancelNotes(e.target.closest('form')); ctx.setEntity(null) }}>Cancel</button>
      </div>
    </form>
  </li>`
}

// -- budget -----------------------------------------------------------------------------

export function budgetView (ctx) {
  const { budget } = ctx
  const canWrite = ctx.access.docs.budget === 'write'
  const money = (n) => formatMoney(n, budget.currency)
  const paidBy = new Map()
  for (const p of budget.payments) paidBy.set(p.category_id, (paidBy.get(p.category_id) || 0) + p.amount)
  const planned = budget.categories.reduce((n, c) => n + c.planned, 0)
  const paid = budget.payments.reduce((n, p) => n + p.amount, 0)
  const names = new Map(budget.categories.map((c) => [c.id, c.name]))
  const record = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    const amount = parseMoney(v.amount)
    if (amount === null || !v.category_id || !/^\d{4}-\d\d-\d\d$/.test(v.date)) { ctx.say('A payment needs an amount, a category and a date.'); return }
    recordPayment(ctx.docs.budget, { amount, category_id: v.category_id, date: v.date, payer: v.payer || null, vendor: v.vendor || null })
    e.target.reset()
    ctx.say('Payment recorded.')
  }
  const addCategoryForm = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    const planned = parseMoney(v.planned)
    if (!v.name || planned === null) { ctx.say('A category needs a name and a planned amount.'); return }
    addCategory(ctx.docs.budget, v.name.slice(0, 200), planned)
    e.target.reset()
    ctx.say(`Category ${v.name} added.`)
  }
  const totalForm = (e) => {
    e.preventDefault()
    const v = formValues(e.target)
    const total = v.total === '' ? null : parseMoney(v.total)
    if (v.total !== '' && total === null) { ctx.say('Type an amount such as 30000.00, or leave it empty for no total.'); return }
    setTotal(ctx.docs.budget, total)
    ctx.say(total === null ? 'Budget total removed.' : `Budget total set to ${money(total)}.`)
  }
  return html`
    <section class="view" aria-labelledby="budget-title">
      <div class="view-head">
        <h2 id="budget-title">Budget</h2>
        <p class="counts"><span class="pill">Total ${budget.total === null ? 'not set' : money(budget.total)}</span><span class="pill">Planned ${money(planned)}</span><span class="pill accepted">Paid ${money(paid)}</span></p>
      </div>
      ${readOnlyNote(ctx, 'budget')}
      <table class="card budget">
        <caption>Categories: planned against paid</caption>
        <thead><tr><th scope="col">Category</th><th scope="col">Planned</th><th scope="col">Paid</th><th scope="col">Progress</th><th scope="col"><span class="sr-only">Threads</span></th></tr></thead>
        <tbody>${budget.categories.map((c) => {
          const p = paidBy.get(c.id) || 0
          const share = c.planned ? Math.min(100, Math.round((100 * p) / c.planned)) : 0
          const plannedCell = canWrite
            ? html`<input class="money" inputmode="decimal" aria-label=${`Planned for ${c.name}`} .value=${(c.planned / 100).toFixed(2)}
                @focus=${() => ctx.setEntity(c.id, false)}
                @change=${(e) => { const n = parseMoney(e.target.value); if (n === null) { ctx.say('Type an amount such as 1250.00.'); e.target.value = (c.planned / 100).toFixed(2) } else updateCategory(ctx.docs.budget, c.id, { planned: n }) }}>`
            : money(c.planned)
          return html`<tr class=${p > c.planned ? 'conflict' : ''} data-entity=${c.id}><th scope="row">${c.name}${editors(ctx, c.id)}</th><td>${plannedCell}</td><td>${money(p)}</td>
            <td><progress max="100" value=${share} aria-label=${`${c.name}: ${share}% paid`}></progress></td>
            <td>${discussButton(ctx, 'budget', c.id, c.name)}</td></tr>`
        })}</tbody>
        <tfoot><tr><th scope="row">Total</th><td>${money(planned)}</td><td>${money(paid)}</td><td></td><td></td></tr></tfoot>
      </table>
      ${canWrite ? html`<div class="budget-tools">
        <form class="card add-form" @submit=${addCategoryForm} aria-label="Add a category">
          <label>Category name <input name="name" required maxlength="200"></label>
          <label>Planned <input name="planned" inputmode="decimal" required placeholder="1000.00"></label>
          <button type="submit">Add category</button>
        </form>
        <form class="card add-form" @submit=${totalForm} aria-label="Budget total">
          <label>Total budget <input name="total" inputmode="decimal" placeholder="No total" .value=${budget.total === null ? '' : (budget.total / 100).toFixed(2)}></label>
          <button type="submit">Set total</button>
        </form>
      </div>` : nothing}
      <h3>Payments</h3>
      <ul class="rows" aria-label="Payments">
        ${budget.payments.map((p) => html`<li class="row" data-entity=${p.id}>
          <div class="who"><strong>${money(p.amount)}</strong><span class="muted">${[p.date, names.get(p.category_id) || p.category_id, p.vendor, p.payer && `paid by ${p.payer}`].filter(Boolean).join(' · ')}</span></div>
          ${canWrite ? html`<div class="row-actions"><button type="button" class="link danger" aria-label=${`Remove payment of ${money(p.amount)} on ${p.date}`} @click=${() => { if (confirm('Remove this payment?')) removePayment(ctx.docs.budget, p.id) }}>Remove</button></div>` : nothing}
        </li>`)}
      </ul>
      ${canWrite ? html`<form class="card add-form" @submit=${record} aria-label="Record a payment">
        <label>Amount <input name="amount" inputmode="decimal" required placeholder="250.00"></label>
        <label>Category <select name="category_id" required>${budget.categories.map((c) => html`<option value=${c.id}>${c.name}</option>`)}</select></label>
        <label>Date <input name="date" type="date" required></label>
        <label>Paid by <input name="payer" maxlength="200"></label>
        <label>Vendor <input name="vendor" maxlength="200"></label>
        <button type="submit" class="primary">Record payment</button>
      </form>` : nothing}
    </section>`
}
