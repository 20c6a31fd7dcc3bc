// The wedding's members (issue 53, point 5), in the Share panel for roles with
// `members.manage`: each member with their role, a role picker to change it
// (PUT /members/{sub}) and Remove (POST /members/{sub}/remove; a second press confirms).
// A vendor's row says what they see of the guest list, with a picker to change it (PATCH
// /members/{sub} `guest_fields`: their open sessions start again with the new choice).
// The server's ceiling decides what a role may grant or remove: its refusal shows beside the
// control it came from. Calendar links (`calendar.tokens`): the wedding's feed tokens listed,
// a new one made with a label (its link shown once), each revocable.

import { html, nothing } from 'lit-html'
import { live } from 'lit-html/directives/live.js'
import { repeat } from 'lit-html/directives/repeat.js'
import { call, reasonOf } from './api.js'
import { GUEST_FIELDS, ROLES } from './invites.js'

const refusalOf = (answer, field, prefix) => {
  const named = answer.body && Array.isArray(answer.body.errors) ? answer.body.errors[0] : null
  return { field, message: `${prefix}: ${(named && named.message) || reasonOf(answer)}.` }
}

export class Members {
  constructor ({ wedding, sub, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/members`
    this.sub = sub
    this.token = token
    this.onChange = onChange
    this.list = null
    this.removing = null // the member whose Remove was pressed once
  }

  async load () {
    const answer = await call(this.token, this.base, 'GET')
    this.list = answer.status === 200 && answer.body && Array.isArray(answer.body.members) ? answer.body.members : []
    this.onChange()
  }

  /** Give `member` the role `role`; null, or {field, message} of the refusal. */
  async setRole (member, role) {
    const body = { role, name: member.name || member.sub }
    if (typeof member.email === 'string') body.email = member.email
    const answer = await call(this.token, this.base, 'PUT', `/${encodeURIComponent(member.sub)}`, body)
    await this.load()
    return answer.status === 200 || answer.status === 201 ? null : refusalOf(answer, 'role', 'Not changed')
  }

  /** Let vendor `member` see `fields` of the guest list; null, or {field, message}. */
  async setGuestFields (member, fields) {
    const answer = await call(this.token, this.base, 'PATCH', `/${encodeURIComponent(member.sub)}`, { guest_fields: fields })
    await this.load()
    return answer.status === 200 ? null : refusalOf(answer, 'guest_fields', 'Not changed')
  }

  /** Remove `member` (the first press asks again); null, or {field, message}. */
  async remove (member) {
    if (this.removing !== member.sub) {
      this.removing = member.sub
      this.onChange()
      return null
    }
    this.removing = null
    const answer = await call(this.token, this.base, 'POST', `/${encodeURIComponent(member.sub)}/remove`)
    await this.load()
    return answer.status === 200 ? null : refusalOf(answer, 'remove', 'Not removed')
  }
}

export class CalendarTokens {
  constructor ({ wedding, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/calendar-tokens`
    this.token = token
    this.onChange = onChange
    this.list = null
    this.made = null // { url, label } of the link just made (shown only now)
  }

  async load () {
    const answer = await call(this.token, this.base, 'GET')
    this.list = answer.status === 200 && answer.body && Array.isArray(answer.body.tokens) ? answer.body.tokens : []
    this.onChange()
  }

  /** Make a calendar link labelled `label`; null, or {field, message} of the refusal. */
  async create (label) {
    const answer = await call(this.token, this.base, 'POST', '', { label })
    if (answer.status === 201) {
      this.made = { url: answer.body.url, label, id: answer.body.id }
      await this.load()
      return null
    }
    return refusalOf(answer, 'label', 'No link made')
  }

  async revoke (id) {
    const answer = await call(this.token, this.base, 'DELETE', `/${encodeURIComponent(id)}`)
    if (this.made && this.made.id === id) this.made = null
    await this.load()
    return answer.status === 200 || answer.status === 204 ? null : reasonOf(answer)
  }
}

/** The members section of the Share panel. Each member's row is theirs for as long as it
 *  shows (keyed by sub): when the list read back after a change holds another member (the
 *  person managing it, registered by their first call, or someone added meanwhile), the rows
 *  below do not pass their controls on to the next member, so a picker being used never
 *  becomes another member's (or the disabled one of the person themself), and each picker
 *  shows its member's role as the server has it (`live`: a picker once changed by hand no
 *  longer follows its options' `selected` attributes). */
export function membersView (ctx) {
  const members = ctx.members
  if (members.list === null) return html`<section><h3>Members</h3><p class="muted">Loading…</p></section>`
  const change = async (member, e) => {
    const form = `member-${member.sub}`
    const refused = await members.setRole(member, e.target.value)
    if (refused) {
      e.target.value = member.role // the role stays as the server has it
      ctx.refuse(form, [refused])
    } else {
      ctx.errors.clear(form)
      ctx.say(`${member.name || member.sub} is now ${e.target.value}.`)
    }
  }
  const sees = async (member, e) => {
    const form = `member-${member.sub}`
    const refused = await members.setGuestFields(member, e.target.value)
    if (refused) {
      e.target.value = member.guest_fields || 'names_meals'
      ctx.refuse(form, [refused])
    } else {
      ctx.errors.clear(form)
      const text = (GUEST_FIELDS.find(([v]) => v === e.target.value) || ['', e.target.value])[1]
      ctx.say(`${member.name || member.sub} now sees of the guest list: ${text.toLocaleLowerCase()}.`)
    }
  }
  const remove = async (member) => {
    const form = `member-${member.sub}`
    const asked = members.removing === member.sub
    const refused = await members.remove(member)
    if (refused) ctx.refuse(form, [refused])
    else if (asked) { ctx.errors.clear(form); ctx.say(`${member.name || member.sub} was removed from the wedding.`) }
  }
  return html`<section aria-labelledby="members-title"><h3 id="members-title">Members</h3>
    <ul class="rows members" aria-label="Members of the wedding">${repeat(members.list, (m) => m.sub, (m) => {
      const form = `member-${m.sub}`
      const f = ctx.errors.of(form)
      const who = m.name || m.sub
      const you = m.sub === members.sub
      return html`<li class="row" data-form=${form} data-member=${m.sub}>
        <div class="who"><strong>${who}${you ? ' (you)' : ''}</strong>${m.email ? html`<span class="muted">${m.email}</span>` : nothing}${m.email_confirmed === false ? html`<span class="muted unconfirmed">${m.email ? 'email not confirmed yet' : 'has not confirmed an email yet'}</span>` : nothing}</div>
        <div class="row-actions">
          <label>Role <select name="role" aria-label=${`Role of ${who}`} ?disabled=${you}
            aria-describedby=${f.describedBy('role')} aria-invalid=${f.invalid('role')} @change=${(e) => change(m, e)}>
            ${ROLES.map(([v, t]) => html`<option value=${v} .selected=${live(v === m.role)}>${t}</option>`)}
            ${ROLES.some(([v]) => v === m.role) ? nothing : html`<option value=${m.role} .selected=${live(true)}>${m.role}</option>`}
          </select></label>${f.note('role')}
          ${m.role === 'vendor'
            ? html`<label>Sees of the guest list <select name="guest_fields" aria-label=${`What ${who} sees of the guest list`}
                aria-describedby=${f.describedBy('guest_fields')} aria-invalid=${f.invalid('guest_fields')} @change=${(e) => sees(m, e)}>
                ${GUEST_FIELDS.map(([v, t]) => html`<option value=${v} .selected=${live(v === (m.guest_fields || 'names_meals'))}>${t}</option>`)}
              </select></label>${f.note('guest_fields')}`
            : nothing}
          ${you
            ? nothing
            : html`<button type="button" name="remove" class="danger" aria-label=${members.removing === m.sub ? `Really remove ${who}?` : `Remove ${who}`}
                aria-describedby=${f.describedBy('remove')} @click=${() => remove(m)}>${members.removing === m.sub ? 'Really remove?' : 'Remove'}</button>${f.note('remove')}`}
        </div>
      </li>`
    })}</ul>
  </section>`
}

/** The calendar links section of the Share panel. */
export function calendarView (ctx) {
  const cal = ctx.calendarTokens
  const f = ctx.errors.of('calendar')
  const make = async (e) => {
    e.preventDefault()
    const label = String(new FormData(e.target).get('label') || '').trim()
    if (label.length > 100) { ctx.refuse('calendar', [{ field: 'label', message: 'A label is at most 100 characters.' }]); return }
    const refused = await cal.create(label || 'planner app')
    if (refused) { ctx.refuse('calendar', [refused]); return }
    ctx.errors.clear('calendar')
    e.target.reset()
  }
  const revoke = async (t) => {
    const refused = await cal.revoke(t.id)
    if (refused) ctx.refuse('calendar', [{ field: 'label', message: `Not revoked: ${refused}.` }])
    else ctx.say(`Calendar link ${t.label || t.id} revoked.`)
  }
  return html`<section aria-labelledby="cal-title"><h3 id="cal-title">Calendar</h3>
    <p class="muted">Subscribe to the timeline in any calendar app; a link works until revoked.</p>
    ${cal.made
      ? html`<div class="field"><label>Calendar link <input name="url" readonly .value=${cal.made.url} @focus=${(e) => e.target.select()}></label>
          <button type="button" @click=${() => navigator.clipboard?.writeText(cal.made.url).then(() => ctx.say('Calendar link copied.'), () => ctx.say('Select the link and copy it.'))}>Copy the link</button></div>`
      : nothing}
    <form class="add-form" data-form="calendar" novalidate @submit=${make} @input=${f.edited} aria-label="A feed for a calendar app">
      <div class="field"><label>Label <input name="label" maxlength="120" placeholder="Ann’s phone"
        aria-describedby=${f.describedBy('label')} aria-invalid=${f.invalid('label')}></label>${f.note('label')}</div>
      <button type="submit" name="calendar">Get a calendar link</button>
    </form>
    ${cal.list && cal.list.length
      ? html`<ul class="rows" aria-label="Open calendar feeds">${cal.list.map((t) => html`<li class="row" data-token=${t.id}>
          <div class="who"><strong>${t.label || 'Calendar link'}</strong><span class="muted">${ctx.local ? ctx.local.dateTime(t.created_at) : t.created_at}</span></div>
          <div class="row-actions"><button type="button" class="danger" aria-label=${`Revoke ${t.label || t.id}`} @click=${() => revoke(t)}>Revoke</button></div>
        </li>`)}</ul>`
      : nothing}
  </section>`
}
