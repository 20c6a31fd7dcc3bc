// A record's fields as the app reads, shows and writes them, from the server's schema
// (schema.js, generated from the domain by scripts/docs_reference.py): a field added to the
// domain reaches the guest list, its edit form, its CSV and the activity feed's words with no
// change here. What the domain does not say (a placeholder, how one entry of a list is called)
// is in HINTS, and only where the app has something to add.

import { entities, operate } from './schema.js'

const ID = /^[A-Za-z0-9_-]{1,64}$/
const trimmed = (value) => (typeof value === 'string' ? value.trim() : '')

/** The fields of a record type (`guests`, `tables`...: its root map), in the domain's order. */
export const fieldsOf = (collection) => entities[collection].fields

/** Every field's words in a sentence ("changed the dietary needs"), by name. */
export const FIELD_WORDS = Object.fromEntries(
  Object.values(entities).flatMap((e) => e.fields).reverse().map((f) => [f.name, f.words])
)

/** A choice's value as people read it: `partner_a` -> "Partner A". */
export const choiceWords = (value) => value.split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' ')

/** What the app adds to a field's control: a placeholder, the name of one entry of a list. */
const HINTS = {
  guests: { dietary: { placeholder: 'vegan, nut allergy', entry: 'dietary need' } }
}
export const hintOf = (collection, name) => HINTS[collection]?.[name] || {}

/** A stored value as the app reads it (as leniently as the server's readers): a text trimmed
 *  (empty: none), a choice among its values, a list of strings, a flag, an id, a Y.Text's
 *  string; anything else reads as the field's default. */
export function readField (field, value) {
  const fallback = field.default ?? null
  switch (field.type) {
    case 'text': return trimmed(value) || fallback
    case 'choice': return field.choices.includes(value) ? value : fallback
    case 'text_list': return Array.isArray(value) ? value.filter((d) => typeof d === 'string') : []
    case 'boolean': return typeof value === 'boolean' ? value : (fallback ?? false)
    case 'identifier': return typeof value === 'string' && ID.test(value) ? value : null
    case 'prose': return typeof value === 'string' ? value : ''
    default: return value ?? fallback
  }
}

/** An entry's fields read (`plain`: the entry as JSON, with its `id`); null when a required
 *  field is missing or bad (the server leaves such an entry out too). */
export function readRecord (collection, plain) {
  const out = { id: plain.id }
  for (const field of fieldsOf(collection)) {
    out[field.name] = readField(field, plain[field.name])
    if (field.required && out[field.name] === null) return null
  }
  return out
}

/** The fields an edit form shows (not ids, not collaborative text, which has its own
 *  editor): each control in the domain's order, the checkboxes last. */
export function formFields (collection) {
  const shown = fieldsOf(collection).filter((f) => f.type !== 'identifier' && !f.text)
  return [...shown.filter((f) => f.type !== 'boolean'), ...shown.filter((f) => f.type === 'boolean')]
}

/** The fields `operate` access may change with `op` on `doc` (the answers of a guest). */
export const operateFields = (doc, op) => operate[doc]?.[op] || []

/** A value as a form control holds it: a string (a list joined by commas; a checkbox 'on'
 *  or ''). */
export function shownValue (field, value) {
  if (field.type === 'boolean') return value ? 'on' : ''
  if (field.type === 'text_list') return (value || []).join(', ')
  return value ?? ''
}

/** The entries of a list typed with commas (trimmed, each once, at most the field's count). */
export const listEntries = (field, text) => [...new Set(text.split(',').map((d) => d.trim()).filter(Boolean))].slice(0, field.max)

/** Why a form control's text is refused, or null: an entry of a list longer than the
 *  document takes (the document would keep it and the server flag it, shown to nobody here). */
export function fieldError (collection, field, text) {
  if (field.type !== 'text_list' || !listEntries(field, text).some((d) => d.length > 200)) return null
  const entry = hintOf(collection, field.name).entry || 'entry'
  return `Each ${entry} is at most 200 characters: separate them with commas.`
}

/** A form control's string as the field stores it. */
export function storedValue (field, text) {
  switch (field.type) {
    case 'boolean': return text === 'on'
    case 'text_list': return listEntries(field, text)
    case 'choice': return text || null
    case 'text': return field.required ? text.trim().slice(0, field.max) : text.trim() || null
    default: return text
  }
}

/** The columns of a CSV of records that people read (not collaborative text, not the ids of
 *  other entries). */
export const csvColumns = (collection) => fieldsOf(collection).filter((f) => !f.text && f.type !== 'identifier').map((f) => f.name)
