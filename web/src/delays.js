// "Running late" on a timeline item: how many minutes, then the proposal of
// `POST .../day/delays` (what moves with it, the fixed items that keep their times, the
// vendors who would be told), then "Move them" applies it (one change, made as the person;
// the vendors whose items moved are told).

import { html, nothing } from 'lit-html'
import { call, reasonOf } from './api.js'

export const DEFAULT_MINUTES = 15

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
    this.error = null
  }

  open (item) {
    this.item = item
    this.minutes = DEFAULT_MINUTES
    this.proposal = null
    this.error = null
    this.onChange()
  }

  close () {
    this.item = null
    this.proposal = null
    this.onChange()
  }

  async propose (minutes) {
    const item = this.item
    this.minutes = minutes
    const answer = await call(this.token, this.base, 'POST', '', { item, minutes })
    if (this.item !== item) return
    this.proposal = answer.status === 200 ? answer.body : null
    this.error = answer.status === 200 ? null : reasonOf(answer)
    this.onChange()
  }

  /** Apply the proposal; null, or the reason it was refused. */
  async apply () {
    const body = { item: this.item, minutes: this.minutes, apply: true }
    const answer = await call(this.token, this.base, 'POST', '', body)
    if (answer.status !== 200) return reasonOf(answer)
    this.close()
    return null
  }
}

/** The "Running late" button of a timeline item. */
export function lateButton (ctx, item) {
  return html`<button type="button" aria-label=${`${item.title} is running late`} @click=${() => ctx.delays.open(item.id)}>Running late</button>`
}

/** The panel under an item that is running late (nothing for the other items). */
export function latePanel (ctx, item) {
  const d = ctx.delays
  if (d.item !== item.id) return nothing
  const ask = (e) => {
    e.preventDefault()
    const minutes = Number(new FormData(e.target).get('minutes'))
    d.propose(minutes)
  }
  const apply = async () => {
    const refused = await d.apply()
    if (refused) { d.error = `Not moved: ${refused}.`; ctx.render() } else ctx.say(`${item.title} and what depends on it moved; their vendors are told.`)
  }
  const p = d.proposal
  return html`<div class="card late-panel" role="group" aria-label=${`${item.title} is running late`}>
    <form @submit=${ask}>
      <label>How many minutes late? <input name="minutes" type="number" min="1" max="1440" required .value=${String(d.minutes)}></label>
      <button type="submit">Show what moves</button>
      <button type="button" class="link" @click=${() => d.close()}>Cancel</button>
    </form>
    ${d.error ? html`<p class="field-error" role="alert">${d.error}</p>` : nothing}
    ${p ? html`<ul class="moves" aria-label="What moves">
        ${p.moves.map((m) => html`<li><strong>${m.title || m.item}</strong> ${moveWords(ctx.local, m)}${m.vendor ? html` <span class="muted">(${m.vendor})</span>` : nothing}</li>`)}
      </ul>
      ${p.fixed.length ? html`<p class="muted">Keeps its time: ${p.fixed.join(', ')}.</p>` : nothing}
      <p class="muted">${p.vendors.length ? `Told: ${p.vendors.map((v) => v.vendor).join(', ')}.` : 'No vendor to tell.'}</p>
      <button type="button" @click=${apply}>Move them</button>` : nothing}
  </div>`
}
