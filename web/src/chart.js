// The seating chart (issue 54, point 5): tables drawn to their shape with their seats, in
// SVG, loaded on demand (a chunk of its own). A table's place is ONE value in the seating
// document (`position`: {x, y, rotation}, model.js `setTablePosition`), written once when a
// drag ends, so two people moving one table at once end at one of their two places.
//
// People are placed by pointer (mouse, pen or touch: pointer events, no HTML5 drag and drop,
// which touch screens lack) or by keyboard: choose a guest or a household, the arrow keys go
// from table to table (left, right) and seat to seat (up, down), Enter seats, Escape cancels;
// each step is said in the app's live region. The list view beside it stays for screen
// readers.

import { html, nothing, svg } from 'lit-html'
import { CHART_SIZE, setTablePosition } from './model.js'
import { peopleAt } from './households.js'

const SEAT_R = 15
const MAX_DRAWN = 60 // seats drawn per table at most (a table may have 1000)
const GRID = 300 // where tables without a position stand: a grid of this pitch
const COLUMNS = 4

/** Where a table stands: its stored position, or its place in the grid of unplaced ones. */
export function placeOf (table, index) {
  if (table.position) return table.position
  return { x: 170 + (index % COLUMNS) * GRID, y: 170 + Math.floor(index / COLUMNS) * GRID, rotation: 0 }
}

/** A table's outline and its seats' centres, around (0, 0), before rotation. */
export function geometry (shape, capacity) {
  const n = Math.min(capacity, MAX_DRAWN)
  const seats = []
  const around = (rx, ry) => {
    for (let i = 0; i < n; i++) {
      const a = (i / n) * 2 * Math.PI - Math.PI / 2
      seats.push({ x: Math.cos(a) * (rx + SEAT_R + 6), y: Math.sin(a) * (ry + SEAT_R + 6) })
    }
  }
  if (shape === 'rectangular') {
    const top = Math.ceil(n / 2)
    const w = Math.max(110, top * 38)
    const h = 64
    const row = (count, y) => {
      for (let i = 0; i < count; i++) seats.push({ x: -w / 2 + (w / count) * (i + 0.5), y })
    }
    row(top, -h / 2 - SEAT_R - 6)
    row(n - top, h / 2 + SEAT_R + 6)
    return { body: svg`<rect class="top" x=${-w / 2} y=${-h / 2} width=${w} height=${h} rx="6"></rect>`, seats }
  }
  if (shape === 'square') {
    const per = Math.ceil(n / 4)
    const s = Math.max(80, per * 38)
    const d = s / 2 + SEAT_R + 6
    let left = n
    for (let side = 0; side < 4; side++) {
      const count = Math.min(left, Math.ceil(left / (4 - side)))
      left -= count
      for (let i = 0; i < count; i++) {
        const t = -s / 2 + (s / count) * (i + 0.5)
        seats.push([{ x: t, y: -d }, { x: d, y: t }, { x: -t, y: d }, { x: -d, y: -t }][side])
      }
    }
    return { body: svg`<rect class="top" x=${-s / 2} y=${-s / 2} width=${s} height=${s} rx="4"></rect>`, seats }
  }
  if (shape === 'oval') {
    const rx = Math.max(70, n * 11)
    const ry = Math.max(42, rx * 0.55)
    around(rx, ry)
    return { body: svg`<ellipse class="top" rx=${rx} ry=${ry}></ellipse>`, seats }
  }
  const r = Math.max(44, n * 7.5)
  around(r, r)
  return { body: svg`<circle class="top" r=${r}></circle>`, seats }
}

const initials = (name) => name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('')

/** Who sits where at each table: seat number (1..) -> { guest, plusOne }; seat numbers
 *  first, then the people with no seat number (and unnamed plus-ones) on the free seats. */
export function occupancy (ctx) {
  const { seating, guests } = ctx
  const byId = new Map(guests.map((g) => [g.id, g]))
  const named = new Set(guests.filter((g) => g.plus_one_of).map((g) => g.plus_one_of))
  const result = new Map(seating.tables.map((t) => [t.id, { seats: new Map(), over: 0 }]))
  const loose = new Map(seating.tables.map((t) => [t.id, []]))
  const entries = [...seating.assignments.entries()].sort((a, b) => (a[1].seat ?? 1e9) - (b[1].seat ?? 1e9) || (a[0] < b[0] ? -1 : 1))
  for (const [guestId, a] of entries) {
    const at = result.get(a.table_id)
    if (!at) continue
    const guest = byId.get(guestId) || { id: guestId, name: guestId, dietary: [] }
    if (a.seat && !at.seats.has(a.seat) && a.seat <= MAX_DRAWN) at.seats.set(a.seat, { guest })
    else loose.get(a.table_id).push({ guest })
    if (guest.plus_one && !named.has(guestId)) loose.get(a.table_id).push({ guest, plusOne: true })
  }
  for (const t of seating.tables) {
    const at = result.get(t.id)
    let n = 1
    for (const person of loose.get(t.id)) {
      while (n <= Math.min(t.capacity, MAX_DRAWN) && at.seats.has(n)) n++
      if (n <= Math.min(t.capacity, MAX_DRAWN)) at.seats.set(n, person)
      else at.over++
    }
  }
  return result
}

// -- state of this page's chart (one chart at a time) ---------------------------------------

const state = {
  chosen: null, // { kind: 'guest' | 'household', id, name }: what the keyboard is placing
  target: { table: 0, seat: 0 }, // seat 0: the table itself (any free seat)
  drag: null // a pointer drag under way
}

/** What the palette offers to place: households with several people still to seat
 *  together, and every guest who may come and has no seat. */
function toPlace (ctx) {
  const { seating, guests } = ctx
  // Who said yes first, then who has not answered yet.
  const people = guests.filter((g) => g.rsvp !== 'declined' && !seating.assignments.has(g.id))
    .sort((a, b) => (a.rsvp === 'accepted' ? 0 : 1) - (b.rsvp === 'accepted' ? 0 : 1))
  const households = [...ctx.households.values()]
    .filter((h) => h.guests.filter((g) => g.rsvp !== 'declined').length > 1 && h.guests.some((g) => g.rsvp !== 'declined' && !seating.assignments.has(g.id)))
    .sort((a, b) => a.name.localeCompare(b.name))
  return { people, households }
}

function tableWords (ctx, table, counts) {
  const n = counts.get(table.id) || 0
  return `Table ${table.name}, ${table.shape}, ${n} of ${table.capacity} seated${n > table.capacity ? ', over capacity' : ''}`
}

function targetWords (ctx, counts, occupied) {
  const table = ctx.seating.tables[state.target.table]
  if (!table) return 'No tables yet.'
  if (!state.target.seat) return `${tableWords(ctx, table, counts)}.`
  const person = occupied.get(table.id).seats.get(state.target.seat)
  const who = person ? (person.plusOne ? `${person.guest.name}'s plus-one` : person.guest.name) : 'free'
  return `Table ${table.name}, seat ${state.target.seat}: ${who}.`
}

function choose (ctx, item) {
  state.chosen = item
  const tables = ctx.seating.tables
  if (state.target.table >= tables.length) state.target = { table: 0, seat: 0 }
  const counts = peopleAt(ctx.seating, ctx.guests)
  ctx.say(`${item.name} chosen. Left and right arrows choose a table, up and down a seat; Enter seats, Escape cancels. ${targetWords(ctx, counts, occupancy(ctx))}`)
  // At once: the keys that follow (an arrow, Enter, Escape) go to the chart, however soon.
  document.querySelector('.chart-canvas')?.focus()
}

/** Place what was chosen or dragged on a table (seat null: wherever there is room). */
function place (ctx, item, tableId, seat) {
  const table = ctx.seating.tables.find((t) => t.id === tableId)
  if (!table) return
  if (item.kind === 'household') { ctx.seatHousehold(item.id, tableId); return }
  if (seat) {
    const holder = occupancy(ctx).get(tableId).seats.get(seat)
    if (holder && holder.guest.id !== item.id) {
      ctx.say(`Seat ${seat} at ${table.name} is taken by ${holder.plusOne ? `${holder.guest.name}'s plus-one` : holder.guest.name}.`)
      return
    }
    ctx.seatAt(item.id, tableId, seat)
    return
  }
  ctx.seat(item.id, tableId)
}

function keydown (ctx, e) {
  const tables = ctx.seating.tables
  if (state.chosen && tables.length && e.target.closest && e.target.closest('.chart-canvas')) {
    const t = state.target
    const capacity = Math.min(tables[Math.min(t.table, tables.length - 1)].capacity, MAX_DRAWN)
    const moves = {
      ArrowRight: () => ({ table: (t.table + 1) % tables.length, seat: 0 }),
      ArrowLeft: () => ({ table: (t.table - 1 + tables.length) % tables.length, seat: 0 }),
      ArrowDown: () => ({ table: t.table, seat: (t.seat + 1) % (capacity + 1) }),
      ArrowUp: () => ({ table: t.table, seat: (t.seat - 1 + capacity + 1) % (capacity + 1) })
    }
    if (moves[e.key]) {
      e.preventDefault()
      state.target = moves[e.key]()
      ctx.say(targetWords(ctx, peopleAt(ctx.seating, ctx.guests), occupancy(ctx)))
      return
    }
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault()
      const item = state.chosen
      state.chosen = null
      place(ctx, item, tables[t.table].id, t.seat || null)
      return
    }
    if (e.key === 'Escape') {
      e.preventDefault()
      const item = state.chosen
      state.chosen = null
      ctx.say(`Placing ${item.name} cancelled.`)
    }
    return
  }
  // A focused table moves with the arrows (Shift: further) and turns with R.
  const id = e.target.closest && e.target.closest('[data-move]')?.dataset.move
  const index = tables.findIndex((tb) => tb.id === id)
  if (index < 0 || !ctx.canWrite('seating')) return
  const at = placeOf(tables[index], index)
  const step = e.shiftKey ? 100 : 20
  const moved = {
    ArrowRight: { ...at, x: at.x + step },
    ArrowLeft: { ...at, x: at.x - step },
    ArrowDown: { ...at, y: at.y + step },
    ArrowUp: { ...at, y: at.y - step },
    r: { ...at, rotation: at.rotation + 15 },
    R: { ...at, rotation: at.rotation - 15 }
  }[e.key]
  if (!moved) return
  e.preventDefault()
  setTablePosition(ctx.docs.seating, id, moved)
  const t = tables[index]
  ctx.say(e.key.toLowerCase() === 'r' ? `Table ${t.name} turned to ${((Math.round(moved.rotation) % 360) + 360) % 360} degrees.` : `Table ${t.name} moved.`)
}

// -- pointer drags (mouse, pen, touch) ------------------------------------------------------

function svgPoint (svgEl, e) {
  const point = svgEl.createSVGPoint()
  point.x = e.clientX
  point.y = e.clientY
  return point.matrixTransform(svgEl.getScreenCTM().inverse())
}

function dropTarget (e) {
  const under = document.elementFromPoint(e.clientX, e.clientY)
  return under && under.closest('[data-drop]')
}

function markTarget (found) {
  for (const el of document.querySelectorAll('.chart .drop-here')) if (el !== found) el.classList.remove('drop-here')
  if (found) found.classList.add('drop-here')
}

/** Start dragging a person (a palette chip or a seated guest) or a household. */
function startPersonDrag (ctx, item, e) {
  if (e.button > 0) return
  const el = e.currentTarget
  state.drag = { item, x0: e.clientX, y0: e.clientY, moved: false, ghost: null }
  el.setPointerCapture?.(e.pointerId)
  const move = (ev) => {
    const d = state.drag
    if (!d) return
    if (!d.moved && Math.hypot(ev.clientX - d.x0, ev.clientY - d.y0) < 6) return
    if (!d.moved) {
      d.moved = true
      d.ghost = document.createElement('div')
      d.ghost.className = 'drag-ghost'
      d.ghost.textContent = item.name
      document.body.append(d.ghost)
    }
    d.ghost.style.transform = `translate(${ev.clientX + 8}px, ${ev.clientY + 8}px)`
    markTarget(dropTarget(ev))
  }
  const up = (ev) => {
    el.removeEventListener('pointermove', move)
    el.removeEventListener('pointerup', up)
    el.removeEventListener('pointercancel', up)
    const d = state.drag
    state.drag = null
    if (!d || !d.moved) return
    d.ghost.remove()
    markTarget(null)
    el.dataset.dragged = 'yes' // the click that follows a drag is not a choice
    if (ev.type === 'pointercancel') return
    const found = dropTarget(ev)
    if (!found) return
    if (found.dataset.drop === 'unseated') {
      if (item.kind === 'guest' && ctx.seating.assignments.has(item.id)) ctx.unseat(item.id)
      return
    }
    place(ctx, item, found.dataset.table, found.dataset.drop === 'seat' ? Number(found.dataset.seat) : null)
  }
  el.addEventListener('pointermove', move)
  el.addEventListener('pointerup', up)
  el.addEventListener('pointercancel', up)
}

/** Drag a table: drawn where the pointer is while it moves, written once when it ends. */
function startTableDrag (ctx, table, index, e) {
  if (e.button > 0 || !ctx.canWrite('seating')) return
  if (e.target.closest('[data-person]')) return // a seated guest is dragged, not the table
  const group = e.currentTarget
  const svgEl = group.ownerSVGElement
  const from = placeOf(table, index)
  const p0 = svgPoint(svgEl, e)
  let to = null
  group.setPointerCapture?.(e.pointerId)
  const move = (ev) => {
    const p = svgPoint(svgEl, ev)
    if (!to && Math.hypot(p.x - p0.x, p.y - p0.y) < 4) return
    to = { x: Math.min(Math.max(from.x + p.x - p0.x, 0), CHART_SIZE), y: Math.min(Math.max(from.y + p.y - p0.y, 0), CHART_SIZE), rotation: from.rotation }
    group.setAttribute('transform', `translate(${to.x} ${to.y}) rotate(${to.rotation})`)
  }
  const up = (ev) => {
    group.removeEventListener('pointermove', move)
    group.removeEventListener('pointerup', up)
    group.removeEventListener('pointercancel', up)
    if (!to) return
    if (ev.type === 'pointercancel') { ctx.refresh(); return }
    setTablePosition(ctx.docs.seating, table.id, to)
    ctx.say(`Table ${table.name} moved.`)
  }
  group.addEventListener('pointermove', move)
  group.addEventListener('pointerup', up)
  group.addEventListener('pointercancel', up)
}

const clicked = (fn) => (e) => {
  if (e.currentTarget.dataset.dragged === 'yes') { delete e.currentTarget.dataset.dragged; return }
  fn(e)
}

// -- drawing --------------------------------------------------------------------------------

/** The chart as SVG: every table at its place, turned, drawn to shape, its seats around it
 *  (initials, a mark for dietary needs), capacity and findings on it. `live` adds what
 *  dragging and the keyboard need; the print view draws it without. */
export function chartSvg (ctx, { live = false } = {}) {
  const { seating } = ctx
  const counts = peopleAt(seating, ctx.guests)
  const occupied = occupancy(ctx)
  const flagged = new Set(ctx.conflicts.flatMap((c) => c.paths).filter((p) => p.startsWith('seating/')).map((p) => p.split('/')[2]))
  const places = seating.tables.map((t, i) => placeOf(t, i))
  const width = Math.max(1240, ...places.map((p) => p.x + 220))
  const height = Math.max(680, ...places.map((p) => p.y + 220))
  const canSeat = live && (ctx.canWrite('seating') || ctx.canOperate('seating'))
  const canMove = live && ctx.canWrite('seating')
  const target = live && state.chosen ? seating.tables[state.target.table] : null
  return html`<svg class="chart-svg" viewBox=${`0 0 ${width} ${height}`} role="img" aria-label=${`Seating chart: ${seating.tables.length} tables`}>
    ${seating.tables.map((t, i) => {
      const at = places[i]
      const { body, seats } = geometry(t.shape, t.capacity)
      const n = counts.get(t.id) || 0
      const over = n > t.capacity
      const seated = occupied.get(t.id)
      const diets = [...seated.seats.values()].filter((p) => !p.plusOne && p.guest.dietary && p.guest.dietary.length).length
      const cls = ['table-shape', t.shape, over ? 'over' : '', flagged.has(t.id) ? 'flagged' : '', n >= t.capacity ? 'full' : '', target && target.id === t.id ? 'target' : ''].join(' ')
      return svg`<g class=${cls} data-entity=${t.id} data-drop="table" data-table=${t.id} data-move=${canMove ? t.id : nothing}
          transform=${`translate(${at.x} ${at.y}) rotate(${at.rotation})`} tabindex=${canMove ? '0' : nothing}
          aria-label=${canMove ? `${tableWords(ctx, t, counts)}. Arrow keys move it, R turns it.` : nothing}
          @pointerdown=${canMove ? (e) => startTableDrag(ctx, t, i, e) : null}>
        <title>${tableWords(ctx, t, counts)}${diets ? `, ${diets} with dietary needs` : ''}</title>
        ${body}
        ${seats.map((s, k) => {
          const person = seated.seats.get(k + 1)
          const mark = person && !person.plusOne && person.guest.dietary && person.guest.dietary.length
          const chosen = target && target.id === t.id && state.target.seat === k + 1
          const who = person ? (person.plusOne ? `${person.guest.name}'s plus-one` : person.guest.name) : 'free'
          const item = person && !person.plusOne ? { kind: 'guest', id: person.guest.id, name: person.guest.name } : null
          return svg`<g class=${`seat ${person ? 'taken' : 'free'} ${chosen ? 'target' : ''} ${person && flagged.has(person.guest.id) ? 'flagged' : ''}`}
              data-drop="seat" data-table=${t.id} data-seat=${String(k + 1)} data-person=${item && canSeat ? item.id : nothing}
              transform=${`translate(${s.x} ${s.y})`}
              @pointerdown=${item && canSeat ? (e) => { e.stopPropagation(); startPersonDrag(ctx, item, e) } : null}>
            <title>Seat ${k + 1}: ${who}${mark ? ` (${person.guest.dietary.join(', ')})` : ''}</title>
            <circle r=${SEAT_R}></circle>
            ${person ? svg`<text class="initials" transform=${`rotate(${-at.rotation})`} dy="0.35em">${person.plusOne ? '+1' : initials(person.guest.name)}</text>` : nothing}
            ${mark ? svg`<circle class="diet" cx="11" cy="-11" r="5"></circle>` : nothing}
          </g>`
        })}
        <g transform=${`rotate(${-at.rotation})`}>
          <text class="table-name" dy="-0.2em">${t.name}</text>
          <text class="table-count" dy="1.1em">${n}/${t.capacity}${over ? ' ⚠' : ''}${diets ? ` · ${diets}●` : ''}</text>
        </g>
      </g>`
    })}
  </svg>`
}

/** The chart view: the palette of who is still to seat, and the chart. */
export function chartView (ctx) {
  const canSeat = ctx.canWrite('seating') || ctx.canOperate('seating')
  const { people, households } = toPlace(ctx)
  if (state.chosen && state.chosen.kind === 'guest' && ctx.seating.assignments.has(state.chosen.id)) state.chosen = null
  const chip = (item, label, extra) => html`<li><button type="button" class="pick ${state.chosen && state.chosen.id === item.id ? 'chosen' : ''}"
      data-kind=${item.kind} data-id=${item.id} aria-pressed=${state.chosen && state.chosen.id === item.id ? 'true' : 'false'}
      @pointerdown=${(e) => startPersonDrag(ctx, item, e)} @click=${clicked(() => choose(ctx, item))}>${label}${extra}</button></li>`
  const byId = new Map(ctx.guests.map((g) => [g.id, g]))
  return html`<div class="chart" @keydown=${(e) => keydown(ctx, e)}>
    ${canSeat ? html`<section class="palette" aria-labelledby="palette-title" data-drop="unseated">
      <h4 id="palette-title">To seat</h4>
      <p class="muted">Drag onto a table or a seat, or choose one and use the arrow keys, then Enter.</p>
      ${households.length ? html`<h4>Households</h4><ul class="picks">${households.map((h) => chip({ kind: 'household', id: h.id, name: h.name }, h.name, html` <span class="muted">(${h.guests.filter((g) => g.rsvp !== 'declined').length})</span>`))}</ul>` : nothing}
      <h4>Guests</h4>
      <ul class="picks">${people.map((g) => chip({ kind: 'guest', id: g.id, name: g.name }, g.name, html`${g.plus_one_of && byId.has(g.plus_one_of) ? html` <span class="muted">(plus-one of ${byId.get(g.plus_one_of).name})</span>` : nothing}${g.dietary.length ? html` <span class="diet-mark" title=${g.dietary.join(', ')}>● ${g.dietary.join(', ')}</span>` : nothing}`))}</ul>
      ${people.length ? nothing : html`<p class="muted">Everyone who may come has a seat.</p>`}
    </section>` : nothing}
    <div class="chart-canvas" tabindex="-1" role="application" aria-label="Seating chart" aria-describedby="chart-help">
      <p id="chart-help" class="sr-only">Choose a guest or household in To seat, then left and right arrows go from table to table, up and down from seat to seat, Enter seats them, Escape cancels. The list below shows every table and who sits there.</p>
      ${chartSvg(ctx, { live: true })}
      <p class="legend muted"><span class="diet-mark">●</span> dietary needs · ⚠ over capacity or a finding${ctx.canWrite('seating') ? ' · drag a table to move it; focus it to move it with the arrow keys, R to turn it' : ''}</p>
    </div>
  </div>`
}
