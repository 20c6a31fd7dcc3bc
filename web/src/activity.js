// The activity feed: the wedding's domain events ("Priya moved Grace to Table 4"), followed
// live over the server's event stream, in readable words.
//
// The stream (GET .../events/stream, Server-Sent Events) is opened with a one-use ticket from
// POST .../events/stream-tickets, so the long-lived token never goes in a URL. It is read
// with fetch() rather than EventSource: every event type arrives (EventSource only hands over
// types one has listened for by name, and custom.* / day.* types are open-ended), and each
// reconnection takes a new ticket (EventSource would retry with the used one). It resumes
// after the last seq seen, so nothing is missed across reconnections. The server filters
// by role: each person gets only the events of documents they may read.
//
// The latest events are kept on the device (localStorage, per wedding and person), so the
// feed shows at once, and offline.

import { FIELD_WORDS } from './fields.js'
import { formats } from './local.js'

const KEEP = 300
const SHOWN = 40
const WATCHDOG_MS = 45_000 // the server sends a heartbeat every 15 s by default

export class ActivityFeed {
  /**
   * `token()` gives the current token; `onChange()` is called when there is something new
   * to show; `onGone()` when the wedding no longer exists (404/410).
   */
  constructor ({ wedding, sub, token, onChange, onGone, onEvents }) {
    this.wedding = wedding
    this.onEvents = onEvents || (() => {})
    this.key = `crdt-server.activity:${wedding}:${sub}`
    this.token = token
    this.onChange = onChange
    this.onGone = onGone
    this.state = 'connecting'
    this.stopped = false
    this.controller = null
    this.retry = 0
    this.timer = 0
    try {
      const kept = JSON.parse(localStorage.getItem(this.key) || 'null')
      this.events = Array.isArray(kept?.events) ? kept.events : []
      this.after = Number.isInteger(kept?.after) ? kept.after : 0
    } catch {
      this.events = []
      this.after = 0
    }
  }

  start () {
    this.stopped = false
    this.connect()
    return this
  }

  stop () {
    this.stopped = true
    clearTimeout(this.timer)
    this.controller?.abort()
    this.state = 'stopped'
  }

  /** Forget what this device keeps (the wedding was deleted). */
  clear () {
    this.stop()
    this.events = []
    this.after = 0
    localStorage.removeItem(this.key)
    this.onChange()
  }

  /** Reconnect now (a new token, or the network is back). */
  reconnect () {
    if (this.stopped) return
    this.controller?.abort()
    clearTimeout(this.timer)
    this.retry = 0
    this.connect()
  }

  later () {
    if (this.stopped) return
    this.state = 'offline'
    this.onChange()
    const wait = Math.min(10_000, 500 * 2 ** this.retry++)
    clearTimeout(this.timer)
    this.timer = setTimeout(() => this.connect(), wait)
  }

  async connect () {
    if (this.stopped) return
    const controller = (this.controller = new AbortController())
    const base = `/api/weddings/${encodeURIComponent(this.wedding)}/events`
    let response
    try {
      const ticket = await fetch(`${base}/stream-tickets`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.token()}` },
        signal: controller.signal
      })
      if (this.gone(ticket)) return
      if (!ticket.ok) return this.later() // 401 while the token is renewed, 429, 503...
      const { ticket: value } = await ticket.json()
      const url = `${base}/stream?ticket=${encodeURIComponent(value)}&after=${this.after}`
      response = await fetch(url, { headers: { Accept: 'text/event-stream' }, signal: controller.signal })
      if (this.gone(response)) return
      if (!response.ok || !response.body) return this.later()
    } catch {
      if (controller.signal.aborted) return
      return this.later()
    }
    this.state = 'live'
    this.retry = 0
    this.onChange()
    await this.read(response.body, controller)
    if (!controller.signal.aborted) this.later()
  }

  gone (response) {
    if (response.status !== 404 && response.status !== 410) return false
    this.onGone()
    return true
  }

  /** Parse the Server-Sent Events of one response until it ends. */
  async read (body, controller) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader()
    let watchdog = setTimeout(() => controller.abort(), WATCHDOG_MS)
    let buffer = ''
    const fresh = []
    try {
      while (true) {
        const { value, done } = await reader.read()
        if (done) break
        clearTimeout(watchdog)
        watchdog = setTimeout(() => controller.abort(), WATCHDOG_MS)
        buffer += value.replace(/\r\n?/g, '\n')
        let end
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const message = parseBlock(block)
          if (message.event === 'end') return // the ticket's credential expired: new ticket
          if (message.data === undefined || message.id === undefined) continue
          try {
            fresh.push(JSON.parse(message.data))
          } catch {
            continue
          }
        }
        if (fresh.length) this.add(fresh.splice(0))
      }
    } catch {
      // Aborted or the connection dropped: the caller reconnects.
    } finally {
      clearTimeout(watchdog)
    }
  }

  add (events) {
    const fresh = []
    for (const event of events) {
      if (!Number.isInteger(event.seq) || event.seq <= this.after) continue
      this.after = event.seq
      this.events.push(event)
      fresh.push(event)
    }
    if (fresh.length) this.onEvents(fresh)
    if (this.events.length > KEEP) this.events = this.events.slice(-KEEP)
    this.save()
    this.onChange()
  }

  save () {
    try {
      localStorage.setItem(this.key, JSON.stringify({ after: this.after, events: this.events }))
    } catch {
      // Storage full: the feed still works, it just is not kept.
    }
  }

  /** The latest activity, newest first, one entry per run of like events of one commit, and
   *  one per run of a person's notes edits less than 10 minutes apart. */
  recent () {
    const groups = []
    for (let i = this.events.length - 1; i >= 0; i--) {
      const event = this.events[i]
      const last = groups[groups.length - 1]
      if (last && last.type === event.type && last.actor.sub === event.actor.sub &&
          (last.at === event.at || notesRun(last.events[last.events.length - 1], event))) {
        last.events.push(event)
      } else {
        if (groups.length === SHOWN) break
        groups.push({ type: event.type, at: event.at, actor: event.actor, priority: event.priority, events: [event] })
      }
    }
    return groups
  }
}

const NOTES_RUN_MS = 10 * 60 * 1000

/** Whether `older` continues a run of notes edits that `newer` is in (same person, same kind). */
function notesRun (newer, older) {
  if (!older.type.endsWith('.notes_edited')) return false
  const gap = Date.parse(newer.at) - Date.parse(older.at)
  return gap >= 0 && gap <= NOTES_RUN_MS
}

function parseBlock (block) {
  const message = {}
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') message.data = message.data === undefined ? value : `${message.data}\n${value}`
    else if (field === 'event' || field === 'id') message[field] = value
  }
  return message
}

// -- words ---------------------------------------------------------------------------------

const ROLE_WORDS = {
  couple: 'The couple',
  planner: 'The planner',
  family: 'A family member',
  vendor: 'A vendor',
  friend: 'A friend',
  server: 'The server',
  admin: 'The server’s operator',
  guest: 'A guest (RSVP link)',
  anonymous: 'Someone'
}

// A role as a person says it, after a name ("made Fay the planner").
const ROLE_NAMES = { couple: 'one of the couple', planner: 'the planner', family: 'family', vendor: 'a vendor', friend: 'a friend' }

/** A member an event names (`{sub, role}`): their name where the app knows it, else their role. */
function memberName (data, names) {
  const sub = data && typeof data.sub === 'string' ? data.sub : ''
  const named = sub ? names.person(sub) : null
  if (named === 'You') return 'you'
  return named || (data && data.role ? `a member (${data.role})` : 'a member')
}

const DOC_WORDS = {
  guests: 'the guest list',
  seating: 'the seating plan',
  timeline: 'the timeline',
  budget: 'the budget',
  tasks: 'the tasks'
}


const CONFLICT_WORDS = {
  'seating.table_over_capacity': 'a table over capacity',
  'seating.seat_double_booked': 'a double-booked seat',
  'seating.unknown_guest': 'a seat for a guest who is not on the list',
  'seating.declined_guest': 'a seat for a guest who declined',
  'seating.unknown_table': 'a guest at a table that does not exist',
  'seating.seat_out_of_range': 'a seat number past the table\'s seats',
  'timeline.ends_before_start': 'a timeline item that ends before it starts',
  'timeline.vendor_overlap': 'one vendor booked twice at once',
  'timeline.location_overlap': 'one place booked twice at once',
  'budget.unknown_category': 'a payment in a category that does not exist',
  'budget.category_over_plan': 'a category paid over its plan',
  'budget.over_total': 'payments over the budget total',
  'budget.plan_over_total': 'a plan over the budget total'
}

// Whose notes a `*.notes_edited` event is about: a guest's (possessive), or the notes of a table,
// an item, a category or a payment.
const NOTES_OF = {
  'guest.notes_edited': { kind: 'guest', possessive: true, name: (e, n) => n.guest(e, e.data.id) },
  'seating.table_notes_edited': { kind: 'table', name: (e, n) => n.table(e.data.id) },
  'timeline.item_notes_edited': { kind: 'item', name: (e, n) => n.item(e) },
  'budget.category_notes_edited': { kind: 'budget category', kinds: 'budget categories', name: (e, n) => `the budget category ${n.category(e)}` },
  'budget.payment_notes_edited': { kind: 'payment', name: () => 'a payment' }
}

// A timeline time, in the wedding's time zone (local.js; as written without a profile).
const clock = (iso) => (typeof iso === 'string' ? formats().time(iso) : '?')

// A move's times: with their days ("23 Oct 2026, 19:00") when it changes the day.
function moveText (from, to) {
  const f = formats()
  const otherDay = typeof from === 'string' && typeof to === 'string' && f.wall(from).day !== f.wall(to).day
  const say = (iso) => (otherDay ? f.dateTime(iso) : clock(iso))
  return `${typeof from === 'string' ? `from ${say(from)} ` : ''}to ${say(to)}`
}

function list (names) {
  if (names.length <= 1) return names.join('')
  if (names.length <= 3) return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`
  return `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`
}

/** A reminder's day in words, by what the server said of it when it reminded (`when`:
 *  `overdue`, `today` or `soon`; a reminder from before `when` was kept is due today). */
export function dueWords ({ when, due }) {
  if (when === 'overdue') return `is overdue (it was due on ${due})`
  if (when === 'soon' && typeof due === 'string') return `is due on ${due}`
  return 'is due today'
}

function plural (n, one, many) {
  return n === 1 ? `${one}` : `${n} ${many}`
}

/**
 * Who did it and what they did, in words, for a group of like events (see `recent`).
 * `names` is what the app knows now: `person(sub)`, `guest(id)`, `table(id)`, `item(id)`,
 * `category(id)`, `money(minor units)`; each returns null when it does not know.
 */
export function describe (group, names) {
  const events = group.events
  const first = events[0]
  const data = first.data || {}
  const n = events.length
  const fields = (e) => (e.data && (e.data.fields || e.data.before)) || {}
  const guest = (e, id) => names.guest(id) || fields(e).name || 'a guest'
  const table = (id) => (id ? names.table(id) || 'a table' : 'no table')
  const item = (e) => names.item(e.data.id) || fields(e).title || 'an item'
  const category = (e) => names.category(e.data.id) || fields(e).name || 'a category'
  const changed = (e) => Object.keys(e.data.changes || {}).map((f) => FIELD_WORDS[f] || f.replace(/_/g, ' '))
  const seatText = (s) => (s && s.table_id ? `${table(s.table_id)}${Number.isInteger(s.seat) ? `, seat ${s.seat}` : ''}` : 'no table')
  // A guest answering from their RSVP link is `guest:<guest id>` (not a member): named by
  // the guest list, and said to come from the link.
  const sub = typeof first.actor.sub === 'string' ? first.actor.sub : ''
  const answering = first.actor.role === 'guest' && sub.startsWith('guest:') ? names.guest(sub.slice(6)) : null
  const who = answering ? `${answering} (RSVP link)` : names.person(sub) || ROLE_WORDS[first.actor.role] || `Someone (${first.actor.role})`
  // A household's note to the couple, written from its RSVP page: its events say when it
  // was written (`rsvp_note_at`), never what it says (the guest list shows that).
  if (n === 1 && answering && /^guest\.household_(added|updated)$/.test(group.type)) {
    const at = data.changes ? data.changes.rsvp_note_at : data.fields && { to: data.fields.rsvp_note_at }
    if (at && at.to !== undefined) return { who, what: at.to ? 'left the couple a note' : 'cleared their note to the couple', kind: 'guest' }
  }
  let what
  switch (group.type) {
    case 'guest.added':
      what = n === 1 ? `added guest ${guest(first, data.id)}` : `added ${n} guests: ${list(events.map((e) => guest(e, e.data.id)))}`
      break
    case 'guest.removed': {
      const gone = guest(first, data.id)
      what = n === 1
        ? `removed ${gone === 'a guest' ? gone : `guest ${gone}`} from the guest list`
        : `removed ${n} guests from the guest list: ${list(events.map((e) => guest(e, e.data.id)))}`
      break
    }
    case 'guest.rsvp_changed':
      what = n === 1 && answering && sub === `guest:${data.id}`
        ? `answered: ${data.to}`
        : n === 1
        ? `set the RSVP of ${guest(first, data.id)} to ${data.to}`
        : `changed ${n} RSVPs: ${list(events.map((e) => `${guest(e, e.data.id)} ${e.data.to}`))}`
      break
    case 'guest.updated': {
      const renamed = data.changes && data.changes.name
      what = n === 1 && renamed && renamed.from
        ? `renamed ${renamed.from} to ${renamed.to}`
        : `updated ${list(events.map((e) => guest(e, e.data.id)))}${n === 1 && changed(first).length ? ` (${list(changed(first))})` : ''}`
      break
    }
    case 'seating.guest_seated':
      what = n === 1
        ? `seated ${guest(first, data.guest_id)} at ${seatText(data)}`
        : `seated ${n} guests: ${list(events.map((e) => guest(e, e.data.guest_id)))}`
      break
    case 'seating.guest_moved':
      what = n === 1
        ? `moved ${guest(first, data.guest_id)} from ${seatText(data.from)} to ${seatText(data.to)}`
        : `moved ${n} guests: ${list(events.map((e) => guest(e, e.data.guest_id)))}`
      break
    case 'seating.guest_unseated':
      what = `unseated ${list(events.map((e) => guest(e, e.data.guest_id)))}${n === 1 && data.from ? ` (was at ${seatText(data.from)})` : ''}`
      break
    case 'seating.table_added':
      what = n === 1
        ? `added ${fields(first).name ? `table ${fields(first).name}` : 'a table'}${fields(first).capacity ? ` (${fields(first).capacity} seats)` : ''}`
        : `added ${n} tables`
      break
    case 'seating.table_updated': {
      const seats = data.changes && data.changes.capacity
      what = n === 1 && seats
        ? `changed the seats at ${table(data.id)} from ${seats.from} to ${seats.to}`
        : `updated ${list(events.map((e) => table(e.data.id)))}`
      break
    }
    case 'seating.table_removed':
      what = `removed ${list(events.map((e) => (fields(e).name ? `table ${fields(e).name}` : 'a table')))}`
      break
    case 'timeline.item_added':
      what = n === 1
        ? `added ${item(first)} to the timeline${fields(first).start ? ` at ${clock(fields(first).start)}` : ''}`
        : `added ${n} timeline items: ${list(events.map(item))}`
      break
    case 'timeline.item_rescheduled':
      what = n === 1
        ? `moved ${item(first)} ${moveText(data.from && data.from.start, (data.to && data.to.start) || (data.to && data.to.end))}`
        : `rescheduled ${list(events.map(item))}`
      break
    case 'timeline.item_updated': {
      const status = data.changes && data.changes.status
      what = n === 1 && status && Object.keys(data.changes).length === 1
        ? `marked ${item(first)} as ${status.to || 'planned'}`
        : `updated ${list(events.map(item))}${n === 1 && changed(first).length ? ` (${list(changed(first))})` : ''}`
      break
    }
    case 'timeline.item_removed':
      what = `removed ${list(events.map(item))} from the timeline`
      break
    case 'budget.category_added':
      what = n === 1 ? `added the budget category ${category(first)}` : `added ${n} budget categories`
      break
    case 'budget.category_updated': {
      const plan = data.changes && data.changes.planned
      what = n === 1 && plan && Object.keys(data.changes).length === 1
        ? `changed the plan for ${category(first)} from ${names.money(plan.from) || '?'} to ${names.money(plan.to) || '?'}`
        : `updated the budget category ${list(events.map(category))}${n === 1 && changed(first).length ? ` (${list(changed(first))})` : ''}`
      break
    }
    case 'budget.category_removed':
      what = `removed the budget category ${list(events.map(category))}`
      break
    case 'task.completed':
      what = `ticked ${n === 1 ? (names.task && names.task(first.data.id)) || 'a task' : `${n} tasks`} done`
      break
    case 'task.reopened':
      what = `reopened ${n === 1 ? (names.task && names.task(first.data.id)) || 'a task' : `${n} tasks`}`
      break
    case 'task.added':
      what = `added ${plural(n, 'a task', 'tasks')}${n === 1 && fields(first).title ? ` (${fields(first).title})` : ''}`
      break
    case 'task.updated':
      what = `updated ${plural(n, 'a task', 'tasks')}`
      break
    case 'task.removed':
      what = `removed ${plural(n, 'a task', 'tasks')}`
      break
    case 'task.due': {
      const title = (names.task && names.task(first.data.id)) || first.data.title
      what = n === 1 && title ? `reminded: “${title}” ${dueWords(first.data)}` : `reminded of ${plural(n, 'a task', 'tasks')} due`
      break
    }
    case 'budget.payment_due': {
      const f = first.data
      what = n === 1
        ? `reminded: a payment of ${names.money(f.amount) || 'an amount'}${f.vendor ? ` to ${f.vendor}` : ''}${f.category_id && names.category(f.category_id) ? ` (${names.category(f.category_id)})` : ''} ${dueWords(f)}`
        : `reminded of ${plural(n, 'a payment', 'payments')} due`
      break
    }
    case 'budget.payment_recorded': {
      const f = fields(first)
      what = n === 1
        ? `recorded a payment of ${names.money(f.amount) || 'an amount'}${f.vendor ? ` to ${f.vendor}` : ''}${f.category_id && names.category(f.category_id) ? ` (${names.category(f.category_id)})` : ''}`
        : `recorded ${n} payments`
      break
    }
    case 'budget.payment_updated':
      what = `updated ${plural(n, 'a payment', 'payments')}${n === 1 && changed(first).length ? ` (${list(changed(first))})` : ''}`
      break
    case 'budget.payment_paid':
      what = `marked ${plural(n, 'a payment', 'payments')} paid`
      break
    case 'budget.payment_removed':
      what = `removed ${plural(n, `a payment${fields(first).amount ? ` of ${names.money(fields(first).amount)}` : ''}`, 'payments')}`
      break
    case 'budget.total_changed':
      what = data.to === null || data.to === undefined
        ? 'removed the budget total'
        : `set the budget total to ${names.money(data.to) || data.to}${data.from !== null && data.from !== undefined ? ` (was ${names.money(data.from) || data.from})` : ''}`
      break
    case 'budget.settings_changed':
      what = `changed the budget's ${String(data.field || 'settings').replace(/_/g, ' ')}`
      break
    case 'guest.notes_edited':
    case 'seating.table_notes_edited':
    case 'timeline.item_notes_edited':
    case 'budget.category_notes_edited':
    case 'budget.payment_notes_edited': {
      const of = NOTES_OF[group.type]
      const named = (e) => of.name(e, { guest, table, item, category })
      const whose = (e) => (of.possessive ? `${named(e)}'s notes` : `the notes of ${named(e)}`)
      const ids = [...new Set(events.map((e) => e.data && e.data.id))]
      const others = ids.length - 1
      what = others === 0
        ? `edited ${whose(first)}`
        : `edited the notes of ${named(first)} and ${others} other ${others === 1 ? of.kind : of.kinds || `${of.kind}s`}`
      const expanded = n > 1 ? events.map(whose) : undefined
      return { who, what, kind: group.type.split('.')[0], ...(expanded ? { details: expanded } : {}) }
    }
    case 'thread.created':
      what = n === 1 ? `started the thread “${data.subject || 'a thread'}”` : `started ${n} threads`
      break
    case 'thread.message_posted': {
      const subject = names.thread ? names.thread(data.thread) : null
      // A mention, `@[Name](sub)`, reads `@Name` (as in the thread).
      const body = typeof data.body === 'string' ? data.body.slice(0, 400).replace(/@\[([^[\]\n]{1,200})\]\([^()\s]{1,256}\)/g, '@$1').slice(0, 140) : ''
      what = n === 1
        ? `wrote${subject ? ` in “${subject}”` : ''}${body ? `: ${body}` : ''}`
        : `wrote ${n} messages${subject ? ` in “${subject}”` : ''}`
      break
    }
    case 'thread.message_edited':
      what = `edited ${plural(n, 'a message', 'messages')}`
      break
    case 'thread.message_deleted':
      what = `deleted ${plural(n, 'a message', 'messages')}`
      break
    case 'thread.resolved':
    case 'thread.archived':
    case 'thread.reopened': {
      const subject = (names.thread && names.thread(data.thread)) || data.subject
      what = `${group.type.slice(7)} ${subject ? `the thread “${subject}”` : plural(n, 'a thread', 'threads')}`
      break
    }
    case 'thread.updated':
    case 'thread.reaction': {
      const subject = (names.thread && names.thread(data.thread)) || data.subject
      what = `${group.type === 'thread.reaction' ? 'reacted in' : 'updated'} ${subject ? `the thread “${subject}”` : 'a thread'}`
      break
    }
    case 'member.joined':
      return { who: data.name || who, what: `joined the wedding${data.role ? ` as ${ROLE_NAMES[data.role] || data.role}` : ''}`, kind: 'member' }
    case 'member.invited':
      what = `invited ${plural(n, `someone${data.role ? ` as ${ROLE_NAMES[data.role] || data.role}` : ''}`, 'people')}`
      break
    case 'member.removed':
      what = `removed ${list(events.map((e) => memberName(e.data, names)))} from the wedding`
      break
    case 'member.role_changed':
      what = n === 1
        ? `made ${memberName(data, names)} ${ROLE_NAMES[data.to] || data.to}${data.from ? ` (was ${ROLE_NAMES[data.from] || data.from})` : ''}`
        : `changed the roles of ${list(events.map((e) => memberName(e.data, names)))}`
      break
    case 'rsvp.answered': {
      // Every answer sent by a household's link, changed or not (answers.js).
      const people = Array.isArray(data.answers) ? data.answers.filter((a) => a && typeof a.id === 'string') : []
      what = n === 1
        ? `answered${people.length ? ` for ${list(people.map((a) => `${names.guest(a.id) || 'a guest'} (${a.rsvp})`))}` : ''}`
        : `sent ${n} answers`
      return { who: answering ? who : 'A household (RSVP link)', what, kind: 'guest' }
    }
    case 'rsvp.links_exported':
      // Who took every RSVP link: the printable sheet, or the CSV (rsvplinks.js).
      what = data.format === 'sheet' ? 'opened the RSVP links’ printable sheet' : 'downloaded the RSVP links'
      break
    case 'day.emergency': {
      // Raised from the app (emergency.js): its text, and what it concerns.
      const about = [...(Array.isArray(data.items) ? data.items.map((id) => names.item(id) || id) : []), ...(Array.isArray(data.vendors) ? data.vendors : [])]
      const text = typeof data.text === 'string' ? data.text.slice(0, 200) : ''
      what = n === 1
        ? `raised an emergency${text ? `: ${text}` : ''}${about.length ? ` (concerns ${list(about)})` : ''}`
        : `raised ${n} emergencies`
      return { who, what, kind: 'emergency' }
    }
    case 'day.mode_changed': {
      // The planner's switch (PUT .../day/mode): the newest says where it is now.
      const mode = data.mode
      what = mode === 'on' ? 'switched day-of mode on' : mode === 'off' ? 'switched day-of mode off' : 'set day-of mode back to automatic'
      return { who, what, kind: 'day' }
    }
    case 'day.vendor_missing':
      // The server's alert: the vendor by name, and the call time they missed.
      return {
        who: '',
        what: `${list(events.map((e) => (e.data && (e.data.name || e.data.vendor)) || 'A vendor'))} ${n === 1 ? 'has' : 'have'} not checked in${n === 1 && data.call_time ? ` (called for ${clock(data.call_time)})` : ''}`,
        kind: 'urgent'
      }
    case 'conflict.detected':
    case 'conflict.resolved': {
      const kinds = list([...new Set(events.map((e) => CONFLICT_WORDS[e.data.code] || String(e.data.code || 'a conflict').replace(/[._]/g, ' ')))])
      return {
        who: '',
        what: group.type === 'conflict.detected' ? `Conflict found: ${kinds}` : `Conflict resolved: ${kinds}`,
        kind: group.type === 'conflict.detected' ? 'conflict' : 'resolved'
      }
    }
    case 'integration.guests_imported': {
      // A guest list file (CSV) taken in: its rows came as guest events of their own, in
      // parts; this one says it was one import, and what it did.
      const counts = [
        data.added ? `${plural(data.added, 'one guest', 'guests')} added` : '',
        data.changed ? `${plural(data.changed, 'one guest', 'guests')} changed` : ''
      ].filter(Boolean)
      what = `imported a guest list file${counts.length ? ` (${list(counts)})` : ''}`
      return { who, what, kind: 'guest' }
    }
    case 'document.restored': {
      // Who brought which document back, to how it was when (issue 78, point 4).
      const what_ = DOC_WORDS[data.doc] || 'a document'
      const then = typeof data.point_at === 'string' ? ` as it was at ${formats().dateTime(data.point_at)}` : ' as it was earlier'
      what = data.changed === false ? `restored ${what_}${then}: it was already so` : `restored ${what_}${then}`
      break
    }
    default: {
      // Custom events (custom.*, day.*): their type in words, and a message if they carry one.
      const name = group.type.replace(/^(custom|day)\./, '').replace(/[._]/g, ' ')
      const note = ['message', 'text', 'note', 'title'].map((k) => data[k]).find((v) => typeof v === 'string')
      what = `${n === 1 ? '' : `${n}× `}${name}${note ? `: ${note.slice(0, 200)}` : ''}`
      return { who, what, kind: group.priority === 'normal' || !group.priority ? 'custom' : group.priority }
    }
  }
  return { who, what, kind: group.type.split('.')[0] }
}

/** Where a group's (latest) change is: `{ section, entity }` (entity may be null), or null. */
export function placeOf (group) {
  const event = group.events[0]
  const data = event.data || {}
  if (group.type.startsWith('conflict.')) {
    const path = Array.isArray(data.paths) && typeof data.paths[0] === 'string' ? data.paths[0].split('/') : []
    return path.length ? { section: path[0], entity: path.length > 2 ? path[path.length - 1] : null } : null
  }
  const section = { guest: 'guests', seating: 'seating', timeline: 'timeline', budget: 'budget', task: 'tasks' }[group.type.split('.')[0]]
  if (!section) return null
  const entity = typeof data.guest_id === 'string' ? data.guest_id : typeof data.id === 'string' ? data.id : null
  return { section, entity: group.type.endsWith('removed') ? null : entity }
}

/** "just now", "5 min ago", "14:05", "12 Jun 14:05", in the wedding's time zone (local.js). */
export function when (iso, now = Date.now()) {
  return formats().ago(iso, now)
}
