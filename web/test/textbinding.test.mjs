// The text binding's splice and caret logic (web/src/textbinding.js) with two Y.Docs and no
// browser: node --test web/test/ (run by tests/web/test_web_units.py, the fast tier).
// Two people type random runs (ASCII, accents, emoji) at the same point, the start, the end
// and the middle, with Backspace, while their documents sync at random moments or not at
// all for a while (a network cut); after they converge, each person's runs are whole.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'

const { bindText } = await import('../src/textbinding.js')
const { smallestSplice } = await import('../src/model.js')

/** A <textarea> as the binding sees it. */
class Field {
  constructor () { this.value = ''; this.selectionStart = 0; this.selectionEnd = 0 }
  setSelectionRange (from, to) {
    this.selectionStart = Math.min(from, this.value.length)
    this.selectionEnd = Math.min(to, this.value.length)
  }

  /** What the browser does on a keystroke: replace the selection, caret after. */
  type (text) {
    const v = this.value
    this.value = v.slice(0, this.selectionStart) + text + v.slice(this.selectionEnd)
    this.selectionStart = this.selectionEnd = this.selectionStart + text.length
  }

  backspace () {
    const at = this.selectionStart
    if (at !== this.selectionEnd) return this.type('')
    if (at === 0) return
    const low = this.value.charCodeAt(at - 1)
    const width = low >= 0xdc00 && low <= 0xdfff && at > 1 ? 2 : 1
    this.value = this.value.slice(0, at - width) + this.value.slice(at)
    this.selectionStart = this.selectionEnd = at - width
  }

  caret (at) { this.selectionStart = this.selectionEnd = at }
}

function random (seed) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const BASE = '0123456789'
const ALPHABETS = [['a', 'b', 'c', 'é', 'ñ', '😀', ' '], ['X', 'Y', 'Z', 'ß', 'ø', '🎉', '_']]

function person (doc, alphabet) {
  const field = new Field()
  const origin = { binding: alphabet[0] }
  const binding = bindText(doc.getText('notes'), field, { origin })
  return { doc, field, binding, alphabet, runs: [], run: null }
}

function exchange (from, to) {
  Y.applyUpdate(to.doc, Y.encodeStateAsUpdate(from.doc, Y.encodeStateVector(to.doc)), 'remote')
}

function play (seed) {
  const rnd = random(seed)
  const pick = (list) => list[Math.floor(rnd() * list.length)]
  const base = new Y.Doc()
  base.getText('notes').insert(0, BASE)
  const people = ALPHABETS.map((alphabet) => {
    const doc = new Y.Doc()
    doc.clientID = 1 + Math.floor(rnd() * 0x7fffffff) // who goes first at a tie, drawn too
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(base))
    return person(doc, alphabet)
  })
  let cut = false
  for (let step = 0; step < 400; step++) {
    const who = pick(people)
    const { field, binding } = who
    const roll = rnd()
    if (roll < 0.08 || who.run === null) {
      // Move the caret: start, end, or just before a base digit (the middle).
      if (who.run !== null && who.run.text) who.runs.push(who.run)
      const where = pick(['start', 'end', 'middle', 'same'])
      const digit = field.value.indexOf(pick(BASE.split('')))
      const at = where === 'start' ? 0 : where === 'end' || where === 'same' ? field.value.length : digit
      field.caret(at)
      binding.selected()
      // A caret put right after a letter of someone's run (as this view has it) joins
      // their word: no editor can tell whose letters come next there, so neither that run
      // nor the one started here is checked whole.
      let joined = false
      const left = Y.createRelativePositionFromTypeIndex(who.doc.getText('notes'), at, -1).item
      for (const other of people) {
        if (other === who || !left || left.client !== other.doc.clientID) continue
        for (const run of [...other.runs, other.run]) {
          if (run && run.from <= left.clock && left.clock < run.to) run.joined = joined = true
        }
      }
      who.run = { text: '', from: Y.getState(who.doc.store, who.doc.clientID), to: Y.getState(who.doc.store, who.doc.clientID), joined }
    } else if (roll < 0.16 && [...who.run.text].length > 1 && !who.run.joined) {
      // Backspace, never on the run's first letter nor in a joined run: with their own letter
      // gone, a person's caret may touch the other's run, and no editor can tell whose word
      // comes next there.
      field.backspace()
      binding.typed()
      const last = who.run.text.charCodeAt(who.run.text.length - 1)
      who.run.text = who.run.text.slice(0, last >= 0xdc00 && last <= 0xdfff ? -2 : -1)
      who.run.to = Y.getState(who.doc.store, who.doc.clientID)
    } else {
      const letter = pick(who.alphabet)
      field.type(letter)
      binding.typed()
      who.run.text += letter
      who.run.to = Y.getState(who.doc.store, who.doc.clientID)
    }
    // The caret stays after its person's last letter, whatever arrived.
    if (!who.run.joined) assert.ok(field.value.slice(0, field.selectionEnd).endsWith(who.run.text), `seed ${seed}: caret left its run`)
    if (rnd() < 0.03) cut = !cut
    if (!cut && rnd() < 0.4) {
      const [from, to] = rnd() < 0.5 ? people : [...people].reverse()
      exchange(from, to)
      for (const p of people) {
        if (p.run && p.run.text && !p.run.joined) {
          assert.ok(p.field.value.slice(0, p.field.selectionEnd).endsWith(p.run.text), `seed ${seed}: a caret followed another's letters`)
        }
      }
    }
  }
  exchange(people[0], people[1])
  exchange(people[1], people[0])
  const text = people[0].doc.getText('notes').toString()
  for (const p of people) {
    if (p.run.text) p.runs.push(p.run)
    assert.equal(p.doc.getText('notes').toString(), text, `seed ${seed}: the documents differ`)
    assert.equal(p.field.value, text, `seed ${seed}: a field differs from its document`)
    for (const run of p.runs) {
      if (!run.joined) assert.ok(text.includes(run.text), `seed ${seed}: run ${JSON.stringify(run.text)} split in ${JSON.stringify(text)}`)
    }
  }
  const typed = people.flatMap((p) => p.runs.map((r) => r.text)).join('').length
  const runs = people.flatMap((p) => p.runs)
  return { runs: runs.length, checked: runs.filter((r) => !r.joined).length }
  assert.equal(text.length, BASE.length + typed, `seed ${seed}: letters lost or doubled`)
}

test('two people typing random runs at the same places keep each run whole (property, seeded)', () => {
  const first = Number(process.env.TEXT_SEED || 1)
  let runs = 0
  let checked = 0
  for (let seed = first; seed < first + 60; seed++) {
    const played = play(seed)
    runs += played.runs
    checked += played.checked
  }
  assert.ok(checked > runs / 2, `only ${checked} of ${runs} runs were checked whole`)
  console.log(`# ${checked} of ${runs} runs checked whole`)
})

test('both typing at the end of the same note, letter by letter, keep their words', () => {
  const base = new Y.Doc()
  base.getText('notes').insert(0, 'Base note.')
  const [a, b] = ALPHABETS.map((alphabet) => {
    const doc = new Y.Doc()
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(base))
    return person(doc, alphabet)
  })
  for (const p of [a, b]) { p.field.caret(p.field.value.length); p.binding.selected() }
  const one = ' planner text'
  const two = ' couple text'
  for (let i = 0; i < Math.max(one.length, two.length); i++) {
    if (one[i]) { a.field.type(one[i]); a.binding.typed() }
    if (two[i]) { b.field.type(two[i]); b.binding.typed() }
    exchange(a, b)
    exchange(b, a)
  }
  const text = a.field.value
  assert.equal(b.field.value, text)
  assert.ok(text === `Base note.${one}${two}` || text === `Base note.${two}${one}`, text)
})

test('the caret picks the splice: a letter typed after the first of two equal letters goes there', () => {
  assert.deepEqual(smallestSplice('aa', 'aaa', 2), [1, 0, 'a'])
  assert.deepEqual(smallestSplice('aa', 'aaa'), [2, 0, 'a'])
  assert.deepEqual(smallestSplice('abb', 'ab', 1), [1, 1, ''])
  assert.deepEqual(smallestSplice('hello world', 'hello there', 11), [6, 5, 'there'])
  assert.deepEqual(smallestSplice('😀😀', '😀😀😀', 2), [0, 0, '😀'])
  assert.deepEqual(smallestSplice('a😀b', 'a😁b', 3), [1, 2, '😁'])
})

test('an IME composition is one splice and one undo step, even when others type meanwhile', () => {
  const doc = new Y.Doc()
  const text = doc.getText('notes')
  text.insert(0, 'Menu: ')
  const field = new Field()
  const origin = {}
  const binding = bindText(text, field, { origin })
  field.caret(field.value.length)
  binding.selected()
  const splices = []
  doc.on('update', (_u, o) => { if (o === origin) splices.push(text.toString()) })
  binding.compositionStart()
  for (const step of ['n', 'ni', 'にほ', 'にほん']) {
    field.value = 'Menu: ' + step
    field.caret(field.value.length)
    binding.typed() // input events during the composition write nothing
  }
  doc.transact(() => text.insert(0, '» '), 'remote') // someone else, during the composition
  assert.equal(field.value, 'Menu: にほん') // the field is left alone while composing
  field.value = 'Menu: 日本'
  field.caret(field.value.length)
  binding.compositionEnd()
  assert.deepEqual(splices, ['» Menu: 日本'])
  assert.equal(field.value, '» Menu: 日本')
  assert.equal(field.selectionEnd, field.value.length)
  assert.equal(binding.undoSteps, 1)
  binding.undo()
  assert.equal(text.toString(), '» Menu: ')
})

test('cancel undoes only what this binding typed; others\' text stays', () => {
  const one = new Y.Doc()
  one.getText('notes').insert(0, 'Nut allergy.')
  const two = new Y.Doc()
  Y.applyUpdate(two, Y.encodeStateAsUpdate(one))
  const [a, b] = [one, two].map((doc) => person(doc, ['a']))
  a.field.caret(a.field.value.length); a.binding.selected()
  b.field.caret(0); b.binding.selected()
  for (const ch of ' Seat near exit.') { a.field.type(ch); a.binding.typed() }
  for (const ch of 'Ada: ') { b.field.type(ch); b.binding.typed() }
  exchange(a, b); exchange(b, a)
  assert.equal(a.field.value, 'Ada: Nut allergy. Seat near exit.')
  a.binding.cancel()
  exchange(a, b)
  for (const p of [a, b]) assert.equal(p.field.value, 'Ada: Nut allergy.')
  assert.equal(a.binding.undoSteps, 0)
})

test('an undo counts as this app\'s edit when it undoes one of its writers, and never loops', async () => {
  const { LOCAL, isLocal, localOrigin } = await import('../src/sync.js')
  const text = new Y.Doc().getText('notes')
  assert.equal(isLocal(LOCAL), true)
  assert.equal(isLocal(localOrigin('notes')), true)
  assert.equal(isLocal('remote'), false)
  // An undo manager tracks itself too: an editor's (origin not ours) is not this app's.
  assert.equal(isLocal(new Y.UndoManager(text, { trackedOrigins: new Set(['editor']) })), false)
  assert.equal(isLocal(new Y.UndoManager(text, { trackedOrigins: new Set([localOrigin('notes')]) })), true)
})
