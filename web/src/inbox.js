// The person's inbox (issue 53, point 4): the bell's unread count, the list of notifications
// (a mention, a reply, a message in a thread one is in, an urgent message), live from the
// event stream, each opening its thread and marked read; and the notification settings.
// Routes: GET /notifications, POST /notifications/read, PUT /notifications/settings, and the
// person's own row of GET /members (their settings as they are).

import { html, nothing } from 'lit-html'
import { when } from './activity.js'
import { call, reasonOf } from './api.js'
import { pushView } from './push.js'
import { textsView } from './texts.js'
import { emergencyText } from './emergency.js'
import { dueDate, readTasks } from './tasks.js'

const REASONS = {
  mention: 'mentioned you',
  reply: 'replied to you',
  message: 'wrote',
  urgent: 'sent an urgent message',
  payment_due: 'reminds you of a scheduled payment that falls due',
  emergency: 'raised an emergency',
  emergency_unacknowledged: 'raised an emergency nobody has acknowledged yet',
  'day.vendor_missing': 'says a vendor has not checked in',
  'day.member_offline': 'says someone on duty is offline',
  timeline_delayed: 'says the timeline is running late',
  emergency_vendor: 'says a vendor has an emergency',
  overwritten: 'overwrote a change of yours'
}

/** The notifications of an emergency (its `ref` is the emergency's seq). */
const EMERGENCIES = new Set(['emergency', 'emergency_unacknowledged'])

const DUE_LABELS = { overdue: 'Overdue', today: 'Due today', soon: 'Due soon' }

/** Whether a reminder written at `createdAt` of a day `due` (YYYY-MM-DD, as the document
 *  has it now) was of something overdue, due that day or due later, the day of the
 *  reminder read in the wedding's zone (`local`); `today` when the day is unknown. */
export function reminderWhen (due, createdAt, local) {
  if (typeof due !== 'string' || typeof createdAt !== 'string') return 'today'
  const day = local.wall(createdAt, false).day
  if (!day) return 'today'
  return due < day ? 'overdue' : due === day ? 'today' : 'soon'
}

/** A reminder of the inbox in words: `{label, text}` (its kind told apart: overdue, due
 *  today, due soon; a task by its title, a payment by its amount, vendor and category),
 *  or null when it is not a task's or a payment's. */
export function reminderLine (n, ctx) {
  if (n.reason === 'task.due') {
    const task = readTasks(ctx.docs && ctx.docs.tasks).find((t) => t.id === n.ref)
    const due = task ? dueDate(task, ctx.profile && ctx.profile.date) : null
    const when = reminderWhen(due, n.created_at, ctx.local)
    const title = task ? task.title : 'A task'
    return { label: DUE_LABELS[when], text: when === 'today' || !due ? title : `${title} (${when === 'overdue' ? 'was due' : 'due'} ${ctx.local.day(due)})` }
  }
  if (n.reason === 'payment_due') {
    const payment = ((ctx.budget && ctx.budget.payments) || []).find((p) => p.id === n.ref)
    if (!payment) return { label: 'Payment', text: 'a scheduled payment (paid or removed since)' }
    const when = reminderWhen(payment.due, n.created_at, ctx.local)
    const category = ((ctx.budget && ctx.budget.categories) || []).find((c) => c.id === payment.category_id)
    const to = `${payment.vendor ? ` to ${payment.vendor}` : ''}${category ? ` for ${category.name}` : ''}`
    const day = payment.due ? ` (${when === 'overdue' ? 'was due' : 'due'} ${ctx.local.day(payment.due)})` : ''
    return { label: DUE_LABELS[when], text: `a payment of ${ctx.local.money(payment.amount)}${to}${when === 'today' ? '' : day}${payment.status === 'scheduled' ? '' : ', marked paid since'}` }
  }
  return null
}

/** The events the scheduler stores with a reminder in someone's inbox. */
const REMINDERS = new Set(['task.due', 'budget.payment_due'])

export class Inbox {
  constructor ({ wedding, sub, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}`
    this.sub = sub
    this.token = token
    this.onChange = onChange
    this.items = []
    this.unread = 0
    this.settings = null // { participation, email_notifications }
    this.loading = null
    this.again = false
  }

  request (method, path = '', body) {
    return call(this.token, this.base, method, path, body)
  }

  start () {
    this.refresh()
    return this
  }

  /** Reload the newest notifications and the unread count (coalesced). */
  refresh () {
    if (this.loading) {
      this.again = true
      return this.loading
    }
    this.loading = (async () => {
      do {
        this.again = false
        const { status, body } = await this.request('GET', '/notifications?limit=50')
        if (status === 200 && body && Array.isArray(body.notifications)) {
          this.items = body.notifications
          this.unread = Number.isInteger(body.unread) ? body.unread : 0
          this.onChange()
        }
      } while (this.again)
      this.loading = null
    })()
    return this.loading
  }

  /** New thread events, emergencies and the scheduler's reminders (a task or a payment
   *  falling due) may be new notifications. */
  onEvents (events) {
    if (events.some((e) => (typeof e.type === 'string' && (e.type.startsWith('thread.') || REMINDERS.has(e.type))) || e.priority === 'emergency')) this.refresh()
  }

  /** Mark `ids` read (all when none are given). */
  async markRead (ids = null) {
    const { status } = await this.request('POST', '/notifications/read', ids ? { ids: ids.map(String) } : {})
    if (status === 200) await this.refresh()
  }

  async loadSettings () {
    const { status, body } = await this.request('GET', '/members')
    const mine = status === 200 && body && Array.isArray(body.members) ? body.members.find((m) => m && m.sub === this.sub) : null
    this.settings = mine ? { participation: mine.participation || 'all', email: mine.email_notifications !== false } : { participation: 'all', email: true }
    this.onChange()
  }

  /** Save the settings; the server's reason when it refuses, else null. */
  async saveSettings (participation, email) {
    const { status, body } = await this.request('PUT', '/notifications/settings', { participation, email })
    if (status === 200) {
      this.settings = { participation, email }
      this.onChange()
      return null
    }
    return reasonOf({ status, body })
  }
}

/** The bell: the unread count, opening the inbox. */
export function bell (ctx) {
  const n = ctx.inbox.unread
  return html`<button type="button" class="bell" aria-expanded=${ctx.inboxOpen ? 'true' : 'false'}
    aria-label=${n ? `Inbox, ${n} unread` : 'Inbox'} @click=${() => ctx.showInbox(!ctx.inboxOpen)}
    >Inbox${n ? html` <span class="badge" aria-hidden="true">${n}</span>` : nothing}</button>`
}

/** The inbox panel: each notification opens its thread; the settings below. */
export function inboxView (ctx) {
  const inbox = ctx.inbox
  const names = ctx.names()
  const open = async (item) => {
    if (!item.read) inbox.markRead([item.id])
    ctx.openNotification(item)
  }
  const settings = inbox.settings
  const save = async (e) => {
    e.preventDefault()
    const form = e.target
    const v = new FormData(form)
    const refused = await inbox.saveSettings(String(v.get('participation')), v.get('email') === 'on')
    if (refused) ctx.refuse('inbox-settings', [{ field: 'participation', message: `Not saved: ${refused}.` }])
    else { ctx.errors.clear('inbox-settings'); ctx.say('Notification settings saved.') }
  }
  const f = ctx.errors.of('inbox-settings')
  return html`<section id="inbox-panel" class="card inbox" aria-labelledby="inbox-title" tabindex="-1">
    <header class="panel-head"><h2 id="inbox-title">Inbox</h2>
      <button type="button" class="link" aria-label="Close the inbox" @click=${() => ctx.showInbox(false)}>×</button></header>
    ${inbox.unread ? html`<button type="button" class="link" @click=${() => inbox.markRead()}>Mark all read</button>` : nothing}
    ${inbox.items.length
      ? html`<ul class="rows notifications" aria-label="Notifications">${inbox.items.map((n) => {
          const who = (n.actor && names.person(n.actor.sub)) || (n.actor && n.actor.role === 'server' ? 'The server' : n.actor && n.actor.sub) || 'Someone'
          if (EMERGENCIES.has(n.reason)) {
            // Marked as an emergency, with its text; "Seen" acknowledges it (the sender
            // sees who has).
            const seq = Number(n.ref)
            const event = ctx.emergencies.events.get(seq)
            if (event === undefined) ctx.emergencies.load(seq)
            const seen = ctx.emergencies.seenBy(seq, ctx.access.sub)
            const ack = async () => {
              if (await ctx.emergencies.ack(seq)) {
                if (!n.read) inbox.markRead([n.id])
                ctx.say('Marked as seen: the sender is told.')
              }
            }
            return html`<li class="row emergency ${n.read ? '' : 'unread'}" data-notification=${String(n.id)} data-emergency=${String(seq)}>
              <div class="notification"><span><strong class="flag">Emergency</strong> from <strong>${who}</strong>${n.reason === 'emergency_unacknowledged' ? ' (nobody has acknowledged it yet)' : ''}:
                ${event ? emergencyText(event, ctx) : '…'}</span>
                <span class="muted">${when(n.created_at)}${n.read ? '' : ' · unread'}</span></div>
              ${seen
                ? html`<span class="muted">Seen</span>`
                : html`<button type="button" aria-label=${`Seen: the emergency from ${who}`} @click=${ack}>Seen</button>`}
            </li>`
          }
          const reminder = reminderLine(n, ctx)
          if (reminder) {
            return html`<li class="row reminder ${n.read ? '' : 'unread'}" data-notification=${String(n.id)}>
              <button type="button" class="notification" @click=${() => open(n)}>
                <span><strong class=${reminder.label === 'Overdue' ? 'overdue' : ''}>${reminder.label}:</strong> ${reminder.text}</span>
                <span class="muted">${when(n.created_at)}${n.read ? '' : ' · unread'}</span>
              </button></li>`
          }
          return html`<li class="row ${n.read ? '' : 'unread'}" data-notification=${String(n.id)}>
            <button type="button" class="notification" @click=${() => open(n)}>
              <span><strong>${who}</strong> ${REASONS[n.reason] || 'wrote'}${n.thread ? html` in “${n.thread.subject}”` : nothing}</span>
              <span class="muted">${when(n.created_at)}${n.read ? '' : ' · unread'}</span>
            </button></li>`
        })}</ul>`
      : html`<p class="muted">Nothing yet. Mentions, replies and urgent messages show here.</p>`}
    <details class="inbox-settings" @toggle=${(e) => { if (e.target.open && !settings) inbox.loadSettings() }}>
      <summary>Notification settings</summary>
      ${settings
        ? html`<form data-form="inbox-settings" @submit=${save} aria-label="Notification settings">
            <div class="field"><label>Notify me of <select name="participation"
              aria-describedby=${f.describedBy('participation')} aria-invalid=${f.invalid('participation')}>
              ${[['all', 'every message in my threads'], ['mentions', 'mentions and replies'], ['none', 'mentions only']].map(([v, t]) =>
                html`<option value=${v} ?selected=${settings.participation === v}>${t}</option>`)}
            </select></label>${f.note('participation')}</div>
            <label class="check"><input type="checkbox" name="email" ?checked=${settings.email}> Email me mentions and urgent messages</label>
            <button type="submit">Save settings</button>
          </form>
          ${pushView(ctx)}
          ${textsView(ctx)}`
        : html`<p class="muted">Loading…</p>`}
    </details>
  </section>`
}
