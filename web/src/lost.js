// Writes of yours that were lost in a race: the server found that someone wrote the same
// field at the same time and their value was kept (GET /api/weddings/{id}/conflicts,
// code concurrent_edit). Each is shown to the person whose write was lost, with both values:
// "Use mine" writes the lost value back (a write made having seen theirs, which closes the
// finding on the server), "Keep theirs" acknowledges it.

import { html, nothing } from 'lit-html'

/** The lost writes of one person, kept current from the activity feed's conflict events. */
export class LostWrites {
  constructor ({ wedding, sub, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/conflicts`
    this.sub = sub
    this.token = token
    this.onChange = onChange
    this.items = []
    this.busy = new Set()
    this.loading = null
    this.again = false
  }

  start () {
    this.refresh()
    return this
  }

  onEvents (events) {
    if (events.some((e) => typeof e.type === 'string' && e.type.startsWith('conflict.'))) this.refresh()
  }

  refresh () {
    if (this.loading) {
      this.again = true
      return this.loading
    }
    this.loading = (async () => {
      do {
        this.again = false
        try {
          const response = await fetch(this.base, { headers: { Authorization: `Bearer ${this.token()}` } })
          if (!response.ok) break
          const body = await response.json()
          this.items = (body.conflicts || []).filter((c) =>
            c.concurrent && !c.concurrent.same_actor &&
            c.concurrent.lost.actor && c.concurrent.lost.actor.sub === this.sub)
          this.onChange()
        } catch {
          break // offline: the next conflict event or reconnection asks again
        }
      } while (this.again)
    })().finally(() => { this.loading = null })
    return this.loading
  }

  /** Write the lost value back into the document (a map key, as the race was). */
  useMine (item, docs) {
    const c = item.concurrent
    const doc = docs[c.doc]
    if (!doc || c.kind !== 'concurrent_edit') return false
    const [root, key, ...fields] = c.path
    let map = doc.getMap(root)
    const names = [key, ...fields]
    for (const name of names.slice(0, -1)) {
      map = map.get(name)
      if (!map || typeof map.get !== 'function') return false
    }
    doc.transact(() => map.set(names[names.length - 1], c.lost.value), 'planner-app')
    this.items = this.items.filter((i) => i.id !== item.id)
    this.onChange()
    return true
  }

  async keepTheirs (item) {
    this.busy.add(item.id)
    this.onChange()
    try {
      await fetch(`${this.base}/${encodeURIComponent(item.id)}/resolve`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.token()}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ acknowledge: true })
      })
    } finally {
      this.busy.delete(item.id)
      await this.refresh()
    }
  }
}

const shown = (value) => (value === null || value === undefined ? 'nothing' : `“${typeof value === 'string' ? value : JSON.stringify(value)}”`)

/** The notices: both values, who wrote the kept one, and the two choices. */
export function lostView (lost, { person, entry, docs }) {
  if (!lost.items.length) return nothing
  return html`<section class="banner lost" role="region" aria-label="Changes of yours that were lost">
    <ul>${lost.items.map((item) => {
      const c = item.concurrent
      const what = entry(c.doc, c.path)
      const who = c.kept && c.kept.actor ? (person(c.kept.actor.sub) || c.kept.actor.sub) : 'someone'
      const text = c.kind === 'edited_removed_entry'
        ? html`You changed ${what} to ${shown(c.lost.value)}, but ${who} removed it at the same time.`
        : html`You set ${what} to ${shown(c.lost.value)}, but ${who} set it to ${shown(c.kept && c.kept.value)} at the same time, and theirs was kept.`
      return html`<li data-conflict=${item.id}>
        <p>${text}</p>
        ${c.kind === 'concurrent_edit' && c.path.length >= 2
          ? html`<button type="button" @click=${() => lost.useMine(item, docs())}>Use mine</button>`
          : nothing}
        <button type="button" ?disabled=${lost.busy.has(item.id)} @click=${() => lost.keepTheirs(item)}>${c.kind === 'concurrent_edit' ? 'Keep theirs' : 'OK'}</button>
      </li>`
    })}</ul>
  </section>`
}
