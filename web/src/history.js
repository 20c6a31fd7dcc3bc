// A document's history (issue 53, point 3): its restore points with who changed it and when,
// a preview of the document as it was (`GET .../docs/{doc}?at=SEQ`), and a restore in one
// click (`POST .../docs/{doc}/restore`: one new change, made as the person who restores,
// merged with what others do meanwhile). Restoring needs `versions.restore` and write access.

import { html, nothing } from 'lit-html'
import { describe, when } from './activity.js'
import { formats } from './local.js'
import { call, reasonOf } from './api.js'

/** What a document holds, in words (from its JSON view). */
export function summary (kind, doc) {
  const count = (o) => (o && typeof o === 'object' ? Object.keys(o).length : 0)
  const n = (k, one, many) => `${k} ${k === 1 ? one : many}`
  if (!doc || typeof doc !== 'object') return 'empty'
  if (kind === 'guests') {
    const guests = Object.values(doc.guests || {})
    const accepted = guests.filter((g) => g && g.rsvp === 'accepted').length
    return `${n(guests.length, 'guest', 'guests')}, ${accepted} accepted`
  }
  if (kind === 'seating') return `${n(count(doc.tables), 'table', 'tables')}, ${count(doc.assignments)} seated`
  if (kind === 'timeline') return n(count(doc.items), 'item', 'items')
  if (kind === 'budget') return `${n(count(doc.categories), 'category', 'categories')}, ${n(count(doc.payments), 'payment', 'payments')}`
  return `${count(doc)} entries`
}

export class DocHistory {
  constructor ({ wedding, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/docs`
    this.token = token
    this.onChange = onChange
    this.kind = null
    this.points = null
    this.preview = null // { seq, then, now }
    this.error = null
  }

  request (method, path = '', body) {
    return call(this.token, this.base, method, '/' + path, body)
  }

  async open (kind) {
    this.kind = kind
    this.points = null
    this.preview = null
    this.error = null
    this.onChange()
    const { status, body } = await this.request('GET', `${kind}/versions?limit=20`)
    if (this.kind !== kind) return
    if (status === 200 && body && Array.isArray(body.versions)) this.points = body.versions
    else this.error = (body && body.detail) || 'the history is not available now'
    this.onChange()
  }

  close () {
    this.kind = null
    this.onChange()
  }

  async show (seq) {
    const kind = this.kind
    const [then, now] = await Promise.all([this.request('GET', `${kind}?at=${seq}`), this.request('GET', kind)])
    if (this.kind !== kind) return
    this.preview = then.status === 200 ? { seq, then: summary(kind, then.body), now: summary(kind, now.body) } : null
    this.error = then.status === 200 ? null : (then.body && then.body.detail) || 'that state is not kept'
    this.onChange()
  }

  /** Restore the open document as of `seq`; null, or the reason it was refused. */
  async restore (seq) {
    const { status, body } = await this.request('POST', `${this.kind}/restore`, { seq })
    if (status === 200) {
      await this.open(this.kind)
      return body && body.changed === false ? { same: true } : null
    }
    return reasonOf({ status, body })
  }
}

const TITLES = { guests: 'guest list', seating: 'seating', timeline: 'timeline', budget: 'budget' }

/** A restore point in words: who changed what since the point before it ("Priya moved
 *  Anita from table Lily to table Rose"), from the feed's events the server kept for it. */
export function pointLabel (point, names) {
  const actors = point.actors || []
  const people = actors.map((a) => names.person(a.sub) || 'Someone')
  const changes = Array.isArray(point.changes) ? point.changes : []
  const actor = actors.length === 1 ? actors[0] : { sub: '', role: '' }
  const groups = []
  for (const c of changes) {
    const last = groups[groups.length - 1]
    const event = { actor, data: c.data || {}, type: c.type }
    if (last && last.type === c.type) last.events.push(event)
    else groups.push({ type: c.type, events: [event] })
  }
  const who = people.length ? people.join(' and ') : 'Someone'
  if (!groups.length) return point.change_count === null || point.change_count === undefined ? `Changed by ${who}` : `${who} made changes`
  const said = groups.map((g) => describe(g, names).what)
  const more = (point.change_count || 0) - changes.length
  return `${who} ${said.join('; ')}${more > 0 ? `, and ${more} more change${more === 1 ? '' : 's'}` : ''}`
}

/** The History button of a view. */
export function historyButton (ctx, kind) {
  return html`<button type="button" class="link" @click=${() => ctx.showHistory(kind)}>History</button>`
}

/** The history panel of the open document. */
export function historyView (ctx) {
  const h = ctx.docHistory
  if (!h.kind) return nothing
  const canRestore = ctx.can('versions.restore') && ctx.canWrite(h.kind)
  const names = ctx.names()
  const f = ctx.errors.of('restore')
  const restore = async (seq) => {
    const refused = await h.restore(seq)
    if (refused && refused.same) { ctx.errors.clear('restore'); ctx.say(`The ${TITLES[h.kind]} is already as it was then: nothing changed.`) } else if (refused) ctx.refuse('restore', [{ field: 'restore', message: `Not restored: ${refused}.` }])
    else { ctx.errors.clear('restore'); ctx.say(`The ${TITLES[h.kind]} is back as it was; the change is yours, and others see it now.`) }
  }
  return html`<section id="history-panel" class="card history-panel" aria-labelledby="history-title" tabindex="-1" data-form="restore">
    <header class="panel-head"><h2 id="history-title">History of the ${TITLES[h.kind] || h.kind}</h2>
      <button type="button" class="link" aria-label="Close the history" @click=${() => h.close()}>×</button></header>
    ${h.error ? html`<p class="field-error">${h.error}</p>` : nothing}
    ${f.note('restore')}
    ${h.points === null
      ? html`<p class="muted">Loading…</p>`
      : h.points.length
        ? html`<ol class="rows versions" aria-label="Restore points">${h.points.map((p) => html`<li class="row">
            <div class="who"><strong><time datetime=${p.at} title=${formats().dateTime(p.at)}>${when(p.at)}</time></strong>
              <span class="point-label">${pointLabel(p, names)}</span>
              ${h.preview && h.preview.seq === p.seq
                ? html`<span class="preview">Then: ${h.preview.then}. Now: ${h.preview.now}.</span>`
                : nothing}</div>
            <div class="row-actions">
              <button type="button" @click=${() => h.show(p.seq)} aria-label=${`Preview as of ${formats().dateTime(p.at)}`}>Preview</button>
              ${canRestore ? html`<button type="button" name="restore" aria-describedby=${f.describedBy('restore')}
                aria-label=${`Restore as of ${formats().dateTime(p.at)}`} @click=${() => restore(p.seq)}>Restore</button>` : nothing}
            </div></li>`)}</ol>`
        : html`<p class="muted">No restore points yet.</p>`}
  </section>`
}
