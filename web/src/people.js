// The pages around the planner (issue 50, point 7): signing in by email, the sign-in link's
// page, an invitation's page, a new wedding's short setup, and the devices list. Each page
// posts to the people routes with the device-session cookie (`credentials: 'same-origin'`);
// the short access tokens they answer with are kept in memory only.
//
// Links carry their one-time code in the fragment (`#code=...`), which browsers never send to
// a server: `/app/sign-in#code=...` (an emailed sign-in link) and `/app/invite#code=...` (an
// invitation). Opening either consumes nothing (mail scanners open links); the page's button
// does.

import { html, nothing, render } from 'lit-html'
import { FormErrors } from './forms.js'
import { LOST_ACCESS } from './session.js'

const LAST_WEDDING = 'crdt-server.last-wedding'

/** A fresh element for a new page in `root`: lit keeps its place in a container it rendered
 *  into, so a container emptied by hand would make its next render fail. */
export function pageHost (root) {
  const host = document.createElement('div')
  host.className = 'page'
  root.replaceChildren(host)
  return host
}

/** The one-time code of a link, from the fragment; it leaves the address bar at once. */
export function takeCode () {
  const match = /(?:^#|&)code=([A-Za-z0-9_.-]{16,200})(?:&|$)/.exec(location.hash)
  if (!match) return null
  history.replaceState(null, '', location.pathname + location.search)
  return match[1]
}

/** The page a path names (`/app/sign-in`, `/app/invite`, `/app/new`), or null for the app. */
export function pageOf (pathname) {
  const match = /^\/app\/(sign-in|invite|new)\/?$/.exec(pathname)
  return match ? match[1] : null
}

export function lastWedding () {
  try { return localStorage.getItem(LAST_WEDDING) } catch { return null }
}

export function rememberWedding (wedding) {
  try { localStorage.setItem(LAST_WEDDING, wedding) } catch {}
}

/** POST `body` as JSON with the device-session cookie; the answer's JSON (or {}) and status. */
export async function post (path, body, headers = {}) {
  const response = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body)
  })
  const data = await response.json().catch(() => ({}))
  return { status: response.status, ok: response.ok, data }
}

/** A problem+json answer in words, and the field it names (if it names one of `fields`). */
function problemOf (data, fields) {
  const first = Array.isArray(data.errors) ? data.errors.find((e) => e && fields.includes(e.field)) : null
  return { field: first ? first.field : fields[0], message: (first && first.message) || data.detail || 'the server refused this' }
}

/**
 * A device session: the cookie the server set when this device signed in, exchanged for a
 * short access token of one wedding (`POST /api/session/refresh`). `null` answer: not signed
 * in on this device (401/403); `{offline: true}`: no network.
 */
export async function resumeSession (wedding) {
  try {
    const { status, ok, data } = await post('/api/session/refresh', { wedding: wedding || null })
    if (ok && typeof data.token === 'string') return data
    // Removed from that wedding, or the session over: the caller forgets what it kept.
    if ((status === 401 || status === 403) && LOST_ACCESS.has(data.type)) return { lost: data.type }
    if (status === 401 || status === 403 || status === 404) return null
    return { offline: true }
  } catch {
    return { offline: true }
  }
}

/** What this server lets a person start from its first page (`GET /api/sign-in/options`). */
async function options () {
  try {
    const response = await fetch('/api/sign-in/options', { cache: 'no-store', credentials: 'same-origin' })
    return response.ok ? await response.json() : {}
  } catch {
    return {}
  }
}

/** The first page without a sign-in: ask for a link by email; create a wedding where this
 *  server lets the person (open signup, or its local operator); the local demo's links. */
export async function showSignIn (root, { demo = null, note = null } = {}) {
  const allowed = await options()
  const host = pageHost(root)
  let sentTo = null
  const errors = new FormErrors(() => draw())
  const f = errors.of('sign-in')
  const submit = async (e) => {
    e.preventDefault()
    const form = e.target
    const email = String(new FormData(form).get('email') || '').trim()
    if (!/^[^\s@]+@[^\s@]+$/.test(email)) {
      errors.refuse('sign-in', [{ field: 'email', message: 'Type the email address you were invited with, such as sam@example.com.' }])
      return
    }
    const button = form.querySelector('button[type=submit]')
    button.disabled = true
    try {
      const { status, data } = await post('/api/sign-in', { email })
      if (status === 202) {
        sentTo = email
        errors.clear('sign-in')
      } else if (status === 429) {
        errors.refuse('sign-in', [{ field: 'email', message: 'Too many sign-in links asked for: wait a few minutes, then try again.' }])
      } else {
        errors.refuse('sign-in', [problemOf(data, ['email'])])
      }
    } catch {
      errors.refuse('sign-in', [{ field: 'email', message: 'No connection to the server: try again when you are online.' }])
    } finally {
      button.disabled = false
      draw()
    }
  }
  const draw = () => {
    render(html`<main class="signed-out" role="main">
      <h1>Wedding planner</h1>
      ${note ? html`<p class="banner" role="alert">${note}</p>` : nothing}
      ${sentTo
        ? html`<section aria-labelledby="mail-title">
            <h2 id="mail-title">Check your mail</h2>
            <p>If <strong>${sentTo}</strong> belongs to someone in a wedding here, a sign-in link is on its way.
              It works once, for 15 minutes, and signs in the device where you open it.</p>
            <button type="button" @click=${() => { sentTo = null; draw() }}>Use another address</button>
          </section>`
        : html`<form class="card sign-in" data-form="sign-in" novalidate @submit=${submit} @input=${f.edited} aria-label="Sign in">
            <h2>Sign in</h2>
            <div class="field"><label>Email <input name="email" type="email" autocomplete="email" required
              aria-describedby=${f.describedBy('email')} aria-invalid=${f.invalid('email')}></label>${f.note('email')}</div>
            <button type="submit" class="primary">Email me a sign-in link</button>
          </form>`}
      ${allowed.create_wedding
        ? html`<section class="card" aria-labelledby="new-title"><h2 id="new-title">Planning a wedding?</h2>
            <p><a class="button primary" href="/app/new">Create a wedding</a></p></section>`
        : nothing}
      ${demo
        ? html`<section class="card" aria-labelledby="demo-title"><h2 id="demo-title">Local demo</h2>
            <p>Anyone on this machine may read and write every wedding. Open “${demo.wedding}” as:</p>
            <ul class="demo-links">${demo.links.map((link) => html`<li>
              <a href=${link.url} @click=${(e) => { e.preventDefault(); location.hash = new URL(link.url).hash; location.reload() }}>${link.name}</a> (${link.role})</li>`)}
            </ul></section>`
        : nothing}
      ${demo
        ? nothing
        : html`<p class="muted">Running this server yourself? <code>.venv/bin/crdt-server token --wedding WEDDING --role couple --sub you</code>
            prints a token to open as <code>/app/#token=TOKEN</code>; <code>./scripts/serve --demo</code> starts a demo and prints a link per person.</p>`}
    </main>`, host)
    errors.settle(host)
  }
  draw()
}

/** An emailed sign-in link's page: opening it consumed nothing; the button signs in. */
export function showSignInLink (root, code, onSignedIn) {
  const host = pageHost(root)
  let failed = null
  let busy = false
  const go = async () => {
    busy = true
    draw()
    try {
      const { status, ok, data } = await post('/api/sign-in/complete', { code })
      if (ok) { onSignedIn(data); return }
      failed = status === 410 || status === 404 || status === 400
        ? 'This link was used already, has expired or was replaced by a newer one. Ask for a new link below.'
        : problemOf(data, ['code']).message
    } catch {
      failed = 'No connection to the server: try again when you are online.'
    }
    busy = false
    draw()
  }
  const draw = () => {
    if (failed) { showSignIn(root, { note: failed }); return }
    render(html`<main class="signed-out" role="main">
      <h1>Sign in</h1>
      <p>This link signs in this device, once.</p>
      <button type="button" class="primary" ?disabled=${busy} @click=${go}>Sign in on this device</button>
    </main>`, host)
  }
  draw()
}

/** An invitation's page: the person says who they are, then joins; nothing happens before. */
export function showInvitation (root, code, onJoined) {
  const host = pageHost(root)
  const errors = new FormErrors(() => draw())
  const f = errors.of('join')
  let gone = null
  const join = async (e) => {
    e.preventDefault()
    const form = e.target
    const values = Object.fromEntries(new FormData(form).entries())
    const name = String(values.name || '').trim()
    const email = String(values.email || '').trim()
    const wrong = []
    if (!name) wrong.push({ field: 'name', message: 'Say how the others should call you.' })
    if (email && !/^[^\s@]+@[^\s@]+$/.test(email)) wrong.push({ field: 'email', message: 'Type an email address such as sam@example.com, or leave it empty.' })
    if (wrong.length) { errors.refuse('join', wrong); return }
    const button = form.querySelector('button[type=submit]')
    button.disabled = true
    try {
      const { status, ok, data } = await post('/api/invitations/accept', email ? { code, name, email } : { code, name })
      if (ok) { rememberGivenEmail(data, email); onJoined(data); return }
      if (status === 410 || status === 404) gone = 'This invitation was revoked, has expired or was used up. Ask whoever invited you for a new one.'
      else errors.refuse('join', [problemOf(data, ['name', 'email'])])
    } catch {
      errors.refuse('join', [{ field: 'name', message: 'No connection to the server: try again when you are online.' }])
    } finally {
      button.disabled = false
      draw()
    }
  }
  const draw = () => {
    render(html`<main class="signed-out" role="main">
      <h1>You are invited</h1>
      ${gone
        ? html`<p role="alert">${gone}</p>`
        : html`<form class="card" data-form="join" novalidate @submit=${join} @input=${f.edited} aria-label="Join the wedding">
            <div class="field"><label>Your name <input name="name" required maxlength="100" autocomplete="name"
              aria-describedby=${f.describedBy('name')} aria-invalid=${f.invalid('name')}></label>${f.note('name')}</div>
            <div class="field"><label>Email (optional) <input name="email" type="email" autocomplete="email"
              aria-describedby=${f.describedBy('email', 'join-email-hint')} aria-invalid=${f.invalid('email')}></label>${f.note('email')}
              <span class="muted hint" id="join-email-hint">Without one you can use this device only, until you add your email under Devices.</span></div>
            <button type="submit" class="primary">Join the wedding</button>
          </form>`}
    </main>`, host)
    errors.settle(host)
  }
  draw()
}

/** A year from today: the date field's first value (people change it). */
function nextYear () {
  const d = new Date()
  d.setFullYear(d.getFullYear() + 1)
  return d.toISOString().slice(0, 10)
}

const CURRENCIES = ['EUR', 'USD', 'GBP', 'CHF', 'CAD', 'AUD', 'INR', 'JPY', 'SEK', 'NOK', 'DKK', 'PLN', 'BRL', 'MXN', 'ZAR']

function zones () {
  try { return Intl.supportedValuesOf('timeZone') } catch { return ['UTC'] }
}

/** A new wedding's short setup: names, date, time zone, currency and the couple's email. */
export function showSetup (root, onCreated) {
  const host = pageHost(root)
  const errors = new FormErrors(() => draw())
  const f = errors.of('new-wedding')
  const here = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
  const create = async (e) => {
    e.preventDefault()
    const form = e.target
    const v = Object.fromEntries([...new FormData(form).entries()].map(([k, x]) => [k, String(x).trim()]))
    const wrong = []
    const yours = v.your_name.replace(/\s+/g, ' ')
    const partner = v.partner_name.replace(/\s+/g, ' ')
    if (!yours) wrong.push({ field: 'your_name', message: 'Say your own name: it is how the others see you.' })
    const names = [yours, partner].filter(Boolean)
    if (!/^\d{4}-\d\d-\d\d$/.test(v.date)) wrong.push({ field: 'date', message: 'Pick the day of the wedding (you can change it later).' })
    if (!/^[^\s@]+@[^\s@]+$/.test(v.email)) wrong.push({ field: 'email', message: 'Type your email address, such as sam@example.com: your sign-in link goes there.' })
    if (wrong.length) { errors.refuse('new-wedding', wrong); return }
    const body = { names, your_name: yours, date: v.date, time_zone: v.time_zone, currency: v.currency, email: v.email }
    const button = form.querySelector('button[type=submit]')
    button.disabled = true
    try {
      const { ok, data } = await post('/api/weddings', body, { 'Idempotency-Key': setupKey })
      if (ok) { await onCreated(data, body); return }
      const problem = problemOf(data, ['names', 'your_name', 'date', 'time_zone', 'currency', 'email'])
      errors.refuse('new-wedding', [problem.field === 'names' ? { ...problem, field: 'your_name' } : problem])
    } catch {
      errors.refuse('new-wedding', [{ field: 'your_name', message: 'No connection to the server: try again when you are online.' }])
    } finally {
      button.disabled = false
    }
  }
  const setupKey = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2)
  const draw = () => {
    render(html`<main class="signed-out" role="main">
      <h1>Create a wedding</h1>
      <form class="card setup" data-form="new-wedding" novalidate @submit=${create} @input=${f.edited} aria-label="Create a wedding">
        <div class="field"><label>Your name <input name="your_name" required maxlength="100" autocomplete="name" placeholder="Sam Rivera"
          aria-describedby=${f.describedBy('your_name', 'setup-name-hint')} aria-invalid=${f.invalid('your_name')}></label>${f.note('your_name')}
          <span class="muted hint" id="setup-name-hint">How the others see you, on everything you do.</span></div>
        <div class="field"><label>Your partner’s name <input name="partner_name" maxlength="100" placeholder="Alex Kim"
          aria-describedby=${f.describedBy('partner_name')} aria-invalid=${f.invalid('partner_name')}></label>${f.note('partner_name')}</div>
        <div class="field"><label>Date <input name="date" type="date" required .value=${nextYear()}
          aria-describedby=${f.describedBy('date')} aria-invalid=${f.invalid('date')}></label>${f.note('date')}</div>
        <div class="field"><label>Time zone <select name="time_zone" aria-describedby=${f.describedBy('time_zone')} aria-invalid=${f.invalid('time_zone')}>
          ${zones().map((z) => html`<option ?selected=${z === here}>${z}</option>`)}</select></label>${f.note('time_zone')}</div>
        <div class="field"><label>Currency <select name="currency" aria-describedby=${f.describedBy('currency')} aria-invalid=${f.invalid('currency')}>
          ${CURRENCIES.map((c) => html`<option>${c}</option>`)}</select></label>${f.note('currency')}</div>
        <div class="field"><label>Your email <input name="email" type="email" autocomplete="email" required
          aria-describedby=${f.describedBy('email', 'setup-email-hint')} aria-invalid=${f.invalid('email')}></label>${f.note('email')}
          <span class="muted hint" id="setup-email-hint">Your sign-in link goes there.</span></div>
        <button type="submit" class="primary">Create the wedding</button>
      </form>
    </main>`, host)
    errors.settle(host)
  }
  draw()
}

/** The devices this person is signed in on (`GET /api/session/devices`), each revocable. */
export class Devices {
  constructor ({ onChange, token }) {
    this.onChange = onChange
    this.token = token
    this.list = null
    this.error = null
    this.email = undefined // the person's verified address; null: none yet
    this.claimed = null // the address a confirmation link was just sent to
  }

  async load () {
    try {
      const response = await fetch('/api/session/devices', { credentials: 'same-origin', cache: 'no-store' })
      const data = await response.json().catch(() => ({}))
      if (response.ok) { this.list = data.devices || []; this.email = data.email ?? null; this.error = null } else this.error = data.detail || `HTTP ${response.status}`
    } catch {
      this.error = 'offline'
    }
    this.onChange()
  }

  /** "Add your email": the server sends a link that verifies `address` for this person;
   *  null, or the refusal ({field, message}). */
  async addEmail (address) {
    let answer
    try {
      answer = await post('/api/session/email', { email: address })
    } catch {
      answer = { ok: false, data: { detail: 'you are offline' } }
    }
    if (answer.ok) this.claimed = address
    this.onChange()
    return answer.ok ? null : { field: 'email', message: problemOf(answer.data, ['email']).message }
  }

  async revoke (id) {
    const response = await fetch(`/api/session/devices/${encodeURIComponent(id)}`, { method: 'DELETE', credentials: 'same-origin' })
    await this.load()
    return response.ok
  }
}

const GIVEN = 'crdt-server.given-email'

/** What the person typed when joining and what became of it (the accept answer's `email`):
 *  the "confirm your email" prompt offers that address again. */
function rememberGivenEmail (data, email) {
  try {
    if (email && data.email && data.email !== 'verified') localStorage.setItem(GIVEN, JSON.stringify({ address: email, state: data.email }))
    else localStorage.removeItem(GIVEN)
  } catch {}
}

function givenEmail () {
  try {
    const kept = JSON.parse(localStorage.getItem(GIVEN) || 'null')
    return kept && typeof kept.address === 'string' ? kept : null
  } catch {
    return null
  }
}

/** The prompt every signed-in person without a confirmed address sees above the planner:
 *  "Confirm your email" (the address they gave when joining filled in); or, where that
 *  address is another sign-in's, to open the sign-in link it was sent. */
export function confirmEmailView (ctx) {
  const you = ctx.you
  if (!you || you.email !== null) return nothing
  const f = ctx.errors.of('confirm-email')
  const given = givenEmail()
  const submit = async (e) => {
    e.preventDefault()
    const address = String(new FormData(e.target).get('email') || '').trim()
    if (!/^[^\s@]+@[^\s@]+$/.test(address)) {
      ctx.refuse('confirm-email', [{ field: 'email', message: 'Type your email address, such as sam@example.com.' }])
      return
    }
    const refused = await you.addEmail(address)
    if (refused) ctx.refuse('confirm-email', [refused])
    else ctx.errors.clear('confirm-email')
  }
  if (given && given.state === 'sign_in_link' && !you.claimed) {
    return html`<section class="banner confirm-email" role="region" aria-label="Confirm your email">
      <strong>Confirm your email</strong>
      <p>${given.address} already signs in here: open the sign-in link we sent to it, and this wedding joins your other ones.</p>
    </section>`
  }
  return html`<section class="banner confirm-email" role="region" aria-label="Confirm your email">
    <form class="add-form" data-form="confirm-email" novalidate @submit=${submit} @input=${f.edited}>
      <strong>Confirm your email</strong>
      <p>Until you do, the others get no email for you and you can use this device only.</p>
      <div class="field"><label>Your email <input name="email" type="email" maxlength="254" autocomplete="email" required .value=${given ? given.address : ''}
        aria-describedby=${f.describedBy('email')} aria-invalid=${f.invalid('email')}></label>${f.note('email')}</div>
      <button type="submit">Email me a link to confirm it</button>
      ${you.claimed ? html`<p role="status">Check your mail: open the link we sent to ${you.claimed} to confirm it.</p>` : nothing}
    </form>
  </section>`
}

/** "Add your email", for a person with none (joined by invitation without one): a link to
 * the address confirms it; until then they can use this device only. */
function addEmailView (ctx, devices) {
  const f = ctx.errors.of('add-email')
  const submit = async (e) => {
    e.preventDefault()
    const address = String(new FormData(e.target).get('email') || '').trim()
    if (!/^[^\s@]+@[^\s@]+$/.test(address)) {
      ctx.refuse('add-email', [{ field: 'email', message: 'Type your email address, such as sam@example.com.' }])
      return
    }
    const refused = await devices.addEmail(address)
    if (refused) ctx.refuse('add-email', [refused])
    else ctx.errors.clear('add-email')
  }
  return html`<form class="add-form" data-form="add-email" aria-label="Add your email" novalidate @submit=${submit} @input=${f.edited}>
      <p class="muted">Add your email to sign in on other devices: we send a link to confirm it.</p>
      <div class="field"><label>Your email <input name="email" type="email" maxlength="254" autocomplete="email" required
        aria-describedby=${f.describedBy('email')} aria-invalid=${f.invalid('email')}></label>${f.note('email')}</div>
      <button type="submit">Email me a link to confirm it</button>
      ${devices.claimed ? html`<p role="status">Check your mail: open the link we sent to ${devices.claimed} to add it.</p>` : nothing}
    </form>`
}

/** The devices panel of the planner: sign-ins, each with its last use, signed out one by one. */
export function devicesView (ctx) {
  const devices = ctx.devices
  if (!devices) return nothing
  const when = (at) => (at ? new Date(at).toLocaleString() : '—')
  return html`<section class="card devices" aria-labelledby="devices-title">
    <header class="panel-head"><h2 id="devices-title">Your devices</h2>
      <button type="button" class="link" aria-label="Close the devices" @click=${() => ctx.showDevices(false)}>×</button></header>
    ${devices.error ? html`<p class="muted">The list is not available: ${devices.error}.</p>` : nothing}
    ${devices.list
      ? html`<ul class="rows" aria-label="Devices signed in">${devices.list.map((d) => html`<li class="row">
          <div class="who"><strong>${d.label || 'A device'}${d.current ? ' (this one)' : ''}</strong>
            <span class="muted">Signed in ${when(d.signed_in_at)} · last used ${when(d.last_used_at)}</span></div>
          <div class="row-actions"><button type="button" class="danger" aria-label=${`Sign out ${d.label || 'this device'}`}
            @click=${() => (d.current ? ctx.signOutHere() : devices.revoke(d.id))}>Sign out</button></div>
        </li>`)}</ul>
        <button type="button" @click=${() => ctx.signOutEverywhere()}>Sign out everywhere</button>`
      : html`<p class="muted">Loading…</p>`}
    ${devices.email ? html`<p class="muted">Your email: ${devices.email}</p>` : nothing}
    ${devices.email === null ? addEmailView(ctx, devices) : nothing}
  </section>`
}

