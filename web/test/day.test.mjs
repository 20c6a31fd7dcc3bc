// Where a new timeline item lands when the timeline is empty (web/src/model.js firstDay):
// the wedding's date in its IANA time zone (the profile), not today in UTC.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'

const { firstDay, readProfile, zoneOffset } = await import('../src/model.js')

test('an empty timeline uses the profile date and its zone offset on that day', () => {
  const profile = { date: '2027-06-12', time_zone: 'Europe/Lisbon' }
  assert.deepEqual(firstDay([], profile), { day: '2027-06-12', offset: '+01:00' })
  const winter = { date: '2027-01-12', time_zone: 'Europe/Lisbon' }
  assert.deepEqual(firstDay([], winter), { day: '2027-01-12', offset: '+00:00' })
  assert.equal(zoneOffset('2027-06-12', 'Asia/Kolkata'), '+05:30')
  assert.equal(zoneOffset('2027-06-12', 'America/New_York'), '-04:00')
})

test('the first item wins; no profile is today in UTC; an unknown zone is UTC', () => {
  const items = [{ start: '2027-06-12T15:00:00+02:00' }]
  assert.deepEqual(firstDay(items, { date: '2030-01-01', time_zone: 'UTC' }), { day: '2027-06-12', offset: '+02:00' })
  const now = new Date('2026-03-04T23:30:00Z')
  assert.deepEqual(firstDay([], null, now), { day: '2026-03-04', offset: '+00:00' })
  assert.deepEqual(firstDay([], { date: '2027-06-12', time_zone: null }, now), { day: '2027-06-12', offset: '+00:00' })
  assert.deepEqual(firstDay([], { date: '2027-06-12', time_zone: 'Mars/Olympus' }), { day: '2027-06-12', offset: '+00:00' })
})

test('readProfile reads what the schema allows and nothing else', () => {
  const doc = new Y.Doc()
  assert.deepEqual(readProfile(doc), { names: null, date: null, time_zone: null, venue: null, rsvp_deadline: null })
  const profile = doc.getMap('profile')
  profile.set('names', ['Ann', 3, 'Bo', 'Cy'])
  profile.set('date', 'tomorrow')
  profile.set('time_zone', 'Europe/Lisbon')
  profile.set('venue', '  Barn ')
  assert.deepEqual(readProfile(doc), { names: ['Ann', 'Bo'], date: null, time_zone: 'Europe/Lisbon', venue: 'Barn', rsvp_deadline: null })
})
