// A Y.Text bound to a plain text field (a <textarea>, or anything with `value`,
// `selectionStart`, `selectionEnd` and `setSelectionRange`), with no DOM of its own so that
// Node can test it with two Y.Docs (web/test/textbinding.test.mjs). notes.js wires it to
// the page's events.
//
// Two rules keep two people typing at the same place from interleaving their letters:
//
// * The caret belongs to its typist. It is kept as a Yjs relative position that sticks to
//   the character on its left (assoc -1): when someone else types at the same place, their
//   text goes after that character too, and this person's caret does not follow it. A
//   position made from an index without assoc -1 sticks to the character on its right, and
//   at the end of the text means "the end of the type": the caret then jumps after every
//   letter the other person types, and the next letter typed here lands after theirs.
//   A selection's start sticks to its right and its end to its left, so the selection keeps
//   the characters it covered.
// * What the person did becomes the smallest splice, placed where the caret says: typing
//   "a" after the first "a" of "aa" inserts after that first "a", not at the end (the text
//   reads the same, but the next letters would then be split from it by others' typing).
//
// An IME composition is one edit: nothing is written while it runs (what others type
// meanwhile is shown after it ends), then the composed text is one splice and one undo step.

import * as Y from 'yjs'
import { smallestSplice } from './model.js'

/** A relative position for `index` that sticks to the character on its left. */
export const leftSticky = (ytext, index) => Y.createRelativePositionFromTypeIndex(ytext, index, -1)

/** A relative position for `index` that sticks to the character on its right. */
export const rightSticky = (ytext, index) => Y.createRelativePositionFromTypeIndex(ytext, index, 0)

function indexOf (position, ytext, fallback) {
  const absolute = position && Y.createAbsolutePositionFromRelativePosition(position, ytext.doc)
  return absolute && absolute.type === ytext ? absolute.index : fallback
}

/**
 * Bind `ytext` to `field`. Writes are made in transactions with `origin` (pass an object of
 * your own: the undo manager tracks only it, so Cancel and undo never touch what others
 * typed). `focused()` says whether the field has the focus (its selection is only placed
 * then). Returns the binding: call `typed()` after each input, `selected()` after the
 * selection moved, `compositionStart()` / `compositionEnd()` around an IME composition,
 * `undo()`, `redo()`, `cancel()` (undo all this binding typed), and `destroy()`.
 */
export function bindText (ytext, field, { origin, focused = () => true, captureTimeout = 500 } = {}) {
  const doc = ytext.doc
  let shown = ytext.toString() // what the field shows, as Yjs held it then
  let start = null // relative positions of the selection (start <= end)
  let end = null
  let composing = null // { index, position }: where a running composition began
  let composed = null // the same, for the composition that just ended
  let stale = false // others' changes arrived during a composition and are not shown yet
  const undo = new Y.UndoManager(ytext, { trackedOrigins: new Set([origin]), captureTimeout })

  const selected = () => {
    if (composing) return
    const from = Math.min(field.selectionStart, field.selectionEnd)
    const to = Math.max(field.selectionStart, field.selectionEnd)
    if (from === to) {
      start = end = leftSticky(ytext, from)
    } else {
      start = rightSticky(ytext, from)
      end = leftSticky(ytext, to)
    }
  }

  const show = () => {
    const from = indexOf(start, ytext, field.selectionStart)
    const to = indexOf(end, ytext, field.selectionEnd)
    shown = ytext.toString()
    stale = false
    if (field.value !== shown) field.value = shown
    if (focused()) field.setSelectionRange(Math.min(from, to), Math.max(from, to))
  }

  const typed = () => {
    if (composing) return
    const value = field.value
    if (value === shown) return selected()
    const caret = field.selectionEnd
    let [index, remove, insert] = smallestSplice(shown, value, caret)
    if (stale && composed) {
      // Others typed during the composition: place the splice relative to where the
      // composition began, as Yjs holds the text now.
      const length = ytext.length
      index = Math.max(0, Math.min(length, indexOf(composed.position, ytext, composed.index) + index - composed.index))
      remove = Math.min(remove, length - index)
    }
    composed = null
    doc.transact(() => {
      if (remove) ytext.delete(index, remove)
      if (insert) ytext.insert(index, insert)
    }, origin)
    if (stale || ytext.toString() !== value) {
      start = end = leftSticky(ytext, index + insert.length)
      show()
    } else {
      shown = value
      selected()
    }
  }

  const compositionStart = () => {
    const from = Math.min(field.selectionStart, field.selectionEnd)
    composing = { index: from, position: leftSticky(ytext, from) }
    undo.stopCapturing()
  }
  const compositionEnd = () => {
    composed = composing
    composing = null
    typed()
    undo.stopCapturing()
  }

  const changed = (_event, transaction) => {
    if (transaction.origin === origin) return // already in the field
    if (composing) {
      stale = true // changing the field now would end the composition
      return
    }
    show()
  }

  field.value = shown
  selected()
  ytext.observe(changed)

  return {
    ytext,
    typed,
    selected,
    compositionStart,
    compositionEnd,
    undo: () => { undo.undo() },
    redo: () => { undo.redo() },
    /** Undo everything typed through this binding since it was made; others' text stays. */
    cancel () {
      for (let left = undo.undoStack.length; left > 0 && undo.undoStack.length; left--) undo.undo()
      undo.clear()
    },
    /** How many undo steps this binding holds. */
    get undoSteps () { return undo.undoStack.length },
    destroy () {
      ytext.unobserve(changed)
      undo.destroy()
    }
  }
}
