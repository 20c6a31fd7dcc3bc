// Texts (SMS) to this person's phone: add a number, type the code texted to it, choose what
// is texted (emergencies always; mentions, urgent messages, the wedding day's alerts) and
// quiet hours, or remove the number. Shown only where the server sends texts (`sending`).
// Routes: GET/POST/DELETE /api/session/phone, POST /api/session/phone/verify,
// PUT /api/session/phone/choices (the member's token: one wedding's member).

import { html, nothing } from 'lit-html'
import { call, fieldReasonOf } from './api.js'
import { quietHoursFields, quietHoursOf } from './push.js'

export class PhoneTexts {
  constructor ({ token, onChange }) {
    this.token = token
    this.onChange = onChange
    this.state = null
    this.loading = null
  }

  request (method, path, body) {
    return call(this.token, '/api/session/phone', method, path, body)
  }

  load () {
    this.loading = this.loading || (async () => {
      const { status, body } = await this.request('GET')
      if (status === 200 && body) { this.state = body; this.onChange() }
    })()
    return this.loading
  }

  async reload () {
    this.loading = null
    await this.load()
  }

  /** Ask for a code texted to `phone`; the refusal in words, or null. */
  async add (phone) {
    const answer = await this.request('POST', '', { phone })
    if (answer.status !== 202) return fieldReasonOf(answer)
    await this.reload()
    return null
  }

  async verify (code) {
    const answer = await this.request('POST', '/verify', { code })
    if (answer.status !== 200) return fieldReasonOf(answer)
    this.state = answer.body
    this.onChange()
    return null
  }

  async remove () {
    const answer = await this.request('DELETE')
    if (answer.status !== 204) return fieldReasonOf(answer)
    await this.reload()
    return null
  }

  async choose (choices) {
    const answer = await this.request('PUT', '/choices', choices)
    if (answer.status !== 200) return fieldReasonOf(answer)
    this.state = answer.body
    this.onChange()
    return null
  }
}

/** The texts part of the notification settings (nothing where the server sends none). */
export function textsView (ctx) {
  const texts = ctx.texts
  if (!texts) return nothing
  if (!texts.state && !texts.loading) texts.load()
  const s = texts.state
  if (!s || !s.sending) return nothing
  const f = ctx.errors.of('texts')
  const done = (refused, field, said) => {
    if (refused) ctx.refuse('texts', [{ field, message: `${refused}.` }])
    else { ctx.errors.clear('texts'); ctx.say(said) }
  }
  const add = async (e) => {
    e.preventDefault()
    const phone = String(new FormData(e.target).get('phone') || '').replace(/[\s()-]/g, '')
    done(await texts.add(phone), 'phone', `A code is on its way to ${phone}.`)
  }
  const verify = async (e) => {
    e.preventDefault()
    const code = String(new FormData(e.target).get('code') || '').trim()
    done(await texts.verify(code), 'code', 'Your number is verified.')
  }
  const remove = async () => done(await texts.remove(), 'phone', 'Your number is removed: nothing more is texted to it.')
  const save = async (e) => {
    e.preventDefault()
    const v = new FormData(e.target)
    const { quietHours, refusal } = quietHoursOf(v)
    if (refusal) { ctx.refuse('texts', [refusal]); return }
    done(await texts.choose({
      mentions: v.get('mentions') === 'on',
      urgent: v.get('urgent') === 'on',
      day: v.get('day') === 'on',
      quiet_hours: quietHours
    }), 'quiet_start', 'Text settings saved.')
  }
  const c = s.choices
  const quiet = c.quiet_hours
  return html`<fieldset class="texts-settings" data-form="texts">
    <legend>Texts to your phone</legend>
    ${s.phone
      ? html`<p>Texts go to <strong>${s.phone}</strong>${s.stopped ? ' (you texted STOP: text START to get them again)' : ''}.
          <button type="button" class="link" @click=${remove}>Remove this number</button></p>`
      : html`<p class="muted">Emergencies and the day's alerts reach a phone by text even without a data connection.</p>`}
    ${f.note('phone')}
    <form novalidate @submit=${add} @input=${f.edited} aria-label="Add a phone number">
      <div class="field"><label>${s.phone ? 'Another number' : 'Your mobile number'} <input type="tel" name="phone" autocomplete="tel"
        placeholder="+44 7700 900123" aria-describedby=${f.describedBy('phone')} aria-invalid=${f.invalid('phone')}></label></div>
      <button type="submit">Text me a code</button>
    </form>
    ${s.pending
      ? html`<form novalidate @submit=${verify} @input=${f.edited} aria-label="Verify your phone number">
          <div class="field"><label>Code texted to ${s.pending} <input name="code" inputmode="numeric" autocomplete="one-time-code"
            aria-describedby=${f.describedBy('code')} aria-invalid=${f.invalid('code')}></label>${f.note('code')}</div>
          <button type="submit">Verify</button>
        </form>`
      : nothing}
    ${s.phone
      ? html`<form novalidate @submit=${save} @input=${f.edited} aria-label="Text settings">
          <p class="muted">Emergencies are always texted.</p>
          <label class="check"><input type="checkbox" name="day" ?checked=${c.day}> The wedding day's alerts (a vendor missing, a delay moving your items)</label>
          <label class="check"><input type="checkbox" name="mentions" ?checked=${c.mentions}> Mentions</label>
          <label class="check"><input type="checkbox" name="urgent" ?checked=${c.urgent}> Urgent messages</label>
          ${quietHoursFields(f, quiet)}
          <button type="submit">Save text settings</button>
        </form>`
      : nothing}
  </fieldset>`
}
