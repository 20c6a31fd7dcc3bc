// The inbox's reminders (web/src/inbox.js) told apart: overdue, due today and due soon, and a
// payment's amount in the wedding's currency, without a browser: node --test web/test/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'

const { reminderLine, reminderWhen } = await import('../src/inbox.js')
const { Local } = await import('../src/local.js')

const local = new Local('Europe/Berlin', 'EUR')

test('a reminder is overdue, due today or due soon by the day it was written, in the wedding\'s zone', () => {
  // 23:30 UTC on 1 March is 2 March in Berlin.
  const at = '2027-03-01T23:30:00Z'
  assert.equal(reminderWhen('2027-03-02', at, local), 'today')
  assert.equal(reminderWhen('2027-03-01', at, local), 'overdue')
  assert.equal(reminderWhen('2027-03-09', at, local), 'soon')
  assert.equal(reminderWhen(null, at, local), 'today')
})

function tasksDoc () {
  const doc = new Y.Doc()
  const task = new Y.Map()
  doc.getMap('tasks').set('cake', task)
  task.set('title', 'Taste cakes')
  task.set('due', '2027-02-20')
  return doc
}

test('a task\'s and a payment\'s reminders say which they are, with the amount', () => {
  const ctx = {
    local,
    profile: { date: '2027-06-12' },
    docs: { tasks: tasksDoc() },
    budget: {
      categories: [{ id: 'c1', name: 'Flowers', planned: 0 }],
      payments: [
        { id: 'p1', amount: 150000, category_id: 'c1', due: '2027-03-10', vendor: 'Petal Co.', status: 'scheduled' },
        { id: 'p2', amount: 9900, category_id: 'gone', due: '2027-02-27', vendor: null, status: 'scheduled' },
        { id: 'p3', amount: 50000, category_id: 'c1', due: '2027-03-01', vendor: null, status: 'scheduled' }
      ]
    }
  }
  const task = reminderLine({ reason: 'task.due', ref: 'cake', created_at: '2027-03-01T08:00:00Z' }, ctx)
  assert.equal(task.label, 'Overdue')
  assert.match(task.text, /^Taste cakes \(was due .*2027\)$/)
  const onTheDay = reminderLine({ reason: 'task.due', ref: 'cake', created_at: '2027-02-20T08:00:00Z' }, ctx)
  assert.deepEqual(onTheDay, { label: 'Due today', text: 'Taste cakes' })
  const payment = reminderLine({ reason: 'payment_due', ref: 'p1', created_at: '2027-03-01T08:00:00Z' }, ctx)
  assert.equal(payment.label, 'Due soon')
  assert.match(payment.text, /^a payment of €1,500\.00 to Petal Co\. for Flowers \(due .*2027\)$/)
  const overdue = reminderLine({ reason: 'payment_due', ref: 'p2', created_at: '2027-03-01T08:00:00Z' }, ctx)
  assert.equal(overdue.label, 'Overdue')
  assert.match(overdue.text, /^a payment of €99\.00 \(was due .*2027\)$/)
  const today = reminderLine({ reason: 'payment_due', ref: 'p3', created_at: '2027-03-01T08:00:00Z' }, ctx)
  assert.deepEqual(today, { label: 'Due today', text: 'a payment of €500.00 for Flowers' })
  assert.equal(reminderLine({ reason: 'mention', ref: 'x', created_at: '2027-03-01T08:00:00Z' }, ctx), null)
})
