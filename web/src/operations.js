// Domain operations over HTTP, for the documents a person may only `operate` (/access says so;
// family's default on the guests and the seating). Their socket is read-only: an edit of the
// replica would be refused and stay on this device, unconfirmed, for ever. So the app never
// edits those replicas; it queues each change as an operation (`set_rsvp`, `update_guest`,
// `assign_seat`, `unassign_seat`), keeps the queue in localStorage (a reload or a night
// offline loses nothing) and sends it in order when the server answers. Until confirmed, the
// queued changes are shown over the document (`overlay`).

import { operateFields } from './fields.js'

const RETRY_MS = [500, 1000, 2000, 4000]

/** A random key per queued operation, sent as `Idempotency-Key`. */
function newKey () {
  if (crypto.randomUUID) return crypto.randomUUID()
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('')
}

export class OperationQueue {
  constructor ({ wedding, sub, token, onChange, onRefused, onGone }) {
    this.wedding = wedding
    this.key = `crdt-server.ops:${wedding}:${sub}`
    this.token = token
    this.onChange = onChange
    this.onRefused = onRefused
    this.onGone = onGone
    this.sending = false
    this.failures = 0
    this.timer = 0
    this.stopped = false
    try {
      const kept = JSON.parse(localStorage.getItem(this.key) || '[]')
      this.entries = Array.isArray(kept) ? kept.filter((e) => e && typeof e.doc === 'string' && e.op) : []
    } catch {
      this.entries = []
    }
  }

  get count () {
    return this.entries.length
  }

  save () {
    try {
      if (this.entries.length) localStorage.setItem(this.key, JSON.stringify(this.entries))
      else localStorage.removeItem(this.key)
    } catch {}
  }

  /** Queue `op` for document `doc` and try to send it now; `form` names the form it came
   *  from, where a refusal is shown. */
  add (doc, op, form = null) {
    this.entries.push(form ? { key: newKey(), doc, op, form } : { key: newKey(), doc, op })
    this.save()
    this.onChange()
    this.kick()
  }

  /** Send what is queued now (after a failure, a reconnection or the browser going online). */
  kick () {
    if (this.stopped || this.sending || !this.entries.length) return
    clearTimeout(this.timer)
    this.timer = 0
    this.flush()
  }

  stop () {
    this.stopped = true
    clearTimeout(this.timer)
  }

  clear () {
    this.entries = []
    this.save()
  }

  retryLater () {
    const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)]
    this.failures += 1
    clearTimeout(this.timer)
    this.timer = setTimeout(() => this.kick(), wait)
  }

  /** Send the queue in order, one at a time: each answer decides what happens to the next. */
  async flush () {
    this.sending = true
    try {
      while (this.entries.length && !this.stopped) {
        const entry = this.entries[0]
        let response
        try {
          response = await fetch(`/api/weddings/${encodeURIComponent(this.wedding)}/docs/${entry.doc}/ops`, {
            method: 'POST',
            headers: {
              Authorization: `Bearer ${this.token()}`,
              'Content-Type': 'application/json',
              // Not honoured by the operations route yet: harmless, and what API.md asks of
              // a client. The queued operations set values, so sending one twice (its answer
              // lost) sets the same values again.
              'Idempotency-Key': entry.key
            },
            body: JSON.stringify(entry.op)
          })
        } catch {
          this.retryLater() // no server: keep everything, try again
          return
        }
        if (response.status === 410) {
          this.clear()
          this.onGone()
          return
        }
        if (response.status === 401 || response.status === 429 || response.status >= 500) {
          this.retryLater() // a fresh token, a pause or a restart will let it through
          return
        }
        this.entries.shift()
        this.save()
        this.failures = 0
        // Refused for good (403 not yours, 422 impossible now): drop it and say why, except
        // an unseat whose seat is already gone (a retry of one that went through).
        if (!response.ok && !(response.status === 422 && entry.op.op === 'unassign_seat')) {
          const problem = await response.json().catch(() => ({}))
          this.onRefused(entry, problem.detail || `HTTP ${response.status}`, problem)
        }
        this.onChange()
      }
    } finally {
      this.sending = false
      this.onChange()
    }
  }

  /** The guests as they will be once the queue is through (`readGuests`' list). */
  overlayGuests (guests) {
    const byId = new Map(guests.map((g) => [g.id, g]))
    for (const { doc, op } of this.entries) {
      const guest = doc === 'guests' && byId.get(op.guest_id)
      if (!guest) continue
      for (const field of operateFields('guests', 'update_guest')) {
        if (field in op) guest[field] = op[field]
      }
      guest.queued = true
    }
    return guests
  }

  /** The seating as it will be once the queue is through (`readSeating`'s value). */
  overlaySeating (seating) {
    for (const { doc, op } of this.entries) {
      if (doc !== 'seating') continue
      if (op.op === 'assign_seat') seating.assignments.set(op.guest_id, { table_id: op.table_id, seat: op.seat ?? null })
      if (op.op === 'unassign_seat') seating.assignments.delete(op.guest_id)
    }
    return seating
  }
}
