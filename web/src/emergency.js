// Emergencies from the app (issue 77, point 2): the Emergency action (for the roles with
// `events.emergency`) raises one with its text and the timeline items and vendors it
// concerns; every other member's inbox shows it, marked, with its text and a "Seen" button;
// the sender sees who has seen it, and when.
// Routes: POST /events (priority "emergency", type `day.emergency`), GET /events?after=,
// POST /events/{seq}/ack, GET /events/{seq}/acks.

import { html, nothing } from 'lit-html'
import { call, fieldReasonOf } from './api.js'
import { when } from './activity.js'

export const EMERGENCY_TYPE = 'day.emergency'
const MAX_TEXT = 2000

export class Emergencies {
  constructor ({ wedding, sub, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/events`
    this.sub = sub
    this.token = token
    this.onChange = onChange
    this.open = false
    this.sending = false
    this.events = new Map() // seq -> the emergency event (its text, items, vendors)
    this.acks = new Map() // seq -> [{ sub, role, at }]
    this.timer = 0
  }

  request (method, path = '', body, headers) {
    return call(this.token, this.base, method, path, body, headers)
  }

  /** Raise one; null, or `{ field, message }` (the server's refusal, beside its control). */
  async raise (text, items, vendors) {
    const said = text.trim()
    if (!said) return { field: 'text', message: 'Say what is happening.' }
    this.sending = true
    this.onChange()
    const data = { text: said.slice(0, MAX_TEXT), ...(vendors.length ? { vendors } : {}) }
    const body = { type: EMERGENCY_TYPE, priority: 'emergency', data, ...(items.length ? { items } : {}) }
    const answer = await this.request('POST', '', body, { 'Idempotency-Key': crypto.randomUUID() })
    this.sending = false
    if (answer.status !== 201 && answer.status !== 200) {
      this.onChange()
      const named = answer.body && Array.isArray(answer.body.errors) && answer.body.errors[0]
      return { field: named && named.field === 'items' ? 'items' : 'text', message: `Not sent: ${fieldReasonOf(answer)}` }
    }
    const seq = answer.body.seq
    this.events.set(seq, { seq, type: EMERGENCY_TYPE, priority: 'emergency', actor: { sub: this.sub }, at: new Date().toISOString(), data: { ...data, ...(items.length ? { items } : {}) } })
    this.acks.set(seq, [])
    this.onChange()
    return null
  }

  /** The emergencies this person raised, newest first (from the feed's events and this
   *  session's), each with who has seen it. */
  mine (feedEvents) {
    for (const e of feedEvents) {
      if (e.priority === 'emergency' && e.actor && e.actor.sub === this.sub && !this.events.has(e.seq)) this.events.set(e.seq, e)
    }
    return [...this.events.values()].filter((e) => e.actor && e.actor.sub === this.sub).sort((a, b) => b.seq - a.seq)
  }

  /** Open the panel: who has seen the person's emergencies, asked again every few seconds
   *  while it is open (an acknowledgement makes no event). */
  show (open, feedEvents) {
    this.open = open
    clearTimeout(this.timer)
    if (!open) return
    const poll = async () => {
      if (!this.open) return
      await Promise.all(this.mine(feedEvents()).slice(0, 10).map((e) => this.loadAcks(e.seq)))
      this.onChange()
      this.timer = setTimeout(poll, 3000)
    }
    poll()
  }

  async loadAcks (seq) {
    const { status, body } = await this.request('GET', `/${seq}/acks`)
    if (status === 200 && body && Array.isArray(body.acks)) this.acks.set(seq, body.acks)
  }

  /** The emergency of `seq` (its text), fetched once. */
  async load (seq) {
    if (this.events.has(seq) || !Number.isInteger(seq)) return
    this.events.set(seq, null) // asked
    const { status, body } = await this.request('GET', `?after=${seq - 1}&limit=1`)
    const found = status === 200 && body && Array.isArray(body.events) ? body.events.find((e) => e.seq === seq) : null
    if (found) this.events.set(seq, found)
    else this.events.delete(seq)
    this.onChange()
  }

  /** This person has seen the emergency of `seq`. */
  async ack (seq) {
    const { status, body } = await this.request('POST', `/${seq}/ack`)
    if (status === 200 && body && Array.isArray(body.acks)) this.acks.set(seq, body.acks)
    this.onChange()
    return status === 200
  }

  seenBy (seq, sub) {
    return (this.acks.get(seq) || []).some((a) => a.sub === sub)
  }
}

/** What an emergency says, and what it concerns, in words. */
export function emergencyText (event, ctx) {
  if (!event) return ''
  const data = event.data || {}
  const text = typeof data.text === 'string' ? data.text : typeof data.what === 'string' ? data.what : ''
  const items = Array.isArray(data.items) ? data.items.map((id) => ctx.names().item(id) || id) : []
  const vendors = Array.isArray(data.vendors) ? data.vendors.filter((v) => typeof v === 'string') : []
  const about = [...items, ...vendors]
  return `${text}${about.length ? ` (concerns ${about.join(', ')})` : ''}`
}

/** A vendor's name as the server compares free-text vendors: spaces and case folded. */
const fold = (name) => name.split(/\s+/).filter(Boolean).join(' ').toLowerCase()

/** The vendors of the wedding, as the timeline names them (and the day's directory), each
 *  once: "Harbour Strings" and the day's "harbour strings" are one vendor. */
function vendorsOf (ctx) {
  const named = new Map() // folded name -> as shown
  for (const item of ctx.timeline || []) if (item.vendor && !named.has(fold(item.vendor))) named.set(fold(item.vendor), item.vendor)
  const day = ctx.day && ctx.day.state
  if (day && Array.isArray(day.vendors)) for (const v of day.vendors) if (!named.has(fold(v.name))) named.set(fold(v.name), v.name)
  return [...named.values()].sort((a, b) => a.localeCompare(b))
}

/** The Emergency panel: raise one; who has seen the ones this person raised. */
export function emergencyView (ctx) {
  const em = ctx.emergencies
  const f = ctx.errors.of('emergency')
  const items = ctx.sections.includes('timeline') ? (ctx.timeline || []) : []
  const vendors = vendorsOf(ctx)
  const submit = async (e) => {
    e.preventDefault()
    const form = e.target
    const v = new FormData(form)
    const refused = await em.raise(String(v.get('text') || ''), v.getAll('items').map(String), v.getAll('vendors').map(String))
    if (refused) { ctx.refuse('emergency', [refused]); return }
    ctx.errors.clear('emergency')
    form.reset()
    ctx.say('Emergency sent to everyone.')
  }
  const people = ctx.names()
  const mine = em.mine(ctx.feed.events)
  return html`<section id="emergency-panel" class="card emergency" aria-labelledby="emergency-title" tabindex="-1">
    <header class="panel-head"><h2 id="emergency-title">Emergency</h2>
      <button type="button" class="link" aria-label="Close the emergency panel" @click=${() => ctx.showEmergency(false)}>×</button></header>
    <form data-form="emergency" novalidate @submit=${submit} aria-label="Raise an emergency">
      <div class="field"><label>What is happening <textarea name="text" required maxlength=${MAX_TEXT} rows="3"
        aria-describedby=${f.describedBy('text')} aria-invalid=${f.invalid('text')}></textarea></label>${f.note('text')}</div>
      ${items.length ? html`<fieldset aria-describedby=${f.describedBy('items')}><legend>Timeline items it concerns</legend>
        ${items.map((i) => html`<label class="check"><input type="checkbox" name="items" value=${i.id}> ${i.title || i.id}</label>`)}
        ${f.note('items')}</fieldset>` : nothing}
      ${vendors.length ? html`<fieldset><legend>Vendors it concerns</legend>
        ${vendors.map((v) => html`<label class="check"><input type="checkbox" name="vendors" value=${v}> ${v}</label>`)}</fieldset>` : nothing}
      <button type="submit" class="danger" ?disabled=${em.sending}>Send the emergency to everyone</button>
    </form>
    ${mine.length ? html`<h3>Sent</h3><ul class="rows" aria-label="Emergencies you sent">${mine.map((e) => {
      const acks = em.acks.get(e.seq) || []
      return html`<li class="row" data-emergency=${String(e.seq)}><div class="who"><strong>${emergencyText(e, ctx)}</strong>
        <span class="muted">${when(e.at)} · ${acks.length
          ? `Seen by ${acks.map((a) => `${people.person(a.sub) || a.role} (${when(a.at)})`).join(', ')}`
          : 'Nobody has seen it yet'}</span></div></li>`
    })}</ul>` : nothing}
  </section>`
}
