// Threads about one thing (a guest, a table, a timeline item, a budget category), kept by the
// server (README, "Threads"): the list of the wedding's threads with each one's unread count,
// the messages of the threads a person opens, and an outbox of messages not yet stored.
//
// Live: the activity feed's event stream carries thread.* events (filtered by the server to
// what this person may see); each one makes the list (and the open threads' messages)
// refresh. A message is sent with a client-made id (crypto.randomUUID) by an idempotent PUT,
// so it is retried until the server has it, across reloads (the outbox is kept in
// localStorage), and stored exactly once.

import { call } from './api.js'

const RETRY_MAX_MS = 15_000
const PAGE = 500

/** The thread kind that matches a document. */
export const KIND_OF = { guests: 'guest', seating: 'seating', timeline: 'timeline', budget: 'budget' }

/** Threads anchored to `{doc, id}`, latest activity first. */
export function anchoredTo (threads, doc, id) {
  return threads.filter((t) => Array.isArray(t.anchors) && t.anchors.some((a) => a.doc === doc && a.id === id))
}

/** Unread messages of the threads anchored to `{doc, id}`. */
export function unreadFor (threads, doc, id) {
  return anchoredTo(threads, doc, id).reduce((n, t) => n + (Number.isInteger(t.unread) ? t.unread : 0), 0)
}

/** Whether a failed request is worth retrying (the network, the server busy or restarting). */
export function retryable (status) {
  return status === 0 || status === 401 || status === 408 || status === 425 || status === 429 || status >= 500
}

export class ThreadStore {
  /** `token()` gives the current token; `onChange()` is called when there is something new. */
  constructor ({ wedding, sub, token, onChange }) {
    this.wedding = wedding
    this.sub = sub
    this.token = token
    this.onChange = onChange
    this.base = `/api/weddings/${encodeURIComponent(wedding)}`
    this.threads = []
    this.loaded = false
    this.messages = new Map() // thread id -> messages in seq order
    this.watched = new Set() // threads whose messages are shown
    this.members = new Map() // sub -> name
    this.membersLoaded = false
    this.membersLoading = null
    this.unnotified = new Map() // thread id -> what this person's last message there could not notify
    this.outboxKey = `crdt-server.outbox:${wedding}:${sub}`
    this.outbox = this.loadOutbox()
    this.sending = false
    this.retry = 0
    this.timer = 0
    this.refreshing = null
    this.again = false
    this.stopped = false
  }

  loadOutbox () {
    try {
      const kept = JSON.parse(localStorage.getItem(this.outboxKey) || '[]')
      return Array.isArray(kept) ? kept.filter((m) => m && typeof m.id === 'string' && typeof m.thread === 'string') : []
    } catch {
      return []
    }
  }

  saveOutbox () {
    try {
      localStorage.setItem(this.outboxKey, JSON.stringify(this.outbox))
    } catch {}
  }

  start () {
    this.stopped = false
    this.refresh()
    this.loadMembers()
    this.flush()
    return this
  }

  stop () {
    this.stopped = true
    clearTimeout(this.timer)
  }

  /** Forget what this device keeps (the wedding was deleted). */
  clear () {
    this.stop()
    this.threads = []
    this.messages.clear()
    this.outbox = []
    localStorage.removeItem(this.outboxKey)
  }

  request (method, path, body, headers = {}) {
    return call(this.token, this.base, method, path, body, headers)
  }

  /** The member directory as it is now (mentions and task owners pick from it): reloaded
   *  when a member joins, is invited, changes role or is removed; never an id for a name. */
  async loadMembers () {
    const { status, body } = await this.request('GET', '/members')
    if (status !== 200 || !body || !Array.isArray(body.members)) return
    const members = new Map()
    for (const m of body.members) if (m && m.sub) members.set(m.sub, m.name || 'A member')
    this.members = members
    this.membersLoaded = true
    this.onChange()
  }

  /** Reload the directory (someone typed a name it does not hold: they may have been
   *  added since), one load at a time: a miss while one is under way waits for it. */
  refreshMembers () {
    this.membersLoading = this.membersLoading || this.loadMembers().finally(() => { this.membersLoading = null })
    return this.membersLoading
  }

  /** Reload the list of threads (and the messages of the watched ones); coalesced. */
  refresh () {
    if (this.stopped) return Promise.resolve()
    if (this.refreshing) {
      this.again = true
      return this.refreshing
    }
    this.refreshing = (async () => {
      do {
        this.again = false
        const found = []
        let after = ''
        let ok = true
        do {
          const { status, body } = await this.request('GET', `/threads?limit=${PAGE}${after ? `&after=${encodeURIComponent(after)}` : ''}`)
          if (status !== 200 || !body || !Array.isArray(body.threads)) { ok = false; break }
          found.push(...body.threads)
          after = body.next || ''
        } while (after)
        if (ok) {
          this.threads = found
          this.loaded = true
        }
        await Promise.all([...this.watched].map((tid) => this.loadMessages(tid)))
        this.onChange()
      } while (this.again && !this.stopped)
    })().finally(() => { this.refreshing = null })
    return this.refreshing
  }

  /** Fetch the messages of a thread newer than those held. */
  async loadMessages (tid) {
    const held = this.messages.get(tid) || []
    let after = held.length ? held[held.length - 1].seq : 0
    const fresh = []
    while (true) {
      const { status, body } = await this.request('GET', `/threads/${encodeURIComponent(tid)}/messages?after=${after}&limit=${PAGE}`)
      if (status !== 200 || !body || !Array.isArray(body.messages)) break
      fresh.push(...body.messages)
      if (body.next === null || body.next === undefined || !body.messages.length) break
      after = body.next
    }
    if (!fresh.length && this.messages.has(tid)) return
    const byId = new Map(held.map((m) => [m.id, m]))
    for (const m of fresh) byId.set(m.id, m)
    this.messages.set(tid, [...byId.values()].sort((a, b) => a.seq - b.seq))
  }

  /** Show a thread's messages (and keep them live) until `unwatch`. */
  async watch (tid) {
    if (this.watched.has(tid)) return
    this.watched.add(tid)
    await this.loadMessages(tid)
    this.onChange()
  }

  unwatch (tid) {
    this.watched.delete(tid)
  }

  /** Thread events from the stream: refresh (edits reload the thread's messages whole). */
  onEvents (events) {
    if (events.some((e) => typeof e.type === 'string' && e.type.startsWith('member.'))) this.loadMembers()
    const ours = events.filter((e) => typeof e.type === 'string' && e.type.startsWith('thread.'))
    if (!ours.length) return
    for (const e of ours) {
      const tid = e.data && e.data.thread
      if (tid && (e.type === 'thread.message_edited' || e.type === 'thread.message_deleted' || e.type === 'thread.reaction')) {
        this.messages.delete(tid)
      }
    }
    this.refresh()
  }

  /** Start a thread about `{doc, id}`; answers the thread, or throws with a reason. */
  async create (subject, doc, id) {
    const key = crypto.randomUUID()
    const body = { subject, kind: KIND_OF[doc] || 'general', anchors: [{ doc, id }] }
    for (let attempt = 0; ; attempt++) {
      const answer = await this.request('POST', '/threads', body, { 'Idempotency-Key': key })
      if (answer.status === 200 || answer.status === 201) {
        this.threads = [answer.body, ...this.threads.filter((t) => t.id !== answer.body.id)]
        this.onChange()
        this.refresh()
        return answer.body
      }
      if (!retryable(answer.status) || attempt >= 2) {
        throw new Error(answer.body && answer.body.detail ? answer.body.detail : answer.status ? `HTTP ${answer.status}` : 'the server cannot be reached')
      }
      await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt))
    }
  }

  /** Queue a message (stored by the server exactly once, retried until it is). */
  post (tid, body) {
    const message = { id: crypto.randomUUID(), thread: tid, body, at: new Date().toISOString(), error: null }
    this.outbox.push(message)
    this.saveOutbox()
    this.onChange()
    this.retry = 0
    this.flush()
    return message
  }

  /** Messages of a thread not yet stored by the server. */
  pending (tid) {
    return this.outbox.filter((m) => m.thread === tid)
  }

  discard (mid) {
    this.outbox = this.outbox.filter((m) => m.id !== mid)
    this.saveOutbox()
    this.onChange()
  }

  /** Send the outbox, in order; retry with backoff when the server cannot take it now. */
  async flush () {
    if (this.sending || this.stopped) return
    this.sending = true
    clearTimeout(this.timer)
    try {
      for (const message of [...this.outbox]) {
        if (message.error) continue
        const path = `/threads/${encodeURIComponent(message.thread)}/messages/${encodeURIComponent(message.id)}`
        const answer = await this.request('PUT', path, { body: message.body })
        if (answer.status === 200 || answer.status === 201) {
          this.outbox = this.outbox.filter((m) => m.id !== message.id)
          this.saveOutbox()
          const missed = answer.body && Array.isArray(answer.body.unnotified_mentions) ? answer.body.unnotified_mentions : []
          if (missed.length) this.unnotified.set(message.thread, missed)
          else this.unnotified.delete(message.thread)
          const held = this.messages.get(message.thread)
          if (held && answer.body && !held.some((m) => m.id === answer.body.id)) {
            held.push(answer.body)
            held.sort((a, b) => a.seq - b.seq)
          }
          this.onChange()
          continue
        }
        if (retryable(answer.status)) {
          const wait = Math.min(RETRY_MAX_MS, 500 * 2 ** this.retry++)
          this.timer = setTimeout(() => this.flush(), wait)
          this.onChange()
          return
        }
        message.error = (answer.body && answer.body.detail) || `HTTP ${answer.status}`
        this.saveOutbox()
        this.onChange()
      }
      this.retry = 0
      this.refresh()
    } finally {
      this.sending = false
    }
  }

  /** The network is back (or a new token): send what waits now. */
  reconnect () {
    this.retry = 0
    this.flush()
    this.refresh()
  }

  /** Resolve, reopen or archive a thread; answers null, or the server's reason. */
  async setStatus (tid, status) {
    const answer = await this.request('PATCH', `/threads/${encodeURIComponent(tid)}`, { status })
    if (answer.status === 200 && answer.body) {
      this.threads = this.threads.map((t) => (t.id === tid ? answer.body : t))
      this.onChange()
      return null
    }
    return (answer.body && answer.body.detail) || (answer.status ? `HTTP ${answer.status}` : 'the server cannot be reached')
  }

  /** Mark a thread read up to its last message (when it is shown). */
  async markRead (tid) {
    const thread = this.threads.find((t) => t.id === tid)
    const held = this.messages.get(tid)
    if (!thread || !thread.unread || !held || !held.length) return
    const last = held[held.length - 1]
    if (this.marking === `${tid}:${last.id}`) return
    this.marking = `${tid}:${last.id}`
    const { status } = await this.request('POST', `/threads/${encodeURIComponent(tid)}/read`, { up_to: last.id })
    if (status === 200 || status === 204) {
      thread.unread = 0
      this.onChange()
      this.refresh()
    } else {
      this.marking = null
    }
  }
}
