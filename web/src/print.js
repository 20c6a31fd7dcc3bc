// Print views (issue 54, point 6), each at its own address in the app, loaded on demand:
//
//   #/print                          what can be printed
//   #/print/seating                  the seating chart, and who sits at each table
//   #/print/escort-cards             one card per guest: name and table, alphabetical
//   #/print/run-sheet?vendor=NAME    one vendor's part of the day, in order, in the
//                                    wedding's time zone (a link that can be shared)
//
// On screen each shows a bar (back to the app, Print); on paper only the page itself
// (styles.css, @media print).

import { html, nothing } from 'lit-html'
import { chartSvg, occupancy } from './chart.js'
import { zoneWords } from './local.js'
import { cateringWords } from './weddingday.js'

/** The print route of a hash (`#/print/run-sheet?vendor=Bloom`), or null. */
export function printRoute (hash) {
  const found = /^#\/print(?:\/([a-z-]*))?(?:\?(.*))?$/.exec(hash)
  if (!found) return null
  return { page: found[1] || '', params: new URLSearchParams(found[2] || '') }
}

const key = (s) => (s || '').trim().toLocaleLowerCase()

/** The vendors the timeline names (as first written), sorted. */
export function vendorsOf (timeline) {
  const seen = new Map()
  for (const item of timeline) {
    for (const who of [item.vendor]) if (who && !seen.has(key(who))) seen.set(key(who), who)
  }
  return [...seen.values()].sort((a, b) => a.localeCompare(b))
}

/** A vendor's run sheet: the items they are booked for (`vendor`) or that they own
 *  (`owner`), cancelled ones left out, in order of start. */
export function runSheetItems (timeline, vendor) {
  const wanted = key(vendor)
  return timeline.filter((i) => i.status !== 'cancelled' && (key(i.vendor) === wanted || key(i.owner) === wanted))
}

/** Escort cards: every guest who has a seat (declined ones left out), by name. */
export function escortCards (ctx) {
  const tables = new Map(ctx.seating.tables.map((t) => [t.id, t]))
  const named = new Set(ctx.guests.filter((g) => g.plus_one_of).map((g) => g.plus_one_of))
  return ctx.guests
    .filter((g) => g.rsvp !== 'declined' && tables.has(ctx.seating.assignments.get(g.id)?.table_id))
    .map((g) => ({ id: g.id, name: g.plus_one && !named.has(g.id) ? `${g.name} and guest` : g.name, table: tables.get(ctx.seating.assignments.get(g.id).table_id).name }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id))
}

const bar = (title) => html`<nav class="print-bar" aria-label="Print">
  <a href="#seating">Back to the planner</a> · <a href="#/print">All print views</a>
  <button type="button" class="primary" @click=${() => print()}>Print</button>
</nav><h2 class="print-title">${title}</h2>`

function wedding (ctx) {
  const p = ctx.profile || {}
  const names = p.names && p.names.length ? p.names.join(' & ') : ctx.wedding
  return html`<p class="print-wedding">${names}${p.date ? html` · ${ctx.local.day(p.date)}` : nothing}${p.venue ? html` · ${p.venue}` : nothing}</p>`
}

function seatingPage (ctx) {
  const occupied = occupancy(ctx)
  return html`${bar('Seating chart')}${wedding(ctx)}
    <div class="print-chart">${chartSvg(ctx)}</div>
    <div class="print-tables">
      ${ctx.seating.tables.map((t) => {
        const seats = [...occupied.get(t.id).seats.entries()].sort((a, b) => a[0] - b[0])
        return html`<section class="print-table" data-entity=${t.id}>
          <h3>${t.name} <span class="muted">(${seats.length}/${t.capacity})</span></h3>
          <ol>${seats.map(([n, p]) => html`<li value=${n}>${p.plusOne ? `${p.guest.name}'s guest` : p.guest.name}${!p.plusOne && p.guest.dietary && p.guest.dietary.length ? html` <span class="muted">(${p.guest.dietary.join(', ')})</span>` : nothing}</li>`)}</ol>
        </section>`
      })}
    </div>`
}

function escortPage (ctx) {
  const cards = escortCards(ctx)
  return html`${bar('Escort cards')}
    ${cards.length ? html`<ul class="escort-cards">${cards.map((c) => html`<li class="escort-card" data-entity=${c.id}>
      <span class="escort-name">${c.name}</span><span class="escort-table">Table ${c.table}</span></li>`)}</ul>`
      : html`<p class="muted">No one has a seat yet.</p>`}`
}

/** A caterer's counts on its run sheet (the day's state gives them to the couple, the
 *  planner and the caterer's members, whatever it reads of the guest list). */
function cateringOf (ctx, vendor) {
  const state = ctx.day && ctx.day.state
  const found = state && (state.vendors || []).find((v) => v.catering && key(v.name) === key(vendor))
  return found ? html`<p class="catering"><strong>Cooking for:</strong> ${cateringWords(found.catering)}</p>` : nothing
}

function runSheetPage (ctx, vendor) {
  const vendors = vendorsOf(ctx.timeline)
  const items = vendor ? runSheetItems(ctx.timeline, vendor) : []
  const zone = ctx.local.zone
  const venue = (ctx.profile && ctx.profile.venue) || ''
  let day = null
  return html`${bar(vendor ? `Run sheet: ${vendor}` : 'Run sheets')}${wedding(ctx)}
    <form class="print-bar" @submit=${(e) => e.preventDefault()}>
      <label>Vendor <select @change=${(e) => { location.hash = `#/print/run-sheet?vendor=${encodeURIComponent(e.target.value)}` }}>
        <option value="" ?selected=${!vendor}>Choose a vendor</option>
        ${vendors.map((v) => html`<option value=${v} ?selected=${key(v) === key(vendor)}>${v}</option>`)}
      </select></label>
    </form>
    ${vendor
      ? items.length
        ? html`${cateringOf(ctx, vendor)}<p class="muted">Times in ${zoneWords(zone)}${venue ? html`; where nothing else is said, at ${venue}` : nothing}.</p>
          <table class="run-sheet"><thead><tr><th scope="col">Start</th><th scope="col">End</th><th scope="col">What</th><th scope="col">Where</th><th scope="col">Notes</th></tr></thead>
          <tbody>${items.map((i) => {
            const wall = ctx.local.wall(i.start)
            const heading = wall.day !== day ? html`<tr class="run-day"><th colspan="5" scope="rowgroup">${ctx.local.day(wall.day)}</th></tr>` : nothing
            day = wall.day
            return html`${heading}<tr data-entity=${i.id}><td>${ctx.local.time(i.start)}</td><td>${ctx.local.time(i.end)}</td>
              <td>${i.title}${i.status === 'confirmed' ? html` <span class="muted">(confirmed)</span>` : nothing}</td><td>${i.location || venue || ''}</td><td>${i.notes || ''}</td></tr>`
          })}</tbody></table>`
        : html`<p>Nothing on the timeline for ${vendor}.</p>`
      : nothing}
    ${vendor && items.length && ctx.runSheets && ctx.can('day.run_sheets') ? shareBar(ctx.runSheets, vendor) : nothing}`
}

/** The vendor's read-only link: made on request, shown once to copy (never on paper). */
function shareBar (links, vendor) {
  const made = links.madeFor(vendor)
  const refused = links.refusedFor(vendor)
  return html`<div class="print-bar share-run-sheet">
    <button type="button" ?disabled=${links.busy} @click=${() => links.share(vendor)}>Share a read-only link with ${vendor}</button>
    ${made
      ? html`<label>Link for ${vendor}, until ${made.expires_at.slice(0, 10)}
          <input type="url" readonly .value=${made.url} @focus=${(e) => e.target.select()}></label>`
      : nothing}
    ${refused ? html`<p role="alert">${refused}</p>` : nothing}
  </div>`
}

function indexPage (ctx) {
  const seating = ctx.sections.includes('seating')
  const timeline = ctx.sections.includes('timeline')
  return html`${bar('Print')}
    <ul class="print-index">
      ${seating ? html`<li><a href="#/print/seating">Seating chart</a></li><li><a href="#/print/escort-cards">Escort cards</a></li>` : nothing}
      ${timeline ? vendorsOf(ctx.timeline).map((v) => html`<li><a href=${`#/print/run-sheet?vendor=${encodeURIComponent(v)}`}>Run sheet: ${v}</a></li>`) : nothing}
    </ul>`
}

/** The print page a route names, for what the person may read. */
export function printView (ctx, route) {
  const can = (kind) => ctx.sections.includes(kind)
  let body
  if (route.page === 'seating' && can('seating')) body = seatingPage(ctx)
  else if (route.page === 'escort-cards' && can('seating') && can('guests')) body = escortPage(ctx)
  else if (route.page === 'run-sheet' && can('timeline')) body = runSheetPage(ctx, route.params.get('vendor'))
  else body = indexPage(ctx)
  return html`<div class="print-view print-${route.page || 'index'}">${body}</div>`
}
