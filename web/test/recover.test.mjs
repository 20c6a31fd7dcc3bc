// A replica whose Yjs client id was taken (web/src/recover.js): its unsent edits are
// re-applied to a new document built from the server's state, under fresh client ids, and
// nothing is lost. Without a browser: node --test web/test/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'

const { rebuild, unsentEdits, takenIdOf, REAPPLIED } = await import('../src/recover.js')

const TAKEN = 1000

/** A document with a fixed client id (the server's copy, a replica, a squatter). */
function docOf (client) {
  const doc = new Y.Doc()
  doc.clientID = client
  return doc
}

const sync = (from, to) => Y.applyUpdate(to, Y.encodeStateAsUpdate(from, Y.encodeStateVector(to)))

/** The wedding's guest list as the server has it: two guests written by someone else. */
function wedding () {
  const server = docOf(1)
  server.transact(() => {
    for (const [id, name] of [['g1', 'Ada'], ['g3', 'Cy']]) {
      const guest = new Y.Map()
      server.getMap('guests').set(id, guest)
      guest.set('name', name)
      guest.set('rsvp', 'pending')
    }
    server.getXmlFragment('runofshow').insert(0, [new Y.XmlElement('paragraph')])
  })
  return server
}

/** The edits of a replica made offline: a new guest with notes, a rename, a removal, a
 *  line in the run of show. */
function editOffline (replica) {
  replica.transact(() => {
    const guest = new Y.Map()
    replica.getMap('guests').set('g2', guest)
    guest.set('name', 'Bea')
    guest.set('rsvp', 'accepted')
    guest.set('notes', new Y.Text('Vegan, sits near the door'))
    replica.getMap('guests').get('g1').set('name', 'Ada L.')
    replica.getMap('guests').delete('g3')
    const paragraph = replica.getXmlFragment('runofshow').get(0)
    paragraph.insert(0, [new Y.XmlText('14:00 ceremony')])
  })
}

function clientsOf (update) {
  return [...Y.parseUpdateMeta(update).to.keys()]
}

test('the id a refusal names is read from its reason', () => {
  assert.equal(takenIdOf('4409 client_id_taken: Yjs client id 123456 belongs to someone else; start a new Y.Doc'), 123456)
  assert.equal(takenIdOf('1009 too many items'), null)
})

test('a replica whose id was taken re-applies its unsent edits under a new id and loses none', () => {
  const server = wedding()
  const replica = docOf(TAKEN)
  sync(server, replica)
  // Someone else writes under the replica's id first (the server makes it theirs), and a
  // third person changes another field of a guest the replica renames.
  const squatter = docOf(TAKEN)
  sync(server, squatter)
  squatter.getMap('tables').set('t9', 'theirs')
  sync(squatter, server)
  const other = docOf(2)
  sync(server, other)
  other.getMap('guests').get('g1').set('rsvp', 'accepted')
  sync(other, server)
  editOffline(replica)

  const serverState = Y.encodeStateAsUpdate(server)
  const { doc, update, clients } = rebuild(replica, serverState, [TAKEN])
  assert.ok(update)
  assert.equal(doc.store.pendingStructs, null)
  assert.equal(doc.store.pendingDs, null)
  assert.notEqual(doc.clientID, TAKEN)
  assert.ok(!clientsOf(update).includes(TAKEN))
  assert.deepEqual([...clients.keys()], [TAKEN])

  const guests = doc.getMap('guests').toJSON()
  assert.deepEqual(guests.g1, { name: 'Ada L.', rsvp: 'accepted' })
  assert.deepEqual(guests.g2, { name: 'Bea', rsvp: 'accepted', notes: 'Vegan, sits near the door' })
  assert.equal(guests.g3, undefined)
  assert.equal(doc.getMap('tables').get('t9'), 'theirs')
  assert.equal(doc.getXmlFragment('runofshow').toString(), '<paragraph>14:00 ceremony</paragraph>')
  assert.ok(doc.getMap('guests').get('g2').get('notes') instanceof Y.Text)

  // What the new document sends the server names no item under the taken id, and once the
  // server has it, both hold the same.
  const toSend = Y.encodeStateAsUpdate(doc, Y.encodeStateVector(server))
  assert.ok(!clientsOf(toSend).includes(TAKEN))
  Y.applyUpdate(server, toSend)
  assert.equal(server.store.pendingStructs, null)
  assert.deepEqual(server.getMap('guests').toJSON(), guests)
  assert.equal(server.getXmlFragment('runofshow').toString(), '<paragraph>14:00 ceremony</paragraph>')
  assert.equal(server.getMap('tables').get('t9'), 'theirs')
})

test('a diff against the server\'s state vector would lose the edits under the taken clocks', () => {
  // Why recover.js does not diff: the squatter used clock 0 of the id, the replica's new
  // guest is its clock 0 too, and the server's state vector says it has it.
  const server = wedding()
  const replica = docOf(TAKEN)
  sync(server, replica)
  const squatter = docOf(TAKEN)
  squatter.getMap('tables').set('t9', 'theirs')
  sync(squatter, server)
  editOffline(replica)
  const naive = docOf(5)
  Y.applyUpdate(naive, Y.encodeStateAsUpdate(server))
  Y.applyUpdate(naive, Y.encodeStateAsUpdate(replica, Y.encodeStateVector(server)))
  assert.equal(naive.getMap('guests').toJSON().g2, undefined)
  const { doc } = rebuild(replica, Y.encodeStateAsUpdate(server), [TAKEN])
  assert.equal(doc.getMap('guests').toJSON().g2.name, 'Bea')
})

test('typing sent in part keeps what the server has and re-applies only the rest', () => {
  const server = wedding()
  const replica = docOf(7)
  sync(server, replica)
  const notes = new Y.Text()
  replica.getMap('guests').get('g1').set('notes', notes)
  notes.insert(0, 'Hello')
  sync(replica, server) // sent and committed
  notes.insert(5, ' world') // one struct with 'Hello' once merged: half of it unsent
  replica.getMap('guests').get('g1').delete('rsvp')
  const squatted = 4242 // another id of this replica's copy was refused (a migrated copy's)
  const { doc, update, clients } = rebuild(replica, Y.encodeStateAsUpdate(server), [squatted])
  assert.ok(update)
  assert.deepEqual([...clients.keys()], [7])
  assert.equal(doc.getMap('guests').get('g1').get('notes').toString(), 'Hello world')
  assert.equal(doc.getMap('guests').get('g1').get('rsvp'), undefined)
  Y.applyUpdate(server, Y.encodeStateAsUpdate(doc, Y.encodeStateVector(server)))
  assert.equal(server.getMap('guests').get('g1').get('notes').toString(), 'Hello world')
})

test('removing an entry others wrote is re-applied, and nothing else is written again', () => {
  const server = wedding()
  const replica = docOf(TAKEN)
  sync(server, replica)
  replica.getMap('guests').delete('g1')
  const { doc, update } = rebuild(replica, Y.encodeStateAsUpdate(server), [TAKEN])
  assert.deepEqual(Object.keys(doc.getMap('guests').toJSON()), ['g3'])
  // The update holds the removal (a deletion of the server's item) and no item.
  assert.equal(clientsOf(update).length, 0)
  assert.equal(Y.decodeUpdate(update).ds.clients.get(1).length, 1)
})

test('with nothing unsent the new document is the server\'s', () => {
  const server = wedding()
  const replica = docOf(TAKEN)
  sync(server, replica)
  const { doc, update } = rebuild(replica, Y.encodeStateAsUpdate(server), [TAKEN])
  assert.equal(update, null)
  assert.deepEqual(doc.getMap('guests').toJSON(), server.getMap('guests').toJSON())
})

test('the re-applied edits come with their own origin, once', () => {
  const server = wedding()
  const replica = docOf(TAKEN)
  sync(server, replica)
  editOffline(replica)
  const { update } = unsentEdits(replica, Y.encodeStateAsUpdate(server), [TAKEN])
  const target = docOf(9)
  Y.applyUpdate(target, Y.encodeStateAsUpdate(server))
  const origins = []
  target.on('update', (_, origin) => origins.push(origin))
  Y.applyUpdate(target, update, REAPPLIED)
  Y.applyUpdate(target, update, REAPPLIED) // applied twice: the second changes nothing
  assert.deepEqual(origins, [REAPPLIED])
})
