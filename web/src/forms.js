// Forms people can trust.
//
// Refusals people see (`FormErrors`): a refused input's reason is shown next to its control,
// in words, tied to it by `aria-describedby`; what was typed stays; focus goes to the first
// wrong field. Every form, and every row control that acts alone (an RSVP select, a table
// picker), carries `data-form=KEY`; its controls carry `name`, which the refusal names.
//
// Edit forms that never revert others (`EditState`): a form writes only the fields its person
// changed since it opened. A field someone else changed meanwhile shows the new value,
// highlighted, and is not written back; a field both changed shows both values and is written
// only once the person has picked one.

import { html, nothing } from 'lit-html'

/** An id-safe form of any string (form keys hold entry ids). */
const safe = (s) => String(s).replace(/[^A-Za-z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16)}`)

export class FormErrors {
  constructor (onChange) {
    this.byForm = new Map() // form key -> [{field, message}]
    this.pending = null // { form, field } to focus after the next render
    this.onChange = onChange
  }

  /** Refuse form `form`: each of `errors` ({field, message}) shows next to its control, and
   *  the first one's control gets focus once the page has rendered. */
  refuse (form, errors) {
    this.byForm.set(form, errors)
    this.pending = { form, field: errors[0].field }
    this.onChange()
  }

  /** The form went through: its reasons go. */
  clear (form) {
    if (this.byForm.delete(form)) this.onChange()
  }

  message (form, field) {
    const errors = this.byForm.get(form)
    const found = errors && errors.find((e) => e.field === field)
    return found ? found.message : null
  }

  /** The attribute values and the note for the controls of one form. */
  of (form) {
    const id = (field) => `error-${safe(form)}-${safe(field)}`
    return {
      key: form,
      describedBy: (field, ...others) => {
        const ids = [this.message(form, field) !== null ? id(field) : null, ...others].filter(Boolean)
        return ids.length ? ids.join(' ') : nothing
      },
      invalid: (field) => (this.message(form, field) !== null ? 'true' : nothing),
      note: (field) => {
        const message = this.message(form, field)
        return message === null ? nothing : html`<span class="field-error" id=${id(field)}>${message}</span>`
      },
      /** For the form's `input` event: editing a refused field takes its reason away. */
      edited: (event) => {
        const errors = this.byForm.get(form)
        const name = event.target && event.target.name
        if (!errors || !errors.some((e) => e.field === name)) return
        const rest = errors.filter((e) => e.field !== name)
        if (rest.length) this.byForm.set(form, rest)
        else this.byForm.delete(form)
        this.onChange()
      }
    }
  }

  /** After a render: focus the first refused control (once) and bring it into view. */
  settle (root) {
    if (!this.pending) return
    const { form, field } = this.pending
    this.pending = null
    const control = root.querySelector(`[data-form="${CSS.escape(form)}"] [name="${CSS.escape(field)}"]`)
    if (!control) return
    control.focus({ preventScroll: true })
    control.scrollIntoView({ block: 'center' })
  }
}

/** A control's value as the form compares it: a checkbox is `'on'` or `''`. */
export function valueOf (control) {
  return control.type === 'checkbox' ? (control.checked ? 'on' : '') : String(control.value)
}

export class EditState {
  /** `values`: the entry's fields as the form shows them (strings) when it opened. */
  constructor (entity, values) {
    this.entity = entity
    this.base = { ...values } // what the person saw (or agreed to) per field
    this.mine = {} // field -> what the person typed, where it differs from `base`
  }

  /** The person changed `field` to `value`. */
  typed (field, value) {
    if (!(field in this.base)) return
    if (value === this.base[field]) delete this.mine[field]
    else this.mine[field] = value
  }

  /** How to show `field` while the entry holds `now`: `value` to show, `theirs` when someone
   *  else changed it since the form opened, `clash` ({mine, theirs}) when both did. */
  field (field, now) {
    const theirs = now !== this.base[field]
    if (!(field in this.mine)) return { value: now, theirs, clash: null }
    const mine = this.mine[field]
    if (!theirs || mine === now) return { value: mine, theirs: false, clash: null }
    return { value: mine, theirs: true, clash: { mine, theirs: now } }
  }

  /** The person picked one side of a clash on `field` (`'mine'` or `'theirs'`). */
  pick (field, which, now) {
    this.base[field] = now
    if (which === 'theirs') delete this.mine[field]
  }

  /** What Save may write against the entry's values `now`: `write` holds the fields the person
   *  changed (and that differ from now), `clashes` the fields both changed, still unpicked. */
  changes (now) {
    const write = {}
    const clashes = []
    for (const [field, mine] of Object.entries(this.mine)) {
      if (mine === now[field]) continue
      if (now[field] !== this.base[field]) clashes.push(field)
      else write[field] = mine
    }
    return { write, clashes }
  }
}

/** The note under a field of an edit form: someone else's change, or both values to pick. */
export function theirsNote (form, state, field, shown, onPick, describe = (v) => v) {
  const id = `theirs-${safe(form)}-${safe(field)}`
  if (shown.clash) {
    const { mine, theirs } = shown.clash
    return {
      id,
      note: html`<span class="clash" id=${id} role="group" aria-label="Changed by someone else too">
        Someone else changed this to “${describe(theirs)}” while you were editing.
        <button type="button" @click=${() => onPick(field, 'theirs')}>Use theirs: “${describe(theirs)}”</button>
        <button type="button" @click=${() => onPick(field, 'mine')}>Keep mine: “${describe(mine)}”</button>
      </span>`
    }
  }
  if (shown.theirs) {
    return { id, note: html`<span class="theirs-note" id=${id}>Changed by someone else while you were editing.</span>` }
  }
  return { id: null, note: nothing }
}
