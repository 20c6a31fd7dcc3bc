// The timeline's days (web/src/model.js): where a new item lands when the timeline is empty,
// the wedding's date in its IANA zone; each day's offset across a daylight-saving change.
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

const { zonedTime, addDays, timelineDays, dayName, offsetMinutes } = await import('../src/model.js')

test('a wall clock on each day of a weekend across a change gets that moment\'s offset', () => {
  // Berlin: summer time ends at 03:00 on Sunday 25 October 2026.
  assert.equal(zonedTime('2026-10-23', '19:00', 'Europe/Berlin'), '2026-10-23T19:00:00+02:00')
  assert.equal(zonedTime('2026-10-25', '11:00', 'Europe/Berlin'), '2026-10-25T11:00:00+01:00')
  // New York: daylight time ends at 02:00 on Sunday 1 November 2026.
  assert.equal(zonedTime('2026-10-30', '19:00', 'America/New_York'), '2026-10-30T19:00:00-04:00')
  assert.equal(zonedTime('2026-11-01', '11:00', 'America/New_York'), '2026-11-01T11:00:00-05:00')
  assert.equal(zonedTime('2026-06-12', '11:00', 'Asia/Kolkata'), '2026-06-12T11:00:00+05:30')
  assert.equal(offsetMinutes(Date.parse('2026-10-25T01:30:00Z'), 'Europe/Berlin'), 60)
})

test('a skipped time moves on by the gap, a repeated one is its first, as zoneinfo does', () => {
  assert.equal(zonedTime('2027-03-28', '02:30', 'Europe/Berlin'), '2027-03-28T03:30:00+02:00')
  assert.equal(zonedTime('2026-10-25', '02:30', 'Europe/Berlin'), '2026-10-25T02:30:00+02:00')
  assert.equal(zonedTime('2026-11-01', '01:30', 'America/New_York'), '2026-11-01T01:30:00-04:00')
})

test('no zone, or one the browser does not know: the offset written so far', () => {
  assert.equal(zonedTime('2026-06-12', '11:00', null, '+02:00'), '2026-06-12T11:00:00+02:00')
  assert.equal(zonedTime('2026-06-12', '11:00', 'Mars/Olympus', '-03:00'), '2026-06-12T11:00:00-03:00')
  assert.equal(zonedTime('2026-06-12', '25:00', 'Europe/Berlin'), null)
  assert.equal(zonedTime('June', '11:00', 'Europe/Berlin'), null)
})

test('the days are the items\' start days in the zone and the wedding\'s date, in order', () => {
  const items = [
    { start: '2026-10-25T10:00:00+01:00' },
    { start: '2026-10-23T17:00:00Z' }, // 19:00 in Berlin, Friday
    { start: '2026-10-24T22:30:00Z' }, // 23:30 on Saturday in UTC, Sunday 00:30 in Berlin
    { start: 'soon' }
  ]
  const inBerlin = (iso) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin' }).format(new Date(Date.parse(iso) || 0))
  assert.deepEqual(timelineDays(items.slice(0, 3), { date: '2026-10-24' }, inBerlin), ['2026-10-23', '2026-10-24', '2026-10-25'])
  assert.deepEqual(timelineDays([], { date: '2026-10-24' }, inBerlin), ['2026-10-24'])
  assert.deepEqual(timelineDays([items[3]], null, () => ''), [])
  assert.equal(addDays('2026-10-25', -1), '2026-10-24')
  assert.equal(addDays('2026-12-31', 1), '2027-01-01')
  assert.equal(addDays('2027-03-28', 1), '2027-03-29')
  assert.equal(dayName('2026-10-23', '2026-10-24'), 'The day before')
  assert.equal(dayName('2026-10-24', '2026-10-24'), 'Wedding day')
  assert.equal(dayName('2026-10-25', '2026-10-24'), 'The day after')
  assert.equal(dayName('2026-10-21', '2026-10-24'), '3 days before')
  assert.equal(dayName('2026-10-21', null), null)
})
