// Who answered through their household's RSVP link, and when: the guest list's
// `guest.rsvp_changed` events credited to a guest (actor `{"sub": "guest:<id>", "role":
// "guest"}`), read once from GET .../events (cursor pages, oldest first) and then followed
// live through the activity feed's events. A guest's newest answer is the one shown. The
// events route shows each person only the events of documents they may read, so whoever
// sees this panel may read the guest list. Beside them, each household's note to the couple
// (`rsvp_note` of its entry, read from the guest list itself, so it shows live; a role that
// may not read it has no such field), always rendered as text.

import { html, nothing } from 'lit-html'
import { formats } from './local.js'

const PAGE = 500 // the events route's largest page
const PAGES = 20 // read at most 10,000 answers at start (a wedding has far fewer)

/** An answer a guest gave by their link, or null: `{guestId, to, at, seq}`. */
export function answerOf (event) {
  if (!event || event.type !== 'guest.rsvp_changed') return null
  const actor = event.actor || {}
  const data = event.data || {}
  if (actor.role !== 'guest' || typeof actor.sub !== 'string' || typeof data.id !== 'string') return null
  // A guest answers for the people of their household, each credited to that person.
  if (actor.sub !== `guest:${data.id}`) return null
  if (typeof data.to !== 'string' || !Number.isInteger(event.seq)) return null
  return { guestId: data.id, to: data.to, at: typeof event.at === 'string' ? event.at : null, seq: event.seq }
}

/** The answers of one `rsvp.answered` event (every answer a household sent by its link,
 *  changed or not: a `guest.rsvp_changed` is made only by a change), else of a
 *  `guest.rsvp_changed` of a guest's own (answerOf): `[{guestId, to, at, seq, changed}]`. */
export function answersOf (event) {
  if (!event || event.type !== 'rsvp.answered') {
    const one = answerOf(event)
    return one ? [{ ...one, changed: true }] : []
  }
  const data = event.data || {}
  if (!Array.isArray(data.answers) || !Number.isInteger(event.seq) || !event.actor || event.actor.role !== 'guest') return []
  const at = typeof event.at === 'string' ? event.at : null
  return data.answers.slice(0, 500)
    .filter((a) => a && typeof a.id === 'string' && typeof a.rsvp === 'string')
    .map((a) => ({ guestId: a.id, to: a.rsvp, at, seq: event.seq, changed: a.changed !== false }))
}

/** The newest answer per guest of `events` merged into `latest` (guest id -> answer);
 *  whether anything changed. */
export function mergeAnswers (latest, events) {
  let changed = false
  for (const answer of events.flatMap(answersOf)) {
    const known = latest.get(answer.guestId)
    if (known && known.seq >= answer.seq) continue
    latest.set(answer.guestId, answer)
    changed = true
  }
  return changed
}

/** Every `rsvp.answered` event of `events` kept in `log` (seq -> {seq, at, answers}):
 *  each answer sent by a link, changed or not; whether any was new. */
export function logAnswers (log, events) {
  let added = false
  for (const event of events) {
    if (!event || event.type !== 'rsvp.answered' || log.has(event.seq)) continue
    const answers = answersOf(event)
    if (!answers.length) continue
    log.set(event.seq, { seq: event.seq, at: answers[0].at, answers })
    added = true
  }
  return added
}

export class RsvpAnswers {
  constructor ({ wedding, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/events`
    this.token = token
    this.onChange = onChange
    this.latest = new Map()
    this.log = new Map() // seq -> every answer a household or guest sent: {seq, at, answers}
    this.loaded = false
    this.complete = false
    this.reading = null
  }

  start () {
    this.refresh()
    return this
  }

  async load () {
    let after = 0
    try {
      for (let page = 0; page < PAGES; page++) {
        const query = `types=guest.rsvp_changed,rsvp.answered&limit=${PAGE}&after=${after}`
        const response = await fetch(`${this.base}?${query}`, { headers: { Authorization: `Bearer ${this.token()}` } })
        if (!response.ok) break
        const body = await response.json()
        const events = Array.isArray(body.events) ? body.events : []
        mergeAnswers(this.latest, events)
        logAnswers(this.log, events)
        if (!Number.isInteger(body.next)) break
        after = body.next
      }
      this.complete = true
    } catch {
      // Offline: read again when back (refresh); live events fill in meanwhile.
    }
    this.loaded = true
    this.onChange()
  }

  /** Read again if the first reading did not finish (opened offline). */
  refresh () {
    if (!this.complete && !this.reading) this.reading = this.load().finally(() => { this.reading = null })
  }

  onEvents (events) {
    const logged = logAnswers(this.log, events)
    if (mergeAnswers(this.latest, events) || logged) this.onChange()
  }

  /** The answers of guests still on the list, newest first, with their names. */
  shown (guests) {
    const byId = new Map(guests.map((g) => [g.id, g]))
    return [...this.latest.values()]
      .filter((a) => byId.has(a.guestId))
      .sort((a, b) => b.seq - a.seq)
      .map((a) => ({ ...a, guest: byId.get(a.guestId) }))
  }
}

const WORDS = { accepted: 'accepted', declined: 'declined', pending: 'is not sure yet' }

/** The households' notes to the couple, newest first: [{household, note, at}]. */
export function householdNotes (households) {
  return [...(households || new Map()).values()]
    .filter((h) => h.note)
    .sort((a, b) => (b.noteAt || '').localeCompare(a.noteAt || '') || a.name.localeCompare(b.name))
    .map((h) => ({ household: h, note: h.note, at: h.noteAt }))
}

function notesList (notes) {
  if (!notes.length) return nothing
  return html`<h3 class="answers-notes-title">Notes from households</h3>
    <ul class="answers-notes">${notes.map((n) => html`<li data-household=${n.household.id}>
      <strong>${n.household.name}</strong>${n.at ? html` <time class="muted" datetime=${n.at}>${formats().dateTime(n.at)}</time>` : nothing}
      <p class="answer-note">${n.note}</p></li>`)}</ul>`
}

/** The guest view's panel: who answered by their link, and when (newest first), and the
 *  notes households left the couple. */
export function answersPanel (ctx) {
  const answers = ctx.answers
  if (!answers) return nothing
  const notes = householdNotes(ctx.households)
  const shown = answers.shown(ctx.guests)
  const households = new Set(shown.map((a) => a.guest.household_id || a.guest.household || a.guestId))
  return html`<details class="card answers" aria-label="RSVP answers">
    <summary><strong>Answered by RSVP link:</strong> ${shown.length
      ? `${shown.length} ${shown.length === 1 ? 'person' : 'people'} of ${households.size} household${households.size === 1 ? '' : 's'}`
      : answers.loaded ? 'nobody yet' : 'reading…'}${notes.length ? ` · ${notes.length} note${notes.length === 1 ? '' : 's'}` : ''}</summary>
    ${shown.length
      ? html`<table class="per-table answers-list"><thead><tr><th scope="col">Guest</th><th scope="col">Answer</th><th scope="col">When</th></tr></thead>
        <tbody>${shown.map((a) => html`<tr data-guest=${a.guestId}><th scope="row">${a.guest.name || 'a guest'}</th>
          <td><span class="pill ${a.to}">${WORDS[a.to] || a.to}</span>${a.changed ? nothing : html` <span class="muted">(as before)</span>`}</td>
          <td>${a.at ? html`<time datetime=${a.at}>${formats().dateTime(a.at)}</time>` : '—'}</td></tr>`)}</tbody></table>`
      : html`<p class="muted">Answers sent from a household's RSVP page show here as they arrive.</p>`}
    ${notesList(notes)}
  </details>`
}
