// Tasks as the app reads them (web/src/tasks.js): due dates relative to the wedding date agree
// with the server's documents/tasks.py (values printed by its own offset_from), and a tick is
// one write two replicas agree on: node --test web/test/ (run by tests/web/test_web_units.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { addTask, describeOffset, dueDate, offsetFrom, readTasks, setDone, sortTasks } from '../src/tasks.js'

test('offsets from the wedding date match the server', () => {
  const server = [
    ['2027-03-31', '-1M', '2027-02-28'],
    ['2028-03-31', '-1M', '2028-02-29'],
    ['2027-06-12', '-6M', '2026-12-12'],
    ['2027-01-31', '+1M', '2027-02-28'],
    ['2027-01-05', '-2W', '2026-12-22'],
    ['2027-01-05', '-10D', '2026-12-26'],
    ['2027-06-12', '-12M', '2026-06-12'],
    ['2027-06-12', '+0D', '2027-06-12'],
    ['2027-12-15', '+1M', '2028-01-15']
  ]
  for (const [wedding, offset, expected] of server) assert.equal(offsetFrom(wedding, offset), expected, `${wedding} ${offset}`)
  assert.equal(offsetFrom('2027-06-12', '6 months'), null)
  assert.equal(offsetFrom('someday', '-6M'), null)
})

test('a task is due on its own day, or at its offset while the wedding has a date', () => {
  assert.equal(dueDate({ due: '2027-03-14', due_offset: null }, '2027-06-12'), '2027-03-14')
  assert.equal(dueDate({ due: null, due_offset: '-3M' }, '2027-06-12'), '2027-03-12')
  assert.equal(dueDate({ due: null, due_offset: '-3M' }, '2027-09-12'), '2027-06-12') // the wedding moved
  assert.equal(dueDate({ due: null, due_offset: '-3M' }, null), null)
  assert.equal(describeOffset('-6M'), '6 months before')
  assert.equal(describeOffset('+1W'), '1 week after')
  assert.equal(describeOffset('-0D'), 'on the day')
})

test('open tasks come first, soonest due first, undated last', () => {
  const tasks = [
    { id: 'a', title: 'Late', due: '2027-05-01', due_offset: null, done: false },
    { id: 'b', title: 'Undated', due: null, due_offset: null, done: false },
    { id: 'c', title: 'Early', due: null, due_offset: '-6M', done: false },
    { id: 'd', title: 'Done', due: '2026-01-01', due_offset: null, done: true }
  ]
  assert.deepEqual(sortTasks(tasks, '2027-06-12').map((t) => t.id), ['c', 'a', 'b', 'd'])
})

test('a tick on one replica is the tick on the other', () => {
  const one = new Y.Doc()
  const two = new Y.Doc()
  one.on('update', (u) => Y.applyUpdate(two, u))
  const id = addTask(one, { title: 'Book the band', due: '2027-01-10', owner: 'ann' })
  setDone(one, id, true)
  assert.deepEqual(readTasks(two), [{ id, title: 'Book the band', owner: 'ann', due: '2027-01-10', due_offset: null, done: true }])
  // A stored shape the schema does not allow is left out, never thrown on.
  two.getMap('tasks').set('bad id!', new Y.Map())
  two.getMap('tasks').set('x', 'not a task')
  assert.equal(readTasks(two).length, 1)
})
