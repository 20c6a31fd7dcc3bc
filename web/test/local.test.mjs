// Dates, times and money in the wedding's time zone and currency (web/src/local.js), without a
// browser: node --test web/test/ (run by tests/web/test_web_units.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'

const { Local, formats, useFormats } = await import('../src/local.js')

test('a time is shown in the wedding\'s zone, whatever offset it was written with', () => {
  const berlin = new Local('Europe/Berlin', 'EUR')
  assert.equal(berlin.time('2027-06-12T12:00:00Z'), '14:00')
  assert.equal(berlin.time('2027-06-12T14:00:00+02:00'), '14:00')
  assert.equal(berlin.time('2027-06-12T08:00:00-04:00'), '14:00')
  assert.deepEqual(berlin.wall('2027-06-12T23:30:00Z'), { day: '2027-06-13', time: '01:30' })
  const auckland = new Local('Pacific/Auckland', 'NZD')
  assert.equal(auckland.time('2027-06-12T12:00:00Z'), '00:00')
})

test('without a profile, a time is the one written', () => {
  const none = new Local(null, 'EUR')
  assert.equal(none.time('2027-06-12T14:00:00+02:00'), '14:00')
  assert.equal(none.time('2027-06-12T12:00:00Z'), '12:00')
  // An unknown zone is no zone, never an exception.
  assert.equal(new Local('Mars/Olympus', 'EUR').zone, null)
})

test('a calendar day is the same day in every zone', () => {
  const day = new Local('Pacific/Auckland', 'EUR').day('2027-06-12')
  assert.match(day, /12/)
  assert.match(day, /2027/)
  assert.doesNotMatch(day, /2027-06-12/)
})

test('money in the wedding\'s currency', () => {
  assert.match(new Local('Europe/Berlin', 'EUR').money(125050), /€/)
  assert.match(new Local('Europe/Berlin', 'EUR').money(125050), /1,?250[.,]50/)
  assert.match(new Local('Asia/Tokyo', 'JPY').money(125000), /¥/)
  assert.equal(new Local(null, 'XYZW').money(150), '1.50 XYZW')
})

test('a server sentence in words: no ISO timestamps, amounts in the currency\'s form', () => {
  const berlin = new Local('Europe/Berlin', 'EUR')
  const said = berlin.words("'Dinner' and 'Speeches' both use location 'Orangery' from 2027-06-12T17:00:00+00:00 to 2027-06-12T17:30:00+00:00.")
  assert.doesNotMatch(said, /\d{4}-\d\d-\d\dT/)
  assert.match(said, /19:00/)
  assert.match(said, /19:30/)
  const money = berlin.words("Payments for 'Flowers' total 12,500.50 EUR but the plan is 1,000.00 EUR.")
  assert.doesNotMatch(money, /EUR/)
  assert.match(money, /€/)
  // Another currency's amount is left as the server wrote it.
  assert.match(berlin.words('total 10.00 USD'), /10\.00 USD/)
})

test('"when" words: relative, then the time in the zone', () => {
  const berlin = useFormats('Europe/Berlin', 'EUR')
  assert.equal(formats(), berlin)
  assert.equal(useFormats('Europe/Berlin', 'EUR'), berlin) // made again only on a change
  const now = Date.parse('2027-06-12T12:00:00Z')
  assert.equal(berlin.ago('2027-06-12T11:59:40Z', now), 'just now')
  assert.equal(berlin.ago('2027-06-12T11:50:00Z', now), '10 min ago')
  assert.equal(berlin.ago('2027-06-12T08:00:00Z', now), '10:00')
  assert.match(berlin.ago('2027-06-10T08:00:00Z', now), /10:00$/)
  assert.equal(berlin.ago('not a time', now), '')
})

test('a time zone is said in words, never as a bare IANA id', async () => {
  const { zoneWords } = await import('../src/local.js')
  assert.equal(zoneWords('Etc/UTC'), 'UTC')
  assert.equal(zoneWords('UTC'), 'UTC')
  assert.equal(zoneWords(null), 'the times as written')
  const berlin = zoneWords('Europe/Berlin', new Date('2027-06-12T12:00:00Z'))
  assert.ok(berlin.includes('Berlin') && !berlin.includes('Europe/'), berlin)
  assert.ok(!zoneWords('America/New_York').includes('_'))
})
