// An entry's notes as a <textarea> bound to its Y.Text: what the person types becomes the
// smallest splice (so two people typing in one note both keep their words), and what others
// type replaces the shown text while the person's selection stays on the same characters
// (kept as Yjs relative positions, not offsets, so it does not jump when text is inserted
// before it).

import * as Y from 'yjs'
import { html } from 'lit-html'
import { ref } from 'lit-html/directives/ref.js'
import { LOCAL } from './sync.js'
import { ensureNotes, setText } from './model.js'

const bound = new WeakMap() // textarea -> { text, stop }

function bind (area, ytext) {
  const doc = ytext.doc
  let anchor = null
  let head = null
  const remember = () => {
    anchor = Y.createRelativePositionFromTypeIndex(ytext, area.selectionStart)
    head = Y.createRelativePositionFromTypeIndex(ytext, area.selectionEnd)
  }
  const place = (position, fallback) => {
    const absolute = position && Y.createAbsolutePositionFromRelativePosition(position, doc)
    return absolute && absolute.type === ytext ? absolute.index : fallback
  }
  const typed = () => {
    doc.transact(() => setText(ytext, area.value), LOCAL)
    remember()
  }
  const changed = (_event, transaction) => {
    if (transaction.origin === LOCAL && area.value === ytext.toString()) return
    const focused = document.activeElement === area
    const start = place(anchor, area.selectionStart)
    const end = place(head, area.selectionEnd)
    area.value = ytext.toString()
    if (focused) area.setSelectionRange(Math.min(start, end), Math.max(start, end))
    remember()
  }
  area.value = ytext.toString()
  remember()
  area.addEventListener('input', typed)
  for (const name of ['select', 'keyup', 'mouseup', 'focus']) area.addEventListener(name, remember)
  ytext.observe(changed)
  return () => {
    ytext.unobserve(changed)
    area.removeEventListener('input', typed)
    for (const name of ['select', 'keyup', 'mouseup', 'focus']) area.removeEventListener(name, remember)
  }
}

/** A live notes field for entry `id` of root `root` in `doc` (created as a Y.Text on first
 *  use when an older entry has none). */
export function notesField (doc, root, id, label) {
  const attach = (area) => {
    if (!area) return
    const ytext = ensureNotes(doc, root, id)
    const current = bound.get(area)
    if (current && current.text === ytext) return
    if (current) current.stop()
    if (ytext) bound.set(area, { text: ytext, stop: bind(area, ytext) })
  }
  return html`<label class="notes">Notes <textarea rows="3" maxlength="5000" aria-label=${label}
    data-notes=${`${root}/${id}`} ${ref(attach)}></textarea></label>`
}
