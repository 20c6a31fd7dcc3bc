// Updates written by stock Yjs producers, for tests/core/test_shapes.py.
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
//   yjs13all     yjs 13.6, every type it has (for the shape rule's table, issue 47): arrays of
//                values, binary, subdocuments and nested types; maps of the same; text with
//                formats, embeds, an embedded type and attributes; XML elements, attributes
//                (a string and a type), XML text with formats; deletions of each
//   yjs14all     @y/y 14 (rc), the same through its one Y.Type: text, values, binary, types,
//                formats, attributes, a root holding text and values, deletions
//
// The three largest messages an honest client sends (CRDT_SERVER_MAX_UPDATE_ITEMS is 4x the
// largest of them: tests/core/test_item_limit.py). Each also prints "items": the structs and
// delete ranges of each update (what the limit counts), and a line to stderr:
//
//   guestform    the planner app's guest form (web/src/model.js addGuest, the fields
//                web/src/views.js's form gives it) adding 5,000 guests in one transaction
//   runofshow50  y-prosemirror 1.3's sync plugin taking a paste of a 50-page run of show
//                into Y.XmlFragment "runofshow" (one updateYFragment in one transaction)
//   offlineday   yjs 13 as a stock provider runs it: a planner offline for a day (900 small
//                edits, each its own transaction, to the guests, timeline, budget and seating
//                documents), then each document's sync step 2 on reconnecting
//                (Y.encodeStateAsUpdate against the server's state vector), one per document
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

scenarios.yjs13all = () => {
  const doc = new Y13.Doc()
  doc.clientID = 104
  const updates = record(doc)
  const list = doc.getArray('list')
  list.push([1, 'two', { three: [3] }, null, true])
  list.push([new Uint8Array([1, 2, 3])])
  list.push([new Y13.Doc({ guid: 'sub-1' })])
  list.push([new Y13.Array(), new Y13.Map(), new Y13.Text('in a list'), new Y13.XmlFragment()])
  list.get(7).push(['deep', 1, new Uint8Array([9]), new Y13.Doc({ guid: 'sub-3' })])
  list.get(7).push([new Y13.Map([['in', 'nested array']])])
  list.get(8).set('k', 'v')
  list.get(8).set('bytes', new Uint8Array([8]))
  list.get(8).set('sub', new Y13.Doc({ guid: 'sub-4' }))
  list.get(9).format(0, 2, { bold: true })
  list.get(9).insertEmbed(1, { image: 'y.png' })
  list.get(9).insertEmbed(2, new Y13.Array())
  list.get(9).setAttribute('lang', 'fr')
  list.get(7).delete(0, 1)
  list.get(9).delete(0, 1)
  list.delete(1, 2)
  const map = doc.getMap('map')
  map.set('value', { nested: ['json'] })
  map.set('bytes', new Uint8Array([4, 5]))
  map.set('sub', new Y13.Doc({ guid: 'sub-2' }))
  map.set('text', new Y13.Text('keyed text 👋'))
  map.set('array', Y13.Array.from([1, 2]))
  map.set('value', 'overwritten')
  map.delete('bytes')
  const text = doc.getText('text')
  text.insert(0, 'plain 👰🏽 text', { italic: true })
  text.format(0, 5, { bold: true, link: { href: 'https://example.test' } })
  text.insertEmbed(3, { image: 'x.png' }, { width: 3 })
  text.insertEmbed(4, new Y13.Map([['embedded', 'map']]))
  text.setAttribute('lang', 'en')
  text.setAttribute('meta', new Y13.Map([['a', 1]]))
  text.delete(1, 3)
  text.removeAttribute('lang')
  const fragment = doc.getXmlFragment('xml')
  const element = new Y13.XmlElement('p')
  const inner = new Y13.XmlText()
  element.insert(0, [inner])
  fragment.insert(0, [element, new Y13.XmlText('loose text')])
  inner.insert(0, 'para 👋 graph')
  inner.format(0, 4, { strong: {} })
  inner.insertEmbed(2, { hr: true })
  element.setAttribute('class', 'lead')
  element.setAttribute('data', new Y13.Map([['x', 1]]))
  element.insertAfter(inner, [new Y13.XmlElement('br')])
  element.removeAttribute('class')
  inner.setAttribute('dir', 'ltr')
  inner.insertEmbed(1, new Y13.Map([['embedded', 'in xml text']]))
  inner.delete(0, 2)
  fragment.delete(1, 1)
  return { updates, roots: {} }
}

scenarios.yjs14all = () => {
  const doc = new Y14.Doc()
  doc.clientID = 105
  const updates = record(doc)
  const root = doc.get('mixed')
  root.insert(0, 'text 👋 first')
  root.insert(3, [1, 'two', { three: 3 }])
  root.insert(0, [new Uint8Array([1, 2])])
  root.insert(1, [new Y14.Type('child'), new Y14.Type()])
  root.format(0, 4, { bold: true })
  root.setAttr('title', 'Mixed')
  root.setAttr('kid', new Y14.Type('attr-type'))
  root.delete(2, 3)
  root.deleteAttr('title')
  const named = new Y14.Type('named')
  const unnamed = new Y14.Type()
  root.insert(0, [named, unnamed])
  for (const type of [named, unnamed]) {
    type.insert(0, 'some text')
    type.insert(4, [1, new Uint8Array([7]), new Y14.Doc({ guid: 'sub-' + (type.name || 'x') })])
    type.insert(0, [new Y14.Type('grandchild')])
    type.format(1, 4, { em: true })
    type.setAttr('n', 1)
    type.setAttr('t', new Y14.Type())
    type.delete(2, 1)
  }
  const list = doc.get('list')
  list.insert(0, [1, 2, 3, new Y14.Type()])
  list.delete(0, 1)
  const text = doc.get('text')
  text.insert(0, 'hello 👰🏽 world', { italic: true })
  text.delete(0, 2)
  return { updates, roots: {} }
}

// -- the largest honest messages ------------------------------------------------------------

// The structs and delete ranges of an update, as the server counts them (codec/updates.py).
const itemsOf = (update) => {
  const { structs, ds } = Y13.decodeUpdate(update)
  let ranges = 0
  ds.clients.forEach((deletes) => { ranges += deletes.length })
  return structs.length + ranges
}

const counted = (name, out) => {
  out.items = out.updates.map((u) => itemsOf(Buffer.from(u, 'base64')))
  process.stderr.write(`${name}: ${out.updates.length} update(s), items ${out.items.join(', ')}\n`)
  return out
}

// A small deterministic generator: the same bytes on every run.
const seeded = (seed) => () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}

// web/src/model.js's writeFields and addGuest, as the app runs them (a copy: the app's
// module imports its providers, which need a browser): one Y.Map per guest, one key per
// field, `notes` a Y.Text; empty optional fields are left out.
const writeFields = (map, fields) => {
  for (const [key, value] of Object.entries(fields)) {
    if (key === 'notes') {
      const current = map.get(key)
      if (current instanceof Y13.Text) {
        current.delete(0, current.length)
        current.insert(0, value || '')
      } else map.set(key, new Y13.Text(value || ''))
      continue
    }
    const empty = value === null || value === undefined || value === ''
    if (empty) {
      if (map.has(key)) map.delete(key)
    } else if (JSON.stringify(map.get(key)) !== JSON.stringify(value)) {
      map.set(key, value)
    }
  }
}

const hex = (random) => Math.floor(random() * 2 ** 48).toString(16).padStart(12, '0')

const addGuest = (doc, random, fields) => {
  const id = 'g-' + hex(random)
  doc.transact(() => {
    const guest = new Y13.Map()
    doc.getMap('guests').set(id, guest)
    writeFields(guest, { rsvp: 'pending', dietary: [], plus_one: false, notes: '', ...fields })
  }, 'planner-app')
  return id
}

const SIDES = ['partner_a', 'partner_b', 'both']

scenarios.guestform = () => {
  const doc = new Y13.Doc()
  doc.clientID = 106
  const updates = record(doc)
  const random = seeded(106)
  // The form's fields (web/src/views.js): name (at most 200 characters), household, side,
  // rsvp; 5,000 of them in one transaction (an outer transact: the app's own are nested).
  doc.transact(() => {
    for (let i = 0; i < 5000; i++) {
      addGuest(doc, random, {
        name: `Guest ${i} Lastname-${Math.floor(random() * 10000)}`,
        household: `Household ${Math.floor(i / 3)}`,
        side: SIDES[i % 3],
        rsvp: 'pending'
      })
    }
  }, 'planner-app')
  return counted('guestform', { updates, roots: {} })
}

// 50 pages of a run of show: per page a heading, 18 paragraphs (a bold time, text, a link in
// one of three) and a list of 6 items (about 45 lines, as a printed page holds).
const runOfShowPages = (pages) => {
  const content = []
  for (let page = 1; page <= pages; page++) {
    content.push({
      type: 'heading',
      attrs: { level: 2 },
      content: [{ type: 'text', text: `Page ${page}: the day, hour by hour` }]
    })
    for (let line = 0; line < 18; line++) {
      const minutes = (page * 18 + line) * 5
      const time = `${String(8 + Math.floor(minutes / 60) % 16).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')} `
      const paragraph = [
        { type: 'text', text: time, marks: [{ type: 'strong' }] },
        { type: 'text', text: `the band sets up on the terrace, the florist brings the arch, line ${line}; ` }
      ]
      if (line % 3 === 0) {
        paragraph.push({
          type: 'text',
          text: 'the venue map',
          marks: [{ type: 'link', attrs: { href: `https://example.test/map/${page}/${line}` } }]
        })
      }
      content.push({ type: 'paragraph', content: paragraph })
    }
    content.push({
      type: 'bullet_list',
      content: Array.from({ length: 6 }, (_, k) => ({
        type: 'list_item',
        content: [{ type: 'paragraph', content: [{ type: 'text', text: `bring item ${k} for page ${page}` }] }]
      }))
    })
  }
  return { type: 'doc', content }
}

scenarios.runofshow50 = () => {
  const doc = new Y13.Doc()
  doc.clientID = 107
  const updates = record(doc)
  const fragment = doc.getXmlFragment('runofshow')
  const meta = { mapping: new Map(), isOMark: new Map() }
  // What the sync plugin does with the editor's state after the paste: one transaction.
  doc.transact(() => {
    YP.updateYFragment(doc, fragment, basic.nodeFromJSON(runOfShowPages(50)), meta)
  })
  return counted('runofshow50', { updates, roots: {} })
}

scenarios.offlineday = () => {
  const random = seeded(108)
  const pick = (list) => list[Math.floor(random() * list.length)]
  const docs = {}
  const before = {}
  // What the device had from the server when it went offline (another client wrote it).
  const server = new Y13.Doc()
  server.clientID = 200
  const guestIds = []
  server.transact(() => {
    for (let i = 0; i < 300; i++) {
      guestIds.push(addGuest(server, random, { name: `Guest ${i}`, household: `H${Math.floor(i / 3)}`, side: SIDES[i % 3] }))
    }
  })
  for (const kind of ['guests', 'timeline', 'budget', 'seating']) {
    const doc = new Y13.Doc()
    doc.clientID = 108
    if (kind === 'guests') Y13.applyUpdate(doc, Y13.encodeStateAsUpdate(server))
    docs[kind] = doc
    before[kind] = Y13.encodeStateVector(doc)
  }
  const guests = docs.guests
  const typeInto = (text, words) => {
    // Typed a key at a time (each its own transaction), with a typo fixed now and then.
    for (const ch of words) {
      guests.transact(() => text.insert(text.length, ch), 'planner-app')
      if (random() < 0.05) {
        guests.transact(() => text.insert(text.length, 'x'), 'planner-app')
        guests.transact(() => text.delete(text.length - 1, 1), 'planner-app')
      }
    }
  }
  const tables = []
  for (let t = 0; t < 30; t++) {
    const id = 't-' + hex(random)
    tables.push(id)
    docs.seating.transact(() => {
      const table = new Y13.Map()
      docs.seating.getMap('tables').set(id, table)
      writeFields(table, { name: `Table ${t + 1}`, capacity: 10, shape: 'round', notes: '' })
    }, 'planner-app')
  }
  const items = []
  const payments = []
  for (let edit = 0; edit < 900; edit++) {
    const roll = random()
    if (roll < 0.3) {
      const guest = guests.getMap('guests').get(pick(guestIds))
      guests.transact(() => writeFields(guest, { rsvp: pick(['accepted', 'declined', 'pending']), plus_one: random() < 0.3, dietary: random() < 0.2 ? ['vegetarian'] : [] }), 'planner-app')
    } else if (roll < 0.45) {
      typeInto(guests.getMap('guests').get(pick(guestIds)).get('notes'), ' called, ' + pick(['coming', 'no nuts', 'late', 'bringing kids']))
    } else if (roll < 0.6) {
      guestIds.push(addGuest(guests, random, { name: `New guest ${edit}`, side: pick(SIDES) }))
    } else if (roll < 0.75) {
      const doc = docs.seating
      doc.transact(() => doc.getMap('assignments').set(pick(guestIds), { table_id: pick(tables), seat: 1 + Math.floor(random() * 10) }), 'planner-app')
    } else if (roll < 0.9) {
      const doc = docs.timeline
      if (items.length < 10 || random() < 0.3) {
        const id = 'i-' + hex(random)
        items.push(id)
        doc.transact(() => {
          const item = new Y13.Map()
          doc.getMap('items').set(id, item)
          writeFields(item, { title: `Step ${edit}`, day: '2026-06-20', start: '14:00', end: '14:30', status: 'planned', notes: '' })
        }, 'planner-app')
      } else {
        const item = doc.getMap('items').get(pick(items))
        doc.transact(() => writeFields(item, { start: `${10 + Math.floor(random() * 10)}:${pick(['00', '15', '30', '45'])}` }), 'planner-app')
      }
    } else {
      const doc = docs.budget
      if (payments.length < 5 || random() < 0.5) {
        const id = 'p-' + hex(random)
        payments.push(id)
        doc.transact(() => {
          const payment = new Y13.Map()
          doc.getMap('payments').set(id, payment)
          writeFields(payment, { vendor: `Vendor ${edit}`, amount: 1000 + edit, status: 'scheduled', notes: '' })
        }, 'planner-app')
      } else {
        const payment = doc.getMap('payments').get(pick(payments))
        doc.transact(() => writeFields(payment, { status: 'paid', date: '2026-05-01' }), 'planner-app')
      }
    }
  }
  // Back online: each document's sync step 2, answering the server's step 1.
  const updates = Object.keys(docs).map((kind) => b64(Y13.encodeStateAsUpdate(docs[kind], before[kind])))
  return counted('offlineday', { updates, roots: {}, docs: Object.keys(docs) })
}

const name = process.argv[2]
const scenario = scenarios[name]
if (scenario === undefined) {
  process.stderr.write(`unknown scenario ${JSON.stringify(name)}: ${Object.keys(scenarios).join(', ')}\n`)
  process.exit(2)
}
process.stdout.write(JSON.stringify(scenario()) + '\n')
