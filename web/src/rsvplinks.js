// Guests' answers: the RSVP links and the RSVP page, for the roles with `rsvp.links` (the
// couple and the planner), with the person's own session, never an operator's token.
// One link per household, and one for every guest in no household (keyed by the guest: the
// server writes no household for them); each link made, copied, emailed or revoked (a second
// press confirms); every link at once on the printable QR sheet or by email; the RSVP page's
// venue and deadline (the wedding's settings) and its menu (the guest list's); and who
// answered by their link and when, every answer, changed or not (`rsvp.answered`, answers.js).

import { html, nothing } from 'lit-html'
import { live } from 'lit-html/directives/live.js'
import { call, fieldReasonOf, reasonOf } from './api.js'

export const SECTION = 'answers'
export const TITLE = 'Guests’ answers'

/** The links of a guest list: a row per household with anyone in it, then one per guest in
 *  no household (the server's `solo_guests`: a named plus-one of such a guest answers by
 *  their host's link). Each row: `{kind: 'household'|'guest', id, name, guests}`. */
export function linkRows (households, guests) {
  const rows = []
  const housed = new Set()
  for (const h of households.values()) {
    for (const g of h.guests) housed.add(g.id)
    if (h.guests.length) rows.push({ kind: 'household', id: h.id, name: h.name, guests: h.guests })
  }
  const byName = (a, b) => a.name.localeCompare(b.name) || (a.id < b.id ? -1 : 1)
  rows.sort(byName)
  const alone = new Map(guests.filter((g) => !housed.has(g.id)).map((g) => [g.id, g]))
  const companions = new Map()
  for (const g of [...alone.values()].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const host = g.plus_one_of
    if (host && host !== g.id && alone.has(host)) companions.set(host, [...(companions.get(host) || []), g])
  }
  const riding = new Set([...companions.values()].flat().map((g) => g.id))
  const solo = []
  for (const g of alone.values()) {
    if (riding.has(g.id) && !riding.has(g.plus_one_of)) continue
    solo.push({ kind: 'guest', id: g.id, name: g.name || 'a guest', guests: [g, ...(companions.get(g.id) || [])] })
  }
  return [...rows, ...solo.sort(byName)]
}

const keyOf = (row) => `${row.kind}:${row.id}`
const pathOf = (row) => `/${row.kind === 'guest' ? 'guests' : 'households'}/${encodeURIComponent(row.id)}/rsvp-link`

export class RsvpLinks {
  constructor ({ wedding, token, onChange }) {
    this.wedding = wedding
    this.base = `/api/weddings/${encodeURIComponent(wedding)}`
    this.token = token
    this.onChange = onChange
    this.links = new Map() // row key -> {url, code}: the links made on this screen
    this.confirming = null // the action pressed once: 'revoke:<row key>' or 'email-all'
    this.busy = new Set() // row keys (or 'email-all') waiting for the server
    this.emailed = new Map() // row key (or 'all') -> what the last email did: {queued, skipped}
  }

  request (method, path, body) {
    return call(this.token, this.base, method, path, body)
  }

  async run (key, work) {
    this.busy.add(key)
    this.onChange()
    try {
      return await work()
    } finally {
      this.busy.delete(key)
      this.onChange()
    }
  }

  /** Make (or show again: the same until revoked) a row's link; null, or the refusal. */
  make (row) {
    return this.run(keyOf(row), async () => {
      const answer = await this.request('POST', pathOf(row))
      if (answer.status !== 200 || !answer.body) return fieldReasonOf(answer)
      this.links.set(keyOf(row), { url: answer.body.url, code: answer.body.code })
      return null
    })
  }

  /** Revoke a row's link (the first press asks again); the new link is made at once, so
   *  the couple can hand it over. Null, or the refusal. */
  revoke (row) {
    const key = keyOf(row)
    if (this.confirming !== `revoke:${key}`) {
      this.confirming = `revoke:${key}`
      this.onChange()
      return Promise.resolve(null)
    }
    this.confirming = null
    return this.run(key, async () => {
      const answer = await this.request('DELETE', pathOf(row))
      if (answer.status !== 200) return fieldReasonOf(answer)
      this.links.delete(key)
      return null
    })
  }

  /** Email a row's link to its guests with an address; null, or the refusal. */
  email (row) {
    const key = keyOf(row)
    return this.run(key, async () => {
      const answer = await this.request('POST', `${pathOf(row)}/email`)
      if (answer.status !== 202 || !answer.body) return fieldReasonOf(answer)
      this.emailed.set(key, answer.body)
      return null
    })
  }

  /** Email every link (the first press asks again); null, or the refusal. */
  emailAll () {
    if (this.confirming !== 'email-all') {
      this.confirming = 'email-all'
      this.onChange()
      return Promise.resolve(null)
    }
    this.confirming = null
    return this.run('email-all', async () => {
      const answer = await this.request('POST', '/rsvp-links/email')
      if (answer.status !== 202 || !answer.body) return fieldReasonOf(answer)
      this.emailed.set('all', answer.body)
      return null
    })
  }

  /** Open the printable sheet of every link (its QR codes) in a new window: read with the
   *  person's token, then shown there as an inert copy (no script runs in it). `opened` is
   *  the window the click opened at once (a later one would be blocked as a pop-up). */
  async printSheet (opened) {
    let response
    try {
      response = await fetch(`${this.base}/rsvp-links.html`, { headers: { Authorization: `Bearer ${this.token()}` } })
    } catch {
      response = null
    }
    if (!response || !response.ok) {
      if (opened) opened.close()
      const body = response ? await response.json().catch(() => null) : null
      return reasonOf({ status: response ? response.status : 0, body })
    }
    const sheet = new DOMParser().parseFromString(await response.text(), 'text/html')
    if (!opened) return 'the browser blocked the new window: allow pop-ups for this site'
    const doc = opened.document
    doc.title = `RSVP links: ${sheet.title}`
    // The sheet's style, adopted (the app's Content-Security-Policy refuses inline styles).
    const css = [...sheet.querySelectorAll('style')].map((s) => s.textContent).join('\n')
    try {
      const style = new opened.CSSStyleSheet()
      style.replaceSync(css)
      doc.adoptedStyleSheets = [style]
    } catch {}
    sheet.querySelectorAll('script, style').forEach((node) => node.remove())
    doc.body.replaceChildren(...[...sheet.body.childNodes].map((node) => doc.importNode(node, true)))
    opened.focus()
    return null
  }

  /** Save the RSVP page's venue and deadline (the wedding's settings); null, or the
   *  refusal as {field, message}. */
  async saveSettings (fields) {
    const answer = await this.request('PUT', '/settings', fields)
    if (answer.status === 200) return null
    const named = answer.body && Array.isArray(answer.body.errors) ? answer.body.errors[0] : null
    const field = named && ['venue', 'rsvp_deadline'].includes(named.field) ? named.field : 'venue'
    return { field, message: `Not saved: ${fieldReasonOf(answer)}.` }
  }

  /** Save the menu (one choice a line; none: any meal is taken); null, or the refusal. */
  async saveMenu (choices) {
    const answer = await this.request('POST', '/docs/guests/ops', { op: 'set_menu', choices: choices.length ? choices : null })
    return answer.status === 200 ? null : { field: 'menu', message: `Not saved: ${fieldReasonOf(answer)}.` }
  }
}

const WORDS = { accepted: 'accepted', declined: 'declined', pending: 'not sure yet' }
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

/** The newest answer among `guests` (answers.js's latest per guest), or null. */
function lastAnswer (answers, guests) {
  let found = null
  for (const g of guests) {
    const a = answers.latest.get(g.id)
    if (a && (!found || a.seq > found.seq)) found = a
  }
  return found
}

/** Every answer sent by a link, newest first (answers.js keeps them): [{seq, at, who, answers}]. */
function answerLog (answers, names) {
  return [...answers.log.values()]
    .sort((a, b) => b.seq - a.seq)
    .slice(0, 200)
    .map((e) => ({ ...e, people: e.answers.map((a) => ({ ...a, name: names.get(a.guestId) || 'a guest' })) }))
}

function settingsForm (ctx, links) {
  const f = ctx.errors.of('rsvp-page')
  const p = ctx.profile || {}
  const menu = ctx.menu || []
  const canSettings = ctx.can('weddings.settings')
  const canMenu = ctx.canWrite('guests')
  if (!canSettings && !canMenu) return nothing
  const save = async (e) => {
    e.preventDefault()
    const form = e.target
    const v = Object.fromEntries([...new FormData(form).entries()].map(([k, x]) => [k, String(x).trim()]))
    const refusals = []
    if (canSettings) {
      const fields = {}
      if ((v.venue || null) !== (p.venue || null)) fields.venue = v.venue || null
      if ((v.rsvp_deadline || null) !== (p.rsvp_deadline || null)) fields.rsvp_deadline = v.rsvp_deadline || null
      if (Object.keys(fields).length) {
        const refused = await links.saveSettings(fields)
        if (refused) refusals.push(refused)
      }
    }
    if (canMenu) {
      const choices = [...new Set(v.menu.split('\n').map((x) => x.trim()).filter(Boolean))]
      if (choices.join('\n') !== menu.join('\n')) {
        const refused = await links.saveMenu(choices)
        if (refused) refusals.push(refused)
      }
    }
    if (refusals.length) ctx.refuse('rsvp-page', refusals)
    else {
      ctx.errors.clear('rsvp-page')
      ctx.say('The RSVP page was saved.')
    }
  }
  // Each field shows what the wedding holds now (live) until the person types in it: a
  // control's default value, which a typed value is never replaced by.
  return html`<form class="card rsvp-page-form" data-form="rsvp-page" novalidate @submit=${save} @input=${f.edited} aria-label="The RSVP page">
    <h3>What the RSVP page says</h3>
    <p class="muted">${p.date ? html`The wedding: <strong>${ctx.local.day(p.date)}</strong>.` : 'The wedding has no date yet.'}</p>
    ${canSettings
      ? html`<div class="field"><label>Venue <input name="venue" maxlength="200" .defaultValue=${p.venue || ''}
            aria-describedby=${f.describedBy('venue')} aria-invalid=${f.invalid('venue')}></label>${f.note('venue')}</div>
          <div class="field"><label>Answer by <input name="rsvp_deadline" type="date" .defaultValue=${p.rsvp_deadline || ''}
            aria-describedby=${f.describedBy('rsvp_deadline', 'deadline-said')} aria-invalid=${f.invalid('rsvp_deadline')}></label>${f.note('rsvp_deadline')}
            <span class="muted" id="deadline-said">${p.rsvp_deadline ? `Links close after ${ctx.local.day(p.rsvp_deadline)}.` : 'No deadline: links stay open.'}</span></div>`
      : nothing}
    ${canMenu
      ? html`<div class="field"><label>Menu, one meal a line <textarea name="menu" rows="4" maxlength="2000" .defaultValue=${menu.join('\n')}
            aria-describedby=${f.describedBy('menu', 'menu-said')} aria-invalid=${f.invalid('menu')}></textarea></label>${f.note('menu')}
            <span class="muted" id="menu-said">${menu.length ? 'Guests choose one of these.' : 'No menu: guests type their meal.'}</span></div>`
      : nothing}
    <button type="submit" class="primary">Save the RSVP page</button>
  </form>`
}

function emailedSaid (done) {
  if (!done) return nothing
  const skipped = done.skipped.length ? `; ${plural(done.skipped.length, 'guest')} skipped (${[...new Set(done.skipped.map((s) => s.reason))].join(', ')})` : ''
  return html`<span class="muted" role="status">Emailed to ${plural(done.queued.length, 'guest')}${skipped}.</span>`
}

function linkRow (ctx, links, row) {
  const key = keyOf(row)
  const form = `rsvp-link-${key}`
  const f = ctx.errors.of(form)
  const made = links.links.get(key)
  const last = lastAnswer(ctx.answers, row.guests)
  const busy = links.busy.has(key)
  const act = (field, run, done) => async () => {
    ctx.errors.clear(form)
    const refused = await run()
    if (refused) ctx.refuse(form, [{ field, message: `Not done: ${refused}.` }])
    else if (done && !links.confirming) ctx.say(done) // not after a first press
  }
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(made.url)
      ctx.say(`The link for ${row.name} was copied.`)
    } catch {
      ctx.refuse(form, [{ field: 'link', message: 'Not copied: select the link and copy it.' }])
    }
  }
  const people = row.kind === 'guest'
    ? ['no household', ...row.guests.slice(1).map((g) => `with ${g.name || 'a guest'}`)].join(' · ')
    : `household · ${row.guests.map((g) => g.name || 'a guest').join(', ')}`
  return html`<li class="row rsvp-link" data-form=${form} data-link=${key}>
    <div class="who"><strong>${row.name}</strong>
      <span class="muted">${people}</span>
      <span class="muted">${last
        ? html`answered ${last.at ? html`<time datetime=${last.at}>${ctx.local.dateTime(last.at)}</time>` : ''}`
        : 'no answer by link yet'}</span>
      ${made
        ? html`<label class="field">Link for ${row.name} <input name="link" readonly .value=${live(made.url)} @focus=${(e) => e.target.select()}
            aria-describedby=${f.describedBy('link')}></label>${f.note('link')}`
        : nothing}
      ${emailedSaid(links.emailed.get(key))}
    </div>
    <div class="row-actions">
      ${made
        ? html`<button type="button" name="copy" @click=${copy}>Copy the link</button>`
        : html`<button type="button" name="make" ?disabled=${busy} aria-describedby=${f.describedBy('make')}
            @click=${act('make', () => links.make(row))}>Show the link</button>`}
      <button type="button" name="email" ?disabled=${busy} aria-describedby=${f.describedBy('email')}
        @click=${act('email', () => links.email(row))}>Email</button>
      <button type="button" name="revoke" class="danger" ?disabled=${busy} aria-describedby=${f.describedBy('revoke')}
        @click=${act('revoke', () => links.revoke(row), `The old link for ${row.name} no longer works.`)}>${links.confirming === `revoke:${key}` ? 'Really revoke?' : 'Revoke'}</button>
    </div>
    ${f.note('make')}${f.note('email')}${f.note('revoke')}
  </li>`
}

/** The Guests' answers screen. */
export function rsvpLinksView (ctx) {
  const links = ctx.rsvpLinks
  const answers = ctx.answers
  const rows = linkRows(ctx.households, ctx.guests)
  const names = new Map(ctx.guests.map((g) => [g.id, g.name]))
  const f = ctx.errors.of('rsvp-all')
  const answered = ctx.guests.filter((g) => g.rsvp !== 'pending').length
  const byLink = answers ? answers.shown(ctx.guests).length : 0
  const act = (field, run, done) => async () => {
    ctx.errors.clear('rsvp-all')
    const refused = await run()
    if (refused) ctx.refuse('rsvp-all', [{ field, message: `Not done: ${refused}.` }])
    else if (done && !links.confirming) ctx.say(done)
  }
  const print = () => {
    const opened = window.open('', '_blank')
    return act('print', () => links.printSheet(opened))()
  }
  const log = answers ? answerLog(answers, names) : []
  return html`<section class="rsvp-links-screen" aria-labelledby="rsvp-links-title">
    <h2 id="rsvp-links-title">${TITLE}</h2>
    <p class="rsvp-progress">${plural(answered, 'guest')} of ${ctx.guests.length} answered; ${plural(byLink, 'person', 'people')} by their link.</p>
    ${settingsForm(ctx, links)}
    <section class="card" data-form="rsvp-all" aria-labelledby="rsvp-all-title">
      <h3 id="rsvp-all-title">Every link</h3>
      <div class="actions">
        <button type="button" name="print" aria-describedby=${f.describedBy('print')} @click=${print}>Print the QR sheet</button>
        <button type="button" name="email-all" ?disabled=${links.busy.has('email-all')} aria-describedby=${f.describedBy('email-all')}
          @click=${act('email-all', () => links.emailAll(), 'The links were emailed.')}>${links.confirming === 'email-all' ? `Really email all ${plural(rows.length, 'link')}?` : 'Email every household'}</button>
      </div>
      ${f.note('print')}${f.note('email-all')}${emailedSaid(links.emailed.get('all'))}
    </section>
    <section aria-labelledby="rsvp-rows-title">
      <h3 id="rsvp-rows-title">Links</h3>
      ${rows.length
        ? html`<ul class="rows rsvp-rows" aria-label="RSVP links">${rows.map((row) => linkRow(ctx, links, row))}</ul>`
        : html`<p class="muted">No guests yet: add guests, then make their links here.</p>`}
    </section>
    <section aria-labelledby="rsvp-log-title">
      <h3 id="rsvp-log-title">Who answered, and when</h3>
      ${log.length
        ? html`<ol class="rsvp-log" aria-label="Answers by link">${log.map((e) => html`<li data-seq=${String(e.seq)}>
            ${e.at ? html`<time datetime=${e.at}>${ctx.local.dateTime(e.at)}</time>` : nothing}
            ${e.people.map((a, i) => html`${i ? ', ' : ' '}<strong>${a.name}</strong> ${WORDS[a.to] || a.to}${a.changed ? '' : ' (as before)'}`)}
          </li>`)}</ol>`
        : html`<p class="muted">${answers && answers.loaded ? 'Nobody has answered by link yet.' : 'Reading…'}</p>`}
    </section>
  </section>`
}
