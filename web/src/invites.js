// Inviting people (issue 50, point 7), in the Share panel for roles with `members.invite`:
// a link per invitation (the role it grants, who it is for), emailed by the server when an
// address is given (within the wedding's daily count; the page says when it was not), or
// copied and sent by the person however they like; the open invitations, each revocable. The server's ceiling decides
// what a role may grant: its refusal shows beside the control. A vendor's invitation says
// what they see of the guest list (`guest_fields`): meals and dietary needs are suggested for
// a caterer (the wedding's vendor directory says their category, or their name does), the
// counts only for anyone else; the couple changes it later in Members.

import { html, nothing } from 'lit-html'
import { live } from 'lit-html/directives/live.js'
import { call, reasonOf } from './api.js'

export const ROLES = [['planner', 'Planner'], ['couple', 'Partner (the couple)'], ['family', 'Family'], ['vendor', 'Vendor'], ['friend', 'Friend']]

/** What a vendor may see of the guest list (the server's `guest_fields`), in words. */
export const GUEST_FIELDS = [
  ['names_meals', 'Names with meals and dietary needs'],
  ['names', 'Names only'],
  ['counts', 'Counts only (headcount, meals, dietary needs)'],
  ['nothing', 'Nothing']
]

export const guestFieldsText = (value) => (GUEST_FIELDS.find(([v]) => v === value) || [null, 'what vendors see'])[1]

const CATERING = /cater|chef|kitchen|food/i

/** What to suggest a vendor sees of the guest list: meals and dietary needs for a caterer
 *  (the directory's record of that name says its category, else the name itself), the
 *  counts only for anyone else. `vendors`: [{name, category}] of the wedding's directory. */
export function suggestedGuestFields (name, vendors = []) {
  const wanted = (name || '').trim().toLocaleLowerCase()
  const record = wanted ? vendors.find((v) => (v.name || '').trim().toLocaleLowerCase() === wanted) : null
  const category = record && record.category ? record.category : ''
  return CATERING.test(category) || (!category && CATERING.test(wanted)) ? 'names_meals' : 'counts'
}

/** The wedding's vendor directory ([{name, category}]) as the timeline holds it, if read. */
function vendorRecords (ctx) {
  const doc = ctx.docs && ctx.docs.timeline
  if (!doc || typeof doc.getMap !== 'function') return []
  const found = []
  doc.getMap('vendors').forEach((entry) => {
    if (entry && typeof entry.get === 'function') found.push({ name: entry.get('name'), category: entry.get('category') })
  })
  return found
}

export class Invites {
  constructor ({ wedding, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/invitations`
    this.token = token
    this.onChange = onChange
    this.list = null
    this.made = null // the invitation just made: { url, role, name, emailed, because }
    this.role = ROLES[0][0] // the form's role, its name typed so far, and a choice of what
    this.name = '' // a vendor sees made by hand (null: the suggestion)
    this.fields = null
  }

  async load () {
    const answer = await call(this.token, this.base, 'GET', '?limit=50')
    this.list = answer.status === 200 && answer.body ? answer.body.invitations : []
    this.onChange()
  }

  /** Make an invitation; null, or {field, message} of the refusal. */
  async invite (role, name, email, guestFields) {
    const body = { role }
    if (name) body.name = name
    if (email) body.email = email
    if (role === 'vendor' && guestFields) body.guest_fields = guestFields
    const answer = await call(this.token, this.base, 'POST', '', body)
    if (answer.status === 201) {
      this.made = { url: answer.body.url, role, name, email, emailed: answer.body.emailed, because: answer.body.not_sent_because }
      this.fields = null
      await this.load()
      return null
    }
    const named = answer.body && Array.isArray(answer.body.errors) ? answer.body.errors[0] : null
    return { field: named && ['name', 'email', 'guest_fields'].includes(named.field) ? named.field : 'role', message: `Not invited: ${(named && named.message) || reasonOf(answer)}.` }
  }

  async revoke (id) {
    const answer = await call(this.token, this.base, 'DELETE', `/${encodeURIComponent(id)}`)
    await this.load()
    return answer.status === 204 || answer.status === 200 ? null : reasonOf(answer)
  }
}

const NOT_SENT = {
  daily_limit: 'this wedding sent all the invitation emails it may send today',
  unverified_creator: 'your email address is not verified yet (open the sign-in link we sent you)',
  email_off: 'this server sends no email'
}

/** What became of the invitation's email, in words. */
export function emailNote (made) {
  if (made.emailed === 'queued') return `We are emailing the link to ${made.email}.`
  return `Not emailed: ${NOT_SENT[made.because] || 'it could not be sent'}. Copy the link and send it yourself.`
}

export function invitesView (ctx) {
  const invites = ctx.invites
  const f = ctx.errors.of('invite')
  const submit = async (e) => {
    e.preventDefault()
    const v = new FormData(e.target)
    const refused = await invites.invite(String(v.get('role')), String(v.get('name') || '').trim(), String(v.get('email') || '').trim(), String(v.get('guest_fields') || ''))
    if (refused) ctx.refuse('invite', [refused])
    else ctx.errors.clear('invite')
  }
  const suggested = suggestedGuestFields(invites.name, vendorRecords(ctx))
  const fields = invites.fields || suggested
  const typed = (e) => { invites.name = e.target.value; invites.onChange() }
  const picked = (e) => { invites.role = e.target.value; invites.onChange() }
  const chose = (e) => { invites.fields = e.target.value; invites.onChange() }
  return html`<section aria-labelledby="invite-title"><h3 id="invite-title">Invite people</h3>
    <form class="add-form" data-form="invite" novalidate @submit=${submit} aria-label="Invite someone">
      <div class="field"><label>Role <select name="role" aria-describedby=${f.describedBy('role')} aria-invalid=${f.invalid('role')} @change=${picked}>
        ${ROLES.map(([v, t]) => html`<option value=${v} .selected=${live(v === invites.role)}>${t}</option>`)}</select></label>${f.note('role')}</div>
      <div class="field"><label>Their name <input name="name" maxlength="256" placeholder="Priya" @input=${typed}
        aria-describedby=${f.describedBy('name')} aria-invalid=${f.invalid('name')}></label>${f.note('name')}</div>
      ${invites.role === 'vendor'
        ? html`<div class="field"><label>What they see of the guest list <select name="guest_fields" @change=${chose}
              aria-describedby=${f.describedBy('guest_fields', 'guest-fields-hint')} aria-invalid=${f.invalid('guest_fields')}>
              ${GUEST_FIELDS.map(([v, t]) => html`<option value=${v} .selected=${live(v === fields)}>${t}${v === suggested ? ' (suggested)' : ''}</option>`)}</select></label>
            <p class="muted" id="guest-fields-hint">${suggested === 'names_meals' ? 'Suggested for a caterer: the meals and dietary needs of each guest.' : 'Most vendors need the counts only; a caterer needs the meals and dietary needs.'} You can change it later in Members.</p>${f.note('guest_fields')}</div>`
        : nothing}
      <div class="field"><label>Their email (optional: we send them the link) <input name="email" type="email" maxlength="254" placeholder="priya@example.com"
        aria-describedby=${f.describedBy('email')} aria-invalid=${f.invalid('email')}></label>${f.note('email')}</div>
      <button type="submit" class="primary">Make an invitation link</button>
    </form>
    ${invites.made
      ? html`<div class="field"><label>Invitation link${invites.made.name ? ` for ${invites.made.name}` : ''} (works once, for 7 days)
          <input readonly .value=${invites.made.url} @focus=${(e) => e.target.select()}></label>
          <button type="button" @click=${() => navigator.clipboard?.writeText(invites.made.url).then(() => ctx.say('Invitation link copied.'), () => ctx.say('Select the link and copy it.'))}>Copy the link</button>
          ${invites.made.emailed ? html`<p class="muted" role="status">${emailNote(invites.made)}</p>` : nothing}</div>`
      : nothing}
    ${invites.list && invites.list.length
      ? html`<ul class="rows" aria-label="Open invitations">${invites.list.map((i) => html`<li class="row">
          <div class="who"><strong>${i.name || 'Someone'}</strong><span class="muted">${i.role}${i.role === 'vendor' && i.guest_fields ? ` (sees: ${guestFieldsText(i.guest_fields).toLocaleLowerCase()})` : ''} · ${i.uses_left} ${i.uses_left === 1 ? 'use' : 'uses'} left</span></div>
          <div class="row-actions"><button type="button" class="danger" @click=${async () => { const r = await invites.revoke(i.id); if (r) ctx.say(`Not revoked: ${r}.`) }}>Revoke</button></div>
        </li>`)}</ul>`
      : nothing}
  </section>`
}
