// The wedding day in the app: the day's state (GET /api/weddings/{id}/day) above the timeline
// while day-of mode is on, and the one-tap check-in ("Arrived", "Running late") for each
// vendor of the day. A tap made offline is kept on this device (localStorage: a reload or a
// dead phone battery loses nothing) and sent when the server answers, with its own
// Idempotency-Key (a retry whose answer was lost is not stored twice) and `at`, the moment
// it was tapped (the server keeps it unless later than receipt; the couple sees "reported
// at"). A tap the server refuses is said beside the button tapped (`FormErrors`, form
// `check-in-VENDOR`, field the status), through `onRefused`.
import { html, nothing } from 'lit-html'

const RETRY_MS = [500, 1000, 2000, 4000, 8000]
const STATUS = { arrived: 'Arrived', running_late: 'Running late' }

function newKey () {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID()
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('')
}

function defaultStorage () {
  try {
    return globalThis.localStorage || null
  } catch {
    return null
  }
}

/** The check-ins tapped on this device and not yet confirmed, sent in order. */
export class CheckInQueue {
  constructor ({ wedding, sub, token, onChange = () => {}, onRefused = () => {}, fetcher, storage, now, schedule }) {
    this.wedding = wedding
    this.key = `crdt-server.check-ins:${wedding}:${sub}`
    this.token = token
    this.onChange = onChange
    this.onRefused = onRefused
    this.fetcher = fetcher || ((...args) => fetch(...args))
    this.storage = storage === undefined ? defaultStorage() : storage
    this.now = now || (() => new Date())
    this.schedule = schedule || ((fn, ms) => setTimeout(fn, ms))
    this.sending = false
    this.failures = 0
    this.timer = null
    this.entries = []
    try {
      const kept = JSON.parse((this.storage && this.storage.getItem(this.key)) || '[]')
      this.entries = Array.isArray(kept) ? kept.filter((e) => e && typeof e.key === 'string' && e.body && typeof e.body.vendor === 'string') : []
    } catch {
      this.entries = []
    }
  }

  get count () {
    return this.entries.length
  }

  /** The queued tap of `vendor`, if any (the latest). */
  pendingFor (vendor) {
    return [...this.entries].reverse().find((e) => e.body.vendor === vendor) || null
  }

  save () {
    if (!this.storage) return
    try {
      if (this.entries.length) this.storage.setItem(this.key, JSON.stringify(this.entries))
      else this.storage.removeItem(this.key)
    } catch {}
  }

  /** One tap: `vendor` (a directory id or a free-text name) arrived or runs late. */
  tap (vendor, status, eta = null) {
    const body = { vendor, status, at: this.now().toISOString() }
    if (eta) body.eta = eta
    this.entries.push({ key: newKey(), body })
    this.save()
    this.onChange()
    return this.kick()
  }

  kick () {
    if (this.sending || !this.entries.length) return Promise.resolve()
    this.timer = null
    return this.flush()
  }

  retryLater () {
    const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)]
    this.failures += 1
    if (this.timer === null) this.timer = this.schedule(() => { this.timer = null; return this.kick() }, wait)
  }

  async flush () {
    this.sending = true
    try {
      while (this.entries.length) {
        const entry = this.entries[0]
        let response
        try {
          response = await this.fetcher(`/api/weddings/${encodeURIComponent(this.wedding)}/day/check-ins`, {
            method: 'POST',
            headers: {
              Authorization: `Bearer ${this.token()}`,
              'Content-Type': 'application/json',
              'Idempotency-Key': entry.key
            },
            body: JSON.stringify(entry.body)
          })
        } catch {
          this.retryLater() // offline: keep it, try again
          return
        }
        if (response.status === 401 || response.status === 429 || response.status >= 500) {
          this.retryLater()
          return
        }
        this.entries.shift()
        this.save()
        this.failures = 0
        if (!response.ok) {
          const problem = await response.json().catch(() => ({}))
          // The reason in words: the field's message ("you may not check this vendor in"),
          // else the detail.
          const named = Array.isArray(problem.errors) && problem.errors[0] && problem.errors[0].message
          this.onRefused(entry, named || problem.detail || `HTTP ${response.status}`)
        }
        this.onChange()
      }
    } finally {
      this.sending = false
      this.onChange()
    }
  }
}

/** The form key of a vendor's check-in buttons. */
export const checkInForm = (vendor) => `check-in-${vendor}`

/** The day's state from the server, and the device's queue of check-ins. `onRefused(form,
 *  errors)`: a tap the server refused for good, to show beside its button. */
export class WeddingDay {
  constructor ({ wedding, sub, token, onChange, onRefused = () => {}, fetcher, storage, now, schedule }) {
    this.wedding = wedding
    this.token = token
    this.onChange = onChange
    this.fetcher = fetcher || ((...args) => fetch(...args))
    this.state = null
    this.queue = new CheckInQueue({
      wedding,
      sub,
      token,
      fetcher: this.fetcher,
      storage,
      now,
      schedule,
      onChange: () => onChange(),
      onRefused: (entry, reason) => onRefused(checkInForm(entry.body.vendor), [{ field: entry.body.status, message: `Check-in refused: ${reason}.` }])
    })
  }

  async refresh () {
    let response
    try {
      response = await this.fetcher(`/api/weddings/${encodeURIComponent(this.wedding)}/day`, {
        headers: { Authorization: `Bearer ${this.token()}` }
      })
    } catch {
      return // offline: keep what was shown
    }
    if (!response.ok) return
    this.state = await response.json().catch(() => null)
    this.onChange()
  }

  async tap (vendor, status) {
    await this.queue.tap(vendor, status)
    await this.refresh()
  }

  /** The planner's switch (`PUT .../day/mode`: `auto`, `on` or `off`); null, or the
   *  refusal in words. */
  async setMode (mode) {
    let response
    try {
      response = await this.fetcher(`/api/weddings/${encodeURIComponent(this.wedding)}/day/mode`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${this.token()}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ mode })
      })
    } catch {
      return 'the server cannot be reached'
    }
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}))
      const named = Array.isArray(problem.errors) && problem.errors[0] && problem.errors[0].message
      return named || problem.detail || `HTTP ${response.status}`
    }
    await this.refresh()
    return null
  }
}

function clock (iso) {
  const at = new Date(iso)
  return Number.isNaN(at.getTime()) ? iso : at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
}

const STATE = { upcoming: 'Upcoming', in_progress: 'In progress', late: 'Late', done: 'Done' }

/** What a vendor's row says of its check-in: the server's, else the tap still queued here. */
export function checkInText (vendor, pending) {
  if (pending) return `${STATUS[pending.body.status]} (tapped at ${clock(pending.body.at)}, waiting to send)`
  const shown = vendor.check_in
  if (!shown) return 'Not checked in'
  return `${STATUS[shown.status] || shown.status}, reported at ${clock(shown.at)}`
}

/**
 * The day's vendors as a phone shows them: the caller's own vendors first (`yours`), each
 * with whether its check-in buttons show. The server says who may tap (`may_check_in`); a
 * vendor's member taps only their own vendor, though the server lets any vendor check in a
 * vendor that names no members.
 */
export function dayVendors (vendors, role) {
  const own = vendors.filter((v) => v.yours)
  const others = vendors.filter((v) => !v.yours)
  const mine = role === 'vendor' && own.length > 0
  return [...own, ...others].map((vendor) => ({
    vendor,
    mayTap: Boolean(vendor.may_check_in) && (!mine || vendor.yours)
  }))
}

/** What a caterer cooks for, in words (the day's `catering`: counts, no one's name):
 *  "For 3 people: fish 1, beef 1, no meal chosen 1. Dietary: vegan 1, nut allergy 1." */
export function cateringWords (catering) {
  if (!catering) return ''
  const list = (counts) => Object.entries(counts || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k, n]) => `${k} ${n}`)
  const meals = list(catering.meals)
  if (catering.no_meal) meals.push(`no meal chosen ${catering.no_meal}`)
  const dietary = list(catering.dietary)
  const people = `${catering.people} ${catering.people === 1 ? 'person' : 'people'}`
  return `For ${people}${meals.length ? `: ${meals.join(', ')}` : ''}.${dietary.length ? ` Dietary: ${dietary.join(', ')}.` : ''}`
}

const MODES = [['auto', 'Automatic (on the wedding day)'], ['on', 'On'], ['off', 'Off']]

/** The planner's day-of mode switch above the timeline (the server lets only the planner
 *  switch it): automatic (the day's window), on or off; a refusal is said beside it. */
export function dayModeSwitch (app) {
  const day = app.day
  const state = day && day.state
  if (!state || app.access.role !== 'planner') return nothing
  const f = app.errors.of('day-mode')
  const change = async (e) => {
    const mode = e.target.value
    app.errors.clear('day-mode')
    const refused = await day.setMode(mode)
    if (refused) app.refuse('day-mode', [{ field: 'mode', message: `Not switched: ${refused}.` }])
    else app.say(`Day-of mode: ${MODES.find(([v]) => v === mode)[1]}.`)
  }
  return html`<div class="day-mode" data-form="day-mode">
    <label>Day-of mode <select name="mode" aria-describedby=${f.describedBy('mode', 'day-mode-said')} aria-invalid=${f.invalid('mode')} @change=${change}>
      ${MODES.map(([v, t]) => html`<option value=${v} .selected=${v === state.mode}>${t}</option>`)}</select></label>
    <span class="muted" id="day-mode-said">${state.active ? 'The day’s panel is on.' : 'The day’s panel is off.'}</span>
    ${f.note('mode')}
  </div>`
}

/** The day's panel above the timeline, while day-of mode is on. */
export function dayPanel (app) {
  const day = app.day
  const state = day && day.state
  if (!state || !state.active) return nothing
  return html`<section class="wedding-day" aria-labelledby="day-title">
    <h2 id="day-title">Today${state.day ? html` <span class="muted">${app.local.day(state.day)}</span>` : nothing}</h2>
    <ul class="day-vendors">
      ${dayVendors(state.vendors, app.access.role).map(({ vendor: v, mayTap }) => {
        const form = checkInForm(v.vendor)
        const f = app.errors.of(form)
        const tap = (status) => { app.errors.clear(form); day.tap(v.vendor, status) }
        const button = (status) => html`<button type="button" name=${status} aria-label=${`${v.name}: ${STATUS[status]}`}
          aria-describedby=${f.describedBy(status)} @click=${() => tap(status)}>${STATUS[status]}</button>`
        return html`<li data-vendor=${v.vendor} data-form=${form}>
          <strong>${v.name}</strong>
          <span class="check-in" role="status">${checkInText(v, day.queue.pendingFor(v.vendor))}</span>
          ${mayTap ? html`${button('arrived')} ${button('running_late')}` : nothing}
          ${f.note('arrived')}${f.note('running_late')}
          ${v.catering ? html`<p class="catering muted">${cateringWords(v.catering)}</p>` : nothing}
        </li>`
      })}
    </ul>
    <ol class="day-items">
      ${state.items.map((i) => html`<li data-item=${i.id} data-state=${i.state}>
        ${app.local.time(i.start)} ${i.title} <span class="state">${STATE[i.state] || i.state}</span>
      </li>`)}
    </ol>
  </section>`
}
