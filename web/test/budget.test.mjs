// Payments due (issue 54, point 3) as the app reads them (web/src/model.js) and as the budget
// chart adds them up (web/src/budgetchart.js), without a browser: node --test web/test/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'

const { readBudget, recordPayment, markPaid } = await import('../src/model.js')
const { chartRows } = await import('../src/budgetchart.js')

function budgetDoc (payments) {
  const doc = new Y.Doc()
  doc.transact(() => {
    const venue = new Y.Map()
    doc.getMap('categories').set('venue', venue)
    venue.set('name', 'Venue')
    venue.set('planned', 500)
    for (const [id, fields] of Object.entries(payments)) {
      const payment = new Y.Map()
      doc.getMap('payments').set(id, payment)
      for (const [k, v] of Object.entries(fields)) payment.set(k, v)
    }
  })
  return doc
}

test('a payment with no status is paid; a scheduled one may have no date yet', () => {
  const doc = budgetDoc({
    old: { amount: 100, category_id: 'venue', date: '2026-01-15' },
    later: { amount: 300, category_id: 'venue', status: 'scheduled', due: '2027-03-01' },
    odd: { amount: 5, category_id: 'venue', status: 'whenever', date: '2026-02-01' },
    undated: { amount: 7, category_id: 'venue' }
  })
  const { payments } = readBudget(doc)
  const byId = Object.fromEntries(payments.map((p) => [p.id, p]))
  assert.deepEqual(Object.keys(byId).sort(), ['later', 'odd', 'old'])
  assert.equal(byId.old.status, 'paid')
  assert.equal(byId.odd.status, 'paid') // an unknown status reads as paid, as on the server
  assert.deepEqual([byId.later.status, byId.later.date, byId.later.due], ['scheduled', null, '2027-03-01'])
  assert.deepEqual(chartRows(readBudget(doc)), [{ id: 'venue', name: 'Venue', planned: 500, paid: 105, scheduled: 300 }])
})

test('recording a scheduled payment, then marking it paid', () => {
  const doc = budgetDoc({})
  recordPayment(doc, { amount: 250, category_id: 'venue', date: null, due: '2027-05-01', status: 'scheduled' })
  const [payment] = readBudget(doc).payments
  assert.equal(payment.status, 'scheduled')
  assert.equal(doc.getMap('payments').get(payment.id).has('date'), false)
  markPaid(doc, payment.id, '2027-04-30')
  const [paid] = readBudget(doc).payments
  assert.deepEqual([paid.status, paid.date, paid.due], ['paid', '2027-04-30', '2027-05-01'])
  assert.deepEqual(chartRows(readBudget(doc))[0], { id: 'venue', name: 'Venue', planned: 500, paid: 250, scheduled: 0 })
})
