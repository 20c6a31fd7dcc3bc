// An entry's notes as a <textarea> bound to its Y.Text (the binding is textbinding.js):
// what the person types becomes the smallest splice at their caret, their caret sticks to
// the character on its left (so two people typing in one note, even at the same place, both
// keep their words), and what others type replaces the shown text around the person's
// selection. Notes save as you type; the form's Cancel undoes what this person typed in the
// note since the form opened (a Y.UndoManager that tracks only this binding's writes), and
// Ctrl+Z / Ctrl+Shift+Z undo and redo through it too.

import { html } from 'lit-html'
import { ref } from 'lit-html/directives/ref.js'
import { localOrigin } from './sync.js'
import { ensureNotes } from './model.js'
import { bindText } from './textbinding.js'

const bound = new WeakMap() // textarea -> the binding (textbinding.js), with `stop()`

function bind (area, ytext) {
  const binding = bindText(ytext, area, {
    origin: localOrigin('notes'),
    focused: () => document.activeElement === area
  })
  const input = (event) => { if (!event.isComposing) binding.typed() }
  const history = (event) => {
    // The textarea's own history is wrong once others' text is shown: undo through Yjs.
    if (event.inputType !== 'historyUndo' && event.inputType !== 'historyRedo') return
    event.preventDefault()
    if (event.inputType === 'historyUndo') binding.undo()
    else binding.redo()
  }
  const keys = (event) => {
    if (!(event.ctrlKey || event.metaKey) || event.altKey) return
    const key = event.key.toLowerCase()
    if (key !== 'z' && key !== 'y') return
    event.preventDefault()
    if (key === 'y' || event.shiftKey) binding.redo()
    else binding.undo()
  }
  const listeners = [
    ['input', input],
    ['beforeinput', history],
    ['keydown', keys],
    ['compositionstart', binding.compositionStart],
    ['compositionend', binding.compositionEnd],
    ...['select', 'keyup', 'mouseup', 'focus'].map((name) => [name, binding.selected])
  ]
  for (const [name, listener] of listeners) area.addEventListener(name, listener)
  binding.stop = () => {
    for (const [name, listener] of listeners) area.removeEventListener(name, listener)
    binding.destroy()
  }
  return binding
}

/** Undo what this person typed in the notes inside `element` (a form) since it opened. */
export function cancelNotes (element) {
  for (const area of element.querySelectorAll('textarea[data-notes]')) {
    const binding = bound.get(area)
    if (binding) binding.cancel()
  }
}

/** A live notes field for entry `id` of root `root` in `doc` (created as a Y.Text on first
 *  use when an older entry has none). */
export function notesField (doc, root, id, label) {
  let attached = null
  const attach = (area) => {
    if (!area) {
      // lit calls this with nothing on every render (the callback is new each time) and when
      // the field goes: unbind only a field that left the page.
      const gone = attached
      queueMicrotask(() => {
        const binding = gone && bound.get(gone)
        if (binding && !gone.isConnected) {
          binding.stop()
          bound.delete(gone)
        }
      })
      return
    }
    attached = area
    const ytext = ensureNotes(doc, root, id)
    const current = bound.get(area)
    if (current && current.ytext === ytext) return
    if (current) current.stop()
    bound.delete(area)
    if (ytext) bound.set(area, bind(area, ytext))
  }
  return html`<label class="notes">Notes <textarea rows="3" maxlength="5000" aria-label=${label}
    aria-describedby=${`notes-hint-${id}`} data-notes=${`${root}/${id}`} ${ref(attach)}></textarea></label>
    <p class="muted hint" id=${`notes-hint-${id}`}>Notes save as you type; Cancel undoes your typing.</p>`
}
