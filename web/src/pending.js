// Local edits the server has not confirmed yet (web/src/sync.js keeps one per document):
// kept in localStorage until the server's messages cover them.
import * as Y from 'yjs'

/** Whether the union of `confirmed` ranges ([client, clock, len]) covers `range`. The
 *  server takes a large deletion in by parts (each committed and sent before the next),
 *  so one deleted range may come back as several echoed ranges. */
export function coveredBy (confirmed, [client, clock, len]) {
  const mine = confirmed.filter(([c]) => c === client).sort((a, b) => a[1] - b[1])
  let reached = clock
  for (const [, start, n] of mine) {
    if (start > reached) break
    reached = Math.max(reached, start + n)
  }
  return reached >= clock + len
}

export function rangesOf (deleteSet) {
  const ranges = []
  deleteSet.clients.forEach((items, client) => {
    for (const item of items) ranges.push([client, item.clock, item.len])
  })
  return ranges
}

/**
 * Local edits not yet confirmed by the server: each is remembered by the clock its items end
 * at (per Yjs client) and the ranges it deleted. An edit is confirmed once the server's
 * messages (its echo of the update, its state vector, its sync step 2) cover both.
 */
export class PendingEdits {
  constructor (key, onChange) {
    this.key = key
    this.onChange = onChange
    this.confirmedClock = new Map()
    this.confirmedRanges = []
    try {
      this.edits = JSON.parse(localStorage.getItem(key) || '[]')
    } catch {
      this.edits = []
    }
  }

  get count () {
    return this.edits.length
  }

  add (update, clientID) {
    const meta = Y.parseUpdateMeta(update)
    const { ds } = Y.decodeUpdate(update)
    this.edits.push({ client: clientID, clock: meta.to.get(clientID) ?? null, ranges: rangesOf(ds) })
    this.save()
  }

  /** Edits re-applied in one update (recover.js): one per client it writes under, and its
   *  deletions. */
  addAll (update) {
    Y.parseUpdateMeta(update).to.forEach((clock, client) => this.edits.push({ client, clock, ranges: [] }))
    const ranges = rangesOf(Y.decodeUpdate(update).ds)
    if (ranges.length) this.edits.push({ client: null, clock: null, ranges })
    this.save()
  }

  /** Take over the edits kept under `key` (a local copy's former name). */
  adopt (key) {
    let edits = []
    try {
      edits = JSON.parse(localStorage.getItem(key) || '[]')
    } catch {}
    localStorage.removeItem(key)
    if (!Array.isArray(edits) || !edits.length) return
    this.edits.push(...edits)
    this.save()
  }

  confirmUpdate (update) {
    const meta = Y.parseUpdateMeta(update)
    meta.to.forEach((clock, client) => this.confirmClock(client, clock))
    this.confirmedRanges.push(...rangesOf(Y.decodeUpdate(update).ds))
    this.settle()
  }

  confirmStateVector (stateVector) {
    Y.decodeStateVector(stateVector).forEach((clock, client) => this.confirmClock(client, clock))
    this.settle()
  }

  confirmClock (client, clock) {
    if ((this.confirmedClock.get(client) ?? 0) < clock) this.confirmedClock.set(client, clock)
  }

  covered (range) {
    return coveredBy(this.confirmedRanges, range)
  }

  settle () {
    const before = this.edits.length
    this.edits = this.edits.filter((edit) =>
      (edit.clock !== null && (this.confirmedClock.get(edit.client) ?? 0) < edit.clock) ||
      !edit.ranges.every((range) => this.covered(range))
    )
    if (this.edits.length === 0) this.confirmedRanges = []
    if (this.edits.length !== before) this.save()
  }

  save () {
    if (this.edits.length) localStorage.setItem(this.key, JSON.stringify(this.edits))
    else localStorage.removeItem(this.key)
    this.onChange()
  }

  clear () {
    this.edits = []
    this.save()
  }
}
