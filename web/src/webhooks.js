// The planner's webhook endpoints (issue 53, point 5), in the Share panel for roles with
// `webhooks.manage`: the list with each endpoint's health, adding one (its signing secret is
// shown once), sending a test, the recent deliveries with the failed ones replayable, and
// removing one (a second press confirms).

import { html, nothing } from 'lit-html'
import { when } from './activity.js'
import { call, reasonOf } from './api.js'

export class Webhooks {
  constructor ({ wedding, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/webhooks`
    this.token = token
    this.onChange = onChange
    this.list = null
    this.secret = null // { id, secret } of the endpoint just added
    this.deliveries = new Map() // endpoint id -> its recent deliveries, while shown
    this.removing = null // the endpoint whose Remove was pressed once
  }

  request (method, path = '', body) {
    return call(this.token, this.base, method, path, body)
  }

  async load () {
    const answer = await this.request('GET', '?limit=50')
    this.list = answer.status === 200 && answer.body ? answer.body.webhooks : []
    this.onChange()
  }

  /** Add an endpoint; null, or {field, message} of the refusal. */
  async add (url, events, description) {
    const answer = await this.request('POST', '', { url, events, description })
    if (answer.status === 201) {
      this.secret = answer.body
      await this.load()
      return null
    }
    const named = answer.body && Array.isArray(answer.body.errors) ? answer.body.errors[0] : null
    const field = named && ['url', 'events', 'description'].includes(String(named.field).split(/[.[]/)[0]) ? String(named.field).split(/[.[]/)[0] : 'url'
    return { field, message: `Not added: ${(named && named.message) || reasonOf(answer)}.` }
  }

  async test (id) {
    const answer = await this.request('POST', `/${encodeURIComponent(id)}/test`)
    if (answer.status >= 200 && answer.status < 300) {
      setTimeout(() => this.showDeliveries(id), 500)
      return null
    }
    return reasonOf(answer)
  }

  async showDeliveries (id) {
    const answer = await this.request('GET', `/${encodeURIComponent(id)}/deliveries?limit=10`)
    this.deliveries.set(id, answer.status === 200 && answer.body ? answer.body.deliveries : [])
    this.onChange()
  }

  async replay (id, delivery) {
    const answer = await this.request('POST', `/${encodeURIComponent(id)}/deliveries/${encodeURIComponent(delivery)}/replay`)
    await this.showDeliveries(id)
    return answer.status >= 200 && answer.status < 300 ? null : reasonOf(answer)
  }

  async remove (id) {
    if (this.removing !== id) {
      this.removing = id
      this.onChange()
      return null
    }
    this.removing = null
    const answer = await this.request('DELETE', `/${encodeURIComponent(id)}`)
    await this.load()
    return answer.status === 204 || answer.status === 200 ? null : reasonOf(answer)
  }
}

/** The webhooks section of the Share panel. */
export function webhooksView (ctx) {
  const hooks = ctx.webhooks
  if (hooks.list === null) return html`<section><h3>Webhooks</h3><p class="muted">Loading…</p></section>`
  const f = ctx.errors.of('add-webhook')
  const add = async (e) => {
    e.preventDefault()
    const v = Object.fromEntries([...new FormData(e.target).entries()].map(([k, x]) => [k, String(x).trim()]))
    const events = v.events ? v.events.split(',').map((x) => x.trim()).filter(Boolean) : ['*']
    if (!/^https?:\/\/\S+$/.test(v.url)) { ctx.refuse('add-webhook', [{ field: 'url', message: 'Type the receiver’s address, such as https://example.com/hooks.' }]); return }
    const refused = await hooks.add(v.url, events, v.description || '')
    if (refused) { ctx.refuse('add-webhook', [refused]); return }
    ctx.errors.clear('add-webhook')
    e.target.reset()
  }
  const said = (run) => async () => {
    const refused = await run()
    if (refused) ctx.say(`Not done: ${refused}.`)
  }
  return html`<section aria-labelledby="hooks-title"><h3 id="hooks-title">Webhooks</h3>
    ${hooks.secret
      ? html`<p class="note" role="note">Signing secret of the new endpoint (shown only now): <code>${hooks.secret.secret}</code></p>`
      : nothing}
    ${hooks.list.length
      ? html`<ul class="rows hooks" aria-label="Webhook endpoints">${hooks.list.map((h) => html`<li class="row" data-hook=${h.id}>
          <div class="who"><strong>${h.url}</strong>
            <span class="muted">${h.events.join(', ')}${h.enabled ? '' : ` · disabled${h.disabled_reason ? `: ${h.disabled_reason}` : ''}`}</span>
            ${hooks.deliveries.has(h.id)
              ? html`<ul class="deliveries" aria-label=${`Deliveries to ${h.url}`}>${hooks.deliveries.get(h.id).map((d) => html`<li>
                  ${d.type}: ${d.status}${d.last_status ? ` (HTTP ${d.last_status})` : ''}, ${when(d.created_at)}
                  ${d.status === 'failed' ? html`<button type="button" class="link" @click=${said(() => hooks.replay(h.id, d.id))}>Replay</button>` : nothing}
                </li>`)}</ul>`
              : nothing}</div>
          <div class="row-actions">
            <button type="button" @click=${said(() => hooks.test(h.id))}>Send a test</button>
            <button type="button" @click=${() => hooks.showDeliveries(h.id)}>Deliveries</button>
            <button type="button" class="danger" @click=${said(() => hooks.remove(h.id))}>${hooks.removing === h.id ? 'Really remove?' : 'Remove'}</button>
          </div></li>`)}</ul>`
      : html`<p class="muted">No endpoints yet.</p>`}
    <form class="add-form" data-form="add-webhook" novalidate @submit=${add} @input=${f.edited} aria-label="Add a webhook endpoint">
      <div class="field"><label>Receiver URL <input name="url" type="url" required maxlength="2048" placeholder="https://example.com/hooks"
        aria-describedby=${f.describedBy('url')} aria-invalid=${f.invalid('url')}></label>${f.note('url')}</div>
      <div class="field"><label>Events <input name="events" maxlength="500" placeholder="* or guest.*, payment.recorded"
        aria-describedby=${f.describedBy('events')} aria-invalid=${f.invalid('events')}></label>${f.note('events')}</div>
      <div class="field"><label>Description <input name="description" maxlength="500"></label></div>
      <button type="submit">Add endpoint</button>
    </form>
  </section>`
}
