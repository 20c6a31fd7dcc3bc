// Updates written by stock Yjs producers, for tests/test_shapes.py.
//
//   node tests/js/producers.mjs SCENARIO
//
// prints one JSON object: {"updates": [base64, ...], "roots": {name: expected view}} where
// each update is what the producer's document emitted for one of its transactions, in order,
// exactly as a provider would send them. Scenarios:
//
//   prosemirror  y-prosemirror 1.3 writes a run of show (Y.XmlFragment "runofshow") from
//                ProseMirror JSON, then edits it the way its sync plugin does (updateYFragment):
//                a heading, bold and linked text, a list, a paragraph removed
//   tiptap       Tiptap 3's Yjs binding (@tiptap/y-tiptap) with the StarterKit schema, the same
//   yjs14        @y/y 14 (rc): guests as Y.Types with their fields as attributes, a nested
//                text, an unnamed type, an attribute changed and one removed
//   roots        yjs 13: a root Y.Text with formats and an embed, a root Y.Array, an unknown
//                root map, and list items pushed into the "guests" root
import * as Y13 from 'yjs'
import * as Y14 from '@y/y'
import { Schema } from 'prosemirror-model'
import * as YP from 'y-prosemirror'
import * as YT from '@tiptap/y-tiptap'
import { getSchema } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'

const b64 = (u8) => Buffer.from(u8).toString('base64')

const record = (doc) => {
  const updates = []
  doc.on('update', (update) => updates.push(b64(update)))
  return updates
}

// A small ProseMirror schema like prosemirror-schema-basic's (no DOM needed).
const basic = new Schema({
  nodes: {
    doc: { content: 'block+' },
    paragraph: { group: 'block', content: 'inline*' },
    heading: { group: 'block', content: 'inline*', attrs: { level: { default: 1 } } },
    bullet_list: { group: 'block', content: 'list_item+' },
    list_item: { content: 'paragraph+' },
    text: { group: 'inline' }
  },
  marks: {
    strong: {},
    link: { attrs: { href: {} } }
  }
})

const runOfShow = (names) => ({
  type: 'doc',
  content: [
    { type: 'heading', attrs: { level: 2 }, content: [{ type: 'text', text: 'Run of show' }] },
    {
      type: 'paragraph',
      content: [
        { type: 'text', text: '14:00 ', marks: [{ type: names.bold }] },
        { type: 'text', text: 'ceremony, see ' },
        { type: 'text', text: 'the map', marks: [{ type: 'link', attrs: { href: 'https://example.test/map' } }] }
      ]
    },
    {
      type: names.list,
      content: [
        { type: names.item, content: [{ type: 'paragraph', content: [{ type: 'text', text: 'rings' }] }] },
        { type: names.item, content: [{ type: 'paragraph', content: [{ type: 'text', text: 'vows 👰🏽' }] }] }
      ]
    },
    { type: 'paragraph', content: [{ type: 'text', text: 'to be removed' }] }
  ]
})

const editor = (binding, schema, names) => {
  const doc = new Y13.Doc()
  doc.clientID = 101
  const updates = record(doc)
  const fragment = doc.getXmlFragment('runofshow')
  const first = runOfShow(names)
  binding.prosemirrorJSONToYXmlFragment(schema, first, fragment)
  // What the sync plugin does on each editor transaction: diff the new editor state into the
  // fragment (inserts, format changes and deletes in place).
  const meta = { mapping: new Map(), isOMark: new Map() }
  const edited = JSON.parse(JSON.stringify(first))
  edited.content[1].content[1].text = 'ceremony at the chapel, see '
  edited.content.pop()
  edited.content.push({ type: 'paragraph', content: [{ type: 'text', text: 'dinner at 19:00' }] })
  binding.updateYFragment(doc, fragment, schema.nodeFromJSON(edited), meta)
  return { updates, roots: { runofshow: binding.yXmlFragmentToProsemirrorJSON(fragment) } }
}

const scenarios = {
  prosemirror: () =>
    editor(YP, basic, { bold: 'strong', list: 'bullet_list', item: 'list_item' }),
  tiptap: () =>
    editor(YT, getSchema([StarterKit]), { bold: 'bold', list: 'bulletList', item: 'listItem' }),
  yjs14: () => {
    const doc = new Y14.Doc()
    doc.clientID = 102
    const updates = record(doc)
    const guests = doc.get('guests')
    const ann = new Y14.Type('guest')
    guests.setAttr('g1', ann)
    doc.transact(() => {
      ann.setAttr('name', 'Ann')
      ann.setAttr('rsvp', 'accepted')
      ann.setAttr('plus_one', true)
    })
    const notes = new Y14.Type()
    ann.setAttr('notes', notes)
    notes.insert(0, 'vegan, ')
    notes.insert(7, 'no nuts')
    ann.setAttr('rsvp', 'declined')
    ann.deleteAttr('plus_one')
    const bob = new Y14.Type()
    guests.setAttr('g2', bob)
    bob.setAttr('name', 'Bob')
    return { updates, roots: { guests: guests.toJSON() } }
  },
  roots: () => {
    const doc = new Y13.Doc()
    doc.clientID = 103
    const updates = record(doc)
    const notes = doc.getText('notes')
    notes.insert(0, 'Welcome 👋 everyone')
    notes.format(0, 7, { bold: true })
    notes.insertEmbed(7, { image: 'https://example.test/logo.png' })
    notes.delete(8, 1)
    const list = doc.getArray('checklist')
    list.push(['flowers', 2, { done: false }])
    list.insert(1, [new Y13.Map([['nested', new Y13.Text('deep')]])])
    list.delete(0, 1)
    const extra = doc.getMap('extras')
    extra.set('theme', 'garden')
    extra.set('palette', Y13.Array.from(['sage', 'ivory']))
    doc.getArray('guests').push(['alice', 'bob'])
    return {
      updates,
      roots: {
        notes: notes.toDelta(),
        checklist: list.toJSON(),
        extras: extra.toJSON(),
        guests: doc.getArray('guests').toJSON()
      }
    }
  }
}

const name = process.argv[2]
const scenario = scenarios[name]
if (scenario === undefined) {
  process.stderr.write(`unknown scenario ${JSON.stringify(name)}: ${Object.keys(scenarios).join(', ')}\n`)
  process.exit(2)
}
process.stdout.write(JSON.stringify(scenario()) + '\n')
