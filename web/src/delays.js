// "Running late" on a timeline item: how many minutes, then the proposal of
// `POST .../day/delays` (what moves with it, the fixed items that keep their times, the
// vendors who would be told), then "Move them" applies it (one change, made as the person;
// the vendors whose items moved are told). A refusal (minutes out of range, the server's
// answer) is said beside the control it concerns (`FormErrors`, form `late-ITEM`).

import { html, nothing } from 'lit-html'
import { call, fieldReasonOf } from './api.js'

export const DEFAULT_MINUTES = 15
export const MAX_MINUTES = 1440

/** Why `minutes` (as typed) is refused, or null. */
export function minutesError (typed) {
  const minutes = Number(typed)
  if (String(typed).trim() === '' || !Number.isInteger(minutes) || minutes < 1 || minutes > MAX_MINUTES) {
    return `Type how many minutes late, 1 to ${MAX_MINUTES}.`
  }
  return null
}

/** "09:00 → 09:30": an item's move in the wedding's local time. */
export function moveWords (local, move) {
  return `${local.time(move.start)} → ${local.time(move.new_start)}`
}

export class Delays {
  constructor ({ wedding, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/day/delays`
    this.token = token
    this.onChange = onChange
    this.item = null
    this.minutes = DEFAULT_MINUTES
    this.proposal = null
  }

  open (item) {
    this.item = item
    this.minutes = DEFAULT_MINUTES
    this.proposal = null
    this.onChange()
  }

  close () {
    this.item = null
    this.proposal = null
    this.onChange()
  }

  /** Ask what moves; null, or the reason it was refused. */
  async propose (minutes) {
    const item = this.item
    this.minutes = minutes
    const answer = await call(this.token, this.base, 'POST', '', { item, minutes })
    if (this.item !== item) return null
    this.proposal = answer.status === 200 ? answer.body : null
    this.onChange()
    return answer.status === 200 ? null : fieldReasonOf(answer)
  }

  /** Apply the proposal; null, or the reason it was refused. */
  async apply () {
    const body = { item: this.item, minutes: this.minutes, apply: true }
    const answer = await call(this.token, this.base, 'POST', '', body)
    if (answer.status !== 200) return fieldReasonOf(answer)
    this.close()
    return null
  }
}

/** An item of the proposal named as people know it: its title in `timeline` (the app's
 *  items), never its id; one no longer there is said so. */
export function itemTitle (timeline, id, title) {
  if (title) return title
  const found = (timeline || []).find((i) => i.id === id)
  return found && found.title ? found.title : 'an item no longer in the timeline'
}

/** The "Running late" button of a timeline item. */
export function lateButton (ctx, item) {
  return html`<button type="button" aria-label=${`${item.title} is running late`} @click=${() => ctx.delays.open(item.id)}>Running late</button>`
}

/** The panel under an item that is running late (nothing for the other items). */
export function latePanel (ctx, item) {
  const d = ctx.delays
  if (d.item !== item.id) return nothing
  const form = `late-${item.id}`
  const f = ctx.errors.of(form)
  const ask = async (e) => {
    e.preventDefault()
    const typed = String(new FormData(e.target).get('minutes') || '')
    const wrong = minutesError(typed)
    if (wrong) { d.proposal = null; ctx.refuse(form, [{ field: 'minutes', message: wrong }]); return }
    const refused = await d.propose(Number(typed))
    if (refused) ctx.refuse(form, [{ field: 'minutes', message: `Nothing moved: ${refused}.` }])
    else ctx.errors.clear(form)
  }
  const apply = async () => {
    const refused = await d.apply()
    if (refused) ctx.refuse(form, [{ field: 'apply', message: `Not moved: ${refused}.` }])
    else { ctx.errors.clear(form); ctx.say(`${item.title} and what depends on it moved; their vendors are told.`) }
  }
  const close = () => { ctx.errors.clear(form); d.close() }
  const p = d.proposal
  return html`<div class="card late-panel" role="group" aria-label=${`${item.title} is running late`} data-form=${form}>
    <form novalidate @submit=${ask} @input=${f.edited}>
      <div class="field"><label>How many minutes late? <input name="minutes" type="number" min="1" max=${String(MAX_MINUTES)} required .value=${String(d.minutes)}
        aria-describedby=${f.describedBy('minutes')} aria-invalid=${f.invalid('minutes')}></label>${f.note('minutes')}</div>
      <button type="submit">Show what moves</button>
      <button type="button" class="link" @click=${close}>Cancel</button>
    </form>
    ${p ? html`<ul class="moves" aria-label="What moves">
        ${p.moves.map((m) => html`<li><strong>${itemTitle(ctx.timeline, m.item, m.title)}</strong> ${moveWords(ctx.local, m)}${m.vendor ? html` <span class="muted">(${m.vendor})</span>` : nothing}</li>`)}
      </ul>
      ${p.fixed.length ? html`<p class="muted">Keeps its time: ${p.fixed.map((id) => itemTitle(ctx.timeline, id)).join(', ')}.</p>` : nothing}
      <p class="muted">${p.vendors.length ? `Told: ${p.vendors.map((v) => v.vendor).join(', ')}.` : 'No vendor to tell.'}</p>
      <button type="button" name="apply" aria-describedby=${f.describedBy('apply')} @click=${apply}>Move them</button>${f.note('apply')}` : nothing}
  </div>`
}
