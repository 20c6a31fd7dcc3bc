// Writes of yours that were lost in a race: the server found that someone wrote the same
// field at the same time and their value was kept (GET /api/weddings/{id}/conflicts,
// code concurrent_edit). Each is shown to the person whose write was lost, with both values:
// "Use mine" writes the lost value back (a write made having seen theirs, which closes the
// finding on the server), "Keep theirs" acknowledges it. A field the person's role may not
// read (a vendor allowed to write the guest list, racing on a guest's contact) comes
// without its values (`lost`/`kept` have no `value` key): the notice says they are hidden,
// and offers no "Use mine", which would write a value they never saw.

import { html, nothing } from 'lit-html'

/** The lost writes of one person, kept current from the activity feed's conflict events. */
export class LostWrites {
  constructor ({ wedding, sub, token, onChange, canResolve = () => true }) {
    this.canResolve = canResolve
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/conflicts`
    this.sub = sub
    // Notices dismissed on this device: a role without `conflicts.resolve` (family, a
    // vendor) cannot acknowledge a finding on the server, but may put its notice away.
    this.dismissedKey = `crdt-server.lost-dismissed:${wedding}:${sub}`
    this.dismissed = new Set(readList(this.dismissedKey))
    this.token = token
    this.onChange = onChange
    this.items = []
    this.all = [] // every finding of GET /conflicts (the banner's suggestions and ids)
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
          this.all = Array.isArray(body.conflicts) ? body.conflicts : []
          const mine = (body.conflicts || []).filter((c) =>
            c.concurrent && !c.concurrent.same_actor &&
            c.concurrent.lost.actor && c.concurrent.lost.actor.sub === this.sub)
          // Forget dismissals of findings that are gone (the list stays small).
          this.keepDismissed(new Set(mine.map((c) => c.id)))
          this.items = mine.filter((c) => !this.dismissed.has(c.id))
          this.onChange()
        } catch {
          break // offline: the next conflict event or reconnection asks again
        }
      } while (this.again)
    })().finally(() => { this.loading = null })
    return this.loading
  }

  /** Write the lost value back into the document (a map key, as the race was); never a
   * value hidden from the person (there is none to write). */
  useMine (item, docs) {
    const c = item.concurrent
    const doc = docs[c.doc]
    if (!doc || !canUseMine(c)) return false
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

  /** Settle any finding: `{acknowledge: true}` or `{ops: [...]}` (its suggestion's); null,
   *  or the server's reason. */
  async settle (finding, how) {
    this.busy.add(finding.id)
    this.onChange()
    try {
      const response = await fetch(`${this.base}/${encodeURIComponent(finding.id)}/resolve`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.token()}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(how)
      }).catch(() => null)
      if (response && response.ok) return null
      const body = response ? await response.json().catch(() => ({})) : {}
      return body.detail || 'the server cannot be reached'
    } finally {
      this.busy.delete(finding.id)
      await this.refresh()
    }
  }

  async keepTheirs (item) {
    if (!this.canResolve()) {
      // `/access` lists no `conflicts.resolve`: the notice is put away on this device only.
      this.keepDismissed(null, item.id)
      await this.refresh()
      return
    }
    this.busy.add(item.id)
    this.onChange()
    try {
      const response = await fetch(`${this.base}/${encodeURIComponent(item.id)}/resolve`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.token()}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ acknowledge: true })
      })
      // Not the role's to acknowledge (403): the notice is put away on this device.
      if (response.status === 403) this.keepDismissed(null, item.id)
    } finally {
      this.busy.delete(item.id)
      await this.refresh()
    }
  }

  /** Dismiss ``add`` (if given) and forget dismissals not in ``open`` (if given). */
  keepDismissed (open, add) {
    if (add) this.dismissed.add(add)
    if (open) for (const id of this.dismissed) if (!open.has(id)) this.dismissed.delete(id)
    try {
      if (this.dismissed.size) localStorage.setItem(this.dismissedKey, JSON.stringify([...this.dismissed]))
      else localStorage.removeItem(this.dismissedKey)
    } catch {}
  }
}

function readList (key) {
  try {
    const list = JSON.parse(localStorage.getItem(key) || '[]')
    return Array.isArray(list) ? list.filter((id) => typeof id === 'string') : []
  } catch {
    return []
  }
}

const shown = (value) => (value === null || value === undefined ? 'nothing' : `“${typeof value === 'string' ? value : JSON.stringify(value)}”`)

/** Whether a side of a finding (`lost`, `kept`) came without its value: the field is hidden
 * from the reader's role (the key is absent; a value of `null` is a value, "nothing"). */
export const hidden = (side) => Boolean(side) && typeof side === 'object' && !('value' in side)

/** Whether "Use mine" can write the lost value back: a race for one key, its value known. */
export const canUseMine = (c) => c.kind === 'concurrent_edit' && c.path.length >= 2 && !hidden(c.lost)

/** A notice's words and choices, for a finding ``c`` (``item.concurrent``): ``person``
 * names a subject, ``entry`` names a key (document and path), ``words`` puts the values'
 * timestamps and amounts in words (local.js). */
export function lostNotice (c, { person, entry, words = (text) => text }) {
  const what = entry(c.doc, c.path)
  const who = c.kept && c.kept.actor ? (person(c.kept.actor.sub) || c.kept.actor.sub) : 'someone'
  const secret = hidden(c.lost) || hidden(c.kept)
  let text
  if (c.kind === 'edited_removed_entry') {
    text = hidden(c.lost)
      ? `You changed ${what}, but ${who} removed it at the same time. Its value is hidden from you.`
      : `You changed ${what} to ${shown(c.lost.value)}, but ${who} removed it at the same time.`
  } else if (secret) {
    text = `You set ${what}, but ${who} set it at the same time, and theirs was kept. The values are hidden from you.`
  } else {
    text = `You set ${what} to ${shown(c.lost.value)}, but ${who} set it to ${shown(c.kept && c.kept.value)} at the same time, and theirs was kept.`
  }
  return {
    text: words(text),
    useMine: canUseMine(c),
    // Nothing to choose between when the values are hidden: the person acknowledges it.
    keep: c.kind === 'concurrent_edit' && !secret ? 'Keep theirs' : 'OK'
  }
}

/** The notices, as a list inside the one conflicts panel (main.js): both values (unless
 *  hidden), who wrote the kept one, and the choices. */
export function lostList (lost, { person, entry, docs, words }) {
  if (!lost.items.length) return nothing
  return html`<ul class="lost" aria-label="Changes of yours that were lost">${lost.items.map((item) => {
    const notice = lostNotice(item.concurrent, { person, entry, words })
    return html`<li data-conflict=${item.id} data-code="concurrent_edit">
      <p>${notice.text}</p>
      ${notice.useMine
        ? html`<button type="button" @click=${() => lost.useMine(item, docs())}>Use mine</button>`
        : nothing}
      <button type="button" ?disabled=${lost.busy.has(item.id)} @click=${() => lost.keepTheirs(item)}>${notice.keep}</button>
    </li>`
  })}</ul>`
}
