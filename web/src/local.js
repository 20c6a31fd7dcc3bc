// Dates, times and money as the wedding has them (issue 53, point 6): in the wedding's time
// zone (the timeline's `profile`, `time_zone`) and currency (the budget's settings), whatever
// the zone of the device showing them. Without a profile (an older document), the times are
// the ones written (the wall clock of each timestamp's own offset) and dates the device's.

/** `object[name]` made by `make()` when first read, then kept. */
function lazy (object, name, make) {
  Object.defineProperty(object, name, {
    configurable: true,
    get () {
      const value = make()
      Object.defineProperty(object, name, { value })
      return value
    }
  })
}

/** Formatters for one wedding: `zone` an IANA time zone (or null), `currency` an ISO 4217
 *  code. Unknown zones or currencies fall back rather than throw. */
export class Local {
  constructor (zone, currency = 'EUR') {
    this.asked = { zone, currency }
    this.zone = zone && knownZone(zone) ? zone : null
    this.currency = currency
    const tz = this.zone ? { timeZone: this.zone } : {}
    // Each formatter made on its first use: making one costs a slow phone milliseconds, and
    // a view uses only some of them.
    lazy(this, 'clockFormat', () => new Intl.DateTimeFormat(undefined, { ...tz, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }))
    lazy(this, 'dayFormat', () => new Intl.DateTimeFormat(undefined, { ...tz, weekday: 'short', day: 'numeric', month: 'long', year: 'numeric' }))
    lazy(this, 'calendarDay', () => new Intl.DateTimeFormat(undefined, { timeZone: 'UTC', weekday: 'short', day: 'numeric', month: 'long', year: 'numeric' }))
    lazy(this, 'dayMonth', () => new Intl.DateTimeFormat(undefined, { ...tz, day: 'numeric', month: 'short' }))
    lazy(this, 'shortFormat', () => new Intl.DateTimeFormat(undefined, { ...tz, day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }))
    // The parts of a wall clock in the zone, to edit it: 2027-06-12 and 14:00.
    lazy(this, 'partsFormat', () => new Intl.DateTimeFormat('en-CA', { ...tz, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }))
    lazy(this, 'moneyFormat', () => {
      try {
        return new Intl.NumberFormat(undefined, { style: 'currency', currency })
      } catch {
        return null
      }
    })
  }

  /** The wall clock of `iso` in the zone: `{ day: 'YYYY-MM-DD', time: 'HH:MM' }`; without a
   *  zone, the timestamp's own as written (`written`), else the device's. */
  wall (iso, written = true) {
    const at = Date.parse(iso)
    if ((!this.zone && written) || Number.isNaN(at)) {
      const found = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(String(iso))
      return found ? { day: found[1], time: found[2] } : { day: '', time: String(iso) }
    }
    const parts = Object.fromEntries(this.partsFormat.formatToParts(new Date(at)).map((p) => [p.type, p.value]))
    return { day: `${parts.year}-${parts.month}-${parts.day}`, time: `${parts.hour}:${parts.minute}` }
  }

  /** "14:00": the time of `iso` in the wedding's zone. */
  time (iso) {
    return this.wall(iso).time
  }

  /** "Sat, 12 June 2027": a day (`YYYY-MM-DD`, as the wedding has it) or a timestamp's day
   *  in the zone. */
  day (value) {
    const text = String(value)
    if (/^\d{4}-\d\d-\d\d$/.test(text)) {
      // A calendar day is the same day everywhere: formatted at its noon in UTC, in UTC.
      const noon = new Date(`${text}T12:00:00Z`)
      return this.calendarDay.format(noon)
    }
    const at = Date.parse(text)
    return Number.isNaN(at) ? text : this.dayFormat.format(new Date(at))
  }

  /** "12 Jun 2027, 14:00": a moment in the wedding's zone. */
  dateTime (iso) {
    const at = Date.parse(iso)
    return Number.isNaN(at) ? String(iso || '') : this.shortFormat.format(new Date(at))
  }

  /** An amount in minor units in the wedding's currency ("€1,250.50"). */
  money (amount) {
    if (this.moneyFormat) return this.moneyFormat.format(amount / 100)
    return `${(amount / 100).toFixed(2)} ${this.currency}`
  }

  /** A server's sentence in words: its ISO timestamps as times in the wedding's zone, its
   *  amounts ("12,500.50 EUR") in the currency's own form. Bounded: one pass of two
   *  patterns over a sentence the server wrote. */
  words (text) {
    return String(text)
      .replace(/\b\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d)/g, (iso) => this.dateTime(iso))
      .replace(/\b(\d{1,3}(?:,\d{3})*(?:\.\d{1,3})?) ([A-Z]{3})\b/g, (all, number, code) => {
        if (code !== this.currency || !this.moneyFormat) return all
        return this.moneyFormat.format(Number(number.replace(/,/g, '')))
      })
  }

  /** "just now", "5 min ago", "14:05" (today in the zone), "12 Jun 14:05". */
  ago (iso, now = Date.now()) {
    const at = Date.parse(iso)
    if (Number.isNaN(at)) return ''
    const seconds = Math.round((now - at) / 1000)
    if (seconds < 45) return 'just now'
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`
    const then = this.wall(new Date(at).toISOString(), false)
    if (this.wall(new Date(now).toISOString(), false).day === then.day) return then.time
    return `${this.dayMonth.format(new Date(at))} ${then.time}`
  }
}

let current = null

/** The formatters of the wedding open now (set by `useFormats`; the device's until then). */
/** A time zone as people say it: "UTC" for `Etc/UTC`, else the zone's name in words with
 *  its city ("Central European Time (Berlin)"), never a bare IANA id. */
export function zoneWords (zone, at = new Date()) {
  if (!zone) return 'the times as written'
  if (/^(Etc\/)?(UTC|UCT|Zulu|Universal|GMT|Greenwich)$/.test(zone)) return 'UTC'
  const city = zone.split('/').pop().replace(/_/g, ' ')
  let name = null
  try {
    const parts = new Intl.DateTimeFormat(undefined, { timeZone: zone, timeZoneName: 'longGeneric' }).formatToParts(at)
    const found = parts.find((p) => p.type === 'timeZoneName')
    name = found ? found.value : null
  } catch {
    return city
  }
  return name && !name.startsWith('GMT') && name !== city ? `${name} (${city})` : `${city} time`
}

export function formats () {
  if (!current) current = new Local(null)
  return current
}

/** The wedding's time zone and currency, from its profile and budget (main.js, each render):
 *  the formatters are made again only when either changes. */
export function useFormats (zone, currency) {
  if (!current || current.asked.zone !== zone || current.asked.currency !== currency) current = new Local(zone, currency)
  return current
}

function knownZone (zone) {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone }).format(0)
    return true
  } catch {
    return false
  }
}
