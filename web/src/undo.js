// Undo and redo of this person's own changes, across the wedding's documents.
//
// One user action is one step, whatever it touched: removing a seated guest changes the guests
// and the seating, and one Undo puts both back. Each document has a Y.UndoManager that tracks
// only this app's own writes (LOCAL and the notes fields' origins), so an undo never touches
// what arrived from elsewhere: another person, the same person on another device, the
// server's operations run on their behalf (conflict resolutions, restores). Typing in one
// note is one step per pause (`typingPause`), like the field's own Ctrl+Z. The run of show
// has its editor's own undo (its writes have the editor's origin, not tracked here).
//
// The managers never merge two transactions (captureTimeout 0); this history groups the stack
// items they add into actions: items added in one task (one click, one Save) are one action,
// and a note's keystrokes join the previous action while they come from the same field with
// less than `typingPause` between them. Undoing an action undoes, in each document it
// touched, as many items as it added there: the newest ones, since actions are undone newest
// first.

import * as Y from 'yjs'
import { LOCAL, LocalOrigin, isHousekeeping } from './sync.js'

const MOST = 100 // actions kept; older ones are forgotten

export class History {
  /** `docs`: document kind -> Y.Doc. `onChange()`: the stacks changed. */
  constructor (docs, { onChange = () => {}, typingPause = 500, now = () => Date.now() } = {}) {
    this.onChange = onChange
    this.typingPause = typingPause
    this.now = now
    this.undos = [] // actions, oldest first: { parts: Map<manager, count>, origin, at, label }
    this.redos = []
    this.open = null // the action items of this task join
    this.busy = false // undoing or redoing: the managers' items move, no new action
    this.managers = []
    for (const doc of Object.values(docs)) {
      const manager = new Y.UndoManager(doc, {
        trackedOrigins: new Set([LOCAL, LocalOrigin]),
        captureTransaction: (transaction) => !isHousekeeping(transaction.origin),
        captureTimeout: 0
      })
      manager.on('stack-item-added', (event) => this.added(manager, event))
      this.managers.push(manager)
    }
  }

  added (manager, event) {
    if (this.busy || event.type !== 'undo') return
    const origin = event.origin
    const typing = origin instanceof LocalOrigin
    const last = this.undos[this.undos.length - 1]
    let action = this.open
    if (!action && typing && last && last.origin === origin && this.now() - last.at < this.typingPause) action = last
    if (!action) {
      action = { parts: new Map(), origin, at: 0, label: this.label }
      this.undos.push(action)
      this.open = action
      queueMicrotask(() => { if (this.open === action) this.open = null })
      this.trim()
    }
    action.at = this.now()
    action.parts.set(manager, (action.parts.get(manager) || 0) + 1)
    if (this.redos.length) this.redos = []
    this.onChange()
  }

  /** Forget the oldest actions past `MOST`, and their items in the managers. */
  trim () {
    while (this.undos.length > MOST) {
      const oldest = this.undos.shift()
      for (const [manager, count] of oldest.parts) manager.undoStack.splice(0, count)
    }
  }

  /** Run `change()` (one user action) and name it `label` (what Undo says it undoes). */
  act (label, change) {
    this.label = label
    try {
      return change()
    } finally {
      this.label = null
    }
  }

  get canUndo () {
    return this.undos.length > 0
  }

  get canRedo () {
    return this.redos.length > 0
  }

  /** What the next Undo undoes (its label), or null. */
  get nextUndo () {
    const last = this.undos[this.undos.length - 1]
    return last ? last.label || 'your last change' : null
  }

  undo () {
    const action = this.undos.pop()
    if (!action) return false
    this.open = null
    this.move(action, 'undo')
    this.redos.push(action)
    this.onChange()
    return true
  }

  redo () {
    const action = this.redos.pop()
    if (!action) return false
    this.open = null
    this.move(action, 'redo')
    this.undos.push(action)
    this.onChange()
    return true
  }

  move (action, way) {
    this.busy = true
    try {
      for (const [manager, count] of action.parts) {
        for (let i = 0; i < count; i++) manager[way]()
      }
    } finally {
      this.busy = false
    }
  }

  destroy () {
    for (const manager of this.managers) manager.destroy()
  }
}
