// Push notifications on this device: the switch that subscribes this browser to Web Push
// (the service worker's push handler shows them), a test notification, and the person's
// push settings (what is pushed: mentions, urgent messages, emergencies, reminders; quiet
// hours: emergencies are never held).
// Routes: GET /api/push/vapid-public-key, POST/DELETE .../push-subscriptions,
// POST .../push-subscriptions/{id}/test, GET/PUT .../push-settings. The access answer's
// `push_key` is the server's key: a subscription made with another key is made again.

import { html, nothing } from 'lit-html'
import { call, reasonOf } from './api.js'

const KEPT = 'crdt-server.push:'

function bytesOf (base64url) {
  const text = atob(base64url.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - base64url.length % 4) % 4))
  return Uint8Array.from(text, (c) => c.charCodeAt(0))
}

function sameKey (subscription, key) {
  const held = subscription.options && subscription.options.applicationServerKey
  if (!held || !key) return false
  const a = new Uint8Array(held)
  const b = bytesOf(key)
  return a.length === b.length && a.every((x, i) => x === b[i])
}

export class DevicePush {
  constructor ({ wedding, sub, token, key, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}`
    this.kept = `${KEPT}${wedding}:${sub}`
    this.token = token
    this.key = key || null
    this.onChange = onChange
    this.supported = 'serviceWorker' in navigator && 'PushManager' in self && 'Notification' in self
    this.on = Boolean(localStorage.getItem(this.kept))
    this.settings = null
    this.loading = null
  }

  request (method, path, body) {
    return call(this.token, this.base, method, path, body)
  }

  get id () { return localStorage.getItem(this.kept) }

  /** The server's key changed (the access answer): subscribe again with the new one. */
  async keyIs (key) {
    if (!key || key === this.key) return
    this.key = key
    if (!this.on || !this.supported) return
    const registration = await navigator.serviceWorker.ready
    const held = await registration.pushManager.getSubscription()
    if (held && !sameKey(held, key)) {
      await held.unsubscribe().catch(() => {})
      await this.enable().catch(() => {})
    }
  }

  /** Turn push on for this device: the browser asks for permission, subscribes, and the
   *  server registers it; the reason when it did not work, else null. */
  async enable () {
    if (!this.supported) return 'this browser cannot receive push notifications (on iPhone: add the app to the home screen first)'
    if (await Notification.requestPermission() !== 'granted') return 'notifications are blocked for this site'
    if (!this.key) {
      const { status, body } = await call(this.token, '', 'GET', '/api/push/vapid-public-key')
      if (status !== 200 || !body) return reasonOf({ status, body })
      this.key = body.key
    }
    let subscription
    try {
      const registration = await navigator.serviceWorker.ready
      subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytesOf(this.key) })
    } catch (error) {
      return `the browser's push service refused (${error && error.name ? error.name : 'error'})`
    }
    const { status, body } = await this.request('POST', '/push-subscriptions', subscription.toJSON())
    if ((status !== 201 && status !== 200) || !body || !body.id) return reasonOf({ status, body })
    localStorage.setItem(this.kept, body.id)
    this.on = true
    this.onChange()
    return null
  }

  /** Turn push off for this device. */
  async disable () {
    const id = this.id
    if (id) await this.request('DELETE', `/push-subscriptions/${encodeURIComponent(id)}`)
    localStorage.removeItem(this.kept)
    this.on = false
    if (this.supported) {
      const registration = await navigator.serviceWorker.ready
      const held = await registration.pushManager.getSubscription()
      if (held) await held.unsubscribe().catch(() => {})
    }
    this.onChange()
  }

  /** Ask the server for a test notification to this device; the reason it failed, or null. */
  async test () {
    const id = this.id
    if (!id) return 'push is off on this device'
    const answer = await this.request('POST', `/push-subscriptions/${encodeURIComponent(id)}/test`)
    if (answer.status === 404) { localStorage.removeItem(this.kept); this.on = false; this.onChange() }
    return answer.status === 202 ? null : reasonOf(answer)
  }

  loadSettings () {
    this.loading = this.loading || (async () => {
      const { status, body } = await this.request('GET', '/push-settings')
      if (status === 200 && body) { this.settings = body; this.onChange() }
    })()
    return this.loading
  }

  async saveSettings (settings) {
    const answer = await this.request('PUT', '/push-settings', settings)
    if (answer.status === 200) { this.settings = answer.body; this.onChange(); return null }
    return reasonOf(answer)
  }
}

/** The quiet hours a settings form holds (its `quiet_start` and `quiet_end`, in this
 *  browser's zone): `{ quietHours }` (null: none), or `{ refusal }` when one time is given
 *  without the other (that would save no quiet hours at all). */
export function quietHoursOf (v) {
  const start = String(v.get('quiet_start') || '')
  const end = String(v.get('quiet_end') || '')
  if (Boolean(start) !== Boolean(end)) {
    const field = start ? 'quiet_end' : 'quiet_start'
    return { refusal: { field, message: `Quiet hours need both times: type when they ${start ? 'end' : 'start'}, or clear both for none.` } }
  }
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
  return { quietHours: start && end ? { start, end, zone } : null }
}

/** The quiet hours' two fields of a settings form whose errors are `f`. */
export function quietHoursFields (f, quiet) {
  return html`<div class="field"><label>Quiet from <input type="time" name="quiet_start" .value=${quiet ? quiet.start : ''}
      aria-describedby=${f.describedBy('quiet_start')} aria-invalid=${f.invalid('quiet_start')}></label>
    <label>until <input type="time" name="quiet_end" .value=${quiet ? quiet.end : ''}
      aria-describedby=${f.describedBy('quiet_end')} aria-invalid=${f.invalid('quiet_end')}></label>${f.note('quiet_start')}${f.note('quiet_end')}</div>`
}

/** The push part of the notification settings. */
export function pushView (ctx) {
  const push = ctx.push
  if (!push) return nothing
  if (!push.settings && !push.loading) push.loadSettings()
  const flip = async (e) => {
    const wanted = e.target.checked
    const refused = wanted ? await push.enable() : (await push.disable(), null)
    if (refused) { e.target.checked = false; ctx.refuse('push-settings', [{ field: 'device', message: `Push is off: ${refused}.` }]) }
    else { ctx.errors.clear('push-settings'); ctx.say(wanted ? 'Push notifications are on for this device.' : 'Push notifications are off for this device.') }
  }
  const test = async () => {
    const refused = await push.test()
    if (refused) ctx.refuse('push-settings', [{ field: 'device', message: `No test sent: ${refused}.` }])
    else ctx.say('A test notification is on its way.')
  }
  const save = async (e) => {
    e.preventDefault()
    const v = new FormData(e.target)
    const { quietHours, refusal } = quietHoursOf(v)
    if (refusal) { ctx.refuse('push-settings', [refusal]); return }
    const refused = await push.saveSettings({
      mentions: v.get('mentions') === 'on',
      urgent: v.get('urgent') === 'on',
      emergencies: v.get('emergencies') === 'on',
      reminders: v.get('reminders') === 'on',
      quiet_hours: quietHours
    })
    if (refused) ctx.refuse('push-settings', [{ field: 'quiet_start', message: `Not saved: ${refused}.` }])
    else { ctx.errors.clear('push-settings'); ctx.say('Push settings saved.') }
  }
  const f = ctx.errors.of('push-settings')
  const s = push.settings
  const quiet = s && s.quiet_hours
  return html`<fieldset class="push-settings" data-form="push-settings">
    <legend>Push notifications</legend>
    <label class="check"><input type="checkbox" name="device" ?checked=${push.on} ?disabled=${!push.supported}
      aria-describedby=${f.describedBy('device')} aria-invalid=${f.invalid('device')} @change=${flip}> Push notifications on this device</label>
    ${push.supported ? nothing : html`<p class="muted">This browser cannot receive them here. On an iPhone or iPad, add the app to the home screen first.</p>`}
    <button type="button" ?disabled=${!push.on} @click=${test}>Send me a test notification</button>
    ${f.note('device')}
    ${s
      ? html`<form novalidate @submit=${save} @input=${f.edited} aria-label="Push settings">
          <label class="check"><input type="checkbox" name="mentions" ?checked=${s.mentions}> Mentions</label>
          <label class="check"><input type="checkbox" name="urgent" ?checked=${s.urgent}> Urgent messages</label>
          <label class="check"><input type="checkbox" name="emergencies" ?checked=${s.emergencies}> Emergencies</label>
          <label class="check"><input type="checkbox" name="reminders" ?checked=${s.reminders !== false}> Reminders (tasks and payments due)</label>
          ${quietHoursFields(f, quiet)}
          <p class="muted">Quiet hours hold pushes until they end, except emergencies.</p>
          <button type="submit">Save push settings</button>
        </form>`
      : html`<p class="muted">Loading…</p>`}
  </fieldset>`
}
